// SPDX-License-Identifier: GPL-2.0
/*
 * cohmem pools: parsing the pools= parameter, checking that firmware
 * reserved the memory and that something answers behind it, registering
 * it as MEMORY_DEVICE_COHERENT, and the device-page allocator.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitmap.h>
#include <linux/ctype.h>
#include <linux/delay.h>
#include <linux/io.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/nodemask.h>
#include <linux/numa.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "cohmem.h"

struct cohmem_pool *cohmem_pools[COHMEM_MAX_POOLS];
unsigned int cohmem_nr_pools;
int cohmem_owner;

static bool cohmem_ntf_stopped;

/**
 * cohmem_pool_get() - look up a pool by id
 * @id: pool id
 *
 * Return: the pool or NULL. Pools live from module init to module exit.
 */
struct cohmem_pool *cohmem_pool_get(u32 id)
{
	if (id >= cohmem_nr_pools)
		return NULL;
	return cohmem_pools[id];
}

/**
 * cohmem_pool_by_pfn() - find the pool that owns a page frame
 * @pfn: page frame number
 *
 * Return: the pool or NULL when @pfn belongs to no pool.
 */
struct cohmem_pool *cohmem_pool_by_pfn(unsigned long pfn)
{
	unsigned int i;

	for (i = 0; i < cohmem_nr_pools; i++) {
		struct cohmem_pool *pool = cohmem_pools[i];

		if (pfn >= pool->pfn_first &&
		    pfn < pool->pfn_first + pool->npages)
			return pool;
	}
	return NULL;
}

/* Called with pool->lock held. */
static void cohmem_pool_wmark_check(struct cohmem_pool *pool)
{
	struct cohmem_ntf *ntf;
	u32 wmark;

	if (!pool->below_low && pool->nfree < pool->low_pages)
		wmark = COHMEM_WMARK_LOW;
	else if (pool->below_low && pool->nfree >= pool->high_pages)
		wmark = COHMEM_WMARK_HIGH;
	else
		return;

	pool->below_low = wmark == COHMEM_WMARK_LOW;
	if (cohmem_ntf_stopped)
		return;
	/* On overflow the oldest event is dropped; the newest state wins. */
	if (pool->ntf_tail - pool->ntf_head == COHMEM_NTF_RING)
		pool->ntf_head++;
	ntf = &pool->ntf[pool->ntf_tail++ % COHMEM_NTF_RING];
	ntf->wmark = wmark;
	ntf->free_pages = pool->nfree;
	schedule_work(&pool->wmark_work);
}

static void cohmem_pool_wmark_work(struct work_struct *work)
{
	struct cohmem_pool *pool = container_of(work, struct cohmem_pool,
						wmark_work);
	struct cohmem_ntf ntf;
	unsigned long flags;

	for (;;) {
		spin_lock_irqsave(&pool->lock, flags);
		if (pool->ntf_head == pool->ntf_tail) {
			spin_unlock_irqrestore(&pool->lock, flags);
			return;
		}
		ntf = pool->ntf[pool->ntf_head++ % COHMEM_NTF_RING];
		spin_unlock_irqrestore(&pool->lock, flags);
		cohmem_nl_notify_wmark(pool, ntf.wmark, ntf.free_pages);
	}
}

/**
 * cohmem_pools_stop_ntf() - stop queueing watermark notifications
 *
 * Called before the netlink family goes away; waits for queued work.
 */
void cohmem_pools_stop_ntf(void)
{
	unsigned long flags;
	unsigned int i;

	for (i = 0; i < cohmem_nr_pools; i++) {
		spin_lock_irqsave(&cohmem_pools[i]->lock, flags);
		cohmem_ntf_stopped = true;
		spin_unlock_irqrestore(&cohmem_pools[i]->lock, flags);
	}
	cohmem_ntf_stopped = true;
	for (i = 0; i < cohmem_nr_pools; i++)
		cancel_work_sync(&cohmem_pools[i]->wmark_work);
}

/**
 * cohmem_pool_alloc_page() - allocate one device page
 * @pool: pool to allocate from
 *
 * Return: a locked page with one reference, or NULL when the pool is full.
 */
