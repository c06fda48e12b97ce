// SPDX-License-Identifier: GPL-2.0
/*
 * cohmem address-space work: migrating another process's anonymous pages
 * into and out of the pools, residency, access-bit sampling and eviction
 * by page frame.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/highmem.h>
#include <linux/hugetlb.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/pgtable.h>
#include <linux/rcupdate.h>
#include <linux/pid.h>
#include <linux/rmap.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/swapops.h>

#include <asm/tlbflush.h>

#include "cohmem.h"

/*
 * Page table walker. walk_page_range() is not exported, and follow_pte()
 * neither sees PMD-mapped transparent huge pages nor lets us visit 512
 * entries under one lock, so this walks the levels with the inline helpers,
 * the same way walk_page_range() does under mmap_read_lock: a page table
 * that was seen populated cannot be freed while the lock is held.
 */
struct cohmem_walk {
	struct mm_struct *mm;
	bool clear_young;
	unsigned long nr_cleared;
	/* every non-none PTE, with the PTE lock held */
	void (*pte)(struct cohmem_walk *w, unsigned long addr, pte_t pte);
	/* a present huge PMD or PUD covering [addr, end) */
	void (*huge)(struct cohmem_walk *w, unsigned long addr,
		     unsigned long end, unsigned long pfn, bool young);
};

/*
 * x86's ptep_test_and_clear_young() and pmdp_test_and_clear_young() are out
 * of line and not exported; this is their body. The TLB is flushed once per
 * SAMPLE request, see cohmem_sample().
 */
static void cohmem_clear_young(struct cohmem_walk *w, void *entry)
{
	if (test_and_clear_bit(_PAGE_BIT_ACCESSED, (unsigned long *)entry))
		w->nr_cleared++;
}

/*
 * pte_offset_map_lock(). Since 6.5 a PTE table can be freed under RCU while
 * mmap_lock is held for reading, and the helper behind it is not exported:
 * this is its logic, map under RCU and check that the PMD did not change
 * once the lock is held. NULL means: look at the PMD again.
 */
static pte_t *cohmem_pte_map_lock(struct mm_struct *mm, pmd_t *pmd,
				  unsigned long addr, spinlock_t **ptlp)
{
#ifdef COHMEM_PTE_RCU
	spinlock_t *ptl;
	pmd_t val;

	rcu_read_lock();
	val = pmdp_get_lockless(pmd);
	if (pmd_none(val) || !pmd_present(val) || pmd_trans_huge(val) ||
	    pmd_devmap(val) || pmd_bad(val)) {
		rcu_read_unlock();
		return NULL;
	}
	ptl = pte_lockptr(mm, &val);
	spin_lock(ptl);
	if (!pmd_same(val, pmdp_get_lockless(pmd))) {
		spin_unlock(ptl);
		rcu_read_unlock();
		return NULL;
	}
	*ptlp = ptl;
	return pte_offset_kernel(&val, addr);
#else
	return pte_offset_map_lock(mm, pmd, addr, ptlp);
#endif
}

static void cohmem_pte_unmap_unlock(pte_t *pte, spinlock_t *ptl)
{
#ifdef COHMEM_PTE_RCU
	spin_unlock(ptl);
	rcu_read_unlock();
#else
	pte_unmap_unlock(pte, ptl);
#endif
}

