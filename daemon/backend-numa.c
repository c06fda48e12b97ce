/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The numa backend: NUMA nodes as devices, pages moved with move_pages(2)
 * through libnuma (ranges) and migrate_pages(2) (whole processes, see
 * move_whole()).
 *
 * A range move walks the mappings of /proc/PID/maps that intersect the range.
 * Anonymous private mappings are moved in batches of MOVE_BATCH pages; the
 * pages of every other mapping are counted by the mapping's kind (see
 * backend.h) and holes as not present.
 *
 * Each batch is a pre-pass and a move:
 *
 *   1. where every page is now. move_pages(2) reports a page that was already
 *      on the target exactly like one it moved, so without this "already"
 *      could not be told from "migrated". The pre-pass also removes
 *      not-present pages and pages already in place from the move, so that
 *      it migrates in long runs: the kernel flushes its isolation list at
 *      every page it does not queue. The pre-pass reads /proc/PID/pagemap
 *      and maps frames to nodes by memory block (pagemap_status()); where
 *      frames are hidden (no CAP_SYS_ADMIN) it is a move_pages(2) query
 *      (nodes NULL), which measured 3-6% of the move in the VM
 *      (tests/vm/daemon/backend-check.c with BACKEND_BENCH=1).
 *   2. move_pages(2) of the remaining pages, MPOL_MF_MOVE (pages mapped by
 *      other processes are refused with -EACCES and counted as shared).
 *
 * Pages the move did not settle — the kernel stops a call at the first
 * batch that fails to migrate and leaves the rest of the status array
 * unwritten, and it reports -EBUSY for the tail pages of a transparent huge
 * page whose head it already isolated — are queried again: those now on their
 * destination count as migrated, the rest are moved again (at most
 * MOVE_RETRIES times) and are failed (no_space after -ENOMEM) if they still
 * did not move.
 *
 * System RAM as target: a page on a node with CPUs is already there; a page on
 * a CPU-less node goes to the CPU node nearest to it by the node distance
 * table (ties: the lowest id). Pages in cohmem pools are zone-device pages,
 * which move_pages(2) reports as -ENOENT: counted as not present.
 *
 * libnuma's weak numa_error()/numa_warn() are overridden so that it never
 * prints: the text goes to backend_last_message().
 */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <numa.h>
#include <numaif.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "devices.h"
#include "util.h"

#define MOVE_BATCH 16384
#define MOVE_RETRIES 3
#define STATUS_UNSET INT_MIN
/* /proc/PID/pagemap entries */
#define PM_PRESENT (UINT64_C(1) << 63)
#define PM_PFN_MASK ((UINT64_C(1) << 55) - 1)

BackendMovePagesFn backend_numa_move_pages_hook;

static long move_pages_call(int pid, unsigned long count, void **pages, const int *nodes,
			    int *status, int flags)
{
	if (backend_numa_move_pages_hook)
		return backend_numa_move_pages_hook(pid, count, pages, nodes, status, flags);
	return numa_move_pages(pid, count, pages, nodes, status, flags);
}

BackendMigratePagesFn backend_numa_migrate_pages_hook;

static long migrate_pages_call(int pid, unsigned long maxnode, const unsigned long *from,
			       const unsigned long *to)
{
	if (backend_numa_migrate_pages_hook)
		return backend_numa_migrate_pages_hook(pid, maxnode, from, to);
	return migrate_pages(pid, maxnode, from, to);
}

struct Backend {
	char *root;
	uint64_t page_size;
	uint64_t zero_pfn;      /* of the shared zero page; 0 when unknown */
};

/* ---- libnuma's messages ---- */

void numa_error(char *where)
{
	int e = errno;

	backend_set_last_message("libnuma: %s: %s", where ? where : "?", strerror(e));
	errno = e;
}

void numa_warn(int num, char *fmt, ...)
{
	char buf[200];
	va_list ap;
	int e = errno;

	va_start(ap, fmt);
	(void) vsnprintf(buf, sizeof(buf), fmt ? fmt : "", ap);
	va_end(ap);
	buf[strcspn(buf, "\n")] = '\0';
	backend_set_last_message("libnuma: warning %d: %s", num, buf);
	errno = e;
}

/* ---- nodes ---- */

typedef struct NodeMap {
	bool exists[DEVICES_NODES_MAX];
	bool has_cpu[DEVICES_NODES_MAX];
	bool has_memory[DEVICES_NODES_MAX];
	int nearest_cpu[DEVICES_NODES_MAX];    /* -1: none */
} NodeMap;

/* "10 20 20\n": distances to the online nodes in id order. */
static int parse_distance(const char *text, int *ret, size_t max, size_t *ret_n)
{
	const char *p = text;
	size_t n = 0;

	for (;;) {
		char *end;
		long v;

		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (!*p)
			break;
		errno = 0;
		v = strtol(p, &end, 10);
		if (end == p || errno != 0 || v < 0 || v > 255 || n >= max)
			return -EBADMSG;
		ret[n++] = (int) v;
		p = end;
	}
	*ret_n = n;
	return 0;
}