struct page *cohmem_pool_alloc_page(struct cohmem_pool *pool)
{
	unsigned long flags, idx;
	struct page *page;

	spin_lock_irqsave(&pool->lock, flags);
	if (!pool->nfree) {
		spin_unlock_irqrestore(&pool->lock, flags);
		return NULL;
	}
	idx = find_next_zero_bit(pool->bitmap, pool->npages, pool->hint);
	if (idx >= pool->npages)
		idx = find_first_zero_bit(pool->bitmap, pool->npages);
	__set_bit(idx, pool->bitmap);
	pool->nfree--;
	pool->hint = idx + 1 < pool->npages ? idx + 1 : 0;
	cohmem_pool_wmark_check(pool);
	spin_unlock_irqrestore(&pool->lock, flags);

	page = pfn_to_page(pool->pfn_first + idx);
	zone_device_page_init(page);
	return page;
}

/**
 * cohmem_pool_free_pages() - number of free pages
 * @pool: pool
 *
 * Return: the exact count at the time of the call.
 */
unsigned long cohmem_pool_free_pages(struct cohmem_pool *pool)
{
	return READ_ONCE(pool->nfree);
}

/**
 * cohmem_pool_page_allocated() - whether a page of the pool is in use
 * @pool: pool
 * @idx: page index inside the pool
 *
 * Return: true while the page is allocated.
 */
bool cohmem_pool_page_allocated(struct cohmem_pool *pool, unsigned long idx)
{
	return test_bit(idx, pool->bitmap);
}

/**
 * cohmem_pool_next_allocated() - next page in use at or after an index
 * @pool: pool
 * @idx: page index to start at
 *
 * Return: the index, or pool->npages when there is none.
 */
unsigned long cohmem_pool_next_allocated(struct cohmem_pool *pool,
					 unsigned long idx)
{
	return find_next_bit(pool->bitmap, pool->npages, idx);
}

static void cohmem_page_free(struct page *page)
{
	struct cohmem_pool *pool = container_of(page->pgmap, struct cohmem_pool,
						pgmap);
	unsigned long idx = page_to_pfn(page) - pool->pfn_first;
	unsigned long flags;

	spin_lock_irqsave(&pool->lock, flags);
	if (WARN_ON_ONCE(!__test_and_clear_bit(idx, pool->bitmap))) {
		spin_unlock_irqrestore(&pool->lock, flags);
		return;
	}
	pool->nfree++;
	cohmem_pool_wmark_check(pool);
	spin_unlock_irqrestore(&pool->lock, flags);
}

static const struct dev_pagemap_ops cohmem_pgmap_ops = {
	.page_free = cohmem_page_free,
};

static bool cohmem_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (!len || len > COHMEM_NAME_MAX)
		return false;
	for (; *name; name++)
		if (!isalnum(*name) && *name != '_' && *name != '-')
			return false;
	return true;
}

/*
 * Write patterns through an uncached mapping and read them back. A range
 * that firmware calls reserved can still have nothing behind it (memmap=$
 * beyond the end of memory): the kernel would map it happily and every read
 * would return zeros or all-ones. One probe per step of the range; the old
 * contents are restored.
 */
static int cohmem_probe_range(struct cohmem_pool *pool)
{
	static const u64 patterns[] = {
		0x5a5aa5a5c3c33c3cULL, 0xa5a55a5a3c3cc3c3ULL,
	};
	u64 step = max_t(u64, SZ_2M, round_up(pool->size / 4096, PAGE_SIZE));
	u64 off = 0;

	for (;;) {
		phys_addr_t addr = pool->start + off;
		void __iomem *va = ioremap(addr, PAGE_SIZE);
		unsigned int i;
		u64 old, got;

		if (!va) {
			pr_err("pool %s: cannot map %pa to check it\n",
			       pool->name, &addr);
			return -ENOMEM;
		}
		old = readq(va);
		for (i = 0; i < ARRAY_SIZE(patterns); i++) {
			u64 want = patterns[i] ^ addr;

			writeq(want, va);
			got = readq(va);
			if (got != want) {
				iounmap(va);
				pr_err("pool %s: no memory answers at %pa (wrote %#llx, read back %#llx); refusing a range that would read back garbage\n",
				       pool->name, &addr, want, got);
				return -EINVAL;
			}
		}
		writeq(old, va);
		iounmap(va);

		if (off + PAGE_SIZE >= pool->size)
			break;
		off += step;
		if (off + PAGE_SIZE > pool->size)
			off = pool->size - PAGE_SIZE;
	}
	return 0;
}

