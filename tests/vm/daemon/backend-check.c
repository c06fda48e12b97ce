/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's numa and cohmem backends (daemon/backend*.c) against Debian's
 * kernel in the VM, on a forked child's buffer: moves to the memory-only node
 * 1, to a cohmem pool and back to system RAM, residency, counts that add up,
 * the child's data intact, SAMPLE from four threads at once and after errors
 * (its sockets are reused), the monitor group, and the documented errors
 * (dead pid, zombie, kernel thread, bad range, module absent). TAP.
 *
 * With BACKEND_BENCH=1 in the environment (tests/vm/run --env) it also
 * measures the numa backend against a raw move_pages(2) loop and against
 * migrate_pages(2) (what numactl's migratepages does), and the cohmem
 * backend against the raw loop, on the same pages, and prints the figures
 * as TAP diagnostics. Wall-clock figures are never a pass or a failure.
 */

#include <errno.h>
#include <numa.h>
#include <numaif.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "cohmem-client.h"
#include "util.h"

#define PAGE UINT64_C(4096)
#define NPAGES 4096
#define POOL_NAME "gpu0"

static const char *counts_str(const MoveCounts *c)
{
	static char buf[256];

	(void) snprintf(buf, sizeof(buf),
			"migrated=%llu already=%llu not_present=%llu file=%llu shared=%llu "
			"pinned=%llu unmovable=%llu no_space=%llu failed=%llu",
			(unsigned long long) c->migrated, (unsigned long long) c->already,
			(unsigned long long) c->not_present, (unsigned long long) c->file,
			(unsigned long long) c->shared, (unsigned long long) c->pinned,
			(unsigned long long) c->unmovable, (unsigned long long) c->no_space,
			(unsigned long long) c->failed);
	return buf;
}

/* Bytes of the residency entry (system, id); system entries summed when id < 0. */
static uint64_t res_bytes(const BackendOps *ops, Backend *b, pid_t pid, uint64_t start,
			  uint64_t len, bool system, int64_t id, int *ret_r)
{
	ResidencyEntry *e = NULL;
	size_t n = 0;
	uint64_t sum = 0;
	int r;

	r = ops->residency(b, pid, start, len, &e, &n);
	if (ret_r)
		*ret_r = r;
	if (r < 0)
		return UINT64_MAX;
	for (size_t i = 0; i < n; i++)
		if (e[i].system == system && (id < 0 || e[i].id == id))
			sum += e[i].bytes;
	free(e);
	return sum;
}

static uint64_t maps_pages(pid_t pid)
{
	BackendMapping *m = NULL;
	size_t n = 0;
	uint64_t p = 0;

	if (backend_maps_read("/", pid, &m, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		p += (m[i].end - m[i].start) / PAGE;
	backend_mappings_free(m, n);
	return p;
}

static int progress_calls;

static int count_progress(const MoveCounts *so_far, uint64_t total, void *userdata)
{
	uint64_t *last = userdata;

	progress_calls++;
	/* Monotonic and never beyond the total. */
	if (move_counts_total(so_far) < *last || move_counts_total(so_far) > total)
		return -EUCLEAN;
	*last = move_counts_total(so_far);
	return 0;
}

static int events_seen[3];

static void on_event(Backend *b, const BackendEvent *ev, void *userdata)
{
	if (ev->type <= BACKEND_EVENT_UNLOAD)
		events_seen[ev->type]++;
}

static int dispatch_errors;

static void wait_events(const BackendOps *ops, Backend *b, int fd, int type, int timeout_ms)
{
	for (int waited = 0; events_seen[type] == 0 && waited < timeout_ms; waited += 100) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 100) > 0 && ops->monitor_dispatch(b) < 0)
			dispatch_errors++;
	}
}

/* ---- a target that exits part way, and moves from several threads ---- */

static int kill_on_progress(const MoveCounts *so_far, uint64_t total, void *userdata)
{
	struct coh_victim *w = userdata;

	if (w->pid > 0) {
		(void) kill(w->pid, SIGKILL);
		(void) waitpid(w->pid, NULL, 0);
		w->pid = 0;
	}
	return 0;
}

typedef struct Worker {
	const BackendOps *ops;
	Backend *b;
	pid_t pid;
	uint64_t addr, len;
	BackendTarget there;
	int rounds, bad;
	char why[160];
} Worker;

static void *worker_main(void *arg)
{
	Worker *w = arg;
	BackendTarget sys = { .system = true };
	MoveCounts c;

	for (int i = 0; i < w->rounds && !w->bad; i++) {
		const BackendTarget *t = i % 2 ? &sys : &w->there;
		int r = w->ops->move(w->b, w->pid, w->addr, w->len, t, NULL, NULL, &c);

		if (r != 0 || move_counts_total(&c) != w->len / PAGE ||
		    c.migrated != w->len / PAGE) {
			w->bad = 1;
			snprintf(w->why, sizeof(w->why), "round %d r=%d %s", i, r, counts_str(&c));
		}
	}
	return NULL;
}

