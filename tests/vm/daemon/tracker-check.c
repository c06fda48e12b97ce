/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's access trackers (daemon/tracker*.c) on Debian's kernel in the
 * VM: a child maps 64 MiB, keeps touching the first 8 MiB and leaves the
 * rest alone; a TrackerEngine tracks it for a few ticks. TAP:
 *   - the hot part's heat is above the cold part's,
 *   - the region count stays within [min_regions, max_regions],
 *   - the tick's CPU time and calls are counted,
 *   - a killed child is marked gone, and the tick still succeeds,
 *   - damon (6.12): the kdamond runs while tracking and is off after free.
 * The engine's auto kind is damon where the kernel has DAMON sysfs (6.12)
 * and sample (cohmem SAMPLE) otherwise (6.1); on 6.12 sample runs too.
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

#define PAGE UINT64_C(4096)
#define MiB (UINT64_C(1) << 20)
#define BUF (64 * MiB)
#define HOT (8 * MiB)
#define POOL_NAME "gpu0"
#define TICKS 10
#define WARMUP 4        /* ticks before heat and counts are judged */
#define MIN_REGIONS 10U
#define MAX_REGIONS 200U
#define DAMON_STATE "/sys/kernel/mm/damon/admin/kdamonds/0/state"

/* The child: map, fault in everything, report the address, touch the hot part forever. */
static pid_t workload_start(uint64_t *ret_addr)
{
	int fds[2];
	pid_t pid;
	uint64_t addr = 0;

	if (pipe(fds) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		volatile uint8_t *p;

		close(fds[0]);
		p = mmap(NULL, BUF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			_exit(1);
		/* One accessed bit per 4 KiB page, for both trackers. */
		(void) madvise((void *) p, BUF, MADV_NOHUGEPAGE);
		for (uint64_t o = 0; o < BUF; o += PAGE)
			p[o] = 1;
		addr = (uint64_t) (uintptr_t) p;
		if (write(fds[1], &addr, sizeof(addr)) != sizeof(addr))
			_exit(1);
		close(fds[1]);
		for (;;)
			for (uint64_t o = 0; o < HOT; o += PAGE)
				p[o]++;
	}
	close(fds[1]);
	if (read(fds[0], &addr, sizeof(addr)) != sizeof(addr)) {
		close(fds[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -EIO;
	}
	close(fds[0]);
	*ret_addr = addr;
	return pid;
}

/* Size-weighted heat of the regions' parts inside [lo, hi). */
static uint64_t heat_in(const TrackerRegion *v, size_t n, uint64_t lo, uint64_t hi)
{
	uint64_t sum = 0, bytes = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t s = MAX(lo, v[i].start), e = MIN(hi, v[i].start + v[i].length);

		if (e <= s)
			continue;
		sum += v[i].heat * ((e - s) / PAGE);
		bytes += e - s;
	}
	return bytes ? sum / (bytes / PAGE) : 0;
}

static int damon_state(char *buf, size_t l)
{
	_cleanup_free_ char *s = NULL;
	int r = read_one_line_root("/", DAMON_STATE, &s);

	if (r < 0)
		return r;
	snprintf(buf, l, "%s", strstrip(s));
	return 0;
}

static void sleep_usec(uint64_t usec)
{
	struct timespec ts = { (time_t) (usec / 1000000), (long) (usec % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int scenario_points(TrackerKind expect)
{
	return 7 + (expect == TRACKER_DAMON ? 2 : 0);
}

static void scenario(int kind, TrackerKind expect, BackendRef *sampler, uint64_t tick_usec)
{
	const char *name = tracker_kind_to_string(expect);
	TrackerParams p;
	TrackerEngine *e = NULL;
	TrackerTickStats st;
	uint64_t addr = 0, hot_sum = 0, cold_sum = 0, cpu_sum = 0, calls_sum = 0;
	uint64_t pages_min = UINT64_MAX;
	size_t n, n_min = SIZE_MAX, n_max = 0;
	unsigned judged = 0;
	int bad_ticks = 0, first_bad = 0, r;
	bool kdamond_on = false;
	char state[64] = "";
	pid_t pid;

	tracker_params_init(&p);
	p.kind = kind;
	p.min_regions = MIN_REGIONS;
	p.max_regions = MAX_REGIONS;
	p.tick_usec = tick_usec;
	r = tracker_engine_new("/", &p, &e);
	if (r == 0)
		tracker_engine_set_sampler(e, sampler);
	if (!tap_ok(r == 0 && tracker_engine_kind(e) == expect, "%s: engine (kind %s asked), r=%d",
		    name, kind < 0 ? "auto" : tracker_kind_to_string(kind), r)) {
		for (int i = 1; i < scenario_points(expect); i++)
			tap_ok(false, "%s: not run", name);
		tracker_engine_free(e);
		return;
	}
	pid = workload_start(&addr);
	if (pid < 0) {
		tap_ok(false, "%s: workload: %d", name, (int) pid);
		for (int i = 2; i < scenario_points(expect); i++)
			tap_ok(false, "%s: not run", name);
		tracker_engine_free(e);
		return;
	}
	(void) tracker_engine_set_pids(e, &pid, 1);

	for (int t = 0; t < TICKS; t++) {
		TrackerRegion *v;

		sleep_usec(tick_usec);
		r = tracker_engine_tick(e, (uint64_t) t * tick_usec);
		if (r < 0 && bad_ticks++ == 0) {
			first_bad = r;
			tap_diag("%s: tick %d: r=%d %s", name, t, r, backend_last_message() ?: "");
		}
		v = tracker_engine_regions(e, pid, &n);
		tracker_engine_tick_stats(e, &st);
		if (expect == TRACKER_DAMON && t == TICKS - 1)
			kdamond_on = damon_state(state, sizeof(state)) == 0 && streq(state, "on");
		if (!v || t < WARMUP)
			continue;
		hot_sum += heat_in(v, n, addr, addr + HOT);
		cold_sum += heat_in(v, n, addr + HOT, addr + BUF);
		n_min = MIN(n_min, n);
		n_max = MAX(n_max, n);
		cpu_sum += st.cpu_usec;
		calls_sum += st.n_calls;
		pages_min = MIN(pages_min, st.pages_tracked);
		judged++;
		tap_diag("%s: tick %d: %zu regions, hot %llu, cold %llu per mille, %llu calls, "
			 "%llu us CPU", name, t, n,
			 (unsigned long long) heat_in(v, n, addr, addr + HOT),
			 (unsigned long long) heat_in(v, n, addr + HOT, addr + BUF),
			 (unsigned long long) st.n_calls, (unsigned long long) st.cpu_usec);
	}
	tap_ok(bad_ticks == 0 && judged == TICKS - WARMUP, "%s: %d ticks, all succeeded (%d failed, "
	       "first r=%d)", name, TICKS, bad_ticks, first_bad);
	tap_ok(judged > 0 && hot_sum > cold_sum + 100 * judged,
	       "%s: the hot 8 MiB is hotter than the cold 56 MiB: mean %llu vs %llu per mille",
	       name, (unsigned long long) (judged ? hot_sum / judged : 0),
	       (unsigned long long) (judged ? cold_sum / judged : 0));
	tap_ok(judged > 0 && n_min >= MIN_REGIONS && n_max <= MAX_REGIONS,
	       "%s: regions within [%u, %u]: %zu..%zu", name, MIN_REGIONS, MAX_REGIONS, n_min,
	       n_max);
	tap_ok(judged > 0 && cpu_sum > 0 && calls_sum >= judged && pages_min >= BUF / PAGE,
	       "%s: stats: %llu us CPU, %llu calls over %u ticks, >= %llu pages tracked", name,
	       (unsigned long long) cpu_sum, (unsigned long long) calls_sum, judged,
	       (unsigned long long) (BUF / PAGE));

	/* The child stops touching: two ticks later its hot part has cooled. */
	{
		uint64_t before = judged ? hot_sum / judged : 0, after = UINT64_MAX;
		TrackerRegion *v;

		(void) kill(pid, SIGSTOP);
		for (int t = 0; t < 3; t++) {
			sleep_usec(tick_usec);
			(void) tracker_engine_tick(e, (uint64_t) (TICKS + t) * tick_usec);
		}
		v = tracker_engine_regions(e, pid, &n);
		if (v)
			after = heat_in(v, n, addr, addr + HOT);
		tap_ok(after < before / 2, "%s: stopped, the hot part cools: %llu -> %llu per mille",
		       name, (unsigned long long) before, (unsigned long long) after);
	}

	(void) kill(pid, SIGKILL);
	(void) waitpid(pid, NULL, 0);
	r = tracker_engine_tick(e, (TICKS + 3) * tick_usec);
	tap_ok(r == 0 && !tracker_engine_regions(e, pid, &n),
	       "%s: the killed child is gone, the tick succeeds (r=%d %s)", name, r,
	       r < 0 ? backend_last_message() ?: "" : "");
	if (expect == TRACKER_DAMON) {
		tap_ok(kdamond_on, "%s: the kdamond ran while tracking (state %s)", name, state);
		/* A new child, so the kdamond is on again when the engine goes. */
		pid = workload_start(&addr);
		if (pid > 0) {
			(void) tracker_engine_set_pids(e, &pid, 1);
			(void) tracker_engine_tick(e, (TICKS + 4) * tick_usec);
		}
		(void) damon_state(state, sizeof(state));
		tap_diag("%s: before free the kdamond is %s", name, state);
		tracker_engine_free(e);
		r = damon_state(state, sizeof(state));
		tap_ok(r == 0 && streq(state, "off"), "%s: the kdamond is off after free (%s, r=%d)",
		       name, state, r);
		if (pid > 0) {
			(void) kill(pid, SIGKILL);
			(void) waitpid(pid, NULL, 0);
		}
	} else
		tracker_engine_free(e);
}

int main(void)
{
	bool damon = tracker_damon_available("/");
	BackendRef *sampler = NULL;
	char params[256];
	int r;

	/* The last point is tap_finish()'s: no kernel warning. */
	tap_init("tracker-check", 2 + (damon ? scenario_points(TRACKER_DAMON) : 0) +
				  scenario_points(TRACKER_SAMPLE) + 1);
	tap_diag("DAMON sysfs: %s", damon ? "yes" : "no");
	if (coh_module_loaded() && coh_module_unload() < 0)
		tap_diag("a cohmem module was left loaded and cannot be unloaded");
	snprintf(params, sizeof(params), "pools=%s:%lluK@0x%llx:%d", POOL_NAME,
		 (unsigned long long) (coh_pool_env_size() >> 10),
		 (unsigned long long) coh_pool_env_start(), coh_pool_env_nid());
	r = coh_module_load(params);
	tap_ok(r == 0, "cohmem: insmod %s (r=%d)", params, r);
	r = backend_ref_open(&backend_cohmem_ops, "/", &sampler);
	tap_ok(r == 0, "cohmem: backend open for SAMPLE (r=%d)", r);

	if (damon) {
		/* A 400 ms tick: DAMON aggregates over 100 ms, samples every 5 ms. */
		scenario(-1, TRACKER_DAMON, sampler, 400 * 1000);
		scenario(TRACKER_SAMPLE, TRACKER_SAMPLE, sampler, 200 * 1000);
	} else
		scenario(-1, sampler ? TRACKER_SAMPLE : TRACKER_NONE, sampler, 200 * 1000);

	backend_ref_unref(sampler);
	(void) coh_module_unload();
	return tap_finish();
}
