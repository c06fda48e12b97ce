// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * cohwork: a workload whose memory is moved under it. It maps SIZE bytes of
 * private anonymous memory, fills every page with a pattern that depends on
 * the seed, the page index and a per-page generation, and then, until SIGTERM:
 *
 *   - a writer thread rewrites pages with the next generation;
 *   - a verifier thread checks every page against the generation it must hold.
 *
 * A per-page lock keeps the two from seeing half-written pages, so any
 * difference is the memory's fault (a page lost, swapped, zeroed or stale
 * after a migration): cohwork prints the offset and exits 1 at once.
 *
 * On SIGTERM (or SIGINT) it stops the threads, verifies every page once more,
 * prints "cohwork: verified N passes, 0 errors" and exits 0. SIGUSR1 runs one
 * extra verification pass at once (useful with --idle, where no thread runs;
 * the status file is rewritten when it is done).
 *
 * The buffer starts on a 2 MiB boundary and is a mapping (VMA) of its own:
 * PROT_NONE guard mappings without pages (at least one page each) sit right
 * below and above it, so /proc/PID/maps and numa_maps always show a mapping
 * that starts and ends exactly at the buffer. A whole-process migration sees
 * the guards as mappings with no page present.
 *
 * The buffer range goes to stdout and, with --range-file, to a file as
 * "0xSTART-0xEND" (END exclusive, both page aligned) followed by the pid on a
 * second line; the file appears (atomically) only once every page is filled.
 * --status FILE is rewritten (atomically) after every verification pass:
 * "passes N", "writes N", "errors N".
 *
 * Exit status: 0 no error, 1 data mismatch, 2 usage, 3 system error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
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

#define PAGE_SIZE_BYTES 4096UL
#define WORDS_PER_PAGE (PAGE_SIZE_BYTES / sizeof(uint64_t))
#define HPAGE_SIZE (2UL << 20)

enum {
	EXIT_MISMATCH = 1,
	EXIT_USAGE = 2,
	EXIT_SYSTEM = 3,
};

static struct {
	uint64_t *buf;
	size_t npages;
	uint64_t seed;
	_Atomic uint32_t *gen;          /* generation each page must hold */
	atomic_flag *lock;              /* one per page */
	unsigned pause_ms;
	const char *status_file;
	atomic_bool stop;
	atomic_uint_fast64_t passes, writes;
	pthread_mutex_t status_lock;
} w = {
	.status_lock = PTHREAD_MUTEX_INITIALIZER,
};