static void cohmem_walk_pmds(struct cohmem_walk *w, pud_t *pud,
			     unsigned long addr, unsigned long end)
{
	pmd_t *pmd = pmd_offset(pud, addr);
	unsigned long next;

	for (; addr < end; pmd++, addr = next) {
		pte_t *start_pte, *pte;
		spinlock_t *ptl;
		pmd_t val;

		next = pmd_addr_end(addr, end);
again:
		val = READ_ONCE(*pmd);
		if (pmd_none(val) || !pmd_present(val))
			continue;
		if (pmd_trans_huge(val) || pmd_devmap(val)) {
			bool young;

			ptl = pmd_lock(w->mm, pmd);
			val = *pmd;
			if (!pmd_present(val) ||
			    !(pmd_trans_huge(val) || pmd_devmap(val))) {
				spin_unlock(ptl);
				goto again;
			}
			young = pmd_young(val);
			if (young && w->clear_young)
				cohmem_clear_young(w, pmd);
			w->huge(w, addr, next, pmd_pfn(val) +
				((addr & ~PMD_MASK) >> PAGE_SHIFT), young);
			spin_unlock(ptl);
			continue;
		}
		if (pmd_bad(val))
			continue;

		start_pte = cohmem_pte_map_lock(w->mm, pmd, addr, &ptl);
		if (!start_pte)
			goto again;
		for (pte = start_pte; addr < next; pte++, addr += PAGE_SIZE) {
			pte_t v = *pte;

			if (pte_none(v))
				continue;
			w->pte(w, addr, v);
			if (w->clear_young && pte_present(v) && pte_young(v))
				cohmem_clear_young(w, &pte->pte);
		}
		cohmem_pte_unmap_unlock(start_pte, ptl);
	}
}

static void cohmem_walk_range(struct cohmem_walk *w, unsigned long addr,
			      unsigned long end)
{
	pgd_t *pgd = pgd_offset(w->mm, addr);
	unsigned long pgd_next;

	for (; addr < end; pgd++, addr = pgd_next) {
		unsigned long p4d_next;
		p4d_t *p4d;

		pgd_next = pgd_addr_end(addr, end);
		if (pgd_none(*pgd) || pgd_bad(*pgd))
			continue;
		p4d = p4d_offset(pgd, addr);
		for (; addr < pgd_next; p4d++, addr = p4d_next) {
			unsigned long pud_next;
			pud_t *pud;

			p4d_next = p4d_addr_end(addr, pgd_next);
			if (p4d_none(*p4d) || p4d_bad(*p4d))
				continue;
			pud = pud_offset(p4d, addr);
			for (; addr < p4d_next; pud++, addr = pud_next) {
				pud_t val = READ_ONCE(*pud);

				pud_next = pud_addr_end(addr, p4d_next);
				if (pud_none(val) || !pud_present(val))
					continue;
				if (pud_leaf(val)) {
					w->huge(w, addr, pud_next, pud_pfn(val) +
						((addr & ~PUD_MASK) >> PAGE_SHIFT),
						pud_young(val));
					continue;
				}
				if (pud_bad(val))
					continue;
				cohmem_walk_pmds(w, pud, addr, pud_next);
			}
		}
	}
}

/* VMAs whose page tables may hold PFNs without a struct page. */
static bool cohmem_vma_raw(struct vm_area_struct *vma)
{
	return vma->vm_flags & (VM_IO | VM_PFNMAP);
}

/**
 * cohmem_check_range() - validate a user address range
 * @start: first byte
 * @length: length in bytes
 * @extack: error reporting
 *
 * Return: 0, or -EINVAL for an unaligned, empty, overflowing or
 * non-user range.
 */
int cohmem_check_range(u64 start, u64 length, struct netlink_ext_ack *extack)
{
	if (!PAGE_ALIGNED(start) || !PAGE_ALIGNED(length)) {
		NL_SET_ERR_MSG(extack, "start and length must be page aligned");
		return -EINVAL;
	}
	if (!length) {
		NL_SET_ERR_MSG(extack, "length must not be zero");
		return -EINVAL;
	}
	if (start + length < start || start + length > TASK_SIZE_MAX) {
		NL_SET_ERR_MSG(extack, "range is outside the user address space");
		return -EINVAL;
	}
	return 0;
}

/**
 * cohmem_get_mm() - take a reference on a process's address space
 * @pid: process id in the caller's PID namespace
 * @extack: error reporting
 *
 * Return: the mm (release with mmput()) or ERR_PTR(-ESRCH) when there is no
 * such process or it has no address space (kernel thread, zombie).
 */
struct mm_struct *cohmem_get_mm(u32 pid, struct netlink_ext_ack *extack)
{
	struct task_struct *task;
	struct mm_struct *mm;
	struct pid *p;