/* Two threads per backend on disjoint halves of the buffer, all at once. */
static bool run_workers(const BackendOps *numa, Backend *nb, const BackendOps *coh, Backend *cb,
			struct coh_victim *v, char *why, size_t why_len)
{
	Worker w[4];
	pthread_t t[4];
	uint64_t q = NPAGES / 4 * PAGE;
	bool ok = true;

	for (int i = 0; i < 4; i++) {
		w[i] = (Worker) {
			.ops = i < 2 ? numa : coh, .b = i < 2 ? nb : cb, .pid = v->pid,
			.addr = v->addr + (uint64_t) i * q, .len = q, .rounds = 6,
			.there = i < 2 ? (BackendTarget) { .id = 1 } : (BackendTarget) { .id = 0 },
		};
		if (pthread_create(&t[i], NULL, worker_main, &w[i]) != 0)
			return false;
	}
	why[0] = '\0';
	for (int i = 0; i < 4; i++) {
		(void) pthread_join(t[i], NULL);
		if (w[i].bad) {
			ok = false;
			snprintf(why, why_len, "thread %d: %s", i, w[i].why);
		}
	}
	return ok;
}

typedef struct Sampler {
	const BackendOps *ops;
	Backend *b;
	pid_t pid;
	uint64_t addr;
	int bad;
	char why[160];
} Sampler;

/* Reads without clearing: every page of the quarter stays young, every time. */
static void *sampler_main(void *arg)
{
	Sampler *s = arg;
	uint8_t bm[NPAGES / 4 / 8];
	uint64_t young;

	for (int i = 0; i < 25 && !s->bad; i++) {
		size_t set = 0;
		int r;

		memset(bm, 0, sizeof(bm));
		young = 0;
		r = s->ops->sample(s->b, s->pid, s->addr, NPAGES / 4 * PAGE, false, bm, sizeof(bm),
				   &young);
		for (size_t k = 0; k < sizeof(bm); k++)
			set += (size_t) __builtin_popcount(bm[k]);
		if (r != 0 || young != NPAGES / 4 || set != NPAGES / 4) {
			s->bad = 1;
			snprintf(s->why, sizeof(s->why), "call %d: r=%d, %llu young, %zu bits", i, r,
				 (unsigned long long) young, set);
		}
	}
	return NULL;
}

/* Four threads sampling their quarter of the buffer at once, on one backend. */
static bool run_samplers(const BackendOps *coh, Backend *cb, const struct coh_victim *v,
			 char *why, size_t why_len)
{
	Sampler s[4];
	pthread_t t[4];
	bool ok = true;
	int started = 0;

	why[0] = '\0';
	for (int i = 0; i < 4; i++) {
		s[i] = (Sampler) { .ops = coh, .b = cb, .pid = v->pid,
				   .addr = v->addr + (uint64_t) i * (NPAGES / 4) * PAGE };
		if (pthread_create(&t[i], NULL, sampler_main, &s[i]) != 0) {
			snprintf(why, why_len, "pthread_create failed");
			ok = false;
			break;
		}
		started++;
	}
	for (int i = 0; i < started; i++) {
		(void) pthread_join(t[i], NULL);
		if (s[i].bad) {
			ok = false;
			snprintf(why, why_len, "thread %d: %s", i, s[i].why);
		}
	}
	return ok;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A raw move_pages(2) loop over n pages at addr, batches of 16384. */
static int raw_move(pid_t pid, uint64_t addr, size_t n, int node)
{
	static void *pages[16384];
	static int nodes[16384], status[16384];

	for (size_t done = 0; done < n;) {
		size_t k = n - done < 16384 ? n - done : 16384;

		for (size_t i = 0; i < k; i++) {
			pages[i] = (void *) (uintptr_t) (addr + (done + i) * PAGE);
			nodes[i] = node;
		}
		if (numa_move_pages(pid, k, pages, nodes, status, MPOL_MF_MOVE) < 0)
			return -errno;
		done += k;
	}
	return 0;
}

static int raw_migrate_all(pid_t pid, int from, int to)
{
	struct bitmask *f = numa_allocate_nodemask(), *t = numa_allocate_nodemask();
	int r;

	numa_bitmask_setbit(f, from);
	numa_bitmask_setbit(t, to);
	r = numa_migrate_pages(pid, f, t);
	numa_free_nodemask(f);
	numa_free_nodemask(t);
	return r < 0 ? -errno : r;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *) a, y = *(const double *) b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t) n, sizeof(double), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define BENCH_METHODS 6
static const char *const bench_names[BENCH_METHODS] = {
	"raw move_pages loop", "numa backend range", "migrate_pages(2) (migratepages)",
	"numa backend whole process", "cohmem backend range", "numa query pass",
};

/*
 * Every method moves the same 128 MiB there and back, in turns, several
 * rounds; the host is shared and TCG time stretches with its load, so the
 * ratios use each method's fastest round (and the sums are printed too).
 */
