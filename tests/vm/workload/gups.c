// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * gups: GUPS-style random updates over a footprint with a hot set, for the
 * placement tests (tests/vm/daemon/test-policy.sh, test-peers.sh).
 *
 * It maps SIZE bytes of private anonymous memory (2 MiB aligned, THP as
 * asked), gives every 64-bit word an initial value that depends on the seed
 * and the word's index, and then, until SIGTERM or SIGINT, one thread XORs
 * pseudo-random values into pseudo-random words: COLD_PPM updates in a
 * million go anywhere in the footprint, the others into the hot set, HOT
 * bytes at a page boundary. The hot set moves (phase change) on SIGUSR1 or
 * every --phase-ticks ticks, to another HOT-sized slot of the footprint, in
 * the other half of it (see hot_first()), so that its new place shares no
 * page with the old one and is not next to it.
 *
 * Every TICK_MS a reporter thread asks the kernel where every page of the
 * footprint is (move_pages(2) with nodes NULL) and prints one line:
 *
 *   gups: tick=T phase=P since=S hot_on=H hot=N frac=F dev=D prec=Q upd=U
 *
 * T ticks since the start, S ticks since the last phase change, H of the N
 * pages of the current hot set on the device, F = H / N, D pages of the
 * whole footprint on the device, Q = H / D (1.000 when D is 0), U updates so
 * far. "On the device" is --device: "node:N" (move_pages says node N) or
 * "pool" (move_pages says -ENOENT for a present page: a cohmem pool's
 * ZONE_DEVICE page; every page is present, it was filled and there is no
 * swap in the VM). A phase change prints
 *
 *   gups: phase=P tick=T hot=0xSTART-0xEND
 *
 * and the first line, once the buffer is filled, is
 *
 *   gups: pid PID buffer 0xSTART-0xEND hot 0xSTART-0xEND
 *
 * (the same range, END exclusive, and the pid go to --range-file).
 * --fill-node N places the pages on node N while they are filled (preferred,
 * not bound: the policy is back to the default before the updates start, so
 * the kernel's own tiering may move them).
 *
 * XOR is its own inverse: on SIGTERM the updates stop and are played again
 * from their seeds (each phase's count is known), which must give back every
 * word's initial value. Any word that does not is data the memory lost
 * (a page zeroed, stale or swapped with another during a migration):
 *
 *   gups: verified W words, E errors (U updates, P phase changes)
 *
 * --tlb-flush-ms MS makes the process's TLB entries turn over as a hardware
 * TLB's do: under QEMU TCG a vCPU's TLB (QEMU's softmmu TLB, millions of
 * entries) keeps every translation until the guest flushes it, so a sampler
 * that clears accessed bits without a flush, as DAMON does (on hardware too,
 * where the TLB's few thousand entries turn over by themselves), sees no
 * access at all once the hot set's translations are cached: after a
 * migration, for as long as no context switch reloads CR3. Every MS ms a
 * thread flushes the whole TLB of the process on every CPU it runs on, by
 * write-protecting and unprotecting 64 pages (over the kernel's 33-page
 * ceiling for page-by-page flushes). 0, the default: no flushes.
 *
 * Exit status: 0 no error, 1 data mismatch, 2 usage, 3 system error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <numaif.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PG 4096UL
#define WORDS_PER_PG (PG / sizeof(uint64_t))
#define ALIGN_2M (2UL << 20)
#define CHUNK 4096U
#define PHASES_MAX 4096U

enum {
	EXIT_MISMATCH = 1,
	EXIT_USAGE = 2,
	EXIT_SYSTEM = 3,
};

static struct {
	uint64_t *buf;
	size_t npages, hot_pages, slots;
	uint64_t seed;
	unsigned cold_ppm, tick_ms, phase_ticks, flush_ms;
	int dev_node;                   /* -1: the cohmem pool */
	/* updates done in each phase, and the phase the updater is in */
	uint64_t phase_updates[PHASES_MAX];
	_Atomic unsigned phase;
	_Atomic uint64_t updates;
	atomic_bool stop, phase_req;
	_Atomic unsigned tick;          /* ticks reported */
	_Atomic unsigned phase_tick[PHASES_MAX]; /* tick at each phase's start */
} g;

static void on_stop(int sig)
{
	(void)sig;
	atomic_store(&g.stop, true);
}

static void on_phase(int sig)
{
	(void)sig;
	atomic_store(&g.phase_req, true);
}

/* wyhash-style 64-bit generator: the update stream of one phase. */
static uint64_t rnd(uint64_t *s)
{
	__uint128_t m;

	*s += UINT64_C(0xa0761d6478bd642f);
	m = (__uint128_t)*s * (*s ^ UINT64_C(0xe7037ed1a0b428db));
	return (uint64_t)(m >> 64) ^ (uint64_t)m;
}

static uint64_t initial(size_t word)
{
	uint64_t s = g.seed ^ ((uint64_t)word * UINT64_C(0x9e3779b97f4a7c15));

	return rnd(&s);
}

static uint64_t phase_seed(unsigned phase)
{
	uint64_t s = g.seed + phase + 1;

	return rnd(&s);
}

/*
 * First page of phase's hot set: the slots of the two halves of the buffer
 * in turn (0, n/2, 1, n/2 + 1, ... for n slots), so that a new hot set is
 * never next to the old one (unless there are only two or three slots) and
 * a mover that took a margin around the old one does not hold the new one.
 */
static size_t hot_first(unsigned phase)
{
	size_t half = g.slots / 2;

	return ((phase % 2) * half + (phase / 2) % half) * g.hot_pages;
}

/* n updates of phase's stream, from generator state *s. */
static void update(unsigned phase, uint64_t *s, uint64_t n)
{
	size_t hot0 = hot_first(phase) * WORDS_PER_PG, hot_words = g.hot_pages * WORDS_PER_PG;
	size_t words = g.npages * WORDS_PER_PG;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t r = rnd(s), v = rnd(s);
		size_t word;

		if ((r >> 40) % 1000000 < g.cold_ppm)
			word = (size_t)(v % words);
		else
			word = hot0 + (size_t)(v % hot_words);
		g.buf[word] ^= r;
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_range(FILE *f, size_t first, size_t n)
{
	fprintf(f, "0x%lx-0x%lx", (unsigned long)((char *)g.buf + first * PG),
		(unsigned long)((char *)g.buf + (first + n) * PG));
}

#define FLUSH_PAGES 64

/* --tlb-flush-ms: a full TLB flush of this mm every flush_ms (see the top). */
static void *flusher(void *arg)
{
	char *scratch = arg;
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!atomic_load(&g.stop)) {
		next.tv_nsec += (long)g.flush_ms * 1000000L;
		next.tv_sec += next.tv_nsec / 1000000000L;
		next.tv_nsec %= 1000000000L;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
		if (mprotect(scratch, FLUSH_PAGES * PG, PROT_READ) < 0 ||
		    mprotect(scratch, FLUSH_PAGES * PG, PROT_READ | PROT_WRITE) < 0) {
			fprintf(stderr, "gups: mprotect: %m\n");
			exit(EXIT_SYSTEM);
		}
	}
	return NULL;
}

static void *reporter(void *arg)
{
	size_t n = g.npages;
	void **pages = calloc(n, sizeof(*pages));
	int *status = calloc(n, sizeof(*status));
	struct timespec next;

	(void)arg;
	if (!pages || !status) {
		fprintf(stderr, "gups: out of memory\n");
		exit(EXIT_SYSTEM);
	}
	for (size_t i = 0; i < n; i++)
		pages[i] = (char *)g.buf + i * PG;
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!atomic_load(&g.stop)) {
		size_t hot_on = 0, dev = 0, first, absent = 0;
		unsigned phase, tick;

		next.tv_nsec += (long)(g.tick_ms % 1000) * 1000000L;
		next.tv_sec += g.tick_ms / 1000 + next.tv_nsec / 1000000000L;
		next.tv_nsec %= 1000000000L;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
		if (atomic_load(&g.stop))
			break;
		tick = atomic_fetch_add(&g.tick, 1) + 1;
		if (g.phase_ticks && tick % g.phase_ticks == 0)
			atomic_store(&g.phase_req, true);

		phase = atomic_load(&g.phase);
		first = hot_first(phase);
		if (move_pages(0, n, pages, NULL, status, 0) < 0) {
			fprintf(stderr, "gups: move_pages query: %m\n");
			exit(EXIT_SYSTEM);
		}
		for (size_t i = 0; i < n; i++) {
			bool on = g.dev_node >= 0 ? status[i] == g.dev_node : status[i] == -ENOENT;

			if (status[i] < 0 && status[i] != -ENOENT)
				absent++;
			if (!on)
				continue;
			dev++;
			if (i >= first && i < first + g.hot_pages)
				hot_on++;
		}
		printf("gups: tick=%u phase=%u since=%u hot_on=%zu hot=%zu frac=%.3f dev=%zu "
		       "prec=%.3f upd=%" PRIu64 " t=%.3f%s\n",
		       tick, phase, tick - atomic_load(&g.phase_tick[phase]), hot_on, g.hot_pages,
		       (double)hot_on / (double)g.hot_pages, dev,
		       dev ? (double)hot_on / (double)dev : 1.0, atomic_load(&g.updates), now_s(),
		       absent ? " (some pages not present)" : "");
		fflush(stdout);
	}
	free(pages);
	free(status);
	return NULL;
}

static int parse_bytes(const char *s, size_t *ret)
{
	unsigned long long v;
	unsigned shift = 20;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	else if (*end && *end != 'M' && *end != 'm')
		return -EINVAL;
	if (*end && end[1])
		return -EINVAL;
	if (v == 0 || v > (SIZE_MAX >> shift) || (v << shift) % PG)
		return -EINVAL;
	*ret = (size_t)(v << shift);
	return 0;
}

static int parse_uint(const char *s, unsigned max, unsigned *ret)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: gups [OPTIONS]\n"
		"  -s, --size SIZE         footprint (MiB, or with K/M/G; default 384)\n"
		"  -H, --hot SIZE          hot set, at most half the footprint (default 64)\n"
		"  -c, --cold-ppm N        updates per million that go anywhere (default 100)\n"
		"  -S, --seed N            seed of the values and the updates (default 1)\n"
		"  -t, --thp on|off        transparent huge pages (default off)\n"
		"  -T, --tick-ms MS        report period (default 1000)\n"
		"  -p, --phase-ticks N     move the hot set every N ticks (default 0: on\n"
		"                          SIGUSR1 only)\n"
		"  -d, --device node:N|pool  what counts as on the device (default pool)\n"
		"  -r, --range-file FILE   write \"0xSTART-0xEND\\nPID\\n\" once filled\n"
		"  -n, --fill-node N       fill the pages on node N (preferred, then the\n"
		"                          default policy again)\n"
		"  -f, --tlb-flush-ms MS   flush the process's TLB every MS ms, as a\n"
		"                          hardware TLB turns over (default 0: never)\n");
}