static int node_map_read(const char *root, NodeMap *m)
{
	_cleanup_free_ NodeInfo *nodes = NULL;
	size_t n = 0;
	int r, first_cpu = -1;

	memset(m, 0, sizeof(*m));
	r = devices_read_nodes(root, &nodes, &n);
	if (r == -ENOENT)
		return -ENODEV;
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		int id = nodes[i].id;

		m->exists[id] = true;
		m->has_cpu[id] = nodes[i].has_cpu;
		m->has_memory[id] = nodes[i].has_memory;
		if (nodes[i].has_cpu && nodes[i].has_memory && first_cpu < 0)
			first_cpu = id;
	}
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *text = NULL;
		int id = nodes[i].id, dist[DEVICES_NODES_MAX], best = -1, best_d = INT_MAX;
		char path[96];
		size_t nd = 0;

		m->nearest_cpu[id] = first_cpu;
		if (m->has_cpu[id] && m->has_memory[id]) {
			m->nearest_cpu[id] = id;
			continue;
		}
		(void) snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/distance", id);
		if (read_file_root(root, path, 0, &text, NULL) < 0 ||
		    parse_distance(text, dist, ELEMENTSOF(dist), &nd) < 0 || nd != n)
			continue;    /* no distances: the first CPU node */
		for (size_t j = 0; j < n; j++)
			if (nodes[j].has_cpu && nodes[j].has_memory && dist[j] < best_d) {
				best_d = dist[j];
				best = nodes[j].id;
			}
		if (best >= 0)
			m->nearest_cpu[id] = best;
	}
	return 0;
}

/* ---- open / close / devices ---- */

/* The frame of the shared zero page: read a fresh anonymous page of our own. */
static uint64_t own_zero_pfn(uint64_t page_size)
{
	volatile const char *p;
	uint64_t e = 0;
	int fd;

	p = mmap(NULL, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 0;
	(void) p[0];
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (pread(fd, &e, sizeof(e), (off_t) ((uintptr_t) p / page_size * sizeof(e))) !=
		    (ssize_t) sizeof(e))
			e = 0;
		close(fd);
	}
	(void) munmap((void *) p, page_size);
	return (e & PM_PRESENT) ? e & PM_PFN_MASK : 0;
}

static int numa_open(Backend **ret, const char *root)
{
	_cleanup_free_ char *dir = NULL;
	Backend *b;
	struct stat st;
	long ps;

	dir = path_join_root(root, "/sys/devices/system/node");
	if (!dir)
		return -ENOMEM;
	if (stat(dir, &st) < 0)
		return errno == ENOENT ? -ENODEV : -errno;
	ps = sysconf(_SC_PAGESIZE);
	if (ps <= 0)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->root = strdup(root ?: "/");
	if (!b->root) {
		free(b);
		return -ENOMEM;
	}
	b->page_size = (uint64_t) ps;
	if (!root || streq(root, "/"))
		b->zero_pfn = own_zero_pfn(b->page_size);
	*ret = b;
	return 0;
}

static void numa_close(Backend *b)
{
	if (!b)
		return;
	free(b->root);
	free(b);
}

static int numa_list_devices(Backend *b, BackendDevice **ret, size_t *ret_n)
{
	_cleanup_free_ NodeInfo *nodes = NULL;
	_cleanup_free_ BackendDevice *devs = NULL;
	size_t n = 0, k = 0;
	int r;

	r = devices_read_nodes(b->root, &nodes, &n);
	if (r == -ENOENT)
		return -ENODEV;
	if (r < 0)
		return r;
	devs = calloc(n ?: 1, sizeof(*devs));
	if (!devs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		BackendDevice *d;

		if (nodes[i].has_cpu || !nodes[i].has_memory)
			continue;
		d = &devs[k++];
		(void) snprintf(d->name, sizeof(d->name), "node%d", nodes[i].id);
		d->id = nodes[i].id;
		d->node = nodes[i].id;
		d->total_bytes = nodes[i].total_bytes;
		d->free_bytes = nodes[i].free_bytes;
	}
	*ret = TAKE_PTR(devs);
	*ret_n = k;
	return 0;
}

/* ---- moving ---- */

typedef struct MoveJob {
	pid_t pid;
	const NodeMap *nodes;
	bool system;
	int target;             /* node, when !system */
	BackendProgressFn progress;
	void *userdata;
	uint64_t pages_total;
	MoveCounts counts;
	int cancelled;          /* the progress callback's error */
	/* pagemap pre-pass (see pagemap_status()); fd -1: query with move_pages(2) */
	int pagemap_fd;
	const struct PfnMap *pfn;
	uint64_t page_size, zero_pfn;
	uint64_t *pm;
	/* work arrays, MOVE_BATCH each */
	void **pages, **mpages;
	int *status, *mnodes, *mstatus, *mlast;
} MoveJob;

