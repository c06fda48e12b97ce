/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Kernel access behind a table of functions (chrony's localp.h idiom):
 *
 *   numa    libnuma — move_pages(2) in batches for ranges, migrate_pages(2)
 *           for whole processes (counted from /proc/PID/numa_maps), capacity
 *           from node meminfo. Devices: CPU-less nodes with memory.
 *   cohmem  libnl-genl-3 — the "cohmem" generic netlink family of cohmem.ko
 *           (kernel/include/uapi/linux/cohmem.h): POOL_GET, MIGRATE,
 *           RESIDENCY, SAMPLE, EVICT, and the "monitor" multicast group.
 *   fake    scripted, for unit tests: devices, page placement and results
 *           come from a table the test sets up (backend-fake.h).
 *
 * Every function returns a negative errno (libnl NLE_* and libnuma errors are
 * converted here, at the boundary); nothing in a backend logs or prints.
 * move/residency/sample/evict are blocking and are called from the mover's
 * worker threads, never from the event loop, and may run concurrently on one
 * Backend: a backend keeps no per-call state in its struct, or locks it (the
 * cohmem backend gives each call a netlink socket of its own: a new one, or
 * for sample an idle one from a locked pool). The monitor functions belong
 * to the event loop's thread.
 *
 * Ranges: start and length page aligned, start + length neither wrapping nor
 * above BACKEND_USER_ADDR_MAX (-EINVAL otherwise). length 0 (with start 0)
 * means the whole process: every mapping of /proc/PID/maps (read under the
 * backend's root).
 *
 * Pages are classified by mapping first (both backends agree on this; the
 * parser is backend_maps_parse()): anonymous private mappings are moved;
 * pages of the other mappings are counted, never moved — MAP_SHARED (and
 * shared anonymous) → shared, file mappings → file, [vsyscall]/[vdso]/[vvar]
 * → unmovable; holes between mappings → not_present. One exception: cohmem
 * handles an explicit range in one MIGRATE call and the kernel classifies
 * per page (it moves written, copied-on-write pages of private file mappings;
 * the numa backend counts those as file). Another: a whole-process numa move
 * uses migrate_pages(2) like numactl's migratepages, which also moves
 * page-cache and shared pages that only this process maps; those count as
 * migrated, and file/shared are the pages of such mappings that did not move.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct Backend Backend;

/* Highest user address accepted in a range (x86-64 with 5-level paging). */
#define BACKEND_USER_ADDR_MAX UINT64_C(0x00fffffffffff000)

/* move() returns this (> 0) when the process exited part way: *ret is exact but partial. */
#define BACKEND_MOVE_EXITED 1

/* Where a move goes: a device of this backend, or system RAM. */
typedef struct BackendTarget {
	bool system;            /* true: system RAM (CPU nodes); id unused */
	int64_t id;             /* numa: node id; cohmem: pool id; fake: index */
} BackendTarget;

/* Pages of a move, by outcome. The fields add up to the pages of the range. */
typedef struct MoveCounts {
	uint64_t migrated;      /* moved to the target */
	uint64_t already;       /* already on the target */
	uint64_t not_present;   /* not faulted in, swapped out, or no mapping there */
	uint64_t file;          /* page cache of file mappings */
	uint64_t shared;        /* shared mappings / pages mapped by other processes */
	uint64_t pinned;        /* extra references: GUP pins, I/O in flight */
	uint64_t unmovable;     /* VM_IO, PFNMAP, hugetlb, mlocked and the like */
	uint64_t no_space;      /* target full */
	uint64_t failed;        /* tried and failed */
} MoveCounts;

void move_counts_add(MoveCounts *to, const MoveCounts *from);
uint64_t move_counts_total(const MoveCounts *c);
/* Pages skipped (not_present + file + shared + pinned + unmovable + no_space). */
uint64_t move_counts_skipped(const MoveCounts *c);

/*
 * Account one move_pages(2) status word of a page that was asked to move to
 * target_node (the node it lives on, or a negative errno):
 *   target_node → migrated; -ENOENT, -EFAULT → not_present (not faulted in,
 *   the zero page, a zone-device page such as a cohmem pool page, no VMA);
 *   -EACCES → shared (mapped by several processes); -EBUSY → pinned;
 *   -ENOMEM → no_space; anything else (another node, other errors) → failed.
 */
void move_counts_account_status(MoveCounts *c, int status, int target_node);

/* A device a backend offers. */
typedef struct BackendDevice {
	char name[32];          /* numa: "node<N>"; cohmem: pool name */
	int64_t id;             /* numa: node id; cohmem: pool id */
	int node;               /* NUMA node, -1 when none */
	uint64_t total_bytes, free_bytes;
	uint64_t phys_start, phys_size; /* cohmem pools; 0 otherwise */
	/* cohmem pools, since module load; 0 otherwise (bytes). */
	uint64_t migrated_in_bytes, migrated_out_bytes, evicted_bytes, failed_bytes;
	uint64_t low_watermark_bytes, high_watermark_bytes; /* cohmem: the module's; 0 otherwise */
} BackendDevice;

/*
 * Residency of one process range: bytes per device and in system RAM.
 *   numa:   one entry per node with present pages, id = node, system = the
 *           node has CPUs. Pages in cohmem pools are invisible to
 *           move_pages(2) and not counted.
 *   cohmem: one entry per pool with pages (id = pool id) and one system
 *           entry (id -1) for everything present in system RAM, any node.
 * A daemon that has both: nodes from numa, pools from cohmem.
 */
typedef struct ResidencyEntry {
	bool system;
	int64_t id;             /* device id as in BackendDevice */
	uint64_t bytes;
} ResidencyEntry;

/*
 * One window of sample_windows(): the caller sets start and length, the
 * backend young and unmapped.
 */
typedef struct BackendSampleWindow {
	uint64_t start, length;
	uint64_t young;         /* pages whose accessed bit was set */
	bool unmapped;          /* no mapping intersects the window; young is 0 */
} BackendSampleWindow;

/* Most windows, and pages in all of them, per sample_windows() call. */
#define BACKEND_SAMPLE_WINDOWS_MAX 64U
#define BACKEND_SAMPLE_PAGES_MAX (UINT64_C(1) << 18)

/*
 * Windows valid for sample_windows(): 1 to BACKEND_SAMPLE_WINDOWS_MAX of
 * them, each a valid range (backend_check_range()) of non-zero length, in
 * ascending address order and not overlapping, BACKEND_SAMPLE_PAGES_MAX
 * pages in all. 0 or -EINVAL.
 */
int backend_check_sample_windows(const BackendSampleWindow *w, size_t n, uint64_t page_size);

/* Called from the worker thread after each batch; return <0 to cancel. */
typedef int (*BackendProgressFn)(const MoveCounts *so_far, uint64_t pages_total, void *userdata);

/* Monitor events (cohmem's "monitor" multicast group). */
typedef enum BackendEventType {
	BACKEND_EVENT_WATERMARK_LOW,    /* free fell below the low watermark */
	BACKEND_EVENT_WATERMARK_HIGH,   /* free rose to the high watermark again */
	BACKEND_EVENT_UNLOAD,           /* the kernel side is going away: close the backend */
} BackendEventType;

typedef struct BackendEvent {
	BackendEventType type;
	int64_t id;             /* device id; -1 for UNLOAD */
	uint64_t free_bytes;    /* at the crossing; 0 for UNLOAD */
} BackendEvent;

typedef void (*BackendEventFn)(Backend *b, const BackendEvent *event, void *userdata);

typedef struct BackendOps {
	const char *name;       /* "numa", "cohmem", "fake" */
	/*
	 * -ENODEV when the kernel side is absent (no NUMA sysfs under root,
	 * cohmem.ko not loaded). root NULL means "/".
	 */
	int (*open)(Backend **ret, const char *root);
	void (*close)(Backend *b);
	/* *ret is malloc'd; caller frees. */
	int (*list_devices)(Backend *b, BackendDevice **ret, size_t *ret_n);
	/*
	 * Move [start, start+length) of pid to target (length 0: the whole
	 * process). Returns 0 and counts that add up to the pages of the range
	 * (for length 0, of every mapping). Errors: -ESRCH no such process,
	 * or it has no address space (kernel thread, zombie), or it exited
	 * before anything was counted; -EFAULT no mapping intersects the range;
	 * -EINVAL bad range; -ENODEV no such target device; -EPERM/-EACCES
	 * refused by the kernel. BACKEND_MOVE_EXITED (> 0): the process exited
	 * part way; *ret holds exactly what was done before, the rest of the
	 * range is not counted. A progress callback's negative return cancels:
	 * move returns it, *ret holds what was done.
	 */
	int (*move)(Backend *b, pid_t pid, uint64_t start, uint64_t length,
		    const BackendTarget *target, BackendProgressFn progress, void *userdata,
		    MoveCounts *ret);
	/* Residency of [start, start+length) (length 0: whole process); *ret malloc'd. */
	int (*residency)(Backend *b, pid_t pid, uint64_t start, uint64_t length,
			 ResidencyEntry **ret, size_t *ret_n);
	/* Optional (NULL when unsupported): young-page bitmap, one bit per page. */
	int (*sample)(Backend *b, pid_t pid, uint64_t start, uint64_t length, bool clear,
		      uint8_t *bitmap, size_t bitmap_bytes, uint64_t *ret_young);
	/*
	 * Optional: sample() of n windows of pid in one kernel call, without
	 * bitmaps (windows as backend_check_sample_windows() wants, -EINVAL
	 * otherwise). Sets each window's young and unmapped (where sample()
	 * fails with -EFAULT). Other errors, -ESRCH and the like, are for the
	 * whole call, and the windows' results are then undefined. cohmem:
	 * one SAMPLE with WINDOW nests (on a module without them, one SAMPLE
	 * per window).
	 */
	int (*sample_windows)(Backend *b, pid_t pid, BackendSampleWindow *w, size_t n,
			      bool clear);
	/* Optional: move up to n_pages of device id back to system RAM. */
	int (*evict)(Backend *b, int64_t id, uint64_t n_pages, uint64_t *ret_evicted);

	/*
	 * Optional: events for the event loop. monitor_open() subscribes and
	 * returns an fd (owned by the backend) to watch for EPOLLIN with
	 * sd_event_add_io(); on readiness call monitor_dispatch(), which reads
	 * what is pending without blocking and calls fn once per event, in the
	 * caller's thread; fn must not close the backend (after UNLOAD every
	 * call fails with -ENODEV: schedule a close and reopen). -ENOBUFS from
	 * dispatch: notifications were lost, re-read the devices.
	 * monitor_close() unsubscribes (close() does too).
	 */
	int (*monitor_open)(Backend *b, BackendEventFn fn, void *userdata, int *ret_fd);
	int (*monitor_dispatch)(Backend *b);
	void (*monitor_close)(Backend *b);
} BackendOps;

extern const BackendOps backend_numa_ops;
extern const BackendOps backend_cohmem_ops;
extern const BackendOps backend_fake_ops;

/*
 * The last message libnuma or the kernel's extended ACK gave in this thread
 * (thread-local: read it in the thread that made the call), or NULL. Every
 * move/residency call clears it first. Backends never print; the caller may
 * add this to its log line.
 */
const char *backend_last_message(void);
void backend_set_last_message(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* libnl's NLE_* (either sign) → negative errno. */
int backend_errno_from_nl(int nlerr);

/* ---- /proc/PID/maps ---- */

typedef enum BackendMapKind {
	BACKEND_MAP_ANON,       /* anonymous private: [heap], [stack], [anon:...], no name */
	BACKEND_MAP_FILE,       /* private file mapping */
	BACKEND_MAP_SHARED,     /* MAP_SHARED, file or anonymous (shmem) */
	BACKEND_MAP_SPECIAL,    /* [vsyscall], [vdso], [vvar] and other kernel mappings */
	_BACKEND_MAP_KIND_MAX,
} BackendMapKind;

typedef struct BackendMapping {
	uint64_t start, end;    /* [start, end), page aligned, start < end */
	char perms[5];          /* "rw-p" */
	uint64_t offset;
	uint64_t inode;
	char *path;             /* NULL when anonymous without a name */
	BackendMapKind kind;
} BackendMapping;

/*
 * Parse the text of /proc/PID/maps (size bytes, no NUL needed). Mappings
 * come out in address order. -EBADMSG for anything malformed: wrong fields,
 * unaligned or empty or overlapping or unordered ranges, a NUL byte.
 */
int backend_maps_parse(const char *text, size_t size, BackendMapping **ret, size_t *ret_n);
/* -ESRCH when /proc/PID does not exist under root. */
int backend_maps_read(const char *root, pid_t pid, BackendMapping **ret, size_t *ret_n);
void backend_mappings_free(BackendMapping *m, size_t n);
const char *backend_map_kind_to_string(BackendMapKind k);
/* Pages of kind k in a MoveCounts: the field its pages are skipped as (not for ANON). */
uint64_t *move_counts_field_for_map_kind(MoveCounts *c, BackendMapKind k);

/* ---- /proc/PID/numa_maps ---- */

typedef struct BackendNodePages {
	int node;
	uint64_t pages;         /* in units of the mapping's kernel page size */
} BackendNodePages;

typedef struct BackendNumaMapsEntry {
	uint64_t start;
	uint64_t page_kb;       /* kernelpagesize_kB; 0 when the line lists no pages */
	BackendNodePages *nodes;
	size_t n_nodes;
} BackendNumaMapsEntry;

/*
 * Parse the text of /proc/PID/numa_maps: the start address of every mapping
 * and its "N<node>=<pages>" counts (the kernel escapes spaces and '=' in
 * paths, so tokens cannot be forged by a file name). Entries in address
 * order. -EBADMSG for anything malformed.
 */
int backend_numa_maps_parse(const char *text, size_t size, BackendNumaMapsEntry **ret,
			    size_t *ret_n);
void backend_numa_maps_free(BackendNumaMapsEntry *e, size_t n);

/*
 * The move_pages(2) the numa backend calls: libnuma's numa_move_pages() unless
 * a unit test puts a scripted kernel here (set it before opening, restore it
 * to NULL after; not for production use).
 */
typedef long (*BackendMovePagesFn)(int pid, unsigned long count, void **pages, const int *nodes,
				   int *status, int flags);
extern BackendMovePagesFn backend_numa_move_pages_hook;
/* Likewise for migrate_pages(2) (whole-process moves). */
typedef long (*BackendMigratePagesFn)(int pid, unsigned long maxnode, const unsigned long *from,
				      const unsigned long *to);
extern BackendMigratePagesFn backend_numa_migrate_pages_hook;

/* Range validity as described above; page_size a power of two. 0 or -EINVAL. */
int backend_check_range(uint64_t start, uint64_t length, uint64_t page_size);
