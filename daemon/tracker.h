/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Access trackers: per process, a list of regions covering its anonymous
 * private mappings, each with a heat estimate for the last tick.
 *
 *   damon    DAMON vaddr through /sys/kernel/mm/damon/admin (kernels with
 *            CONFIG_DAMON_SYSFS, e.g. Debian's 6.12): one kdamond, one
 *            context, one DAMON target per tracked pid; a DAMOS "stat"
 *            scheme matching every region and update_schemes_tried_regions
 *            give each region's nr_accesses. DAMON does its own adaptive
 *            split/merge. DAMON cannot see zone-device pages: regions whose
 *            residency is a cohmem pool get their heat from the sampler
 *            (cohmem SAMPLE) instead.
 *   sample   cohmem SAMPLE (accessed bits through cohmem.ko), for kernels
 *            without DAMON. DAMON-style: each tick, for every region, read
 *            and clear the accessed bits of the window of pages prepared
 *            the tick before, then pick a new random window in the region
 *            and clear its bits (a window just read is already clear: a
 *            region keeps it for up to 4 ticks, saving that second call);
 *            adaptive split/merge keeps the region count between
 *            min_regions and max_regions. A pid's windows go to the kernel
 *            in batches of up to 64 (SAMPLE with WINDOW nests, one TLB
 *            flush each): one call to read and one to clear per 64 regions
 *            and tick, whatever the memory size.
 *   none     regions from /proc/PID/maps only, heat 0 (bind/system policies
 *            need regions but no heat; hot policies need a tracker).
 *
 * Heat is a density in [0, TRACKER_HEAT_MAX]: the fraction of sampled pages
 * (damon: of sampling intervals) found accessed during the tick, in per
 * mille. It compares across regions of different sizes.
 *
 * Threads: tracker_engine_tick() blocks and runs in a mover worker; every
 * other function belongs to the event loop's thread and must not be called
 * while a tick runs (the placement runs one tick at a time).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mover.h"
#include "policy.h"

#define TRACKER_HEAT_MAX 1000

typedef enum TrackerKind {
	TRACKER_NONE,
	TRACKER_SAMPLE,
	TRACKER_DAMON,
	_TRACKER_KIND_MAX,
} TrackerKind;

const char *tracker_kind_to_string(TrackerKind k);
/* "auto" → -1 (pick per host), else a TrackerKind; -EINVAL. */
int tracker_kind_from_string(const char *s);

typedef struct TrackerRegion {
	uint64_t start, length;         /* page aligned, length > 0 */
	uint64_t heat;                  /* per mille, last tick */
	/*
	 * The placement's state of the region, carried through split (both
	 * halves get a copy), merge (only regions with equal residency merge;
	 * the merged one keeps the older resident_since_usec and the smaller
	 * hot/cold tick counts) and DAMON's re-splitting (a new region takes
	 * the state of the old region it overlaps most). A new region starts
	 * with residency POLICY_SYSTEM_RAM, resident_since_usec 0, counts 0.
	 */
	int residency;                  /* placement's device index or POLICY_SYSTEM_RAM */
	bool on_cohmem;                 /* residency is a cohmem pool: damon can't see it */
	uint64_t resident_since_usec;
	unsigned hot_ticks, cold_ticks;
} TrackerRegion;

typedef struct TrackerParams {
	int kind;                       /* -1: auto (damon when the kernel has it and no
					 * other program runs a kdamond, else sample when
					 * cohmem is loaded, else none) */
	unsigned min_regions;           /* per process, default 10 */
	unsigned max_regions;           /* per process, default 1000 */
	unsigned window_pages;          /* sample: pages per window, default 16 */
	uint64_t tick_usec;             /* damon: aggregation interval = tick */
	uint64_t seed;                  /* sample: random windows and split points */
} TrackerParams;

void tracker_params_init(TrackerParams *p);

typedef struct TrackerEngine TrackerEngine;

/* root as everywhere ("/" or a fixture tree). Probes DAMON sysfs under root. */
int tracker_engine_new(const char *root, const TrackerParams *p, TrackerEngine **ret);
TrackerEngine *tracker_engine_free(TrackerEngine *e);   /* stops the kdamond it started */

/* The kind new pids get now (auto resolved). */
TrackerKind tracker_engine_kind(const TrackerEngine *e);
/* cohmem backend for SAMPLE (a reference is taken); NULL when cohmem is gone. */
void tracker_engine_set_sampler(TrackerEngine *e, BackendRef *sampler);

/*
 * Track exactly these pids from the next tick on (sorted ascending). New pids
 * get regions from their maps at their first tick; pids not listed are dropped
 * with their regions. 0 or -ENOMEM.
 */
int tracker_engine_set_pids(TrackerEngine *e, const pid_t *pids, size_t n);

/*
 * One tick for every tracked pid (worker thread). A pid that exited is marked
 * gone (tracker_engine_regions() returns NULL for it), not an error. Returns
 * 0, or a negative errno when the tracker as a whole failed (DAMON sysfs
 * refused a write; the message is in backend_last_message()).
 */
int tracker_engine_tick(TrackerEngine *e, uint64_t now_usec);

/* A pid's regions after the last tick (mutable: the placement updates its fields). */
TrackerRegion *tracker_engine_regions(TrackerEngine *e, pid_t pid, size_t *ret_n);
/*
 * The last tick, for stats and benchmarks: regions after it, calls into the
 * kernel (backend sample calls, each one SAMPLE request of up to 64 windows;
 * damon: one per pid for its tried regions), pages
 * covered by the regions.
 */
typedef struct TrackerTickStats {
	uint64_t n_regions, n_calls, pages_tracked;
	uint64_t cpu_usec;              /* CPU time of the last tick (thread CPU clock) */
} TrackerTickStats;
void tracker_engine_tick_stats(const TrackerEngine *e, TrackerTickStats *ret);

/* ---- pure helpers, unit tested ---- */

/*
 * Bring regions in line with the anonymous private mappings [start, end)
 * given (sorted): cut away parts outside every mapping, add regions (fresh
 * state) for mapped parts no region covers, split regions at mapping
 * boundaries. *regions is realloc'd.
 */
int tracker_regions_fit(TrackerRegion **regions, size_t *n, const uint64_t (*maps)[2],
			size_t n_maps);
/*
 * Adaptive split/merge: merge neighbours (adjacent, equal residency) whose heat
 * differs by at most merge_threshold while more than min_regions remain (and,
 * as DAMON, not beyond total / min_regions bytes; heat size-weighted); then,
 * when fewer than max_regions / 2 remain, split each region of at least
 * 2 * min_pages pages once into two at a random page boundary, at least
 * min_pages from either end (random from *seed, xorshift), never beyond
 * max_regions. Regions separated by a gap never merge. 0, -EINVAL, -ENOMEM.
 */
int tracker_regions_adapt(TrackerRegion **regions, size_t *n, unsigned min_regions,
			  unsigned max_regions, uint64_t merge_threshold, uint64_t min_pages,
			  uint64_t page_size, uint64_t *seed);
/*
 * DAMON cannot see pool pages: where old regions are in a cohmem pool
 * (on_cohmem), keep them as they are (state and heat: the sampler's), and
 * DAMON's regions (*regions, sorted) only for the rest, cut around them.
 * Nothing changes without pool regions. *regions is replaced. 0, -ENOMEM.
 */
int tracker_regions_keep_pool(TrackerRegion **regions, size_t *n, const TrackerRegion *old,
			      size_t n_old);
/* Carry state from old regions to new ones by largest overlap (damon re-split). */
void tracker_regions_inherit(TrackerRegion *new_regions, size_t n_new,
			     const TrackerRegion *old_regions, size_t n_old);

/* ---- DAMON sysfs (tracker-damon.c): used by the engine ---- */

/*
 * One kdamond for all tracked pids (DAMON's sysfs allows one context per
 * kdamond): one DAMON target per pid, and per target a DAMOS "stat" scheme
 * matching every region with a "target" filter (damon_target_idx = the pid's
 * target, matching N: regions of the other targets are filtered out), so
 * scheme i's tried_regions are target i's regions: the tried regions
 * themselves do not say which target they belong to.
 */
typedef struct TrackerDamon TrackerDamon;

/* root has DAMON's sysfs admin interface (kdamonds/nr_kdamonds). */
bool tracker_damon_available(const char *root);
/* Some kdamond is on (another program's, e.g. a paddr one): auto does not pick damon then. */
bool tracker_damon_busy(const char *root);
/* Nothing is written yet. */
int tracker_damon_new(const char *root, const TrackerParams *p, TrackerDamon **ret);
/* Turns the kdamond off (when it started it) and frees. */
TrackerDamon *tracker_damon_free(TrackerDamon *d);
/*
 * Make DAMON track exactly these pids (writes the configuration and turns
 * the kdamond on, or commits it, when the set changed or the kdamond
 * stopped), then have it refresh the tried regions and read them. Blocks
 * while the kdamond applies its schemes once (up to twice the aggregation
 * interval). -EBUSY when another program runs a kdamond; other write errors
 * as the kernel gives them, with backend_last_message() naming the file.
 */
int tracker_damon_update(TrackerDamon *d, const pid_t *pids, size_t n);
/* The target index of pid after the last update, or SIZE_MAX (d may be NULL). */
size_t tracker_damon_index(const TrackerDamon *d, pid_t pid);
/* Target idx's regions from the last update, heat set, fresh state; *ret malloc'd. */
int tracker_damon_regions(TrackerDamon *d, size_t idx, TrackerRegion **ret, size_t *ret_n);
/*
 * The last update turned the kdamond on afresh (first start, changed pid set,
 * it had stopped): its regions are DAMON's initial coarse ones, measured over
 * one aggregation interval. The engine keeps the heat of pids it already
 * tracked for that tick.
 */
bool tracker_damon_restarted(const TrackerDamon *d);
/* The kdamond's pid while it runs (for CPU accounting), else 0. */
pid_t tracker_damon_kdamond_pid(const TrackerDamon *d);