	p = find_get_pid(pid);
	if (!p) {
		NL_SET_ERR_MSG(extack, "no such process");
		return ERR_PTR(-ESRCH);
	}
	task = get_pid_task(p, PIDTYPE_PID);
	put_pid(p);
	if (!task) {
		NL_SET_ERR_MSG(extack, "no such process");
		return ERR_PTR(-ESRCH);
	}
	mm = get_task_mm(task);
	put_task_struct(task);
	if (!mm) {
		NL_SET_ERR_MSG(extack,
			       "process has no address space (kernel thread or exited)");
		return ERR_PTR(-ESRCH);
	}
	return mm;
}

/* ---- MIGRATE ---------------------------------------------------------- */

enum cohmem_kind {
	COHMEM_K_HOLE,		/* none, zero page: SKIP_NOT_PRESENT */
	COHMEM_K_SWAPPED,	/* swap or other non-present entry */
	COHMEM_K_BUSY,		/* migration entry: someone else moves it */
	COHMEM_K_MOVABLE,
	COHMEM_K_ALREADY,
	COHMEM_K_SHARED,
	COHMEM_K_UNMOVABLE,
	COHMEM_K_FILE,
};

struct cohmem_mig {
	struct cohmem_walk walk;
	struct cohmem_pool *dest;	/* NULL: system RAM */
	struct cohmem_migrate_result *res;
	unsigned long base;
	unsigned int nr_movable;
	unsigned int nr_other_pool;
	unsigned long src[COHMEM_BATCH];
	unsigned long dst[COHMEM_BATCH];
	u8 kind[COHMEM_BATCH];
	bool pending[COHMEM_BATCH];
};

static void cohmem_tally(struct cohmem_migrate_result *res, u8 kind, u64 n)
{
	switch (kind) {
	case COHMEM_K_HOLE:
	case COHMEM_K_SWAPPED:
		res->not_present += n;
		break;
	case COHMEM_K_BUSY:
	case COHMEM_K_MOVABLE:	/* collected but not isolated: extra refs */
		res->pinned += n;
		break;
	case COHMEM_K_ALREADY:
		res->already += n;
		break;
	case COHMEM_K_SHARED:
		res->shared += n;
		break;
	case COHMEM_K_FILE:
		res->file += n;
		break;
	default:
		res->unmovable += n;
		break;
	}
}

/* Page table mappings of a page or, for a huge page, of its folio. */
static int cohmem_mapcount(struct page *page)
{
#ifdef COHMEM_FOLIO_MAPCOUNT
	return folio_mapcount(page_folio(page));
#else
	return page_mapcount(page);
#endif
}

static u8 cohmem_classify(struct cohmem_mig *m, unsigned long pfn)
{
	struct cohmem_pool *pool;
	struct page *page;

	if (is_zero_pfn(pfn))
		return COHMEM_K_HOLE;
	if (!pfn_valid(pfn))
		return COHMEM_K_UNMOVABLE;
	page = pfn_to_page(pfn);
	pool = cohmem_pool_by_pfn(pfn);
	if (pool) {
		if (pool == m->dest)
			return COHMEM_K_ALREADY;
	} else {
		if (is_zone_device_page(page))
			return COHMEM_K_UNMOVABLE;	/* another driver's */
		if (!m->dest)
			return COHMEM_K_ALREADY;
		/* PTE-mapped THP: migrate_vma cannot split it on 6.1 */
		if (PageCompound(page))
			return COHMEM_K_UNMOVABLE;
	}
	if (!PageAnon(page))
		return COHMEM_K_FILE;
	if (PageKsm(page) || cohmem_mapcount(page) > 1)
		return COHMEM_K_SHARED;
	if (pool)
		m->nr_other_pool++;
	m->nr_movable++;
	return COHMEM_K_MOVABLE;
}

static void cohmem_mig_pte(struct cohmem_walk *w, unsigned long addr,
			   pte_t pte)
{
	struct cohmem_mig *m = container_of(w, struct cohmem_mig, walk);
	unsigned long i = (addr - m->base) >> PAGE_SHIFT;

	if (!pte_present(pte)) {
		swp_entry_t entry = pte_to_swp_entry(pte);

		m->kind[i] = is_migration_entry(entry) ? COHMEM_K_BUSY :
							 COHMEM_K_SWAPPED;
		return;
	}
	m->kind[i] = cohmem_classify(m, pte_pfn(pte));
}

