// SPDX-License-Identifier: GPL-2.0
/*
 * cohmem conformance: unloading the module while processes hold pool pages
 * moves every page back to RAM first; no process loses data. The monitor
 * group hears about the unload.
 *
 * Runs as root inside the test VM; loads cohmem.ko itself; prints TAP.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cohmem-client.h"

#define PLAN 19

struct racer {
	pthread_t t;
	pid_t pid;
	uint64_t addr;
	size_t npages;
	uint32_t pool;
	unsigned long rounds;
	int last;
};

static atomic_bool race_stop;

/* MIGRATE in and out until the family goes away (bounded). */
static void *racer_main(void *arg)
{
	struct racer *rc = arg;
	struct coh_client *c;
	struct coh_counts k;

	rc->last = coh_open(&c);
	if (rc->last < 0)
		return NULL;
	while (rc->rounds < 2000 && !atomic_load(&race_stop)) {
		rc->last = coh_migrate(c, rc->pid, rc->addr, rc->npages * COH_PAGE_SIZE,
				       rc->rounds % 2 ? COHMEM_DEST_SYSTEM : rc->pool, &k);
		if (rc->last < 0)
			break;
		rc->rounds++;
	}
	coh_close(c);
	return NULL;
}

/* rmmod while MIGRATE requests are in flight (4). */
static void test_unload_racing(void)
{
	const size_t n = 1024;
	struct racer rc[2];
	struct coh_victim v;
	struct coh_env env;
	size_t in = ~0UL, pres = 0;
	int r, i;

	r = coh_env_setup(&env, "t0", NULL);
	if (r == 0)
		r = coh_victim_start(&v, n, 211);
	if (!tap_ok(r == 0, "race: reload and start a child with %zu pages (r=%d)", n, r))
		return;
	for (i = 0; i < 2; i++) {
		rc[i] = (struct racer){ .pid = v.pid, .addr = v.addr, .npages = n,
					.pool = env.pool.id };
		pthread_create(&rc[i].t, NULL, racer_main, &rc[i]);
	}
	coh_env_teardown(&env);
	/* let both get going: wait for a few completed rounds, bounded by count */
	for (i = 0; i < 20000 && (rc[0].rounds < 3 || rc[1].rounds < 3); i++)
		usleep(1000);
	r = coh_module_unload();
	atomic_store(&race_stop, true);
	for (i = 0; i < 2; i++)
		pthread_join(rc[i].t, NULL);
	if (r < 0)
		r = coh_module_unload();
	tap_ok(r == 0 && !coh_module_loaded(),
	       "race: rmmod during concurrent MIGRATE succeeds (r=%d; rounds %lu and %lu, "
	       "last %d and %d)", r, rc[0].rounds, rc[1].rounds, rc[0].last, rc[1].last);
	coh_pages_in(v.pid, v.addr, n, env.lo_pfn, env.hi_pfn, &in, &pres);
	tap_ok(in == 0 && pres == n, "race: child's pages in RAM (%zu in pool, %zu present)", in,
	       pres);
	tap_ok(coh_victim_cmd(&v, VICTIM_CHECK, 211) == 0 && coh_victim_stop(&v) == 0,
	       "race: child's data intact");
}

int main(void)
{
	const size_t n = 2048, m = 512;
	struct coh_client *mon = NULL;
	struct coh_counts k;
	struct coh_reply rep;
	struct coh_victim v;
	struct coh_env env;
	uint64_t lo, hi;
	size_t in = ~0UL, pres = 0;
	bool unload_ntf = false;
	char *buf;
	int r, cmd;

	r = coh_env_setup(&env, "t0", NULL);
	tap_init("cohmem-unload", PLAN);
	if (!tap_ok(r == 0, "load cohmem with pool t0 and find it (r=%d)", r))
		return tap_finish();
	lo = env.lo_pfn;
	hi = env.hi_pfn;

	r = coh_victim_start(&v, n, 201);
	if (r == 0)
		r = coh_migrate(env.c, v.pid, v.addr, n * COH_PAGE_SIZE, env.pool.id, &k);
	tap_ok(r == 0 && k.migrated == n, "child's %zu pages in the pool (r=%d migrated %llu)", n,
	       r, (unsigned long long)k.migrated);
	buf = mmap(NULL, m * COH_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	madvise(buf, m * COH_PAGE_SIZE, MADV_NOHUGEPAGE);
	coh_fill(buf, m, 202);
	r = coh_migrate(env.c, getpid(), (uintptr_t)buf, m * COH_PAGE_SIZE, env.pool.id, &k);
	tap_ok(r == 0 && k.migrated == m, "own %zu pages in the pool (r=%d)", m, r);
	coh_pages_in(v.pid, v.addr, n, lo, hi, &in, NULL);
	tap_ok(in == n, "pagemap: child's pages are pool PFNs (%zu)", in);
	r = coh_monitor_open(&mon);
	tap_ok(r == 0, "subscribe to the monitor group (r=%d)", r);
	coh_env_teardown(&env);

	r = coh_module_unload();
	tap_ok(r == 0 && !coh_module_loaded(), "rmmod with %zu resident pages succeeds (r=%d)",
	       n + m, r);
	while (mon && (cmd = coh_monitor_next(mon, 1000, &rep)) >= 0) {
		unload_ntf |= cmd == COHMEM_CMD_UNLOAD_NTF;
		coh_reply_free(&rep);
	}
	tap_ok(unload_ntf, "monitor group got UNLOAD_NTF");
	coh_close(mon);

	in = ~0UL;
	coh_pages_in(v.pid, v.addr, n, lo, hi, &in, &pres);
	tap_ok(in == 0 && pres == n, "child's pages are back in RAM (%zu in pool, %zu present)", in,
	       pres);
	tap_ok(coh_victim_cmd(&v, VICTIM_CHECK, 201) == 0, "child's data intact after unload");
	tap_ok(coh_victim_cmd(&v, VICTIM_FILL, 203) == 0 && coh_victim_cmd(&v, VICTIM_CHECK, 203) == 0,
	       "child can write and read its buffer after unload");
	r = coh_victim_stop(&v);
	tap_ok(r == 0, "child exits cleanly (status %#x)", r);
	in = ~0UL;
	coh_pages_in(getpid(), (uintptr_t)buf, m, lo, hi, &in, &pres);
	tap_ok(in == 0 && pres == m && coh_check(buf, m, 202) == 0,
	       "own pages back in RAM with data intact (%zu in pool)", in);
	munmap(buf, m * COH_PAGE_SIZE);

	/* the pool is whole again on the next load */
	r = coh_env_setup(&env, "t0", NULL);
	tap_ok(r == 0 && env.pool.free == env.pool.total,
	       "reload: pool free %llu == total %llu (r=%d)", (unsigned long long)env.pool.free,
	       (unsigned long long)env.pool.total, r);
	if (r == 0)
		coh_env_teardown(&env);
	r = coh_module_unload();
	tap_ok(r == 0, "unload (r=%d)", r);
	test_unload_racing();
	return tap_finish();
}
