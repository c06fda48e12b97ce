// SPDX-License-Identifier: GPL-2.0
/*
 * cohmem conformance: pool registration. The pool from the harness's
 * memmap= reservation loads with exact attributes; ranges with no RAM
 * behind them, System RAM, overlapping or malformed specifications are
 * refused at load time with a kernel log line and no pool.
 *
 * Runs as root inside the test VM; loads cohmem.ko itself; prints TAP.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cohmem-client.h"

#define PLAN 35

/* Loads with @params, expecting refusal: module not loaded afterwards, a log line. */
static void expect_refused(const char *params, const char *why)
{
	int kmsg = coh_kmsg_open();
	bool logged;
	int r;

	r = coh_module_load(params);
	logged = coh_kmsg_grep(kmsg, "cohmem");
	tap_ok(r < 0 && !coh_module_loaded(),
	       "refused: %s: '%s' (r=%d %s)", why, params, r, r < 0 ? strerror(-r) : "loaded!");
	if (r == 0) {
		struct coh_client *c;
		struct coh_pool pools[COH_MAX_POOLS];
		int nr = -1;

		if (coh_open(&c) == 0) {
			nr = coh_pool_dump(c, pools, COH_MAX_POOLS);
			coh_close(c);
		}
		tap_diag("  module loaded with %d pool(s) over a refused range", nr);
		coh_module_unload();
	}
	if (kmsg >= 0)
		tap_ok(logged, "refused: %s: the kernel log says why", why);
	else
		tap_skip("no /dev/kmsg", "refused: %s: the kernel log says why", why);
	close(kmsg);
}