static int write_range_file(const char *path)
{
	char tmp[4096];
	FILE *f;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	print_range(f, 0, g.npages);
	fprintf(f, "\n%d\n", (int)getpid());
	if (fclose(f) != 0 || rename(tmp, path) < 0)
		return -errno;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "hot", required_argument, NULL, 'H' },
		{ "cold-ppm", required_argument, NULL, 'c' },
		{ "seed", required_argument, NULL, 'S' },
		{ "thp", required_argument, NULL, 't' },
		{ "tick-ms", required_argument, NULL, 'T' },
		{ "phase-ticks", required_argument, NULL, 'p' },
		{ "device", required_argument, NULL, 'd' },
		{ "range-file", required_argument, NULL, 'r' },
		{ "fill-node", required_argument, NULL, 'n' },
		{ "tlb-flush-ms", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	size_t size = 384UL << 20, hot = 64UL << 20, map_len, words, errors = 0;
	const char *range_file = NULL;
	unsigned seed = 1, dev, fill_node = 0;
	bool fill_pref = false;
	bool thp = false;
	pthread_t rep;
	char *map;
	int c;

	g.cold_ppm = 100;
	g.tick_ms = 1000;
	g.dev_node = -1;
	while ((c = getopt_long(argc, argv, "s:H:c:S:t:T:p:d:r:n:f:h", opts, NULL)) >= 0) {
		switch (c) {
		case 's':
		case 'H':
			if (parse_bytes(optarg, c == 's' ? &size : &hot) < 0) {
				fprintf(stderr, "gups: bad size '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'c':
			if (parse_uint(optarg, 1000000, &g.cold_ppm) < 0) {
				fprintf(stderr, "gups: --cold-ppm takes 0..1000000\n");
				return EXIT_USAGE;
			}
			break;
		case 'S':
			if (parse_uint(optarg, UINT32_MAX, &seed) < 0) {
				fprintf(stderr, "gups: bad seed '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 't':
			if (strcmp(optarg, "on") && strcmp(optarg, "off")) {
				fprintf(stderr, "gups: --thp takes on or off\n");
				return EXIT_USAGE;
			}
			thp = !strcmp(optarg, "on");
			break;
		case 'T':
			if (parse_uint(optarg, 3600000, &g.tick_ms) < 0 || !g.tick_ms) {
				fprintf(stderr, "gups: --tick-ms takes 1..3600000\n");
				return EXIT_USAGE;
			}
			break;
		case 'f':
			if (parse_uint(optarg, 3600000, &g.flush_ms) < 0) {
				fprintf(stderr, "gups: --tlb-flush-ms takes 0..3600000\n");
				return EXIT_USAGE;
			}
			break;
		case 'p':
			if (parse_uint(optarg, 1000000, &g.phase_ticks) < 0) {
				fprintf(stderr, "gups: bad --phase-ticks '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'd':
			if (!strcmp(optarg, "pool"))
				g.dev_node = -1;
			else if (!strncmp(optarg, "node:", 5) && parse_uint(optarg + 5, 1023, &dev) == 0)
				g.dev_node = (int)dev;
			else {
				fprintf(stderr, "gups: --device takes node:N or pool\n");
				return EXIT_USAGE;
			}
			break;
		case 'r':
			range_file = optarg;
			break;
		case 'n':
			if (parse_uint(optarg, 1023, &fill_node) < 0) {
				fprintf(stderr, "gups: bad --fill-node '%s'\n", optarg);
				return EXIT_USAGE;
			}
			fill_pref = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (hot > size / 2) {
		fprintf(stderr, "gups: the hot set must be at most half the footprint\n");
		return EXIT_USAGE;
	}
	g.seed = seed;
	g.npages = size / PG;
	g.hot_pages = hot / PG;
	g.slots = g.npages / g.hot_pages;

	setvbuf(stdout, NULL, _IOLBF, 0);
	map_len = size + ALIGN_2M;
	map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED) {
		fprintf(stderr, "gups: mmap: %m\n");
		return EXIT_SYSTEM;
	}
	g.buf = (uint64_t *)(((uintptr_t)map + ALIGN_2M - 1) & ~(ALIGN_2M - 1));
	if (madvise(g.buf, size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) < 0) {
		fprintf(stderr, "gups: madvise: %m\n");
		return EXIT_SYSTEM;
	}
	if (fill_pref) {
		enum { BITS = 8 * sizeof(unsigned long) };
		unsigned long mask[1024 / BITS] = {};

		mask[fill_node / BITS] |= 1UL << (fill_node % BITS);
		if (set_mempolicy(MPOL_PREFERRED, mask, 1024) < 0) {
			fprintf(stderr, "gups: set_mempolicy: %m\n");
			return EXIT_SYSTEM;
		}
	}
	words = g.npages * WORDS_PER_PG;
	for (size_t i = 0; i < words; i++)
		g.buf[i] = initial(i);
	if (fill_pref && set_mempolicy(MPOL_DEFAULT, NULL, 0) < 0) {
		fprintf(stderr, "gups: set_mempolicy: %m\n");
		return EXIT_SYSTEM;
	}

	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
	signal(SIGUSR1, on_phase);

	printf("gups: pid %d buffer ", (int)getpid());
	print_range(stdout, 0, g.npages);
	printf(" hot ");
	print_range(stdout, hot_first(0), g.hot_pages);
	printf("\n");
	if (range_file && write_range_file(range_file) < 0) {
		fprintf(stderr, "gups: cannot write %s: %m\n", range_file);
		return EXIT_SYSTEM;
	}
	if (pthread_create(&rep, NULL, reporter, NULL) != 0) {
		fprintf(stderr, "gups: cannot start the reporter\n");
		return EXIT_SYSTEM;
	}
	if (g.flush_ms) {
		char *scratch = mmap(NULL, FLUSH_PAGES * PG, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		pthread_t fl;

		if (scratch == MAP_FAILED || madvise(scratch, FLUSH_PAGES * PG, MADV_NOHUGEPAGE) < 0) {
			fprintf(stderr, "gups: scratch mapping: %m\n");
			return EXIT_SYSTEM;
		}
		if (pthread_create(&fl, NULL, flusher, scratch) != 0) {
			fprintf(stderr, "gups: cannot start the TLB flusher\n");
			return EXIT_SYSTEM;
		}
		pthread_detach(fl);
	}

	for (unsigned phase = 0;;) {
		uint64_t s = phase_seed(phase), done = 0;

		while (!atomic_load(&g.stop) && !atomic_load(&g.phase_req)) {
			update(phase, &s, CHUNK);
			done += CHUNK;
			atomic_fetch_add_explicit(&g.updates, CHUNK, memory_order_relaxed);
		}
		g.phase_updates[phase] = done;
		if (atomic_load(&g.stop))
			break;
		if (phase + 1 == PHASES_MAX) {
			fprintf(stderr, "gups: more than %u phases\n", PHASES_MAX);
			atomic_store(&g.stop, true);
			break;
		}
		/* since=1 is the first tick reported after the change */
		atomic_store(&g.phase_tick[phase + 1], atomic_load(&g.tick));
		atomic_store(&g.phase, ++phase);
		atomic_store(&g.phase_req, false);
		printf("gups: phase=%u tick=%u hot=", phase, atomic_load(&g.phase_tick[phase]));
		print_range(stdout, hot_first(phase), g.hot_pages);
		printf("\n");
	}
	pthread_join(rep, NULL);

	/* Play every phase's updates again: XOR undoes them. */
	for (unsigned p = 0; p <= atomic_load(&g.phase); p++) {
		uint64_t s = phase_seed(p);

		update(p, &s, g.phase_updates[p]);
	}
	for (size_t i = 0; i < words; i++) {
		if (g.buf[i] == initial(i))
			continue;
		if (errors++ < 10)
			printf("gups: MISMATCH at word %zu (address %p, page %zu): expected 0x%016"
			       PRIx64 ", got 0x%016" PRIx64 "\n", i, (void *)&g.buf[i],
			       i / WORDS_PER_PG, initial(i), g.buf[i]);
	}
	printf("gups: verified %zu words, %zu errors (%" PRIu64 " updates, %u phase changes)\n",
	       words, errors, atomic_load(&g.updates), atomic_load(&g.phase));
	munmap(map, map_len);
	return errors ? EXIT_MISMATCH : 0;
}