static int cohmem_pool_check(struct cohmem_pool *pool, bool soft)
{
	unsigned long align = memremap_compat_align();
	int r;

	if (!pool->size || !IS_ALIGNED(pool->start, align) ||
	    !IS_ALIGNED(pool->size, align) ||
	    pool->start + pool->size < pool->start) {
		pr_err("pool %s: range %#llx+%#llx must be non-empty and aligned to %#lx bytes\n",
		       pool->name, (u64)pool->start, pool->size, align);
		return -EINVAL;
	}

	r = region_intersects(pool->start, pool->size, IORESOURCE_SYSTEM_RAM,
			      IORES_DESC_NONE);
	if (r != REGION_DISJOINT) {
		pr_err("pool %s: range %#llx-%#llx %s System RAM; refusing\n",
		       pool->name, (u64)pool->start,
		       (u64)(pool->start + pool->size - 1),
		       r == REGION_MIXED ? "partly overlaps" : "is");
		return -EINVAL;
	}

	if (region_intersects(pool->start, pool->size, IORESOURCE_MEM,
			      IORES_DESC_RESERVED) != REGION_INTERSECTS &&
	    region_intersects(pool->start, pool->size, IORESOURCE_MEM,
			      IORES_DESC_SOFT_RESERVED) != REGION_INTERSECTS) {
		pr_err("pool %s: range %#llx-%#llx is not entirely described by firmware as reserved memory (memmap=SIZE$START, Soft Reserved); refusing: nothing may be behind it\n",
		       pool->name, (u64)pool->start,
		       (u64)(pool->start + pool->size - 1));
		return -EINVAL;
	}

	if (soft && region_intersects(pool->start, pool->size, IORESOURCE_MEM,
				      IORES_DESC_SOFT_RESERVED) !=
		    REGION_INTERSECTS)
		return -EINVAL;

	if (pool->nid == NUMA_NO_NODE)
		pool->nid = memory_add_physaddr_to_nid(pool->start);
	if (pool->nid < 0 || pool->nid >= nr_node_ids ||
	    !node_online(pool->nid)) {
		pr_err("pool %s: NUMA node %d is not online\n", pool->name,
		       pool->nid);
		return -EINVAL;
	}
	return 0;
}

static void cohmem_pool_destroy(struct cohmem_pool *pool)
{
	if (pool->mapped)
		memunmap_pages(&pool->pgmap);
	if (pool->res)
		release_mem_region(pool->start, pool->size);
	bitmap_free(pool->bitmap);
	kfree(pool);
}