int main(void)
{
	uint64_t start = coh_pool_env_start(), size = coh_pool_env_size();
	int nid = coh_pool_env_nid();
	struct coh_pool pools[COH_MAX_POOLS], p;
	struct coh_client *c = NULL;
	char params[512];
	int r, nr;

	if (!coh_module_present())
		tap_skip_all("cohmem.ko not found (COH_MODULE_DIR)");
	if (coh_module_loaded())
		coh_module_unload();
	tap_init("cohmem-pool", PLAN);

	coh_pool_param(params, sizeof(params), "t0");
	r = coh_module_load(params);
	tap_ok(r == 0 && coh_module_loaded(), "load with '%s' (r=%d)", params, r);
	r = coh_open(&c);
	tap_ok(r == 0, "generic netlink family '%s' resolves (r=%d)", COHMEM_FAMILY_NAME, r);
	nr = c ? coh_pool_dump(c, pools, COH_MAX_POOLS) : -1;
	tap_ok(nr == 1 && !strcmp(pools[0].name, "t0"), "POOL_GET dump lists exactly pool t0 (%d)", nr);
	r = nr == 1 ? coh_pool_get(c, pools[0].id, &p) : -ENOENT;
	tap_ok(r == 0 && !strcmp(p.name, "t0") && p.id == pools[0].id,
	       "POOL_GET do by id %u (r=%d)", nr == 1 ? pools[0].id : 0, r);
	tap_ok(r == 0 && p.phys_start == start && p.phys_size == size,
	       "pool range %#llx+%#llx (want %#llx+%#llx)", (unsigned long long)p.phys_start,
	       (unsigned long long)p.phys_size, (unsigned long long)start, (unsigned long long)size);
	tap_ok(r == 0 && p.nid == nid, "pool node %d (want %d)", p.nid, nid);
	tap_ok(r == 0 && p.total == size / COH_PAGE_SIZE && p.free == p.total,
	       "pool total %llu == free %llu == %llu pages", (unsigned long long)p.total,
	       (unsigned long long)p.free, (unsigned long long)(size / COH_PAGE_SIZE));
	tap_ok(r == 0 && p.migrated_in == 0 && p.migrated_out == 0 && p.evicted == 0 &&
	       p.failures == 0, "pool counters start at zero");
	tap_ok(r == 0 && p.low <= p.high && p.high <= p.total,
	       "watermarks low %llu <= high %llu <= total", (unsigned long long)p.low,
	       (unsigned long long)p.high);
	{
		/* the range is claimed in the iomem tree */
		FILE *f = fopen("/proc/iomem", "re");
		char line[256];
		bool claimed = false;

		while (f && fgets(line, sizeof(line), f))
			if (strstr(line, "cohmem") || strstr(line, "t0"))
				claimed = true;
		if (f)
			fclose(f);
		tap_ok(claimed, "the pool range is claimed in /proc/iomem");
	}
	coh_close(c);
	c = NULL;
	r = coh_module_unload();
	tap_ok(r == 0 && !coh_module_loaded(), "unload (r=%d)", r);
	tap_ok(coh_open(&c) == -ENOENT, "family gone after unload");
	coh_close(c);
	c = NULL;

	/* a second load reuses the range */
	r = coh_module_load(params);
	tap_ok(r == 0, "load again after unload (r=%d)", r);
	coh_module_unload();

	/* two pools splitting the reservation */
	snprintf(params, sizeof(params), "pools=a:%lluK@0x%llx:%d,b:%lluK@0x%llx:%d",
		 (unsigned long long)(size / 2 >> 10), (unsigned long long)start, nid,
		 (unsigned long long)(size / 2 >> 10), (unsigned long long)(start + size / 2), nid);
	r = coh_module_load(params);
	nr = -1;
	if (r == 0 && coh_open(&c) == 0)
		nr = coh_pool_dump(c, pools, COH_MAX_POOLS);
	tap_ok(r == 0 && nr == 2 && pools[0].total == size / 2 / COH_PAGE_SIZE &&
	       pools[1].total == size / 2 / COH_PAGE_SIZE && pools[0].id != pools[1].id,
	       "two pools '%s': both listed with half the pages each (r=%d, %d pools)", params, r,
	       nr);
	coh_close(c);
	c = NULL;
	coh_module_unload();

	/* no RAM and no reservation behind the range: would read back zeros */
	snprintf(params, sizeof(params), "pools=bad:64M@0x100000000:%d", nid);
	expect_refused(params, "nothing behind the range");
	/* firmware says reserved (e820 hole at 0xfd00000000), but no memory answers */
	snprintf(params, sizeof(params), "pools=bad:64M@0xfd00000000:%d", nid);
	expect_refused(params, "reserved but nothing behind it");
	/* System RAM */
	snprintf(params, sizeof(params), "pools=bad:64M@0x10000000:%d", nid);
	expect_refused(params, "System RAM");
	/* straddles the end of the reservation into System RAM */
	snprintf(params, sizeof(params), "pools=bad:64M@0x%llx:%d",
		 (unsigned long long)(start + size - (32ULL << 20)), nid);
	expect_refused(params, "partly System RAM");
	/* two pools overlapping each other */
	snprintf(params, sizeof(params), "pools=a:128M@0x%llx:%d,b:128M@0x%llx:%d",
		 (unsigned long long)start, nid, (unsigned long long)(start + (64ULL << 20)), nid);
	expect_refused(params, "overlapping pools");
	expect_refused("pools=bad:0@0x60000000", "zero size");
	expect_refused("pools=bad:64M@0x60000800", "unaligned start");
	expect_refused("pools=bad", "malformed");
	expect_refused("pools=bad:64M@0x60000000:99", "no such node");

	/* the refusals left nothing behind: the good pool still loads */
	coh_pool_param(params, sizeof(params), "t0");
	r = coh_module_load(params);
	nr = -1;
	if (r == 0 && coh_open(&c) == 0)
		nr = coh_pool_dump(c, pools, COH_MAX_POOLS);
	tap_ok(r == 0 && nr == 1 && pools[0].free == size / COH_PAGE_SIZE,
	       "after the refusals the reservation loads as before (r=%d, %d pools)", r, nr);
	coh_close(c);
	r = coh_module_unload();
	tap_ok(r == 0, "unload (r=%d)", r);
	return tap_finish();
}