static void cohmem_mig_huge(struct cohmem_walk *w, unsigned long addr,
			    unsigned long end, unsigned long pfn, bool young)
{
	struct cohmem_mig *m = container_of(w, struct cohmem_mig, walk);
	unsigned long i = (addr - m->base) >> PAGE_SHIFT;
	unsigned long n = (end - addr) >> PAGE_SHIFT;
	struct page *head = pfn_valid(pfn) ? compound_head(pfn_to_page(pfn)) :
					    NULL;
	u8 kind;

	/* migrate_vma_setup() splits a PMD-mapped THP before collecting it */
	if (!head || is_zone_device_page(head))
		kind = COHMEM_K_UNMOVABLE;
	else if (!m->dest)
		kind = COHMEM_K_ALREADY;
	else if (!PageAnon(head))
		kind = COHMEM_K_FILE;
	else if (cohmem_mapcount(head) > 1)
		kind = COHMEM_K_SHARED;
	else
		kind = COHMEM_K_MOVABLE;
	if (kind == COHMEM_K_MOVABLE)
		m->nr_movable += n;
	memset(&m->kind[i], kind, n);
}

static void cohmem_mig_count(struct cohmem_mig *m, struct cohmem_pool *from,
			     bool ok)
{
	if (ok) {
		m->res->migrated++;
		if (m->dest)
			atomic64_inc(&m->dest->migrated_in);
		if (from)
			atomic64_inc(&from->migrated_out);
	} else {
		m->res->failed++;
		if (m->dest)
			atomic64_inc(&m->dest->failures);
		else if (from)
			atomic64_inc(&from->failures);
	}
}

/* One batch inside one anonymous VMA; mmap_read_lock held. */
static void cohmem_migrate_batch(struct cohmem_mig *m,
				 struct vm_area_struct *vma,
				 unsigned long start, unsigned long end)
{
	unsigned long n = (end - start) >> PAGE_SHIFT, first, last, i;
	struct migrate_vma args = {};

	m->base = start;
	m->nr_movable = 0;
	m->nr_other_pool = 0;
	/* an untouched page of a file mapping is the file's */
	memset(m->kind, vma_is_anonymous(vma) ? COHMEM_K_HOLE : COHMEM_K_FILE,
	       n);
	cohmem_walk_range(&m->walk, start, end);

	if (!m->nr_movable ||
	    (m->dest && !cohmem_pool_free_pages(m->dest))) {
		for (i = 0; i < n; i++)
			if (m->kind[i] == COHMEM_K_MOVABLE && m->dest)
				m->res->no_space++;
			else
				cohmem_tally(m->res, m->kind[i], 1);
		return;
	}

	/* Only hand the span that holds movable pages to migrate_vma. */
	for (first = 0; m->kind[first] != COHMEM_K_MOVABLE; first++)
		cohmem_tally(m->res, m->kind[first], 1);
	for (last = n - 1; m->kind[last] != COHMEM_K_MOVABLE; last--)
		cohmem_tally(m->res, m->kind[last], 1);

	args.vma = vma;
	args.start = start + (first << PAGE_SHIFT);
	args.end = start + ((last + 1) << PAGE_SHIFT);
	args.src = m->src;
	args.dst = m->dst;
	args.pgmap_owner = &cohmem_owner;
	if (m->dest) {
		args.flags = MIGRATE_VMA_SELECT_SYSTEM;
		if (m->nr_other_pool)
			args.flags |= MIGRATE_VMA_SELECT_DEVICE_COHERENT;
	} else {
		args.flags = MIGRATE_VMA_SELECT_DEVICE_COHERENT;
	}

	if (migrate_vma_setup(&args)) {
		for (i = first; i <= last; i++)
			if (m->kind[i] == COHMEM_K_MOVABLE)
				cohmem_mig_count(m, NULL, false);
			else
				cohmem_tally(m->res, m->kind[i], 1);
		return;
	}

	for (i = 0; i < args.npages; i++) {
		unsigned long addr = args.start + (i << PAGE_SHIFT);
		u8 kind = m->kind[first + i];
		struct page *spage = migrate_pfn_to_page(m->src[i]);
		struct page *dpage;

		m->dst[i] = 0;
		m->pending[i] = false;
		if (!(m->src[i] & MIGRATE_PFN_MIGRATE)) {
			cohmem_tally(m->res, kind, 1);
			continue;
		}
		if (!spage) {
			/* a hole or the zero page: never populate it */
			cohmem_tally(m->res, COHMEM_K_HOLE, 1);
			continue;
		}
		if (kind != COHMEM_K_MOVABLE ||
		    (m->dest && cohmem_pool_by_pfn(page_to_pfn(spage)) ==
				m->dest)) {
			/* changed since the scan, or shared: leave it */
			cohmem_tally(m->res, kind == COHMEM_K_MOVABLE ?
				     COHMEM_K_ALREADY : kind, 1);
			continue;
		}
		if (m->dest) {
			dpage = cohmem_pool_alloc_page(m->dest);
			if (!dpage) {
				m->res->no_space++;
				continue;
			}
		} else {
			dpage = alloc_page_vma(GFP_HIGHUSER_MOVABLE |
					       __GFP_NOWARN, vma, addr);
			if (!dpage) {
				cohmem_mig_count(m, cohmem_pool_by_pfn(
						 page_to_pfn(spage)), false);
				continue;
			}
			lock_page(dpage);
		}
		copy_highpage(dpage, spage);
		m->dst[i] = migrate_pfn(page_to_pfn(dpage));
		m->pending[i] = true;
	}

	/* migrate_vma collects the whole span; never lose a page's count */
	for (i = first + args.npages; i <= last; i++)
		cohmem_tally(m->res, m->kind[i], 1);

	migrate_vma_pages(&args);

	for (i = 0; i < args.npages; i++) {
		struct page *spage = migrate_pfn_to_page(m->src[i]);

		if (!m->pending[i])
			continue;
		/*
		 * The isolation check of migrate_vma_setup() lets a device
		 * page with one foreign reference through; the move then
		 * fails on the reference count. Unmapped and locked, the page
		 * holds only our reference unless someone pins it.
		 */
		if (!(m->src[i] & MIGRATE_PFN_MIGRATE) && page_count(spage) > 1)
			m->res->pinned++;
		else
			cohmem_mig_count(m, cohmem_pool_by_pfn(page_to_pfn(spage)),
					 m->src[i] & MIGRATE_PFN_MIGRATE);
	}

	migrate_vma_finalize(&args);
}