static int cohmem_pool_add(const char *name, phys_addr_t start, u64 size,
			   int nid, bool soft, unsigned int low_pct,
			   unsigned int high_pct)
{
	struct cohmem_pool *pool;
	unsigned int i;
	void *va;
	int r;

	if (!cohmem_name_valid(name)) {
		pr_err("pool name \"%s\" invalid: 1-%d characters of [A-Za-z0-9_-]\n",
		       name, COHMEM_NAME_MAX);
		return -EINVAL;
	}
	if (cohmem_nr_pools >= COHMEM_MAX_POOLS) {
		pr_err("pool %s: at most %d pools\n", name, COHMEM_MAX_POOLS);
		return -EINVAL;
	}
	for (i = 0; i < cohmem_nr_pools; i++) {
		struct cohmem_pool *o = cohmem_pools[i];

		if (!strcmp(o->name, name)) {
			pr_err("pool %s: duplicate name\n", name);
			return -EINVAL;
		}
		if (start < o->start + o->size && o->start < start + size) {
			pr_err("pool %s: overlaps pool %s\n", name, o->name);
			return -EINVAL;
		}
	}

	pool = kzalloc(sizeof(*pool), GFP_KERNEL);
	if (!pool)
		return -ENOMEM;
	strscpy(pool->name, name, sizeof(pool->name));
	snprintf(pool->resname, sizeof(pool->resname), "cohmem %s", name);
	pool->start = start;
	pool->size = size;
	pool->nid = nid;
	spin_lock_init(&pool->lock);
	INIT_WORK(&pool->wmark_work, cohmem_pool_wmark_work);

	r = cohmem_pool_check(pool, soft);
	if (r)
		goto err;

	pool->res = request_mem_region(start, size, pool->resname);
	if (!pool->res) {
		pr_err("pool %s: range %#llx-%#llx is busy (claimed by another driver, e.g. dax_hmem or kmem)\n",
		       name, (u64)start, (u64)(start + size - 1));
		r = -EBUSY;
		goto err;
	}

	r = cohmem_probe_range(pool);
	if (r)
		goto err;

	pool->pfn_first = PHYS_PFN(start);
	pool->npages = size >> PAGE_SHIFT;
	pool->nfree = pool->npages;
	pool->low_pages = div_u64((u64)pool->npages * low_pct, 100);
	pool->high_pages = div_u64((u64)pool->npages * high_pct, 100);
	pool->bitmap = bitmap_zalloc(pool->npages, GFP_KERNEL);
	if (!pool->bitmap) {
		r = -ENOMEM;
		goto err;
	}

	pool->pgmap.type = MEMORY_DEVICE_COHERENT;
	pool->pgmap.range.start = start;
	pool->pgmap.range.end = start + size - 1;
	pool->pgmap.nr_range = 1;
	pool->pgmap.ops = &cohmem_pgmap_ops;
	pool->pgmap.owner = &cohmem_owner;
	va = memremap_pages(&pool->pgmap, pool->nid);
	if (IS_ERR(va)) {
		r = PTR_ERR(va);
		pr_err("pool %s: memremap_pages failed: %d\n", name, r);
		goto err;
	}
	pool->mapped = true;

	pool->id = cohmem_nr_pools;
	cohmem_pools[cohmem_nr_pools++] = pool;
	pr_info("pool %s: id %u, %#llx-%#llx (%llu MiB), node %d, %lu pages\n",
		name, pool->id, (u64)start, (u64)(start + size - 1),
		size >> 20, pool->nid, pool->npages);
	return 0;

err:
	cohmem_pool_destroy(pool);
	return r;
}

/* NAME:SIZE@START[:NID] */
static int cohmem_parse_one(char *item, unsigned int low_pct,
			    unsigned int high_pct)
{
	char *name, *size_s, *start_s, *nid_s, *end;
	unsigned long long start;
	int nid = NUMA_NO_NODE;
	u64 size;

	name = strsep(&item, ":");
	size_s = strsep(&item, "@");
	if (!item || !*name || !*size_s) {
		pr_err("pools: \"%s\": expected NAME:SIZE@START[:NID]\n", name);
		return -EINVAL;
	}
	start_s = strsep(&item, ":");
	nid_s = item;

	size = memparse(size_s, &end);
	if (*end || end == size_s) {
		pr_err("pool %s: bad size \"%s\"\n", name, size_s);
		return -EINVAL;
	}
	if (kstrtoull(start_s, 0, &start)) {
		pr_err("pool %s: bad start \"%s\"\n", name, start_s);
		return -EINVAL;
	}
	if (nid_s && kstrtoint(nid_s, 10, &nid)) {
		pr_err("pool %s: bad node \"%s\"\n", name, nid_s);
		return -EINVAL;
	}
	if (nid_s && nid < 0) {
		pr_err("pool %s: bad node \"%s\"\n", name, nid_s);
		return -EINVAL;
	}
	if (size > U64_MAX - start) {
		pr_err("pool %s: range overflows\n", name);
		return -EINVAL;
	}
	return cohmem_pool_add(name, start, size, nid, false, low_pct,
			       high_pct);
}