static void bench(const BackendOps *numa, Backend *nb, const BackendOps *coh, Backend *cb)
{
	const size_t n = 32768;    /* 128 MiB */
	const int rounds = 9;
	BackendTarget to1 = { .id = 1 }, sys = { .system = true }, pool = { .id = 0 };
	double best[BENCH_METHODS], sum[BENCH_METHODS] = {}, t, round_t[BENCH_METHODS];
	double q_range[16], q_whole[16], q_coh[16];
	struct coh_victim v;
	MoveCounts c;
	int r = 0;

	for (int k = 0; k < BENCH_METHODS; k++)
		best[k] = 1e9;
	if (coh_victim_start(&v, n, 77) < 0) {
		tap_diag("bench: no victim");
		return;
	}
	for (int i = 0; i < rounds; i++) {
		for (int k = 0; k < BENCH_METHODS; k++) {
			double d;

			if (k == 4 && !cb)
				continue;
			t = now();
			switch (k) {
			case 0:
				r |= raw_move(v.pid, v.addr, n, 1);
				r |= raw_move(v.pid, v.addr, n, 0);
				break;
			case 1:
				r |= numa->move(nb, v.pid, v.addr, n * PAGE, &to1, NULL, NULL, &c);
				r |= c.migrated != n;
				r |= numa->move(nb, v.pid, v.addr, n * PAGE, &sys, NULL, NULL, &c);
				r |= c.migrated != n;
				break;
			case 2:
				r |= raw_migrate_all(v.pid, 0, 1) < 0;
				r |= raw_migrate_all(v.pid, 1, 0) < 0;
				break;
			case 3:
				r |= numa->move(nb, v.pid, 0, 0, &to1, NULL, NULL, &c);
				r |= c.migrated < n;
				r |= numa->move(nb, v.pid, 0, 0, &sys, NULL, NULL, &c);
				r |= c.migrated < n;
				break;
			case 4:
				r |= coh->move(cb, v.pid, v.addr, n * PAGE, &pool, NULL, NULL, &c);
				r |= c.migrated != n;
				r |= coh->move(cb, v.pid, v.addr, n * PAGE, &sys, NULL, NULL, &c);
				r |= c.migrated != n;
				break;
			case 5:
				r |= res_bytes(numa, nb, v.pid, v.addr, n * PAGE, true, -1, NULL) != n * PAGE;
				r |= res_bytes(numa, nb, v.pid, v.addr, n * PAGE, true, -1, NULL) != n * PAGE;
				break;
			}
			d = now() - t;
			round_t[k] = d;
			sum[k] += d;
			best[k] = d < best[k] ? d : best[k];
		}
		if (r)
			tap_diag("bench: round %d had an error (%s)", i, counts_str(&c));
		/* Neighbours in time see about the same host load: ratios per round. */
		q_range[i] = round_t[0] / round_t[1];
		q_whole[i] = round_t[2] / round_t[3];
		q_coh[i] = cb ? round_t[0] / round_t[4] : 0;
	}
	for (int k = 0; k < BENCH_METHODS; k++)
		if (k != 4 || cb)
			tap_diag("bench: %-32s best %.3f s, sum of %d rounds %.3f s", bench_names[k], best[k],
				 rounds, sum[k]);
	tap_diag("bench: %zu pages there and back per round; ratios of the best rounds "
		 "(sums in parentheses):", n);
	tap_diag("bench: numa backend range / raw move_pages = %.3f (%.3f) (goal >= 0.95)",
		 best[0] / best[1], sum[0] / sum[1]);
	tap_diag("bench: numa backend whole process / migrate_pages = %.3f (%.3f) (goal >= 1.0)",
		 best[2] / best[3], sum[2] / sum[3]);
	if (cb)
		tap_diag("bench: cohmem backend range / raw move_pages = %.3f (%.3f)",
			 best[0] / best[4], sum[0] / sum[4]);
	tap_diag("bench: medians of the per-round ratios: numa range / raw %.3f, numa whole / "
		 "migrate_pages %.3f, cohmem / raw %.3f", median(q_range, rounds),
		 median(q_whole, rounds), median(q_coh, rounds));
	tap_diag("bench: a query pass is %.1f%% of a numa backend range move",
		 100 * best[5] / 2 / (best[1] / 2));
	tap_ok(r == 0 && coh_victim_cmd(&v, VICTIM_CHECK, 77) == 0,
	       "bench: every move complete, the victim's data intact");
	coh_victim_stop(&v);
}

