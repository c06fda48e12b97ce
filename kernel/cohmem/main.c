// SPDX-License-Identifier: GPL-2.0
/*
 * cohmem - coherent device memory pools and cross-process page migration.
 *
 * Firmware-reserved physical memory is registered as MEMORY_DEVICE_COHERENT
 * ZONE_DEVICE memory, and user space moves any process's anonymous pages in
 * and out of it through the generic netlink family "cohmem". See cohmem(4).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>

#include "cohmem.h"

static char *pools;
module_param(pools, charp, 0444);
MODULE_PARM_DESC(pools,
		 "Pools as NAME:SIZE@START[:NID],... (SIZE with K/M/G, START hex or decimal)");

static bool soft_reserved;
module_param(soft_reserved, bool, 0444);
MODULE_PARM_DESC(soft_reserved,
		 "Also make a pool of every firmware Soft Reserved range");

static unsigned int low_wmark_pct = 10;
module_param(low_wmark_pct, uint, 0444);
MODULE_PARM_DESC(low_wmark_pct,
		 "Low watermark, percent of a pool free (default 10)");

static unsigned int high_wmark_pct = 20;
module_param(high_wmark_pct, uint, 0444);
MODULE_PARM_DESC(high_wmark_pct,
		 "High watermark, percent of a pool free (default 20)");

static int __init cohmem_init(void)
{
	int r;

	r = cohmem_pools_init(pools, soft_reserved, low_wmark_pct,
			      high_wmark_pct);
	if (r)
		return r;
	if (!cohmem_nr_pools)
		pr_info("no pools configured\n");

	r = cohmem_nl_init();
	if (r) {
		pr_err("cannot register generic netlink family: %d\n", r);
		goto err_pools;
	}
	return 0;

err_pools:
	cohmem_pools_exit();
	return r;
}

static void __exit cohmem_exit(void)
{
	cohmem_pools_stop_ntf();
	cohmem_nl_notify_unload();
	/* No command runs after this; then every page goes back to RAM. */
	cohmem_nl_exit();
	cohmem_pools_exit();
}

module_init(cohmem_init);
module_exit(cohmem_exit);

MODULE_DESCRIPTION("Coherent device memory pools with a migration API");
MODULE_LICENSE("GPL");
