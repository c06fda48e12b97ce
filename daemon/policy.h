/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The policy engine: a pure function from a snapshot of devices, targets and
 * region heat to an ordered plan of moves. No I/O, no clock, no globals: time
 * is a field of the snapshot, the caller owns every buffer. The same code runs
 * in coherentd and in `cohctl simulate`.
 *
 * Rules, in the order their moves appear in a plan:
 *   1. system targets: every region on a device goes to system RAM (reason
 *      system).
 *   2. watermarks: a device whose free bytes are below low evicts resident
 *      regions, lowest priority first and coldest first within a priority,
 *      until free reaches high (reason evict). Pressure ignores the minimum
 *      residence time. "Coldest" everywhere: lowest heat, and at equal heat
 *      cold for the most ticks.
 *   3. targets by descending priority (then ascending id):
 *      bind:DEV — regions not on DEV move there in address order while the
 *      quota and the device's free bytes above its high watermark allow
 *      (reason bind);
 *      hot:DEV — a target over its quota demotes its coldest regions until
 *      within it; with cold_demote_ticks > 0, resident regions cold (heat
 *      below hot_threshold) for that many ticks and resident for
 *      min_residence_usec go back to system RAM (reason demote); then
 *      non-resident regions hot for hysteresis_ticks are promoted hottest
 *      first while the quota and the device's free bytes above its high
 *      watermark allow (reason promote; promotions never push a device below
 *      high, so they cannot trigger eviction); when there is no room, the
 *      coldest residents that may leave (resident min_residence_usec) make
 *      room for a candidate if they are cold (heat below hot_threshold for
 *      hysteresis_ticks) or its heat exceeds theirs by more than
 *      swap_margin_pct percent (reason demote, then promote).
 *   4. the rate limit: moves are kept in plan order until the next one would
 *      exceed rate_bytes_per_tick; that move and all after it are dropped, so
 *      a promotion never overtakes the demotion that makes room for it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define POLICY_SYSTEM_RAM (-1)            /* a residency / destination: not on a device */
#define POLICY_QUOTA_NONE UINT64_MAX
#define POLICY_RATE_NONE UINT64_MAX

typedef enum PolicyKind {
	POLICY_KIND_SYSTEM,
	POLICY_KIND_BIND,
	POLICY_KIND_HOT,
	_POLICY_KIND_MAX,
} PolicyKind;

typedef enum PolicyReason {
	POLICY_REASON_SYSTEM,
	POLICY_REASON_EVICT,
	POLICY_REASON_BIND,
	POLICY_REASON_DEMOTE,
	POLICY_REASON_PROMOTE,
	_POLICY_REASON_MAX,
} PolicyReason;

typedef struct PolicyDevice {
	const char *name;
	uint64_t capacity;
	uint64_t free;          /* bytes free now, as the device reports it */
	uint64_t low, high;     /* free watermarks, low <= high */
} PolicyDevice;

typedef struct PolicyTarget {
	uint64_t id;
	PolicyKind kind;
	int device;             /* index into devices, bind and hot only */
	uint64_t quota;         /* bytes on the device at most; POLICY_QUOTA_NONE */
	int priority;           /* higher keeps its memory longer */
} PolicyTarget;

typedef struct PolicyRegion {
	size_t target;          /* index into targets */
	uint64_t start, length;
	uint64_t heat;          /* the tracker's access estimate per tick */
	unsigned hot_ticks;     /* consecutive ticks with heat >= hot_threshold */
	unsigned cold_ticks;    /* consecutive ticks with heat < hot_threshold */
	int residency;          /* device index or POLICY_SYSTEM_RAM */
	uint64_t resident_since_usec; /* when it last moved */
} PolicyRegion;

typedef struct PolicyConfig {
	uint64_t tick_usec;
	uint64_t rate_bytes_per_tick;   /* POLICY_RATE_NONE: unlimited */
	uint64_t hot_threshold;         /* heat at or above: hot */
	unsigned hysteresis_ticks;      /* hot (cold) this many ticks before promotion (demotion) */
	uint64_t min_residence_usec;    /* no demotion or swap out before this */
	unsigned swap_margin_pct;       /* a swap needs heat above the victim's by this much */
	unsigned cold_demote_ticks;     /* 0: cold regions leave only to make room */
} PolicyConfig;