int main(void)
{
	const BackendOps *numa = &backend_numa_ops, *coh = &backend_cohmem_ops;
	BackendTarget to1 = { .id = 1 }, sys = { .system = true }, pool = { .id = 0 };
	BackendDevice *devs = NULL;
	Backend *nb = NULL, *cb = NULL;
	struct coh_victim v;
	MoveCounts c;
	uint64_t addr, len = NPAGES * PAGE, last, whole, pool_start;
	size_t n = 0;
	char params[256];
	bool found;
	int r, r2, r3, fd = -1;
	pid_t dead, zombie;
	bool do_bench = getenv("BACKEND_BENCH") && streq(getenv("BACKEND_BENCH"), "1");

	if (!coh_module_present())
		tap_skip_all("cohmem.ko not found (COH_MODULE_DIR)");
	if (coh_module_loaded() && coh_module_unload() < 0)
		tap_skip_all("cohmem is loaded and cannot be unloaded");
	tap_init("backend-check", 70 + (do_bench ? 1 : 0));

	/* ---- before the module ---- */
	r = coh->open(&cb, "/");
	tap_ok(r == -ENODEV, "cohmem: open without the module is -ENODEV (r=%d)", r);

	r = numa->open(&nb, "/");
	if (!tap_ok(r == 0, "numa: open (r=%d)", r))
		return tap_finish();
	r = numa->list_devices(nb, &devs, &n);
	found = false;
	for (size_t i = 0; r == 0 && i < n; i++)
		found = found || (devs[i].id == 1 && streq(devs[i].name, "node1") &&
				  devs[i].total_bytes > 0 && devs[i].free_bytes <= devs[i].total_bytes);
	tap_ok(r == 0 && n == 1 && found, "numa: list_devices gives node1 only (r=%d n=%zu)", r, n);
	free(devs);

	r = coh_victim_start(&v, NPAGES, 1);
	if (!tap_ok(r == 0, "victim: child with %d pages", NPAGES))
		return tap_finish();
	addr = v.addr;

	/* ---- numa ---- */
	last = 0;
	progress_calls = 0;
	r = numa->move(nb, v.pid, addr, len, &to1, count_progress, &last, &c);
	tap_ok(r == 0 && c.migrated == NPAGES && move_counts_total(&c) == NPAGES,
	       "numa: range to node1: %s (r=%d)", counts_str(&c), r);
	tap_ok(progress_calls >= 1 && last == NPAGES, "numa: progress reported (%d calls, last %llu)",
	       progress_calls, (unsigned long long) last);
	tap_ok(res_bytes(numa, nb, v.pid, addr, len, false, 1, &r) == len,
	       "numa: residency: all on node1 (r=%d)", r);
	tap_ok(coh_victim_cmd(&v, VICTIM_CHECK, 1) == 0, "numa: data intact on node1");
	r = numa->move(nb, v.pid, addr, len, &to1, NULL, NULL, &c);
	tap_ok(r == 0 && c.already == NPAGES && c.migrated == 0,
	       "numa: again: all already there: %s", counts_str(&c));
	r = numa->move(nb, v.pid, addr, len, &sys, NULL, NULL, &c);
	tap_ok(r == 0 && c.migrated == NPAGES && move_counts_total(&c) == NPAGES,
	       "numa: range to system: %s (r=%d)", counts_str(&c), r);
	tap_ok(res_bytes(numa, nb, v.pid, addr, len, true, 0, &r) == len,
	       "numa: residency: all on node0 (r=%d)", r);
	/* A range with a hole after it: the hole is not present. */
	r = numa->move(nb, v.pid, addr + len - 4 * PAGE, 8 * PAGE, &to1, NULL, NULL, &c);
	tap_ok(r == 0 && c.migrated >= 4 && move_counts_total(&c) == 8,
	       "numa: range over the end of the buffer: %s (r=%d)", counts_str(&c), r);

	whole = maps_pages(v.pid);
	r = numa->move(nb, v.pid, 0, 0, &to1, NULL, NULL, &c);
	tap_ok(r == 0 && move_counts_total(&c) == whole && c.migrated >= NPAGES - 4 &&
	       c.file > 0 && c.failed == 0,
	       "numa: whole process to node1: %s of %llu (r=%d)", counts_str(&c),
	       (unsigned long long) whole, r);
	tap_ok(res_bytes(numa, nb, v.pid, addr, len, false, 1, &r) == len,
	       "numa: whole process: the buffer is on node1 (r=%d)", r);
	r = numa->move(nb, v.pid, 0, 0, &sys, NULL, NULL, &c);
	tap_ok(r == 0 && move_counts_total(&c) == whole && c.migrated >= NPAGES && c.failed == 0,
	       "numa: whole process to system: %s (r=%d)", counts_str(&c), r);
	tap_ok(coh_victim_cmd(&v, VICTIM_CHECK, 1) == 0, "numa: data intact after whole moves");
	/* Whole-process residency (numa_maps) = the sum of per-mapping residencies (queries). */
	{
		BackendMapping *m = NULL;
		size_t nm = 0;
		uint64_t whole_sys, whole_dev, sum_sys = 0, sum_dev = 0;

		whole_sys = res_bytes(numa, nb, v.pid, 0, 0, true, -1, &r);
		whole_dev = res_bytes(numa, nb, v.pid, 0, 0, false, -1, &r2);
		if (backend_maps_read("/", v.pid, &m, &nm) == 0)
			for (size_t i = 0; i < nm; i++) {
				if (m[i].kind == BACKEND_MAP_SPECIAL)
					continue;
				sum_sys += res_bytes(numa, nb, v.pid, m[i].start, m[i].end - m[i].start,
						     true, -1, NULL);
				sum_dev += res_bytes(numa, nb, v.pid, m[i].start, m[i].end - m[i].start,
						     false, -1, NULL);
			}
		backend_mappings_free(m, nm);
		tap_ok(r == 0 && r2 == 0 && whole_sys >= len && whole_sys == sum_sys &&
		       whole_dev == sum_dev,
		       "numa: whole-process residency %llu+%llu bytes = per-mapping sum %llu+%llu",
		       (unsigned long long) whole_sys, (unsigned long long) whole_dev,
		       (unsigned long long) sum_sys, (unsigned long long) sum_dev);
	}

	/* ---- errors, numa ---- */
	r = numa->move(nb, v.pid, addr + 1, len, &to1, NULL, NULL, &c);
	tap_ok(r == -EINVAL, "numa: unaligned range is -EINVAL (r=%d)", r);
	r = numa->move(nb, v.pid, UINT64_C(0x1000), PAGE, &to1, NULL, NULL, &c);
	tap_ok(r == -EFAULT, "numa: unmapped range is -EFAULT (r=%d)", r);
	r = numa->move(nb, v.pid, addr, len, &(BackendTarget) { .id = 7 }, NULL, NULL, &c);
	tap_ok(r == -ENODEV, "numa: node 7 is -ENODEV (r=%d)", r);
	r = numa->move(nb, v.pid, addr, len, &(BackendTarget) { .id = 0 }, NULL, NULL, &c);
	tap_ok(r == 0 && c.already == NPAGES, "numa: node 0 as a target is allowed: %s",
	       counts_str(&c));
	dead = fork();
	if (dead == 0)
		_exit(0);
	zombie = fork();
	if (zombie == 0)
		_exit(0);
	(void) waitpid(dead, NULL, 0);
	/* Let the zombie exit; it stays a zombie until reaped. */
	for (int i = 0; i < 100; i++) {
		char path[64], *text = NULL;
		size_t sz;

		snprintf(path, sizeof(path), "/proc/%d/stat", zombie);
		if (read_file(path, 0, &text, &sz) == 0 && strstr(text, ") Z ")) {
			free(text);
			break;
		}
		free(text);
		usleep(10000);
	}
	r = numa->move(nb, dead, addr, len, &to1, NULL, NULL, &c);
	r2 = numa->residency(nb, dead, 0, 0, &(ResidencyEntry *) { NULL }, &n);
	tap_ok(r == -ESRCH && r2 == -ESRCH, "numa: dead pid is -ESRCH (r=%d, residency %d)", r, r2);
	r = numa->move(nb, zombie, 0, 0, &to1, NULL, NULL, &c);
	r2 = numa->move(nb, zombie, addr, len, &to1, NULL, NULL, &c);
	tap_ok(r == -ESRCH && r2 == -ESRCH, "numa: zombie is -ESRCH (r=%d, range %d)", r, r2);
	r = numa->move(nb, 2, 0, 0, &to1, NULL, NULL, &c);
	r2 = numa->move(nb, 2, addr, len, &to1, NULL, NULL, &c);
	tap_ok(r == -ESRCH && r2 == -ESRCH, "numa: kernel thread (kthreadd) is -ESRCH (r=%d, range %d)",
	       r, r2);

	/* ---- cohmem ---- */
	pool_start = coh_pool_env_start();
	snprintf(params, sizeof(params), "pools=%s:%lluK@0x%llx:%d low_wmark_pct=99 high_wmark_pct=100",
		 POOL_NAME, (unsigned long long) (coh_pool_env_size() >> 10),
		 (unsigned long long) pool_start, coh_pool_env_nid());
	r = coh_module_load(params);
	if (!tap_ok(r == 0, "cohmem: insmod %s (r=%d)", params, r))
		return tap_finish();
	r = coh->open(&cb, "/");
	if (!tap_ok(r == 0, "cohmem: open (r=%d)", r))
		return tap_finish();
	r = coh->list_devices(cb, &devs, &n);
	tap_ok(r == 0 && n == 1 && streq(devs[0].name, POOL_NAME) && devs[0].id == 0 &&
	       devs[0].phys_start == pool_start && devs[0].phys_size == coh_pool_env_size() &&
	       devs[0].total_bytes == coh_pool_env_size() && devs[0].free_bytes == devs[0].total_bytes &&
	       devs[0].node == coh_pool_env_nid() && devs[0].low_watermark_bytes > 0,
	       "cohmem: list_devices: the pool (r=%d n=%zu)", r, n);
	if (r == 0)
		free(devs);
	r = coh->monitor_open(cb, on_event, NULL, &fd);
	tap_ok(r == 0 && fd >= 0, "cohmem: monitor_open gives an fd (r=%d)", r);

	r = coh->move(cb, v.pid, addr, len, &pool, NULL, NULL, &c);
	tap_ok(r == 0 && c.migrated == NPAGES && move_counts_total(&c) == NPAGES,
	       "cohmem: range to the pool: %s (r=%d)", counts_str(&c), r);
	tap_ok(res_bytes(coh, cb, v.pid, addr, len, false, 0, &r) == len,
	       "cohmem: residency: all in pool 0 (r=%d)", r);
	tap_ok(res_bytes(numa, nb, v.pid, addr, len, false, -1, &r) == 0 &&
	       res_bytes(numa, nb, v.pid, addr, len, true, -1, &r2) == 0,
	       "numa: residency does not count pool pages (r=%d %d)", r, r2);
	tap_ok(coh_victim_cmd(&v, VICTIM_CHECK, 1) == 0, "cohmem: data intact in the pool");
	wait_events(coh, cb, fd, BACKEND_EVENT_WATERMARK_LOW, 5000);
	tap_ok(events_seen[BACKEND_EVENT_WATERMARK_LOW] == 1,
	       "cohmem: monitor: one low watermark event (%d)",
	       events_seen[BACKEND_EVENT_WATERMARK_LOW]);
	r = numa->move(nb, v.pid, addr, len, &to1, NULL, NULL, &c);
	tap_ok(r == 0 && c.not_present == NPAGES, "numa: pool pages are not present to move_pages: %s",
	       counts_str(&c));
	r = coh->move(cb, v.pid, addr, len, &pool, NULL, NULL, &c);
	tap_ok(r == 0 && c.already == NPAGES, "cohmem: again: all already there: %s", counts_str(&c));

	r = coh->move(cb, v.pid, addr, len, &sys, NULL, NULL, &c);
	tap_ok(r == 0 && c.migrated == NPAGES, "cohmem: range to system: %s (r=%d)", counts_str(&c), r);
	tap_ok(res_bytes(coh, cb, v.pid, addr, len, true, -1, &r) == len,
	       "cohmem: residency: all in system RAM (r=%d)", r);
	wait_events(coh, cb, fd, BACKEND_EVENT_WATERMARK_HIGH, 5000);
	tap_ok(events_seen[BACKEND_EVENT_WATERMARK_HIGH] == 1,
	       "cohmem: monitor: one high watermark event (%d)",
	       events_seen[BACKEND_EVENT_WATERMARK_HIGH]);
	tap_ok(coh_victim_cmd(&v, VICTIM_CHECK, 1) == 0, "cohmem: data intact back in RAM");

	last = 0;
	progress_calls = 0;
	r = coh->move(cb, v.pid, 0, 0, &pool, count_progress, &last, &c);
	tap_ok(r == 0 && move_counts_total(&c) == whole && c.migrated >= NPAGES && c.file > 0,
	       "cohmem: whole process to the pool: %s of %llu (r=%d)", counts_str(&c),
	       (unsigned long long) whole, r);
	tap_ok(progress_calls > 1 && last == whole, "cohmem: progress per mapping (%d calls)",
	       progress_calls);
	tap_ok(res_bytes(coh, cb, v.pid, 0, 0, false, 0, &r) >= len,
	       "cohmem: whole-process residency: at least the buffer in the pool (r=%d)", r);
	r = coh->move(cb, v.pid, 0, 0, &sys, NULL, NULL, &c);
	tap_ok(r == 0 && move_counts_total(&c) == whole && c.migrated >= NPAGES,
	       "cohmem: whole process to system: %s (r=%d)", counts_str(&c), r);
	tap_ok(coh_victim_cmd(&v, VICTIM_CHECK, 1) == 0, "cohmem: data intact after whole moves");

	/* sample: clear, let the child read everything, sample again */
	{
		uint8_t bm[NPAGES / 8];
		uint64_t young = 0;
		size_t set = 0;

		r = coh->sample(cb, v.pid, addr, len, true, bm, sizeof(bm), &young);
		r2 = coh_victim_cmd(&v, VICTIM_CHECK, 1) == 0 ? 0 : -EIO;
		r = r ?: coh->sample(cb, v.pid, addr, len, false, bm, sizeof(bm), &young);
		for (size_t i = 0; i < sizeof(bm); i++)
			set += (size_t) __builtin_popcount(bm[i]);
		tap_ok(r == 0 && r2 == 0 && young == NPAGES && set == NPAGES,
		       "cohmem: sample after the child read its buffer: %llu young, %zu bits (r=%d)",
		       (unsigned long long) young, set, r);
		r = coh->sample(cb, v.pid, addr, len, false, bm, sizeof(bm) - 1, &young);
		tap_ok(r == -ENOBUFS, "cohmem: sample into a short bitmap is -ENOBUFS (r=%d)", r);

		/* SAMPLE reuses its sockets: a kernel error must leave the next call whole. */
		r = coh->sample(cb, v.pid, UINT64_C(0x1000), PAGE, false, bm, sizeof(bm), &young);
		r2 = coh->sample(cb, dead, addr, len, false, bm, sizeof(bm), &young);
		young = 0;
		memset(bm, 0, sizeof(bm));
		r3 = coh->sample(cb, v.pid, addr, len, false, bm, sizeof(bm), &young);
		set = 0;
		for (size_t i = 0; i < sizeof(bm); i++)
			set += (size_t) __builtin_popcount(bm[i]);
		tap_ok(r == -EFAULT && r2 == -ESRCH && r3 == 0 && young == NPAGES && set == NPAGES,
		       "cohmem: sample after -EFAULT and -ESRCH: %llu young, %zu bits (r=%d %d %d)",
		       (unsigned long long) young, set, r, r2, r3);
	}

	/* sample_windows: one SAMPLE with three windows, one of them on no mapping */
	{
		BackendSampleWindow w[3] = {
			{ .start = UINT64_C(0x1000), .length = PAGE },
			{ .start = addr, .length = len / 2 },
			{ .start = addr + len / 2, .length = len / 2 },
		};
		int r4;

		r = coh->sample_windows(cb, v.pid, w, 3, true);
		r2 = coh_victim_cmd(&v, VICTIM_CHECK, 1) == 0 ? 0 : -EIO;
		r = r ?: coh->sample_windows(cb, v.pid, w, 3, false);
		r3 = coh->sample_windows(cb, dead, w, 3, false);
		w[2].start -= PAGE;
		r4 = coh->sample_windows(cb, v.pid, w, 3, false);
		tap_ok(r == 0 && r2 == 0 && w[0].unmapped && w[0].young == 0 && !w[1].unmapped &&
		       w[1].young == NPAGES / 2 && !w[2].unmapped && w[2].young == NPAGES / 2 &&
		       r3 == -ESRCH && r4 == -EINVAL,
		       "cohmem: sample_windows after the child read its buffer: unmapped %d/%d/%d, "
		       "young %llu/%llu/%llu; dead pid %d, overlapping %d (r=%d)", w[0].unmapped,
		       w[1].unmapped, w[2].unmapped, (unsigned long long) w[0].young,
		       (unsigned long long) w[1].young, (unsigned long long) w[2].young, r3, r4, r);
	}

	/* sample from four threads at once: no two share a socket */
	{
		char why[200];
		bool ok = run_samplers(coh, cb, &v, why, sizeof(why));

		tap_ok(ok, "cohmem: 4 threads x 25 samples at once, every page young every time%s%s",
		       ok ? "" : ": ", why);
	}

	/* evict */
	{
		uint64_t ev = 0;

		r = coh->move(cb, v.pid, addr, len, &pool, NULL, NULL, &c);
		r2 = coh->evict(cb, 0, NPAGES, &ev);
		tap_ok(r == 0 && r2 == 0 && ev == NPAGES &&
		       res_bytes(coh, cb, v.pid, addr, len, true, -1, NULL) == len,
		       "cohmem: evict %d pages: %llu evicted, all in system RAM (r=%d %d)", NPAGES,
		       (unsigned long long) ev, r, r2);
		r = coh->evict(cb, 5, 1, &ev);
		tap_ok(r == -ENODEV, "cohmem: evict from pool 5 is -ENODEV (r=%d)", r);
		tap_ok(coh_victim_cmd(&v, VICTIM_CHECK, 1) == 0, "cohmem: data intact after evict");
	}

	/* ---- errors, cohmem ---- */
	r = coh->move(cb, v.pid, addr, len, &(BackendTarget) { .id = 3 }, NULL, NULL, &c);
	tap_ok(r == -ENODEV && backend_last_message() &&
	       streq(backend_last_message(), "cohmem: no such pool"),
	       "cohmem: pool 3 is -ENODEV, the kernel's extack kept (r=%d, \"%s\")", r,
	       backend_last_message() ?: "(none)");
	r = coh->move(cb, v.pid, addr + 1, len, &pool, NULL, NULL, &c);
	tap_ok(r == -EINVAL, "cohmem: unaligned range is -EINVAL (r=%d)", r);
	r = coh->move(cb, v.pid, UINT64_C(0x1000), PAGE, &pool, NULL, NULL, &c);
	tap_ok(r == -EFAULT, "cohmem: unmapped range is -EFAULT (r=%d)", r);
	r = coh->move(cb, dead, addr, len, &pool, NULL, NULL, &c);
	r2 = coh->move(cb, dead, 0, 0, &pool, NULL, NULL, &c);
	tap_ok(r == -ESRCH && r2 == -ESRCH, "cohmem: dead pid is -ESRCH (r=%d, whole %d)", r, r2);
	r = coh->move(cb, zombie, addr, len, &pool, NULL, NULL, &c);
	r2 = coh->move(cb, zombie, 0, 0, &pool, NULL, NULL, &c);
	tap_ok(r == -ESRCH && r2 == -ESRCH, "cohmem: zombie is -ESRCH (r=%d, whole %d)", r, r2);
	r = coh->move(cb, 2, addr, len, &pool, NULL, NULL, &c);
	r2 = coh->move(cb, 2, 0, 0, &pool, NULL, NULL, &c);
	tap_ok(r == -ESRCH && r2 == -ESRCH, "cohmem: kernel thread is -ESRCH (r=%d, whole %d)", r, r2);
	(void) waitpid(zombie, NULL, 0);

	/* a child that exited and was reaped: nothing counted, so -ESRCH */
	{
		struct coh_victim w;

		r = r2 = 0;
		if (coh_victim_start(&w, 16, 5) == 0) {
			(void) coh_victim_cmd(&w, VICTIM_QUIT, 0);
			(void) waitpid(w.pid, NULL, 0);
			r2 = coh->move(cb, w.pid, w.addr, 16 * PAGE, &pool, NULL, NULL, &c);
			r = numa->move(nb, w.pid, w.addr, 16 * PAGE, &to1, NULL, NULL, &c);
			close(w.cmd_fd);
			close(w.rsp_fd);
		}
		tap_ok(r == -ESRCH && r2 == -ESRCH, "exited victim: -ESRCH from both (r=%d %d)", r, r2);
	}

	/* a cancelling progress callback */
	{
		uint64_t big = UINT64_MAX;    /* count_progress fails: so_far < last */

		r = numa->move(nb, v.pid, addr, len, &to1, count_progress, &big, &c);
		tap_ok(r == -EUCLEAN && move_counts_total(&c) <= NPAGES,
		       "numa: a progress callback's error cancels and is returned (r=%d)", r);
		r = numa->move(nb, v.pid, addr, len, &sys, NULL, NULL, &c);
	}

	/* moves from four threads at once, both backends: one socket per call */
	{
		char why[200];
		bool ok = run_workers(numa, nb, coh, cb, &v, why, sizeof(why));

		tap_ok(ok, "threads: 4 threads x 6 moves, numa and cohmem at once, all exact%s%s",
		       ok ? "" : ": ", why);
		tap_ok(coh_victim_cmd(&v, VICTIM_CHECK, 1) == 0, "threads: data intact");
	}

	/* the target exits part way: an exact, partial result */
	{
		struct coh_victim w;
		const size_t big = 20000;    /* two batches of the numa backend */

		r = coh_victim_start(&w, big, 9);
		if (r == 0)
			r = numa->move(nb, w.pid, w.addr, big * PAGE, &to1, kill_on_progress, &w, &c);
		tap_ok(r == BACKEND_MOVE_EXITED && c.migrated == 16384 && move_counts_total(&c) == 16384,
		       "numa: target killed after the first batch: partial, exact: %s (r=%d)",
		       counts_str(&c), r);
		if (w.pid > 0)
			coh_victim_stop(&w);
		else {
			close(w.cmd_fd);
			close(w.rsp_fd);
		}
		r = coh_victim_start(&w, 16, 9);
		if (r == 0)
			r = coh->move(cb, w.pid, 0, 0, &pool, kill_on_progress, &w, &c);
		tap_ok(r == BACKEND_MOVE_EXITED && move_counts_total(&c) > 0,
		       "cohmem: target killed after the first mapping: partial: %s (r=%d)",
		       counts_str(&c), r);
		if (w.pid > 0)
			coh_victim_stop(&w);
		else {
			close(w.cmd_fd);
			close(w.rsp_fd);
		}
	}

	if (do_bench)
		bench(numa, nb, coh, cb);

	/* ---- unload ---- */
	r = coh_module_unload();
	tap_ok(r == 0, "cohmem: rmmod with the monitor open (r=%d)", r);
	wait_events(coh, cb, fd, BACKEND_EVENT_UNLOAD, 5000);
	tap_ok(events_seen[BACKEND_EVENT_UNLOAD] == 1 && dispatch_errors == 0,
	       "cohmem: monitor: the unload event (%d), no dispatch errors (%d)",
	       events_seen[BACKEND_EVENT_UNLOAD], dispatch_errors);
	r = coh->move(cb, v.pid, addr, len, &pool, NULL, NULL, &c);
	r2 = coh->list_devices(cb, &devs, &n);
	{
		uint8_t bm[2];

		r3 = coh->sample(cb, v.pid, addr, 16 * PAGE, false, bm, sizeof(bm), NULL);
	}
	tap_ok(r == -ENODEV && r2 == -ENODEV && r3 == -ENODEV,
	       "cohmem: after unload every call is -ENODEV (r=%d %d, sample %d)", r, r2, r3);
	tap_ok(coh_victim_cmd(&v, VICTIM_CHECK, 1) == 0, "victim: data intact at the end");
	coh->close(cb);
	numa->close(nb);
	r = coh_victim_stop(&v);
	tap_ok(r == 0, "victim: exited cleanly (status %d)", r);
	return tap_finish();
}
