/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared helpers for the in-VM cohmem conformance tests and the benchmark:
 * a small libnl-genl client for the "cohmem" family, module load/unload by
 * syscall, /proc/PID/pagemap readers, data patterns and a TAP printer.
 *
 * Everything below the TAP layer returns negative errno.
 */
#ifndef COHMEM_CLIENT_H
#define COHMEM_CLIENT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/cohmem.h>

#define COH_MAX_POOLS		16
#define COH_PAGE_SIZE		4096UL

/* ---- netlink client ---------------------------------------------------- */

struct coh_client;

struct coh_pool {
	uint32_t id;
	char name[32];
	uint64_t phys_start;
	uint64_t phys_size;
	int32_t nid;
	uint64_t total;
	uint64_t free;
	uint64_t migrated_in;
	uint64_t migrated_out;
	uint64_t evicted;
	uint64_t failures;
	uint64_t low;
	uint64_t high;
};

struct coh_extent {
	uint32_t pool_id;
	uint64_t start;
	uint64_t length;
};

/* A request: only attributes whose bit is set in @present are sent. */
struct coh_req {
	uint64_t present;
	uint32_t pool_id;
	uint32_t pid;
	uint64_t start;
	uint64_t length;
	uint32_t dest;
	uint64_t nr_pages;
	bool clear;
	/* SAMPLE: one WINDOW nest per {start, length} */
	const uint64_t (*windows)[2];
	int nr_windows;
	/* policy tests: one attribute appended as is, a non-zero reserved field */
	int raw_type;			/* 0: none */
	const void *raw_data;
	int raw_len;
	bool bad_reserved;
};

#define COH_BIT(attr)	(1ULL << (attr))

/* A reply: top-level scalars by attribute number, plus the multi-valued parts. */
struct coh_reply {
	uint64_t have;			/* COH_BIT(attr) for every scalar seen */
	uint64_t v[COHMEM_A_MAX + 1];	/* u32/u64/s32 values, widened */
	struct coh_pool pools[COH_MAX_POOLS];
	int nr_pools;			/* one per message (dump) */
	struct { uint32_t pool_id; uint64_t nr_pages; } resident[COH_MAX_POOLS];
	int nr_resident;
	struct coh_extent *extents;	/* malloc'd */
	int nr_extents;
	bool truncated;
	uint8_t *bitmap;		/* malloc'd */
	size_t bitmap_len;
	struct coh_window {
		uint64_t start, nr_pages, nr_young;
		bool no_mapping;
	} windows[COHMEM_SAMPLE_MAX_WINDOWS];	/* SAMPLE with windows, in order */
	int nr_windows;
	int nr_msgs;
	int cmd;			/* genl command of the last message */
};

/* MIGRATE / EVICT outcome, pages. */
struct coh_counts {
	uint64_t migrated, already, not_present, file, shared, pinned, unmovable,
		 no_space, failed;
};

int coh_open(struct coh_client **ret);		/* -ENOENT: family not registered */
void coh_close(struct coh_client *c);
int coh_family_id(struct coh_client *c);
/* The extended ACK message of the last request, "" when none. */
const char *coh_last_message(struct coh_client *c);

/* Generic request; @dump sets NLM_F_DUMP. Returns 0 or the kernel's -errno. */
int coh_request(struct coh_client *c, int cmd, bool dump, const struct coh_req *req,
		struct coh_reply *ret);
void coh_reply_free(struct coh_reply *r);

int coh_pool_dump(struct coh_client *c, struct coh_pool *pools, int max);	/* count */
int coh_pool_get(struct coh_client *c, uint32_t id, struct coh_pool *ret);
int coh_pool_find(struct coh_client *c, const char *name, struct coh_pool *ret);
int coh_migrate(struct coh_client *c, pid_t pid, uint64_t start, uint64_t len, uint32_t dest,
		struct coh_counts *ret);
int coh_evict(struct coh_client *c, uint32_t pool_id, uint64_t nr_pages,
	      uint64_t *ret_evicted, uint64_t *ret_failed);
