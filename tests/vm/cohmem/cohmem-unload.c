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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cohmem-client.h"

#define PLAN 15

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
	return tap_finish();
}