/* move_pages(2) failed as a whole: what it means for the move. */
static int call_error(int e)
{
	/* Our arguments are valid; -EINVAL is find_mm_struct() finding no mm. */
	if (e == ESRCH || e == EINVAL)
		return -ESRCH;
	return -e;
}

static int query(pid_t pid, size_t n, void **pages, int *status)
{
	if (n == 0)
		return 0;
	if (move_pages_call(pid, n, pages, NULL, status, 0) < 0)
		return call_error(errno);
	return 0;
}

/* Destination of a page now on node: -1 when it is already in place. */
static int dest_for(const MoveJob *j, int node)
{
	if (node < 0 || node >= DEVICES_NODES_MAX)
		return j->system ? -1 : j->target;
	if (j->system) {
		if (j->nodes->has_cpu[node])
			return -1;
		return j->nodes->nearest_cpu[node] >= 0 ? j->nodes->nearest_cpu[node] : -1;
	}
	return node == j->target ? -1 : j->target;
}

/*
 * Move pages [0, k) of mpages to mnodes; account each in j->counts. The
 * arrays are reordered for the retries.
 */
static int move_listed(MoveJob *j, size_t k)
{
	int last_err = 0, r;

	for (unsigned attempt = 0; k > 0; attempt++) {
		size_t left = 0;
		long m;

		for (size_t i = 0; i < k; i++)
			j->mstatus[i] = STATUS_UNSET;
		m = move_pages_call(j->pid, k, j->mpages, j->mnodes, j->mstatus, MPOL_MF_MOVE);
		if (m < 0) {
			int e = errno;

			if (e != ENOMEM)
				return call_error(e);
			last_err = -ENOMEM;
		} else if (m > 0)
			last_err = -EAGAIN;

		/* Settled pages are accounted; the others are asked again. */
		for (size_t i = 0; i < k; i++) {
			int s = j->mstatus[i];

			if (s == STATUS_UNSET || s == -EBUSY || (s >= 0 && s != j->mnodes[i])) {
				j->mpages[left] = j->mpages[i];
				j->mnodes[left] = j->mnodes[i];
				j->mlast[left] = s;
				left++;
			} else
				move_counts_account_status(&j->counts, s, j->mnodes[i]);
		}
		k = left;
		if (k == 0)
			break;

		r = query(j->pid, k, j->mpages, j->mstatus);
		if (r < 0)
			return r;
		left = 0;
		for (size_t i = 0; i < k; i++) {
			int s = j->mstatus[i];

			if (s >= 0 && s == j->mnodes[i])
				j->counts.migrated++;    /* e.g. the tail of a huge page */
			else if (s < 0)
				move_counts_account_status(&j->counts, s, j->mnodes[i]);
			else if (attempt + 1 >= MOVE_RETRIES) {
				/* Still elsewhere after the last try. */
				if (j->mlast[i] == -EBUSY)
					j->counts.pinned++;
				else if (last_err == -ENOMEM)
					j->counts.no_space++;
				else
					j->counts.failed++;
			} else {
				j->mpages[left] = j->mpages[i];
				j->mnodes[left] = j->mnodes[i];
				left++;
			}
		}
		k = left;
	}
	return 0;
}

/*
 * Where pages are without asking move_pages(2): /proc/PID/pagemap gives the
 * page frame of every present page (to CAP_SYS_ADMIN; others read zeros), and
 * the memory blocks under /sys/devices/system/node/nodeN/memoryM say which
 * node a frame belongs to. One page-table walk in the kernel and a table
 * lookup per page, instead of a VMA lookup and a page-table walk per page:
 * the pre-pass of a range move costs a fraction of what the query costs.
 * Frames outside every memory block (cohmem pools, other device memory) are
 * not present, as move_pages(2) reports them; the shared zero page is too.
 * When the frames are hidden or the blocks unknown, the query is used.
 */
typedef struct PfnMap {
	uint64_t block_pages;
	int *block_node;        /* -1: no node */
	size_t n_blocks;
} PfnMap;

static void pfn_map_free(PfnMap *m)
{
	free(m->block_node);
	*m = (PfnMap) {};
}