typedef struct PolicySnapshot {
	uint64_t now_usec;
	PolicyConfig config;
	const PolicyDevice *devices;
	size_t n_devices;
	const PolicyTarget *targets;
	size_t n_targets;
	const PolicyRegion *regions;
	size_t n_regions;
} PolicySnapshot;

typedef struct PolicyMove {
	size_t region;          /* index into regions */
	uint64_t target_id;
	uint64_t start, length;
	int destination;        /* device index or POLICY_SYSTEM_RAM */
	PolicyReason reason;
} PolicyMove;

/*
 * Defaults: 1 s tick, no rate limit, threshold 1, 1 tick of hysteresis, 5 s
 * minimum residence (longer than the simulator's 4-tick ping-pong window),
 * swap margin 200% (three times as hot), cold regions leave only to make room.
 */
void policy_config_init(PolicyConfig *c);

/*
 * -EINVAL: a target or region refers to a device or target that is not there,
 * low > high, a bind/hot target without device, a region of zero length.
 * Each region moves at most once per plan, so moves[] needs n_regions entries;
 * fewer is -ENOBUFS. Scratch space is malloc'ed (-ENOMEM); nothing else.
 */
int policy_plan_compute(const PolicySnapshot *s, PolicyMove *moves, size_t max_moves,
			size_t *ret_n_moves);

/*
 * The [Policy] keys of coherentd.conf (and of `cohctl simulate --config`), kept
 * apart from PolicyConfig because the rate becomes bytes per tick only once the
 * tick is known. Parsing lives in policy-settings.c; policy.c stays pure.
 */
typedef struct PolicySettings {
	uint64_t hot_threshold;         /* HotThreshold= */
	unsigned hysteresis_ticks;      /* HysteresisTicks= */
	uint64_t min_residence_usec;    /* MinResidenceSec= */
	unsigned swap_margin_pct;       /* SwapMarginPercent= */
	unsigned cold_demote_ticks;     /* ColdDemoteTicks= */
	uint64_t rate_mib_per_sec;      /* RateLimitMiB=, 0: unlimited */
} PolicySettings;

#define POLICY_RATE_MIB_MAX (UINT64_C(1) << 30)
#define POLICY_HYSTERESIS_MAX 1000U
#define POLICY_SWAP_MARGIN_MAX 10000U
#define POLICY_COLD_DEMOTE_MAX 1000000U

void policy_settings_init(PolicySettings *s);
/*
 * One KEY=VALUE of [Policy]; an empty value restores the default. -ENOENT: not
 * a [Policy] key; -EINVAL: a bad value (*ret_expected, if given, says what was
 * expected). Nothing changes on error.
 */
int policy_settings_set(PolicySettings *s, const char *key, const char *value,
			const char **ret_expected);
void policy_settings_to_config(const PolicySettings *s, uint64_t tick_usec, PolicyConfig *ret);
/* The section's keys, canonical values, one per line. */
int policy_settings_dump(const PolicySettings *s, FILE *f);

const char *policy_reason_to_string(PolicyReason r);
const char *policy_kind_to_string(PolicyKind k);

/* ---- policies as users write them (daemon/policy-spec.c) ---- */

#define POLICY_DEVICE_NAME_MAX 63
#define TARGET_PRIORITY_MIN (-1000)
#define TARGET_PRIORITY_MAX 1000

/*
 * A policy as users write it: "system", "bind:DEV" or "hot:DEV", optionally
 * followed by ",quota=SIZE" and/or ",priority=N" (SIZE as parse_size() in lib/util.h: 1G,
 * 512M, bytes; N in [TARGET_PRIORITY_MIN, TARGET_PRIORITY_MAX]). Examples:
 * "hot:gpu0,quota=2G,priority=10", "system". quota and priority are not
 * allowed with system.
 */
typedef struct PolicySpec {
	PolicyKind kind;
	char device[POLICY_DEVICE_NAME_MAX + 1]; /* "" for system */
	uint64_t quota;         /* POLICY_QUOTA_NONE when not given */
	int priority;           /* 0 when not given */
} PolicySpec;

/*
 * Parse s. -EINVAL with *ret_error (static string, may be NULL) saying what
 * is wrong ("unknown policy kind", "missing device name", "bad quota", ...).
 */
int policy_spec_parse(const char *s, PolicySpec *ret, const char **ret_error);
/* The canonical string ("hot:gpu0,quota=2G,priority=10"); buf of at least 128 bytes. */
char *policy_spec_format(const PolicySpec *p, char *buf, size_t size);