/**
 * cohmem_migrate() - move the anonymous pages of a range to a destination
 * @mm: address space, referenced by the caller
 * @start: page-aligned start
 * @length: page-aligned length
 * @dest: pool id or COHMEM_DEST_SYSTEM; the caller checked it exists
 * @res: per-reason page counts, which add up to @length / PAGE_SIZE
 * @extack: error reporting
 *
 * Return: 0, -EFAULT when no mapping intersects the range, -EINTR when the
 * caller was killed, -ENOMEM.
 */
int cohmem_migrate(struct mm_struct *mm, u64 start, u64 length, u32 dest,
		   struct cohmem_migrate_result *res,
		   struct netlink_ext_ack *extack)
{
	unsigned long addr = start, end = start + length;
	struct cohmem_mig *m;
	bool first = true;
	int r = 0;

	m = kzalloc(sizeof(*m), GFP_KERNEL);
	if (!m)
		return -ENOMEM;
	m->walk.mm = mm;
	m->walk.pte = cohmem_mig_pte;
	m->walk.huge = cohmem_mig_huge;
	m->res = res;
	m->dest = dest == COHMEM_DEST_SYSTEM ? NULL : cohmem_pool_get(dest);

	while (addr < end) {
		struct vm_area_struct *vma;
		unsigned long bend;

		if (fatal_signal_pending(current)) {
			r = -EINTR;
			break;
		}
		if (mmap_read_lock_killable(mm)) {
			r = -EINTR;
			break;
		}
		if (first && !find_vma_intersection(mm, start, end)) {
			mmap_read_unlock(mm);
			NL_SET_ERR_MSG(extack, "no mapping in the range");
			r = -EFAULT;
			break;
		}
		first = false;
		vma = find_vma(mm, addr);
		if (!vma || vma->vm_start >= end) {
			mmap_read_unlock(mm);
			res->not_present += (end - addr) >> PAGE_SHIFT;
			break;
		}
		if (vma->vm_start > addr) {
			res->not_present += (vma->vm_start - addr) >> PAGE_SHIFT;
			addr = vma->vm_start;
		}
		bend = min3(end, vma->vm_end,
			    addr + ((unsigned long)COHMEM_BATCH << PAGE_SHIFT));

		if ((vma->vm_flags & (VM_SPECIAL | VM_LOCKED | VM_LOCKONFAULT)) ||
		    is_vm_hugetlb_page(vma) || vma_is_dax(vma))
			res->unmovable += (bend - addr) >> PAGE_SHIFT;
		else if (vma->vm_flags & VM_SHARED)
			res->shared += (bend - addr) >> PAGE_SHIFT;
		else if (vma_is_anonymous(vma) || vma->vm_file)
			/* private file mappings: only COW-ed pages move */
			cohmem_migrate_batch(m, vma, addr, bend);
		else
			res->file += (bend - addr) >> PAGE_SHIFT;
		mmap_read_unlock(mm);
		addr = bend;
		cond_resched();
	}