static int pfn_map_read(const char *root, const NodeMap *nodes, uint64_t page_size, PfnMap *ret)
{
	_cleanup_free_ char *text = NULL;
	PfnMap m = {};
	uint64_t bytes;
	char *end;
	int r;

	r = read_one_line_root(root, "/sys/devices/system/memory/block_size_bytes", &text);
	if (r < 0)
		return r;
	errno = 0;
	bytes = strtoull(text, &end, 16);
	if (errno || end == text || *end || bytes < page_size || bytes % page_size)
		return -EBADMSG;
	m.block_pages = bytes / page_size;
	for (int id = 0; id < DEVICES_NODES_MAX; id++) {
		_cleanup_free_ char *dir = NULL;
		_cleanup_closedir_ DIR *d = NULL;
		char path[64];
		struct dirent *de;

		if (!nodes->exists[id] || !nodes->has_memory[id])
			continue;
		(void) snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", id);
		dir = path_join_root(root, path);
		if (!dir) {
			pfn_map_free(&m);
			return -ENOMEM;
		}
		d = opendir(dir);
		if (!d) {
			pfn_map_free(&m);
			return -errno;
		}
		while ((de = readdir(d))) {
			const char *s = startswith(de->d_name, "memory");
			unsigned idx;

			if (!s || safe_atou(s, &idx) < 0 || idx > (1U << 24))
				continue;
			if (idx >= m.n_blocks) {
				size_t nn = (size_t) idx + 1;
				int *nb = realloc(m.block_node, nn * sizeof(int));

				if (!nb) {
					pfn_map_free(&m);
					return -ENOMEM;
				}
				for (size_t i = m.n_blocks; i < nn; i++)
					nb[i] = -1;
				m.block_node = nb;
				m.n_blocks = nn;
			}
			m.block_node[idx] = id;
		}
	}
	if (m.n_blocks == 0)
		return -ENODATA;
	*ret = m;
	return 0;
}

