/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The simulator behind `cohctl simulate`: replays an access trace tick by tick
 * against one device of a given size and reports how well a placement policy
 * did. Pure computation over a parsed Trace; no I/O.
 *
 * Model. Every region starts in system RAM. For each tick T from the trace's
 * first to its last: (1) the tick's accesses are served, a hit when the region
 * is on the device; (2) the policy sees the tick's counts and decides the
 * placement for tick T+1, at most the device size on the device. Bytes moved
 * count every region that changes side; a move is ping-pong when it reverses
 * the same region's previous move made at most pingpong_window ticks earlier.
 *
 * Policies:
 *   ours      policy_plan_compute() on a one-device, one-target snapshot
 *             (hot:dev quota=device size). Heat is what a tracker reports:
 *             heat' = heat / 2 + accesses in the tick (per region).
 *   oracle    knows each tick's accesses before they happen and, for every
 *             tick, places the set of regions that serves the most accesses
 *             of that tick (an exact 0/1 knapsack over region lengths); among
 *             those sets, the one that keeps the most bytes where they are.
 *             Its hit ratio is an upper bound for any policy at region
 *             granularity on that device; its bytes moved are minimal per tick
 *             given maximal hits, not over the whole trace. No rate limit.
 *   heat      baseline, memtierd-style: the same heat estimate; every region
 *             with heat >= hot threshold belongs on the device (hottest first
 *             while room), every other one in system RAM, no hysteresis.
 *   lru       baseline, LRU / NUMA-hint-fault style: a region accessed while
 *             in system RAM faults and is promoted after the tick; room is
 *             made by evicting the least recently accessed resident regions
 *             (never one accessed in the same tick).
 * ours, heat and lru obey the same rate limit (bytes per tick).
 */

#include <stdbool.h>
#include <stdint.h>

#include "policy.h"
#include "trace.h"

typedef enum SimPolicy {
	SIM_POLICY_OURS,
	SIM_POLICY_ORACLE,
	SIM_POLICY_HEAT,
	SIM_POLICY_LRU,
	_SIM_POLICY_MAX,
} SimPolicy;

typedef struct SimConfig {
	PolicySettings policy;          /* the [Policy] keys, as coherentd reads them */
	uint64_t tick_usec;             /* TickSec= */
	uint64_t device_size;           /* 0: a quarter of the trace's footprint */
	unsigned pingpong_window;       /* ticks */
} SimConfig;

typedef struct SimResult {
	uint64_t accesses, hits;
	uint64_t bytes_moved, bytes_pingpong;
	uint64_t moves;
	uint64_t ticks;
	uint64_t device_size;
	double hit_ratio;               /* hits / accesses, 0 without accesses */
	double pingpong_fraction;       /* bytes_pingpong / bytes_moved, 0 without moves */
} SimResult;

/* policy defaults, 1 s tick, device size 0 (derived), ping-pong window 4. */
void sim_config_init(SimConfig *c);

/*
 * Settings from a coherentd.conf-style file: the [Policy] keys of
 * coherentd.conf (policy_settings_set()), TickSec= of [Daemon], and the
 * simulator's own [Simulate] section: TickSec=, PingPongWindowTicks=,
 * DeviceSize=. Other sections and other [Daemon] keys are ignored, so
 * coherentd.conf itself can be given. -EBADMSG with the 1-based line for a bad line, unknown key or value.
 */
int sim_config_parse(const char *buf, size_t len, SimConfig *c, unsigned *ret_line);

/*
 * -EINVAL: bad config (tick 0); -E2BIG: (last tick - first tick + 1) x
 * (regions + 1) exceeds SIM_WORK_MAX, or the oracle's knapsack would exceed
 * SIM_ORACLE_CELLS_MAX cells in one tick (regions of very different lengths);
 * -ENOMEM.
 */
#define SIM_ORACLE_CELLS_MAX (UINT64_C(1) << 27)
#define SIM_WORK_MAX (UINT64_C(1) << 34)
int sim_run(const Trace *t, const SimConfig *c, SimPolicy p, SimResult *ret);

const char *sim_policy_to_string(SimPolicy p);
const char *sim_policy_label(SimPolicy p);

/* ---- synthetic traces ---- */

typedef enum TraceGenKind {
	TRACE_GEN_HOTSET,       /* a hot set taking hot_percent of the accesses, moving every phase_ticks */
	TRACE_GEN_ZIPF,         /* zipf(zipf_s) popularity over a fixed random permutation */
	TRACE_GEN_SCAN,         /* scan_width regions per tick in address order, plus a hot set */
	_TRACE_GEN_MAX,
} TraceGenKind;

typedef struct TraceGenParams {
	TraceGenKind kind;
	uint32_t regions;
	uint64_t region_size;
	uint64_t ticks;
	uint64_t accesses_per_tick;
	uint64_t seed;
	uint32_t hot_regions;           /* hotset, scan */
	unsigned hot_percent;           /* hotset, scan: share of the accesses that go to the hot set */
	uint64_t phase_ticks;           /* hotset: 0 = no phase change */
	unsigned zipf_s_percent;        /* zipf: exponent * 100 */
	uint32_t scan_width;            /* scan */
} TraceGenParams;

void trace_gen_params_init(TraceGenParams *p, TraceGenKind kind);
/* -EINVAL for parameters out of range (no regions, hot set larger than the regions, ...). */
int trace_generate(const TraceGenParams *p, Trace **ret);
const char *trace_gen_kind_to_string(TraceGenKind k);
int trace_gen_kind_from_string(const char *s);