uint64_t coh_counts_sum(const struct coh_counts *k);
void coh_counts_str(const struct coh_counts *k, char *buf, size_t n);

/* Monitor group: a separate socket subscribed to "monitor". */
int coh_monitor_open(struct coh_client **ret);
/* Waits up to @timeout_ms for one notification; returns the command or -errno. */
int coh_monitor_next(struct coh_client *c, int timeout_ms, struct coh_reply *ret);

/* ---- module ---------------------------------------------------------- */

const char *coh_module_path(void);		/* $COH_MODULE_DIR/cohmem.ko */
bool coh_module_present(void);
bool coh_module_loaded(void);
int coh_module_load(const char *params);	/* finit_module */
int coh_module_unload(void);			/* delete_module, retried on EAGAIN */
/* "NAME:SIZE@START:NID" from COH_POOL_{START,SIZE,NID} (defaults match the harness). */
void coh_pool_param(char *buf, size_t n, const char *name);
uint64_t coh_pool_env_start(void);
uint64_t coh_pool_env_size(void);
int coh_pool_env_nid(void);
uint64_t coh_parse_size(const char *s);

/* ---- memory helpers -------------------------------------------------- */

/* Per-page PFN of @pid's range; 0 for not present. */
int coh_pagemap(pid_t pid, uint64_t addr, size_t npages, uint64_t *pfns);
/* Pages of the range whose PFN lies in [lo, hi); also counts present ones. */
int coh_pages_in(pid_t pid, uint64_t addr, size_t npages, uint64_t lo_pfn, uint64_t hi_pfn,
		 size_t *ret_in, size_t *ret_present);

void coh_fill(void *buf, size_t npages, uint64_t seed);
/* Number of pages whose content differs from coh_fill(seed). */
size_t coh_check(const void *buf, size_t npages, uint64_t seed);
uint64_t coh_pattern(uint64_t seed, uint64_t page, uint64_t word);
/* Same, for a buffer that starts at page @first of the pattern. */
void coh_fill_at(void *buf, size_t first, size_t npages, uint64_t seed);
size_t coh_check_at(const void *buf, size_t first, size_t npages, uint64_t seed);

/* ---- TAP -------------------------------------------------------------- */

void tap_init(const char *prog, int planned);
int tap_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tap_skip(const char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Checks the kernel log since tap_init for WARN/BUG/Oops, then closes the plan. */
int tap_finish(void);
/* Whole program cannot run: no output beyond a diagnostic on stderr, exit 77. */
void tap_skip_all(const char *why) __attribute__((noreturn));


/* ---- shared fixtures ------------------------------------------------- */

/* Loaded module with one pool from the environment, and a client on it. */
struct coh_env {
	struct coh_client *c;
	struct coh_pool pool;
	uint64_t lo_pfn, hi_pfn;	/* pool PFN range [lo, hi) */
};

/*
 * Unloads a module left loaded, loads it with "pools=NAME:..." plus @extra
 * module parameters (may be NULL), opens a client and finds the pool.
 * Exits 77 when the module file is absent.
 */
int coh_env_setup(struct coh_env *e, const char *name, const char *extra);
void coh_env_teardown(struct coh_env *e);
uint64_t coh_env_free(struct coh_env *e);	/* pool free pages, ~0 on error */

/* Another process holding an anonymous buffer, driven through pipes. */
struct coh_victim {
	pid_t pid;
	int cmd_fd, rsp_fd;
	uint64_t addr;
	size_t npages;
};

enum {
	VICTIM_FILL = 'f',	/* arg: seed; fills the buffer */
	VICTIM_CHECK = 'c',	/* arg: seed; replies the number of bad pages */
	VICTIM_QUIT = 'q',
};

int coh_victim_start(struct coh_victim *v, size_t npages, uint64_t seed);
int64_t coh_victim_cmd(struct coh_victim *v, int op, uint64_t arg);
int coh_victim_stop(struct coh_victim *v);	/* quit + reap: exit status */

/* Kernel log reader positioned at the end, to look for a line after an action. */
int coh_kmsg_open(void);
bool coh_kmsg_grep(int fd, const char *needle);

#endif
