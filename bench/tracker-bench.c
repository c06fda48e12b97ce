/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a tracker costs per tick, by memory size: a child maps 1, 4 and
 * 16 GiB of anonymous memory (MAP_NORESERVE, no THP, one page touched per
 * 2 MiB so that it is cheap to set up, the touched pages kept hot), and a
 * TrackerEngine tracks it at a 1 s tick. Per size it reports the tick's CPU
 * time (the tracker thread's CLOCK_THREAD_CPUTIME_ID, as TrackerTickStats
 * has it; for damon also the kdamond's utime + stime from /proc), regions
 * and kernel calls, then extrapolates the CPU per 100 GiB tracked as a
 * percentage of one core at a 1 s tick (the goal: at most 1 %).
 *
 * Kinds: sample (cohmem SAMPLE; loads cohmem.ko with the harness's pool),
 * and damon where the kernel has DAMON sysfs (6.12). TAP: the points say
 * only that every tick succeeded and the whole mapping was tracked; the
 * figures are diagnostics ("# ratio ...", "# goal ..."). No point depends
 * on time.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "cohmem-client.h"
#include "mover.h"
#include "tracker.h"
#include "util.h"

#define GiB (UINT64_C(1) << 30)
#define STRIDE (UINT64_C(2) << 20)
#define PAGE UINT64_C(4096)
#define WARMUP 3
#define TICKS 10
#define TICK_USEC USEC_PER_SEC

static const unsigned sizes_gib[] = { 1, 4, 16 };

static pid_t child_start(uint64_t size)
{
	int fds[2];
	char c = 0;
	pid_t pid;

	if (pipe(fds) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		volatile uint8_t *p;

		close(fds[0]);
		p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			_exit(1);
		(void) madvise((void *) p, size, MADV_NOHUGEPAGE);
		for (uint64_t o = 0; o < size; o += STRIDE)
			p[o] = 1;
		if (write(fds[1], &c, 1) != 1)
			_exit(1);
		close(fds[1]);
		/* Keep the touched pages hot, gently: a pass every 10 ms. */
		for (;;) {
			for (uint64_t o = 0; o < size; o += STRIDE)
				p[o]++;
			usleep(10000);
		}
	}
	close(fds[1]);
	if (read(fds[0], &c, 1) != 1) {
		close(fds[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -EIO;
	}
	close(fds[0]);
	return pid;
}

/* utime + stime of a task in microseconds, 0 when unknown. */
static uint64_t task_cpu_usec(pid_t pid)
{
	_cleanup_free_ char *text = NULL;
	char path[64], *p;
	unsigned long long ut = 0, st = 0;
	long hz = sysconf(_SC_CLK_TCK);

	if (pid <= 0 || hz <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
	if (read_file(path, 0, &text, NULL) < 0)
		return 0;
	p = strrchr(text, ')');
	/* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return (ut + st) * USEC_PER_SEC / (uint64_t) hz;
}

static pid_t kdamond_pid(void)
{
	_cleanup_free_ char *s = NULL;
	int v;

	if (read_one_line_root("/", "/sys/kernel/mm/damon/admin/kdamonds/0/pid", &s) < 0 ||
	    safe_atoi(strstrip(s), &v) < 0)
		return 0;
	return v > 0 ? v : 0;
}

static uint64_t thread_cpu_usec(void)
{
	struct timespec ts;

	(void) clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

	return (x > y) - (x < y);
}

static void sleep_usec(uint64_t usec)
{
	struct timespec ts = { (time_t) (usec / USEC_PER_SEC), (long) (usec % USEC_PER_SEC) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

typedef struct Figure {
	uint64_t cpu_usec;      /* median per tick: tracker thread + kdamond */
	uint64_t kdamond_usec;  /* mean per tick */
	uint64_t regions, calls;
} Figure;

/* One kind at one size; 1 TAP point. false when a tick failed. */
static bool measure(TrackerKind kind, BackendRef *sampler, unsigned gib, Figure *ret)
{
	const char *name = tracker_kind_to_string(kind);
	uint64_t size = gib * GiB, cpu[TICKS], k0 = 0, k1 = 0, regions = 0, calls = 0;
	uint64_t pages_min = UINT64_MAX;
	TrackerParams p;
	TrackerEngine *e = NULL;
	TrackerTickStats st;
	int bad = 0, first = 0, r;
	pid_t pid, kpid = 0;

	*ret = (Figure) {};
	tracker_params_init(&p);
	p.kind = kind;
	p.tick_usec = TICK_USEC;
	r = tracker_engine_new("/", &p, &e);
	if (r < 0) {
		tap_ok(false, "%s %u GiB: engine: r=%d", name, gib, r);
		return false;
	}
	tracker_engine_set_sampler(e, sampler);
	pid = child_start(size);
	if (pid < 0) {
		tap_ok(false, "%s %u GiB: child: r=%d", name, gib, (int) pid);
		tracker_engine_free(e);
		return false;
	}
	(void) tracker_engine_set_pids(e, &pid, 1);
	for (int t = 0; t < WARMUP + TICKS; t++) {
		sleep_usec(TICK_USEC);
		if (t == WARMUP) {
			kpid = kind == TRACKER_DAMON ? kdamond_pid() : 0;
			k0 = task_cpu_usec(kpid);
		}
		r = tracker_engine_tick(e, (uint64_t) t * TICK_USEC);
		if (r < 0 && bad++ == 0) {
			first = r;
			tap_diag("%s %u GiB: tick %d: r=%d %s", name, gib, t, r,
				 backend_last_message() ?: "");
		}
		tracker_engine_tick_stats(e, &st);
		if (t < WARMUP)
			continue;
		cpu[t - WARMUP] = st.cpu_usec;
		regions += st.n_regions;
		calls += st.n_calls;
		pages_min = MIN(pages_min, st.pages_tracked);
	}
	k1 = task_cpu_usec(kpid);
	(void) kill(pid, SIGKILL);
	(void) waitpid(pid, NULL, 0);
	tracker_engine_free(e);

	qsort(cpu, TICKS, sizeof(cpu[0]), cmp_u64);
	ret->kdamond_usec = k1 > k0 ? (k1 - k0) / TICKS : 0;
	ret->cpu_usec = (cpu[TICKS / 2 - 1] + cpu[TICKS / 2]) / 2 + ret->kdamond_usec;
	ret->regions = regions / TICKS;
	ret->calls = calls / TICKS;
	tap_ok(bad == 0 && pages_min >= size / PAGE,
	       "%s %u GiB: %d ticks succeeded (%d failed, first r=%d), all %llu pages tracked",
	       name, gib, WARMUP + TICKS, bad, first, (unsigned long long) (size / PAGE));
	tap_diag("%s %u GiB: %llu us CPU per tick (median; kdamond %llu us of it), %llu regions, "
		 "%llu calls", name, gib, (unsigned long long) ret->cpu_usec,
		 (unsigned long long) ret->kdamond_usec, (unsigned long long) ret->regions,
		 (unsigned long long) ret->calls);
	return bad == 0;
}

/* One SAMPLE call's cost on a 16-page window of the child, reading only and reading + clearing. */
static void sample_call_cost(BackendRef *sampler)
{
	const int n = 200;
	uint64_t size = GiB, t0, t1, t2, t3, addr = 0;
	uint8_t bitmap[2];
	BackendMapping *m = NULL;
	size_t nm = 0;
	pid_t pid;
	int bad = 0;

	pid = child_start(size);
	if (pid < 0 || backend_maps_read("/", pid, &m, &nm) < 0) {
		tap_ok(false, "SAMPLE call cost: child (r=%d)", (int) pid);
		goto out;
	}
	for (size_t i = 0; i < nm; i++)
		if (m[i].kind == BACKEND_MAP_ANON && m[i].end - m[i].start >= size)
			addr = m[i].start;
	t0 = thread_cpu_usec();
	for (int i = 0; i < n; i++)
		bad += sampler->ops->sample(sampler->backend, pid, addr, 16 * PAGE, false, bitmap,
					    sizeof(bitmap), NULL) < 0;
	t1 = thread_cpu_usec();
	for (int i = 0; i < n; i++)
		bad += sampler->ops->sample(sampler->backend, pid, addr, 16 * PAGE, true, bitmap,
					    sizeof(bitmap), NULL) < 0;
	t2 = thread_cpu_usec();
	/* 32 windows of 16 pages a STRIDE apart, each with a page the child keeps touching */
	for (int i = 0; i < n && sampler->ops->sample_windows; i++) {
		BackendSampleWindow w[32];

		for (size_t k = 0; k < ELEMENTSOF(w); k++)
			w[k] = (BackendSampleWindow) { .start = addr + k * STRIDE,
						       .length = 16 * PAGE };
		bad += sampler->ops->sample_windows(sampler->backend, pid, w, ELEMENTSOF(w),
						    true) < 0;
	}
	t3 = thread_cpu_usec();
	tap_ok(addr != 0 && bad == 0, "SAMPLE call cost: %d calls each way, %d failed", 2 * n, bad);
	tap_diag("SAMPLE call: %llu us CPU reading 16 pages, %llu us reading and clearing "
		 "(the young page in the window is cleared, so every CPU's TLB is flushed); "
		 "32 such windows in one call: %llu us", (unsigned long long) ((t1 - t0) / n),
		 (unsigned long long) ((t2 - t1) / n), (unsigned long long) ((t3 - t2) / n));
out:
	backend_mappings_free(m, nm);
	if (pid > 0) {
		(void) kill(pid, SIGKILL);
		(void) waitpid(pid, NULL, 0);
	}
}

static void report(TrackerKind kind, const Figure *f)
{
	const char *name = tracker_kind_to_string(kind);
	const size_t last = ELEMENTSOF(sizes_gib) - 1;
	double c1 = (double) f[0].cpu_usec, cl = (double) f[last].cpu_usec;
	double slope = (cl - c1) / (double) (sizes_gib[last] - sizes_gib[0]);   /* us per GiB */
	double c100 = cl + (slope > 0 ? slope : 0) * (100.0 - sizes_gib[last]);
	double pct = c100 / (double) TICK_USEC * 100.0;

	tap_diag("ratio %s cpu_%uG/cpu_%uG: %.2f", name, sizes_gib[last], sizes_gib[0],
		 c1 > 0 ? cl / c1 : 0.0);
	tap_diag("goal %s CPU per 100 GiB tracked at a 1 s tick <= 1%% of a core: %.2f%% "
		 "(%.0f us per tick, extrapolated from %u GiB with %.1f us/GiB): %s", name, pct,
		 c100, sizes_gib[last], slope > 0 ? slope : 0.0, pct <= 1.0 ? "met" : "NOT met");
}

int main(void)
{
	bool damon = tracker_damon_available("/");
	/* TRACKER_BENCH_HOST=1: the none tracker only, no module: the same code on the host. */
	bool host = getenv("TRACKER_BENCH_HOST") && streq(getenv("TRACKER_BENCH_HOST"), "1");
	BackendRef *sampler = NULL;
	Figure fig[ELEMENTSOF(sizes_gib)];
	char params[256];
	int r;

	if (host) {
		bool ok = true;

		tap_init("tracker-bench", (int) ELEMENTSOF(sizes_gib));
		for (size_t i = 0; i < ELEMENTSOF(sizes_gib); i++)
			ok = measure(TRACKER_NONE, NULL, sizes_gib[i], &fig[i]) && ok;
		return ok ? 0 : 1;
	}
	tap_init("tracker-bench", 3 + (int) ELEMENTSOF(sizes_gib) * (damon ? 3 : 2) + 1);
	if (coh_module_loaded() && coh_module_unload() < 0)
		tap_diag("a cohmem module was left loaded and cannot be unloaded");
	coh_pool_param(params, sizeof(params), "gpu0");
	r = coh_module_load(params);
	tap_ok(r == 0, "cohmem: insmod %s (r=%d)", params, r);
	r = backend_ref_open(&backend_cohmem_ops, "/", &sampler);
	tap_ok(r == 0, "cohmem: backend open for SAMPLE (r=%d)", r);

	sample_call_cost(sampler);
	/* none: /proc/PID/maps and the region fit only, the part every tracker pays. */
	for (size_t i = 0; i < ELEMENTSOF(sizes_gib); i++)
		(void) measure(TRACKER_NONE, NULL, sizes_gib[i], &fig[i]);
	for (int k = 0; k < (damon ? 2 : 1); k++) {
		TrackerKind kind = k == 0 ? TRACKER_SAMPLE : TRACKER_DAMON;
		bool ok = true;

		for (size_t i = 0; i < ELEMENTSOF(sizes_gib); i++)
			ok = measure(kind, sampler, sizes_gib[i], &fig[i]) && ok;
		/* Figures of failed ticks would flatter: no goal line then. */
		if (ok)
			report(kind, fig);
	}

	backend_ref_unref(sampler);
	(void) coh_module_unload();
	return tap_finish();
}