static uint64_t mix64(uint64_t x)
{
	/* splitmix64 finaliser */
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

/* First word of page @p at generation @g; word i is base + i * K. */
static uint64_t page_base(size_t p, uint32_t g)
{
	return mix64(w.seed ^ mix64(((uint64_t)p << 32) | g));
}

#define WORD_STEP UINT64_C(0x9e3779b97f4a7c15)

static void page_lock(size_t p)
{
	while (atomic_flag_test_and_set_explicit(&w.lock[p], memory_order_acquire))
		sched_yield();
}

static void page_unlock(size_t p)
{
	atomic_flag_clear_explicit(&w.lock[p], memory_order_release);
}

static void page_write(size_t p, uint32_t g)
{
	uint64_t *q = w.buf + p * WORDS_PER_PAGE, v = page_base(p, g);

	for (size_t i = 0; i < WORDS_PER_PAGE; i++, v += WORD_STEP)
		q[i] = v;
}

/* Exits on a mismatch: nothing after it can be trusted. */
static void page_verify(size_t p, uint32_t g)
{
	const volatile uint64_t *q = w.buf + p * WORDS_PER_PAGE;
	uint64_t v = page_base(p, g);

	for (size_t i = 0; i < WORDS_PER_PAGE; i++, v += WORD_STEP) {
		uint64_t got = q[i];

		if (got != v) {
			size_t off = p * PAGE_SIZE_BYTES + i * sizeof(uint64_t);

			printf("cohwork: MISMATCH at offset 0x%zx (address %p, page %zu, word %zu, "
			       "generation %" PRIu32 "): expected 0x%016" PRIx64 ", got 0x%016" PRIx64
			       "\n", off, (void *)((char *)w.buf + off), p, i, g, v, got);
			printf("cohwork: verified %" PRIuFAST64 " passes, 1 errors\n",
			       atomic_load(&w.passes));
			fflush(stdout);
			_exit(EXIT_MISMATCH);
		}
	}
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int write_file_atomic(const char *path, const char *text)
{
	char tmp[4096];
	FILE *f;
	int r = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	if (fputs(text, f) < 0)
		r = -EIO;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

static void status_update(void)
{
	char text[256];

	if (!w.status_file)
		return;
	snprintf(text, sizeof(text), "passes %" PRIuFAST64 "\nwrites %" PRIuFAST64 "\nerrors 0\n",
		 atomic_load(&w.passes), atomic_load(&w.writes));
	pthread_mutex_lock(&w.status_lock);
	if (write_file_atomic(w.status_file, text) < 0)
		fprintf(stderr, "cohwork: cannot write %s: %m\n", w.status_file);
	pthread_mutex_unlock(&w.status_lock);
}

/* One verification pass over every page, under the page locks. */
static void verify_pass(void)
{
	for (size_t p = 0; p < w.npages; p++) {
		page_lock(p);
		page_verify(p, atomic_load_explicit(&w.gen[p], memory_order_relaxed));
		page_unlock(p);
	}
	atomic_fetch_add(&w.passes, 1);
	status_update();
}

static void *verifier(void *arg)
{
	(void)arg;
	while (!atomic_load(&w.stop)) {
		verify_pass();
		if (w.pause_ms)
			sleep_ms(w.pause_ms);
	}
	return NULL;
}

/*
 * The writer walks the pages with a stride coprime to their number, so that
 * consecutive rewrites land far apart and every page is rewritten each pass.
 */
static void *writer(void *arg)
{
	size_t stride = 1, p = 0;

	(void)arg;
	if (w.npages > 2) {
		stride = w.npages / 2 + 1;
		while (stride > 1) {
			size_t a = w.npages, b = stride;

			while (b) {
				size_t t = a % b;

				a = b;
				b = t;
			}
			if (a == 1)
				break;
			stride--;
		}
	}
	while (!atomic_load(&w.stop)) {
		for (size_t i = 0; i < w.npages && !atomic_load(&w.stop); i++) {
			uint32_t g;

			page_lock(p);
			g = atomic_load_explicit(&w.gen[p], memory_order_relaxed) + 1;
			page_write(p, g);
			atomic_store_explicit(&w.gen[p], g, memory_order_relaxed);
			page_unlock(p);
			atomic_fetch_add_explicit(&w.writes, 1, memory_order_relaxed);
			p = (p + stride) % w.npages;
		}
		if (w.pause_ms)
			sleep_ms(w.pause_ms);
	}
	return NULL;
}

static int parse_size(const char *s, size_t *ret)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'G': case 'g':
		v <<= 10;
		/* fallthrough */
	case 'M': case 'm':
		v <<= 10;
		/* fallthrough */
	case 'K': case 'k':
		v <<= 10;
		end++;
		break;
	case '\0':
		v <<= 20;       /* plain numbers are MiB */
		break;
	default:
		return -EINVAL;
	}
	if (*end || v == 0 || v % PAGE_SIZE_BYTES)
		return -EINVAL;
	*ret = v;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cohwork [OPTIONS]\n"
		"  -s, --size SIZE        buffer size (MiB, or with K/M/G; default 64)\n"
		"  -t, --thp on|off       transparent huge pages (default off)\n"
		"  -S, --seed N           pattern seed (default 1)\n"
		"  -r, --range-file FILE  write \"0xSTART-0xEND\\nPID\\n\" once filled\n"
		"  -f, --status FILE      rewrite \"passes/writes/errors\" after each pass\n"
		"  -p, --pause-ms MS      pause of each thread between passes (default 0)\n"
		"  -i, --idle             no writer or verifier thread: verify on SIGUSR1\n"
		"                         and SIGTERM only\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "thp", required_argument, NULL, 't' },
		{ "seed", required_argument, NULL, 'S' },
		{ "range-file", required_argument, NULL, 'r' },
		{ "status", required_argument, NULL, 'f' },
		{ "pause-ms", required_argument, NULL, 'p' },
		{ "idle", no_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	size_t size = 64UL << 20, map_size;
	const char *range_file = NULL;
	bool thp = false, idle = false;
	pthread_t tw, tv;
	sigset_t set;
	char *map, *buf;
	int opt, sig, r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	w.seed = 1;
	while ((opt = getopt_long(argc, argv, "s:t:S:r:f:p:ih", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (parse_size(optarg, &size) < 0) {
				fprintf(stderr, "cohwork: bad size: %s\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 't':
			if (strcmp(optarg, "on") == 0) {
				thp = true;
			} else if (strcmp(optarg, "off") == 0) {
				thp = false;
			} else {
				fprintf(stderr, "cohwork: --thp wants on or off: %s\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'S':
			w.seed = strtoull(optarg, NULL, 0);
			break;
		case 'r':
			range_file = optarg;
			break;
		case 'f':
			w.status_file = optarg;
			break;
		case 'p':
			w.pause_ms = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'i':
			idle = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (thp && size % HPAGE_SIZE) {
		fprintf(stderr, "cohwork: --thp on wants a multiple of 2 MiB\n");
		return EXIT_USAGE;
	}

	/* Signals are taken synchronously by the main thread; threads inherit the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	/*
	 * Over-map by 2 MiB + 2 pages so that the buffer can start on a
	 * huge-page boundary with at least one page to spare on either side, and
	 * keep that slack as PROT_NONE guard mappings instead of unmapping it:
	 * the buffer is then always a VMA of its own. Without the guards it may
	 * sit right against another anonymous mapping with the same flags and
	 * merge with it (since Linux 6.7 thread stacks are VM_NOHUGEPAGE, like
	 * the buffer with --thp off), and no mapping would start at the buffer.
	 */
	map_size = size + HPAGE_SIZE + 2 * PAGE_SIZE_BYTES;
	map = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED) {
		fprintf(stderr, "cohwork: mmap %zu bytes: %m\n", map_size);
		return EXIT_SYSTEM;
	}
	buf = (char *)(((uintptr_t)map + PAGE_SIZE_BYTES + HPAGE_SIZE - 1) & ~(HPAGE_SIZE - 1));
	if (mprotect(map, buf - map, PROT_NONE) < 0 ||
	    mprotect(buf + size, map + map_size - (buf + size), PROT_NONE) < 0) {
		fprintf(stderr, "cohwork: mprotect(PROT_NONE) of the guard pages: %m\n");
		return EXIT_SYSTEM;
	}
	if (madvise(buf, size, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) < 0) {
		fprintf(stderr, "cohwork: madvise(%s): %m\n", thp ? "MADV_HUGEPAGE" : "MADV_NOHUGEPAGE");
		return EXIT_SYSTEM;
	}
	w.buf = (uint64_t *)buf;
	w.npages = size / PAGE_SIZE_BYTES;
	w.gen = calloc(w.npages, sizeof(*w.gen));
	w.lock = calloc(w.npages, sizeof(*w.lock));
	if (!w.gen || !w.lock) {
		fprintf(stderr, "cohwork: out of memory\n");
		return EXIT_SYSTEM;
	}
	for (size_t p = 0; p < w.npages; p++) {
		atomic_flag_clear(&w.lock[p]);
		page_write(p, 0);
	}
	verify_pass();

	printf("cohwork: pid %d buffer 0x%" PRIxPTR "-0x%" PRIxPTR " (%zu pages, THP %s, seed %" PRIu64
	       ")\n", (int)getpid(), (uintptr_t)buf, (uintptr_t)buf + size, w.npages,
	       thp ? "on" : "off", w.seed);
	if (range_file) {
		char text[128];

		snprintf(text, sizeof(text), "0x%" PRIxPTR "-0x%" PRIxPTR "\n%d\n", (uintptr_t)buf,
			 (uintptr_t)buf + size, (int)getpid());
		r = write_file_atomic(range_file, text);
		if (r < 0) {
			fprintf(stderr, "cohwork: cannot write %s: %s\n", range_file, strerror(-r));
			return EXIT_SYSTEM;
		}
	}

	if (!idle) {
		r = pthread_create(&tw, NULL, writer, NULL);
		if (r == 0)
			r = pthread_create(&tv, NULL, verifier, NULL);
		if (r != 0) {
			fprintf(stderr, "cohwork: pthread_create: %s\n", strerror(r));
			return EXIT_SYSTEM;
		}
	}

	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGUSR1) {
			verify_pass();
			continue;
		}
		break;
	}

	atomic_store(&w.stop, true);
	if (!idle) {
		pthread_join(tw, NULL);
		pthread_join(tv, NULL);
	}
	verify_pass();
	printf("cohwork: verified %" PRIuFAST64 " passes, 0 errors (%" PRIuFAST64
	       " page writes)\n", atomic_load(&w.passes), atomic_load(&w.writes));
	return 0;
}