struct cohmem_soft_ctx {
	unsigned int low_pct;
	unsigned int high_pct;
	unsigned int n;
	int err;
};

static int cohmem_soft_one(struct resource *res, void *arg)
{
	struct cohmem_soft_ctx *ctx = arg;
	char name[16];
	int r;

	snprintf(name, sizeof(name), "soft%u", ctx->n++);
	r = cohmem_pool_add(name, res->start, resource_size(res),
			    NUMA_NO_NODE, true, ctx->low_pct, ctx->high_pct);
	if (r) {
		ctx->err = r;
		return r;
	}
	return 0;
}

/**
 * cohmem_pools_init() - create all pools
 * @spec: the pools= parameter, may be NULL
 * @soft_reserved: also claim every firmware Soft Reserved range
 * @low_pct: low watermark in percent of the pool
 * @high_pct: high watermark in percent of the pool
 *
 * All or nothing: on any error every pool created so far is removed.
 *
 * Return: 0 or negative errno.
 */
int cohmem_pools_init(const char *spec, bool soft_reserved,
		      unsigned int low_pct, unsigned int high_pct)
{
	char *buf = NULL, *cur, *item;
	int r = 0;

	if (low_pct > high_pct || high_pct > 100) {
		pr_err("watermarks: need low_wmark_pct <= high_wmark_pct <= 100\n");
		return -EINVAL;
	}

	if (spec && *spec) {
		buf = kstrdup(spec, GFP_KERNEL);
		if (!buf)
			return -ENOMEM;
		cur = buf;
		while ((item = strsep(&cur, ",")) != NULL) {
			if (!*item) {
				pr_err("pools: empty entry\n");
				r = -EINVAL;
				goto err;
			}
			r = cohmem_parse_one(item, low_pct, high_pct);
			if (r)
				goto err;
		}
	}

	if (soft_reserved) {
		struct cohmem_soft_ctx ctx = {
			.low_pct = low_pct, .high_pct = high_pct,
		};

		walk_iomem_res_desc(IORES_DESC_SOFT_RESERVED, IORESOURCE_MEM,
				    0, -1, &ctx, cohmem_soft_one);
		r = ctx.err;
		if (r)
			goto err;
	}
	kfree(buf);
	return 0;

err:
	kfree(buf);
	cohmem_pools_exit();
	return r;
}

/* Move every allocated page back to system RAM; see cohmem.4, UNLOADING. */
static void cohmem_pool_evacuate(struct cohmem_pool *pool)
{
	unsigned int delay = 10, waited = 0, next_report = 1000;
	u64 total_moved = 0;

	for (;;) {
		u64 left = pool->npages - cohmem_pool_free_pages(pool);
		u64 moved = 0, failed = 0;

		if (!left)
			break;
		cohmem_evict(pool, left, &moved, &failed);
		total_moved += moved;
		if (pool->npages == cohmem_pool_free_pages(pool))
			break;
		if (moved) {
			delay = 10;
			continue;
		}
		if (waited >= next_report) {
			pr_warn("pool %s: %lu pages still in use and not movable (pinned?); retrying until they can be moved\n",
				pool->name,
				pool->npages - cohmem_pool_free_pages(pool));
			next_report = waited + 10000;
		}
		msleep(delay);
		waited += delay;
		delay = min(delay * 2, 1000U);
	}
	if (total_moved)
		pr_info("pool %s: moved %llu pages back to system RAM before unload\n",
			pool->name, total_moved);
}

/**
 * cohmem_pools_exit() - evacuate and remove all pools
 *
 * Must run after the netlink family is gone, so no new page is allocated.
 */
void cohmem_pools_exit(void)
{
	WRITE_ONCE(cohmem_ntf_stopped, true);
	while (cohmem_nr_pools) {
		struct cohmem_pool *pool = cohmem_pools[--cohmem_nr_pools];

		if (pool->mapped)
			cohmem_pool_evacuate(pool);
		cancel_work_sync(&pool->wmark_work);
		cohmem_pools[cohmem_nr_pools] = NULL;
		cohmem_pool_destroy(pool);
	}
}