	kfree(m);
	return r;
}

/* ---- RESIDENCY -------------------------------------------------------- */

struct cohmem_res_walk {
	struct cohmem_walk walk;
	struct cohmem_resident *res;
	struct cohmem_extent *cur;
};

static void cohmem_res_add(struct cohmem_res_walk *rw, unsigned long addr,
			   unsigned long pfn, unsigned long n)
{
	struct cohmem_resident *res = rw->res;
	struct cohmem_pool *pool;

	if (is_zero_pfn(pfn) || !pfn_valid(pfn))
		return;
	pool = cohmem_pool_by_pfn(pfn);
	if (!pool) {
		if (!is_zone_device_page(pfn_to_page(pfn)))
			res->system_pages += n;
		return;
	}
	res->pool_pages[pool->id] += n;
	if (rw->cur && rw->cur->pool == pool->id &&
	    rw->cur->start + rw->cur->length == addr) {
		rw->cur->length += n << PAGE_SHIFT;
		return;
	}
	if (res->nr_extents == COHMEM_EXTENTS_MAX) {
		res->truncated = true;
		rw->cur = NULL;
		return;
	}
	rw->cur = &res->extents[res->nr_extents++];
	rw->cur->pool = pool->id;
	rw->cur->start = addr;
	rw->cur->length = n << PAGE_SHIFT;
}

static void cohmem_res_pte(struct cohmem_walk *w, unsigned long addr,
			   pte_t pte)
{
	if (pte_present(pte))
		cohmem_res_add(container_of(w, struct cohmem_res_walk, walk),
			       addr, pte_pfn(pte), 1);
}

static void cohmem_res_huge(struct cohmem_walk *w, unsigned long addr,
			    unsigned long end, unsigned long pfn, bool young)
{
	cohmem_res_add(container_of(w, struct cohmem_res_walk, walk), addr,
		       pfn, (end - addr) >> PAGE_SHIFT);
}

/*
 * Walk every VMA in [start, end) except raw PFN mappings, mmap_read_lock
 * held. Returns 0 with the lock still held, or -EINTR without it (the lock
 * is dropped between bounded chunks when a reschedule is due).
 */
static int cohmem_walk_locked(struct mm_struct *mm, struct cohmem_walk *w,
			      unsigned long start, unsigned long end)
{
	struct vm_area_struct *vma;
	unsigned long addr = start;

	while (addr < end) {
		unsigned long s, e;

		vma = find_vma(mm, addr);
		if (!vma || vma->vm_start >= end)
			break;
		/* bounded chunks so that the lock can be dropped */
		s = max(addr, vma->vm_start);
		e = min3(end, vma->vm_end, s + SZ_256M);
		if (!cohmem_vma_raw(vma))
			cohmem_walk_range(w, s, e);
		addr = e;
		if (need_resched()) {
			mmap_read_unlock(mm);
			cond_resched();
			if (fatal_signal_pending(current) ||
			    mmap_read_lock_killable(mm))
				return -EINTR;
		}
	}
	return 0;
}

