/* SPDX-License-Identifier: GPL-2.0 */
/*
 * cohmem - coherent device memory pools and cross-process page migration.
 * Internal declarations shared by the module's translation units.
 */
#ifndef _COHMEM_H
#define _COHMEM_H

#include <linux/atomic.h>
#include <linux/ioport.h>
#include <linux/memremap.h>
#include <linux/netlink.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/workqueue.h>

#include <linux/cohmem.h>

#define COHMEM_MAX_POOLS	16
#define COHMEM_NAME_MAX		31
/* Pages handled per migrate_vma_setup() / migrate_device_range() call. */
#define COHMEM_BATCH		512
#define COHMEM_NTF_RING		16

struct cohmem_ntf {
	u32 wmark;
	u64 free_pages;
};

/**
 * struct cohmem_pool - one range of coherent device memory
 * @id: index in cohmem_pools[], reported as COHMEM_A_POOL_ID
 * @name: administrator-chosen name
 * @start: physical start address
 * @size: size in bytes
 * @nid: NUMA node the ZONE_DEVICE pages belong to
 * @pfn_first: first page frame number
 * @npages: number of pages
 * @pgmap: the MEMORY_DEVICE_COHERENT page map
 * @resname: name of our claim in /proc/iomem
 * @res: our claim on the range in the iomem resource tree
 * @mapped: memremap_pages() succeeded
 * @lock: protects @bitmap, @nfree, @hint, @below_low and the ring
 * @bitmap: one bit per page, set while the page is allocated
 * @nfree: free pages, exact
 * @hint: next-fit search start
 * @low_pages: low watermark (free pages)
 * @high_pages: high watermark (free pages)
 * @below_low: a LOW notification was sent and no HIGH since
 * @ntf: pending watermark notifications
 * @ntf_head: ring consumer index
 * @ntf_tail: ring producer index
 * @wmark_work: sends @ntf from process context
 * @migrated_in: pages migrated into the pool by MIGRATE
 * @migrated_out: pages migrated out of the pool by MIGRATE
 * @evicted: pages moved out by EVICT or unload
 * @failures: pages whose move in or out failed
 */
struct cohmem_pool {
	u32 id;
	char name[COHMEM_NAME_MAX + 1];
	phys_addr_t start;
	u64 size;
	int nid;
	unsigned long pfn_first;
	unsigned long npages;
	struct dev_pagemap pgmap;
	char resname[COHMEM_NAME_MAX + 8];
	struct resource *res;
	bool mapped;

	spinlock_t lock;
	unsigned long *bitmap;
	unsigned long nfree;
	unsigned long hint;
	unsigned long low_pages;
	unsigned long high_pages;
	bool below_low;
	struct cohmem_ntf ntf[COHMEM_NTF_RING];
	unsigned int ntf_head;
	unsigned int ntf_tail;
	struct work_struct wmark_work;

	atomic64_t migrated_in;
	atomic64_t migrated_out;
	atomic64_t evicted;
	atomic64_t failures;
};

extern struct cohmem_pool *cohmem_pools[COHMEM_MAX_POOLS];
extern unsigned int cohmem_nr_pools;
extern int cohmem_owner;	/* its address is the pgmap owner cookie */

/* pool.c */
int cohmem_pools_init(const char *spec, bool soft_reserved,
		      unsigned int low_pct, unsigned int high_pct);
void cohmem_pools_exit(void);
void cohmem_pools_stop_ntf(void);
struct cohmem_pool *cohmem_pool_get(u32 id);
struct cohmem_pool *cohmem_pool_by_pfn(unsigned long pfn);
struct page *cohmem_pool_alloc_page(struct cohmem_pool *pool);
unsigned long cohmem_pool_free_pages(struct cohmem_pool *pool);
bool cohmem_pool_page_allocated(struct cohmem_pool *pool, unsigned long idx);
unsigned long cohmem_pool_next_allocated(struct cohmem_pool *pool,
					 unsigned long idx);

/* mm.c */
struct cohmem_migrate_result {
	u64 migrated;
	u64 already;
	u64 not_present;
	u64 file;
	u64 shared;
	u64 pinned;
	u64 unmovable;
	u64 no_space;
	u64 failed;
};

struct cohmem_resident {
	u64 system_pages;
	u64 pool_pages[COHMEM_MAX_POOLS];
	struct cohmem_extent {
		u32 pool;
		u64 start;
		u64 length;
	} *extents;
	unsigned int nr_extents;
	bool truncated;
};

/**
 * struct cohmem_sample_window - one window of a SAMPLE request
 * @start: page-aligned start
 * @length: page-aligned length
 * @first_bit: bit of the window's first page in the request's bitmap
 * @nr_young: young pages found in the window
 * @mapped: a mapping intersects the window
 */
struct cohmem_sample_window {
	u64 start;
	u64 length;
	u64 first_bit;
	u64 nr_young;
	bool mapped;
};

int cohmem_check_range(u64 start, u64 length, struct netlink_ext_ack *extack);
struct mm_struct *cohmem_get_mm(u32 pid, struct netlink_ext_ack *extack);
int cohmem_migrate(struct mm_struct *mm, u64 start, u64 length, u32 dest,
		   struct cohmem_migrate_result *res,
		   struct netlink_ext_ack *extack);
int cohmem_residency(struct mm_struct *mm, u64 start, u64 length,
		     struct cohmem_resident *res,
		     struct netlink_ext_ack *extack);
int cohmem_sample(struct mm_struct *mm, struct cohmem_sample_window *win,
		  unsigned int n, bool clear, unsigned long *bitmap);
int cohmem_evict(struct cohmem_pool *pool, u64 count, u64 *evicted,
		 u64 *failed);

/* netlink.c */
int cohmem_nl_init(void);
void cohmem_nl_exit(void);
void cohmem_nl_notify_wmark(struct cohmem_pool *pool, u32 wmark,
			    u64 free_pages);
void cohmem_nl_notify_unload(void);

#endif /* _COHMEM_H */
