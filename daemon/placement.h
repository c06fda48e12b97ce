/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The placement loop: every tick (TickSec=), for the targets with policies,
 *   1. resolve each target's pids (targets.h); drop targets that are gone
 *      (and persist the change);
 *   2. run the trackers for those pids in a mover worker (tracker.h);
 *   3. build a PolicySnapshot (devices with free bytes and watermarks,
 *      targets with their PolicySpec, every tracked region with its heat,
 *      residency and tick counts) and compute the plan (policy.h), the rate
 *      limit ([Policy] RateLimitMiB=) applied by the engine;
 *   4. submit the plan's moves to the mover as migrations (per pid, in plan
 *      order), update each region's residency from the result, account
 *      them in the stats (reason: promote/demote/evict/bind/system).
 * A tick does not start while the previous one's moves still run.
 * Policy changes take effect at the next tick; set/clear schedule one at once.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "targets.h"
#include "tracker.h"

struct Manager;
typedef struct Placement Placement;

int placement_new(struct Manager *m, Placement **ret);
Placement *placement_free(Placement *p);

/* Load persisted targets from the manager's state directory (logs what was set aside). */
int placement_load_state(Placement *p);

/* The manager's tick timer calls this; returns 0 when a tick started or one was running. */
int placement_tick(Placement *p);
/* Whether a tick runs now (its tracker job or its moves). */
bool placement_is_ticking(const Placement *p);
/*
 * The backend whose sample() the tracker uses instead of the manager's
 * cohmem one (a reference is taken; NULL: cohmem again). For unit tests on
 * the fake backend.
 */
void placement_set_sampler(Placement *p, BackendRef *sampler);

const TargetSet *placement_targets(const Placement *p);

/* The manager's stats changed outside a tick (a Migrate request): saved at the next tick or exit. */
void placement_stats_changed(Placement *p);

/*
 * Set a policy (validated: the device must exist, -ENODEV; hot: needs a
 * tracker, -EOPNOTSUPP when none is available). Persists the targets
 * (-EIO... from state_save: the change is then undone and the error returned).
 */
int placement_set_policy(Placement *p, const TargetKey *key, uid_t owner,
			 const PolicySpec *policy, uint64_t *ret_id);
/* -ENOENT when key has no policy. Regions the target had on devices stay where they are. */
int placement_clear_policy(Placement *p, const TargetKey *key);

typedef struct PlacementTargetStatus {
	size_t n_pids;
	size_t n_regions;
	const char *tracker;            /* "damon", "sample", "none" */
	uint64_t tracked_bytes;         /* bytes of all regions */
	uint64_t device_bytes;          /* bytes of regions resident on the policy's device */
	uint64_t hot_bytes;             /* bytes of regions with heat >= HotThreshold */
	uint64_t promoted_bytes, demoted_bytes, evicted_bytes; /* since the policy was set */
	uint64_t ticks;                 /* ticks this target was planned in */
	char *cgroup;                   /* job: the cgroup found, NULL when none yet (malloc'd) */
} PlacementTargetStatus;

/* -ENOENT when there is no target with this id. Free ret->cgroup. */
int placement_target_status(Placement *p, uint64_t id, PlacementTargetStatus *ret);

/*
 * Recording (cohctl record): after every tick, fn gets pid's regions. The pid
 * is tracked while a recorder exists, with or without a policy. Loop thread.
 */
typedef struct PlacementRecorder PlacementRecorder;
typedef void (*PlacementRecordFn)(PlacementRecorder *r, uint64_t tick, const TrackerRegion *regions,
				  size_t n, void *userdata);
/* -ESRCH when pid has gone: fn is called once with regions NULL, n 0, then never again. */
int placement_record_start(Placement *p, pid_t pid, PlacementRecordFn fn, void *userdata,
			   PlacementRecorder **ret);
void placement_record_stop(PlacementRecorder *r);