/* Walk [start, end) under mmap_read_lock; -EFAULT when nothing is mapped there. */
static int cohmem_walk_vmas(struct mm_struct *mm, struct cohmem_walk *w,
			    unsigned long start, unsigned long end,
			    struct netlink_ext_ack *extack)
{
	int r;

	if (mmap_read_lock_killable(mm))
		return -EINTR;
	if (!find_vma_intersection(mm, start, end)) {
		mmap_read_unlock(mm);
		NL_SET_ERR_MSG(extack, "no mapping in the range");
		return -EFAULT;
	}
	r = cohmem_walk_locked(mm, w, start, end);
	if (!r)
		mmap_read_unlock(mm);
	return r;
}

/**
 * cohmem_residency() - where the present pages of a range live
 * @mm: address space, referenced by the caller
 * @start: page-aligned start
 * @length: page-aligned length
 * @res: results; @res->extents must hold COHMEM_EXTENTS_MAX entries
 * @extack: error reporting
 *
 * Return: 0, -EFAULT when no mapping intersects the range, -EINTR.
 */
int cohmem_residency(struct mm_struct *mm, u64 start, u64 length,
		     struct cohmem_resident *res,
		     struct netlink_ext_ack *extack)
{
	struct cohmem_res_walk rw = {
		.walk = {
			.mm = mm,
			.pte = cohmem_res_pte,
			.huge = cohmem_res_huge,
		},
		.res = res,
	};

	return cohmem_walk_vmas(mm, &rw.walk, start, start + length, extack);
}

/* ---- SAMPLE ----------------------------------------------------------- */

struct cohmem_sample_walk {
	struct cohmem_walk walk;
	unsigned long base;		/* address of bit first_bit */
	unsigned long first_bit;
	unsigned long *bitmap;
	u64 nr_young;
};

static void cohmem_sample_pte(struct cohmem_walk *w, unsigned long addr,
			      pte_t pte)
{
	struct cohmem_sample_walk *sw =
		container_of(w, struct cohmem_sample_walk, walk);

	if (pte_present(pte) && pte_young(pte)) {
		__set_bit(sw->first_bit + ((addr - sw->base) >> PAGE_SHIFT),
			  sw->bitmap);
		sw->nr_young++;
	}
}

static void cohmem_sample_huge(struct cohmem_walk *w, unsigned long addr,
			       unsigned long end, unsigned long pfn,
			       bool young)
{
	struct cohmem_sample_walk *sw =
		container_of(w, struct cohmem_sample_walk, walk);
	unsigned long n = (end - addr) >> PAGE_SHIFT;

	if (!young)
		return;
	bitmap_set(sw->bitmap, sw->first_bit + ((addr - sw->base) >> PAGE_SHIFT),
		   n);
	sw->nr_young += n;
}

static void cohmem_flush_tlb_local(void *unused)
{
	__flush_tlb_all();
}

/**
 * cohmem_sample() - read (and optionally clear) the accessed bits of windows
 * @mm: address space, referenced by the caller
 * @win: windows, page aligned, in address order and apart; the caller
 *	sets start, length and first_bit, this sets nr_young and mapped
 * @n: number of windows
 * @clear: clear the accessed bits that were read
 * @bitmap: zeroed, one bit per page of all windows; window i's pages start
 *	at bit @win[i].first_bit
 *
 * All windows are read under one mmap_read_lock (dropped only when a
 * reschedule is due in a large walk) and the TLBs are flushed once, at the
 * end, if any accessed bit was cleared. A window that no mapping intersects
 * has mapped false and no bits set.
 *
 * Return: 0, or -EINTR when the caller was killed.
 */