/* Like query(), from pagemap. -ENODATA: frames hidden, use the query. */
static int pagemap_status(MoveJob *j, uint64_t addr, size_t n)
{
	size_t want = n * sizeof(uint64_t), got = 0;
	off_t off = (off_t) (addr / j->page_size * sizeof(uint64_t));

	while (got < want) {
		ssize_t k = pread(j->pagemap_fd, (char *) j->pm + got, want - got, off + (off_t) got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return errno == ESRCH ? -ESRCH : -errno;
		if (k == 0)
			return -ESRCH;    /* the address space is gone */
		got += (size_t) k;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t e = j->pm[i], pfn = e & PM_PFN_MASK, blk;

		if (!(e & PM_PRESENT)) {
			j->status[i] = -ENOENT;
			continue;
		}
		if (pfn == 0)
			return -ENODATA;
		if (pfn == j->zero_pfn) {
			j->status[i] = -EFAULT;
			continue;
		}
		blk = pfn / j->pfn->block_pages;
		j->status[i] = blk < j->pfn->n_blocks && j->pfn->block_node[blk] >= 0 ?
			       j->pfn->block_node[blk] : -ENOENT;
	}
	return 0;
}

static int move_batch(MoveJob *j, uint64_t addr, size_t n, uint64_t page_size)
{
	size_t k = 0;
	int r;

	for (size_t i = 0; i < n; i++)
		j->pages[i] = (void *) (uintptr_t) (addr + i * page_size);
	r = -ENODATA;
	if (j->pagemap_fd >= 0) {
		r = pagemap_status(j, addr, n);
		if (r == -ENODATA)
			j->pagemap_fd = safe_close(j->pagemap_fd);
		else if (r < 0)
			return r;
	}
	if (r < 0) {
		r = query(j->pid, n, j->pages, j->status);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < n; i++) {
		int s = j->status[i], d;

		if (s < 0) {
			move_counts_account_status(&j->counts, s, -1);
			continue;
		}
		d = dest_for(j, s);
		if (d < 0) {
			j->counts.already++;
			continue;
		}
		j->mpages[k] = j->pages[i];
		j->mnodes[k] = d;
		k++;
	}
	return move_listed(j, k);
}

static int report(MoveJob *j)
{
	int r;

	if (!j->progress)
		return 0;
	r = j->progress(&j->counts, j->pages_total, j->userdata);
	if (r < 0) {
		j->cancelled = r;
		return r;
	}
	return 0;
}

typedef int (*SegmentFn)(void *ctx, uint64_t start, uint64_t end, BackendMapKind kind);

/*
 * Call fn for every piece of [start, start+length) in address order: mapped
 * pieces with their kind, holes with kind -1. length 0: every mapping, no
 * holes. -EFAULT when no mapping intersects the range.
 */
static int walk_range(const BackendMapping *maps, size_t n, uint64_t start, uint64_t length,
		      SegmentFn fn, void *ctx)
{
	uint64_t end = start + length, cursor = start;
	bool any = false;
	int r;

	if (length == 0) {
		for (size_t i = 0; i < n; i++) {
			r = fn(ctx, maps[i].start, maps[i].end, maps[i].kind);
			if (r < 0)
				return r;
		}
		return n > 0 ? 0 : -ESRCH;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t s = MAX(maps[i].start, start), e = MIN(maps[i].end, end);

		if (s >= e)
			continue;
		any = true;
		if (s > cursor) {
			r = fn(ctx, cursor, s, (BackendMapKind) -1);
			if (r < 0)
				return r;
		}
		r = fn(ctx, s, e, maps[i].kind);
		if (r < 0)
			return r;
		cursor = e;
	}
	if (!any)
		return -EFAULT;
	if (cursor < end)
		return fn(ctx, cursor, end, (BackendMapKind) -1);
	return 0;
}

typedef struct MoveCtx {
	MoveJob *job;
	uint64_t page_size;
} MoveCtx;

static int count_pages(void *ctx, uint64_t start, uint64_t end, BackendMapKind kind)
{
	MoveCtx *c = ctx;

	c->job->pages_total += (end - start) / c->page_size;
	return 0;
}

static int move_segment(void *ctx, uint64_t start, uint64_t end, BackendMapKind kind)
{
	MoveCtx *c = ctx;
	MoveJob *j = c->job;
	uint64_t pages = (end - start) / c->page_size;
	uint64_t *field;
	int r;

	if ((int) kind < 0) {
		j->counts.not_present += pages;
		return report(j);
	}
	field = move_counts_field_for_map_kind(&j->counts, kind);
	if (field) {
		*field += pages;
		return report(j);
	}
	for (uint64_t done = 0; done < pages;) {
		size_t n = (size_t) MIN(pages - done, (uint64_t) MOVE_BATCH);

		r = move_batch(j, start + done * c->page_size, n, c->page_size);
		if (r < 0)
			return r;
		done += n;
		r = report(j);
		if (r < 0)
			return r;
	}
	return 0;
}

static void job_free(MoveJob *j)
{
	free(j->pages);
	free(j->mpages);
	free(j->status);
	free(j->mnodes);
	free(j->mstatus);
	free(j->mlast);
	free(j->pm);
	j->pagemap_fd = safe_close(j->pagemap_fd);
}

static int job_alloc(MoveJob *j)
{
	j->pages = calloc(MOVE_BATCH, sizeof(void *));
	j->mpages = calloc(MOVE_BATCH, sizeof(void *));
	j->status = calloc(MOVE_BATCH, sizeof(int));
	j->mnodes = calloc(MOVE_BATCH, sizeof(int));
	j->mstatus = calloc(MOVE_BATCH, sizeof(int));
	j->mlast = calloc(MOVE_BATCH, sizeof(int));
	j->pm = calloc(MOVE_BATCH, sizeof(uint64_t));
	if (!j->pages || !j->mpages || !j->status || !j->mnodes || !j->mstatus || !j->mlast ||
	    !j->pm)
		return -ENOMEM;
	return 0;
}

/* ---- whole process ---- */

typedef struct NodeMask {
	unsigned long bits[DEVICES_NODES_MAX / (8 * sizeof(unsigned long))];
} NodeMask;

static void mask_set(NodeMask *m, int node)
{
	m->bits[node / (8 * sizeof(unsigned long))] |= 1UL << (node % (8 * sizeof(unsigned long)));
}

static int read_numa_maps(const char *root, pid_t pid, BackendNumaMapsEntry **ret, size_t *ret_n)
{
	_cleanup_free_ char *text = NULL;
	char path[64];
	size_t size;
	int r;

	(void) snprintf(path, sizeof(path), "/proc/%d/numa_maps", (int) pid);
	r = read_file_root(root, path, 64U * 1024U * 1024U, &text, &size);
	if (r == -ENOENT)
		return -ESRCH;
	if (r < 0)
		return r;
	return backend_numa_maps_parse(text, size, ret, ret_n);
}

static const BackendNumaMapsEntry *numa_maps_find(const BackendNumaMapsEntry *e, size_t n,
						  uint64_t start)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (e[mid].start == start)
			return &e[mid];
		if (e[mid].start < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Base pages of a numa_maps entry: present, and on the destination. */
static void entry_pages(const MoveJob *j, const BackendNumaMapsEntry *e, uint64_t page_size,
			uint64_t *ret_present, uint64_t *ret_on_dest)
{
	uint64_t unit = e->page_kb ? MAX(e->page_kb * 1024 / page_size, (uint64_t) 1) : 1;
	uint64_t present = 0, on = 0;

	for (size_t i = 0; i < e->n_nodes; i++) {
		int node = e->nodes[i].node;
		uint64_t p = e->nodes[i].pages * unit;

		present += p;
		if (j->system ? (node < DEVICES_NODES_MAX && j->nodes->has_cpu[node])
			      : node == j->target)
			on += p;
	}
	*ret_present = present;
	*ret_on_dest = on;
}

/*
 * The process exited after migrate_pages(2) ran (calls succeeded) and
 * before its pages could be counted again: the after-read of numa_maps
 * failed or found no address space. Counted then is only what the before
 * snapshot and the kernel vouch for:
 *   already      pages of anonymous mappings on the destination before;
 *   unmovable    the [vdso]-like mappings, which never move;
 *   failed       what migrate_pages(2) returned as not moved (a lower
 *                bound in base pages: it counts a huge page once).
 * File and shared mappings are not counted (which of their pages moved is
 * unknown).
 * migrated stays 0: migrate_pages(2) counts only the pages it tried and
 * could not move, and silently skips others (pages other processes map,
 * pages it cannot isolate), so "present elsewhere before minus failed" is
 * an upper bound on what moved, not a count. The bound goes into the last
 * message. Everything else of the process is not counted
 * (BACKEND_MOVE_EXITED: exact but partial).
 */
static int exited_after_migrate(Backend *b, MoveJob *j, const BackendMapping *maps, size_t n,
				const BackendNumaMapsEntry *before, size_t n_before,
				uint64_t not_moved)
{
	uint64_t elsewhere = 0;

	j->counts = (MoveCounts) {};
	for (size_t i = 0; i < n; i++) {
		const BackendNumaMapsEntry *eb = numa_maps_find(before, n_before, maps[i].start);
		uint64_t pages = (maps[i].end - maps[i].start) / b->page_size;
		uint64_t pres_b = 0, on_b = 0;

		if (maps[i].kind == BACKEND_MAP_SPECIAL) {
			j->counts.unmovable += pages;
			continue;
		}
		if (!eb)
			continue;
		entry_pages(j, eb, b->page_size, &pres_b, &on_b);
		pres_b = MIN(pres_b, pages);
		on_b = MIN(on_b, pres_b);
		elsewhere += pres_b - on_b;
		/* File and shared mappings: which of their pages moved is unknown. */
		if (maps[i].kind == BACKEND_MAP_ANON)
			j->counts.already += on_b;
	}
	j->counts.failed = MIN(not_moved, elsewhere);
	backend_set_last_message("process exited during migrate_pages(2): up to %" PRIu64
				 " pages moved, not counted",
				 elsewhere - j->counts.failed);
	return BACKEND_MOVE_EXITED;
}

/*
 * length 0: migrate_pages(2) from every other node, which is what numactl's
 * migratepages does and walks the page tables instead of looking up every
 * page. Counting comes from /proc/PID/numa_maps read before and after
 * (per mapping and node, a page-table walk in the kernel): already = pages
 * on the destination before, migrated = the increase. Pages still elsewhere
 * afterwards in an anonymous mapping (shared copy-on-write pages, which
 * migrate_pages(2) skips silently, pins, a full target) are handed to the
 * move_pages(2) path for that mapping, which moves what it can and reports
 * why the rest did not. Like migratepages, this also moves page-cache and
 * shared pages that only this process maps; they count as migrated, and the
 * file/shared counts are the pages of those mappings that did not move.
 * Counts are exact for a process that does not fault or unmap pages while it
 * is moved; a running one may shift pages between the categories.
 */
static int move_whole(Backend *b, MoveJob *j, const BackendMapping *maps, size_t n)
{
	BackendNumaMapsEntry *before = NULL, *after = NULL;
	size_t n_before = 0, n_after = 0;
	uint64_t per_node[DEVICES_NODES_MAX] = {};
	MoveCtx ctx = { .job = j, .page_size = b->page_size };
	unsigned long maxnode = DEVICES_NODES_MAX;
	uint64_t not_moved = 0;
	bool called = false;
	long left;
	int r;

	r = read_numa_maps(b->root, j->pid, &before, &n_before);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n_before; i++)
		for (size_t k = 0; k < before[i].n_nodes; k++)
			per_node[before[i].nodes[k].node] += before[i].nodes[k].pages;

	if (j->system) {
		for (int s = 0; s < DEVICES_NODES_MAX; s++) {
			NodeMask from = {}, to = {};

			if (!per_node[s] || j->nodes->has_cpu[s] || j->nodes->nearest_cpu[s] < 0)
				continue;
			mask_set(&from, s);
			mask_set(&to, j->nodes->nearest_cpu[s]);
			left = migrate_pages_call(j->pid, maxnode, from.bits, to.bits);
			if (left < 0) {
				r = call_error(errno);
				/* An earlier call may have moved pages: never -ESRCH then. */
				if (r == -ESRCH && called)
					r = exited_after_migrate(b, j, maps, n, before, n_before,
								 not_moved);
				goto out;
			}
			called = true;
			not_moved += (uint64_t) left;
		}
	} else {
		NodeMask from = {}, to = {};
		bool any = false;

		for (int s = 0; s < DEVICES_NODES_MAX; s++)
			if (per_node[s] && s != j->target && j->nodes->has_memory[s]) {
				mask_set(&from, s);
				any = true;
			}
		mask_set(&to, j->target);
		if (any) {
			left = migrate_pages_call(j->pid, maxnode, from.bits, to.bits);
			if (left < 0) {
				r = call_error(errno);
				goto out;
			}
			called = true;
			not_moved += (uint64_t) left;
		}
	}

	/*
	 * Gone since: /proc/PID vanished (reaped), or numa_maps is empty (a
	 * zombie, or a process in its exit that dropped its address space; a
	 * process that had mappings before cannot have none otherwise).
	 */
	r = read_numa_maps(b->root, j->pid, &after, &n_after);
	if (called && (r == -ESRCH || (r >= 0 && n_after == 0 && n_before > 0))) {
		r = exited_after_migrate(b, j, maps, n, before, n_before, not_moved);
		goto out;
	}
	if (r < 0)
		goto out;

	for (size_t i = 0; i < n; i++) {
		const BackendMapping *m = &maps[i];
		const BackendNumaMapsEntry *eb = numa_maps_find(before, n_before, m->start);
		const BackendNumaMapsEntry *ea = numa_maps_find(after, n_after, m->start);
		uint64_t pages = (m->end - m->start) / b->page_size;
		uint64_t pres_b = 0, on_b = 0, pres_a = 0, on_a = 0, moved;
		uint64_t *field = move_counts_field_for_map_kind(&j->counts, m->kind);

		if (m->kind == BACKEND_MAP_SPECIAL) {
			j->counts.unmovable += pages;
			continue;
		}
		if (eb)
			entry_pages(j, eb, b->page_size, &pres_b, &on_b);
		if (ea)
			entry_pages(j, ea, b->page_size, &pres_a, &on_a);
		moved = on_a > on_b ? on_a - on_b : 0;
		if (field) {
			moved = MIN(moved, pages);
			j->counts.migrated += moved;
			*field += pages - moved;
		} else if (!eb || !ea || pres_a > on_a || pres_a > pages) {
			/* Left behind, or the mapping changed: page by page. */
			MoveCounts saved = j->counts;
			uint64_t already;

			j->counts = (MoveCounts) {};
			r = move_segment(&ctx, m->start, m->end, m->kind);
			if (r < 0) {
				move_counts_add(&j->counts, &saved);
				/*
				 * The counts so far are exact (from the after-read);
				 * migrate_pages(2) ran: an exit now is part way.
				 */
				if (r == -ESRCH && called)
					r = BACKEND_MOVE_EXITED;
				goto out;
			}
			/* What migrate_pages(2) moved looks "already there" now. */
			already = MIN(on_b, j->counts.already);
			j->counts.migrated += j->counts.already - already;
			j->counts.already = already;
			move_counts_add(&j->counts, &saved);
		} else {
			j->counts.already += MIN(on_b, on_a);
			j->counts.migrated += on_a - MIN(on_b, on_a);
			j->counts.not_present += pages - pres_a;
		}
	}
	r = report(j);
out:
	backend_numa_maps_free(before, n_before);
	backend_numa_maps_free(after, n_after);
	return r;
}

static int numa_move(Backend *b, pid_t pid, uint64_t start, uint64_t length,
		     const BackendTarget *target, BackendProgressFn progress, void *userdata,
		     MoveCounts *ret)
{
	_cleanup_free_ NodeMap *nodes = NULL;
	BackendMapping *maps = NULL;
	MoveJob j = { .pagemap_fd = -EBADF };
	PfnMap pfn = {};
	MoveCtx ctx;
	size_t n = 0;
	int r;

	*ret = (MoveCounts) {};
	backend_set_last_message(NULL);
	r = backend_check_range(start, length, b->page_size);
	if (r < 0)
		return r;
	nodes = malloc(sizeof(*nodes));
	if (!nodes)
		return -ENOMEM;
	r = node_map_read(b->root, nodes);
	if (r < 0)
		return r;
	if (target->system) {
		bool any = false;

		for (int i = 0; i < DEVICES_NODES_MAX; i++)
			any = any || (nodes->has_cpu[i] && nodes->has_memory[i]);
		if (!any)
			return -ENODEV;
	} else if (target->id < 0 || target->id >= DEVICES_NODES_MAX ||
		   !nodes->has_memory[target->id])
		return -ENODEV;

	r = backend_maps_read(b->root, pid, &maps, &n);
	if (r < 0)
		return r;
	if (n == 0) {
		/* No address space: a kernel thread or a zombie. */
		backend_mappings_free(maps, n);
		return -ESRCH;
	}

	j = (MoveJob) {
		.pid = pid,
		.nodes = nodes,
		.system = target->system,
		.target = target->system ? -1 : (int) target->id,
		.progress = progress,
		.userdata = userdata,
		.pagemap_fd = -EBADF,
		.page_size = b->page_size,
		.zero_pfn = b->zero_pfn,
	};
	ctx = (MoveCtx) { .job = &j, .page_size = b->page_size };
	r = walk_range(maps, n, start, length, count_pages, &ctx);
	if (r < 0)
		goto out;
	r = job_alloc(&j);
	if (r < 0)
		goto out;
	/* Whole processes are counted from numa_maps; their rare leftovers use the query. */
	if (length > 0 && pfn_map_read(b->root, nodes, b->page_size, &pfn) >= 0) {
		_cleanup_free_ char *pm = NULL;
		char path[64];

		(void) snprintf(path, sizeof(path), "/proc/%d/pagemap", (int) pid);
		pm = path_join_root(b->root, path);
		if (pm)
			j.pagemap_fd = open(pm, O_RDONLY | O_CLOEXEC);
		j.pfn = &pfn;
	}
	if (length == 0)
		r = move_whole(b, &j, maps, n);
	else
		r = walk_range(maps, n, start, length, move_segment, &ctx);
	if (j.cancelled < 0)
		r = j.cancelled;
	else if (r == -ESRCH && move_counts_total(&j.counts) > 0)
		r = BACKEND_MOVE_EXITED;
	/* On errors too: what was done before is exact. */
	if (r != -ESRCH)
		*ret = j.counts;
out:
	job_free(&j);
	pfn_map_free(&pfn);
	backend_mappings_free(maps, n);
	return r;
}

/* ---- residency ---- */

typedef struct ResidencyCtx {
	pid_t pid;
	uint64_t page_size;
	uint64_t *per_node;     /* DEVICES_NODES_MAX */
	void **pages;
	int *status;
} ResidencyCtx;

static int residency_segment(void *ctx, uint64_t start, uint64_t end, BackendMapKind kind)
{
	ResidencyCtx *c = ctx;
	uint64_t pages = (end - start) / c->page_size;
	int r;

	if ((int) kind < 0 || kind == BACKEND_MAP_SPECIAL)
		return 0;
	for (uint64_t done = 0; done < pages;) {
		size_t n = (size_t) MIN(pages - done, (uint64_t) MOVE_BATCH);

		for (size_t i = 0; i < n; i++)
			c->pages[i] = (void *) (uintptr_t) (start + (done + i) * c->page_size);
		r = query(c->pid, n, c->pages, c->status);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++)
			if (c->status[i] >= 0 && c->status[i] < DEVICES_NODES_MAX)
				c->per_node[c->status[i]]++;
		done += n;
	}
	return 0;
}

static int numa_residency(Backend *b, pid_t pid, uint64_t start, uint64_t length,
			  ResidencyEntry **ret, size_t *ret_n)
{
	_cleanup_free_ NodeMap *nodes = NULL;
	_cleanup_free_ uint64_t *per_node = NULL;
	_cleanup_free_ void **pages = NULL;
	_cleanup_free_ int *status = NULL;
	ResidencyEntry *entries = NULL;
	BackendMapping *maps = NULL;
	ResidencyCtx ctx;
	size_t n = 0, k = 0;
	int r;

	backend_set_last_message(NULL);
	r = backend_check_range(start, length, b->page_size);
	if (r < 0)
		return r;
	nodes = malloc(sizeof(*nodes));
	per_node = calloc(DEVICES_NODES_MAX, sizeof(uint64_t));
	pages = calloc(MOVE_BATCH, sizeof(void *));
	status = calloc(MOVE_BATCH, sizeof(int));
	if (!nodes || !per_node || !pages || !status)
		return -ENOMEM;
	r = node_map_read(b->root, nodes);
	if (r < 0)
		return r;
	r = backend_maps_read(b->root, pid, &maps, &n);
	if (r < 0)
		return r;
	if (n == 0) {
		backend_mappings_free(maps, n);
		return -ESRCH;
	}
	if (length == 0) {
		/*
		 * The whole process from numa_maps: one page-table walk in the
		 * kernel instead of a lookup per virtual page, which matters
		 * for large sparse reservations. Same pages as the query: present,
		 * not the zero page, not zone-device pages.
		 */
		BackendNumaMapsEntry *e = NULL;
		size_t ne = 0;

		r = read_numa_maps(b->root, pid, &e, &ne);
		for (size_t i = 0; r >= 0 && i < n; i++) {
			const BackendNumaMapsEntry *x;
			uint64_t unit;

			if (maps[i].kind == BACKEND_MAP_SPECIAL)
				continue;
			x = numa_maps_find(e, ne, maps[i].start);
			if (!x)
				continue;
			unit = x->page_kb ? MAX(x->page_kb * 1024 / b->page_size, (uint64_t) 1) : 1;
			for (size_t l = 0; l < x->n_nodes; l++)
				per_node[x->nodes[l].node] += x->nodes[l].pages * unit;
		}
		backend_numa_maps_free(e, ne);
	} else {
		ctx = (ResidencyCtx) {
			.pid = pid, .page_size = b->page_size, .per_node = per_node,
			.pages = pages, .status = status,
		};
		r = walk_range(maps, n, start, length, residency_segment, &ctx);
	}
	backend_mappings_free(maps, n);
	if (r < 0)
		return r;

	for (int i = 0; i < DEVICES_NODES_MAX; i++)
		k += per_node[i] > 0;
	entries = calloc(k ?: 1, sizeof(*entries));
	if (!entries)
		return -ENOMEM;
	k = 0;
	for (int i = 0; i < DEVICES_NODES_MAX; i++) {
		if (per_node[i] == 0)
			continue;
		entries[k++] = (ResidencyEntry) {
			.system = nodes->has_cpu[i],
			.id = i,
			.bytes = per_node[i] * b->page_size,
		};
	}
	*ret = entries;
	*ret_n = k;
	return 0;
}

const BackendOps backend_numa_ops = {
	.name = "numa",
	.open = numa_open,
	.close = numa_close,
	.list_devices = numa_list_devices,
	.move = numa_move,
	.residency = numa_residency,
};