int cohmem_sample(struct mm_struct *mm, struct cohmem_sample_window *win,
		  unsigned int n, bool clear, unsigned long *bitmap)
{
	struct cohmem_sample_walk sw = {
		.walk = {
			.mm = mm,
			.clear_young = clear,
			.pte = cohmem_sample_pte,
			.huge = cohmem_sample_huge,
		},
		.bitmap = bitmap,
	};
	unsigned int i;
	int r = 0;

	if (mmap_read_lock_killable(mm))
		return -EINTR;
	for (i = 0; i < n; i++) {
		unsigned long start = win[i].start;
		unsigned long end = start + win[i].length;
		u64 young = sw.nr_young;

		win[i].nr_young = 0;
		win[i].mapped = find_vma_intersection(mm, start, end);
		if (!win[i].mapped)
			continue;
		sw.base = start;
		sw.first_bit = win[i].first_bit;
		r = cohmem_walk_locked(mm, &sw.walk, start, end);
		win[i].nr_young = sw.nr_young - young;
		if (r)
			break;
	}
	if (!r)
		mmap_read_unlock(mm);
	/*
	 * A CPU sets the accessed bit only when it loads a translation into
	 * its TLB, so a cleared bit stays clear while a stale entry lives.
	 * flush_tlb_mm_range() is not exported, and with PCIDs a CPU that ran
	 * the process earlier may still hold its entries: flush every TLB,
	 * once for all the windows.
	 */
	if (sw.walk.nr_cleared)
		on_each_cpu(cohmem_flush_tlb_local, NULL, 1);
	return r;
}

/* ---- EVICT ------------------------------------------------------------ */

/**
 * cohmem_evict() - move allocated pages of a pool back to system RAM
 * @pool: pool
 * @count: at most this many allocated pages are tried, lowest PFN first
 * @evicted: pages moved
 * @failed: pages that were in use but could not be moved (pinned, locked
 *	by a concurrent migration, or no system memory)
 *
 * Whoever maps the pages keeps its data: the CPU page tables of every
 * process are switched to the new pages.
 *
 * Return: 0 or -ENOMEM.
 */
int cohmem_evict(struct cohmem_pool *pool, u64 count, u64 *evicted,
		 u64 *failed)
{
	unsigned long *src, *dst, idx = 0;
	DECLARE_BITMAP(snap, COHMEM_BATCH);
	u64 ev = 0, fail = 0;

	src = kcalloc(COHMEM_BATCH, sizeof(*src), GFP_KERNEL);
	dst = kcalloc(COHMEM_BATCH, sizeof(*dst), GFP_KERNEL);
	if (!src || !dst) {
		kfree(src);
		kfree(dst);
		return -ENOMEM;
	}

	while (count && idx < pool->npages) {
		unsigned long first, j, n, i, nalloc = 0;

		first = cohmem_pool_next_allocated(pool, idx);
		if (first >= pool->npages)
			break;
		bitmap_zero(snap, COHMEM_BATCH);
		for (j = first; j < pool->npages && j - first < COHMEM_BATCH;
		     j++) {
			if (!cohmem_pool_page_allocated(pool, j))
				continue;
			if (nalloc == count)
				break;
			__set_bit(j - first, snap);
			nalloc++;
		}
		n = j - first;

		migrate_device_range(src, pool->pfn_first + first, n);
		for (i = 0; i < n; i++) {
			struct page *spage = migrate_pfn_to_page(src[i]);
			struct page *dpage;

			dst[i] = 0;
			if (!spage || !(src[i] & MIGRATE_PFN_MIGRATE)) {
				/* not collected: free now, or busy/pinned */
				if (test_bit(i, snap) &&
				    cohmem_pool_page_allocated(pool, first + i))
					fail++;
				continue;
			}
			dpage = alloc_page(GFP_HIGHUSER_MOVABLE | __GFP_NOWARN);
			if (!dpage) {
				fail++;
				continue;
			}
			lock_page(dpage);
			copy_highpage(dpage, spage);
			dst[i] = migrate_pfn(page_to_pfn(dpage));
		}
		migrate_device_pages(src, dst, n);
		for (i = 0; i < n; i++) {
			if (!dst[i])
				continue;
			if (src[i] & MIGRATE_PFN_MIGRATE)
				ev++;
			else
				fail++;
		}
		migrate_device_finalize(src, dst, n);

		count -= nalloc;
		idx = first + n;
		cond_resched();
		if (fatal_signal_pending(current))
			break;
	}

	kfree(src);
	kfree(dst);
	atomic64_add(ev, &pool->evicted);
	atomic64_add(fail, &pool->failures);
	*evicted = ev;
	*failed = fail;
	return 0;
}
