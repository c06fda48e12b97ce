/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The policy engine, one table row per rule: a snapshot and the exact plan it
 * must produce (order included).
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "policy.h"

#define PG UINT64_C(4096)
#define SYS POLICY_SYSTEM_RAM
#define NONE POLICY_QUOTA_NONE
#define SEC UINT64_C(1000000)
#define MAXN 8

typedef struct Expect {
	size_t region;
	int dest;
	PolicyReason reason;
} Expect;

typedef struct Case {
	const char *name;
	PolicyDevice devices[2];
	size_t n_devices;
	PolicyTarget targets[3];
	size_t n_targets;
	PolicyRegion regions[MAXN];
	size_t n_regions;
	/* Config differences from policy_config_init(), 0 = default. */
	unsigned hysteresis;
	uint64_t rate;
	uint64_t min_residence;
	unsigned cold_demote;
	uint64_t now;
	Expect moves[MAXN];
	size_t n_moves;
} Case;

#define DEV(free_, low_, high_) { .name = "d0", .capacity = 64 * PG, .free = (free_), .low = (low_), .high = (high_) }
#define T(id_, kind_, dev_, quota_, prio_) { .id = (id_), .kind = (kind_), .device = (dev_), .quota = (quota_), .priority = (prio_) }
/* Region n of target t, one page, heat h, hot/cold ticks, residency, since. */
#define R(t_, n_, h_, hot_, cold_, res_, since_) { .target = (t_), .start = 0x100000 + (n_) * PG, .length = PG, .heat = (h_), .hot_ticks = (hot_), .cold_ticks = (cold_), .residency = (res_), .resident_since_usec = (since_) }

static const Case cases[] = {
	{
		.name = "system: every region on a device goes to system RAM",
		.devices = { DEV(60 * PG, 0, 0) }, .n_devices = 1,
		.targets = { T(7, POLICY_KIND_SYSTEM, -1, NONE, 0) }, .n_targets = 1,
		.regions = { R(0, 0, 9, 1, 0, 0, 0), R(0, 1, 9, 1, 0, SYS, 0), R(0, 2, 0, 0, 1, 0, 0) },
		.n_regions = 3,
		.moves = { { 0, SYS, POLICY_REASON_SYSTEM }, { 2, SYS, POLICY_REASON_SYSTEM } },
		.n_moves = 2,
	},
	{
		.name = "bind: address order up to the quota, heat does not matter",
		.devices = { DEV(60 * PG, 0, 0) }, .n_devices = 1,
		.targets = { T(1, POLICY_KIND_BIND, 0, 2 * PG, 0) }, .n_targets = 1,
		.regions = { R(0, 2, 0, 0, 0, SYS, 0), R(0, 0, 0, 0, 0, SYS, 0), R(0, 1, 99, 1, 0, SYS, 0) },
		.n_regions = 3,
		.moves = { { 1, 0, POLICY_REASON_BIND }, { 2, 0, POLICY_REASON_BIND } },
		.n_moves = 2,
	},
	{
		.name = "bind: not below the device's high watermark",
		.devices = { DEV(3 * PG, PG, 2 * PG) }, .n_devices = 1,
		.targets = { T(1, POLICY_KIND_BIND, 0, NONE, 0) }, .n_targets = 1,
		.regions = { R(0, 0, 0, 0, 0, SYS, 0), R(0, 1, 0, 0, 0, SYS, 0) },
		.n_regions = 2,
		.moves = { { 0, 0, POLICY_REASON_BIND } },
		.n_moves = 1,
	},
	{
		.name = "hot: hottest first into the free room",
		.devices = { DEV(2 * PG, 0, 0) }, .n_devices = 1,
		.targets = { T(1, POLICY_KIND_HOT, 0, NONE, 0) }, .n_targets = 1,
		.regions = { R(0, 0, 5, 1, 0, SYS, 0), R(0, 1, 9, 1, 0, SYS, 0), R(0, 2, 7, 1, 0, SYS, 0),
			     R(0, 3, 0, 0, 3, SYS, 0) },
		.n_regions = 4,
		.moves = { { 1, 0, POLICY_REASON_PROMOTE }, { 2, 0, POLICY_REASON_PROMOTE } },
		.n_moves = 2,
	},
	{
		.name = "hot: quota caps promotion",
		.devices = { DEV(10 * PG, 0, 0) }, .n_devices = 1,
		.targets = { T(1, POLICY_KIND_HOT, 0, PG, 0) }, .n_targets = 1,
		.regions = { R(0, 0, 5, 1, 0, SYS, 0), R(0, 1, 9, 1, 0, SYS, 0) },
		.n_regions = 2,
		.moves = { { 1, 0, POLICY_REASON_PROMOTE } },
		.n_moves = 1,
	},
	{
		.name = "hot: hysteresis, not hot for long enough",
		.devices = { DEV(10 * PG, 0, 0) }, .n_devices = 1,
		.targets = { T(1, POLICY_KIND_HOT, 0, NONE, 0) }, .n_targets = 1,
		.regions = { R(0, 0, 50, 1, 0, SYS, 0), R(0, 1, 50, 2, 0, SYS, 0) },
		.n_regions = 2,
		.hysteresis = 2,
		.moves = { { 1, 0, POLICY_REASON_PROMOTE } },
		.n_moves = 1,
	},
	{
		.name = "hot: no swap within the margin (3x)",
		.devices = { DEV(0, 0, 0) }, .n_devices = 1,
		.targets = { T(1, POLICY_KIND_HOT, 0, NONE, 0) }, .n_targets = 1,
		.regions = { R(0, 0, 4, 1, 0, 0, 0), R(0, 1, 12, 1, 0, SYS, 0) },
		.n_regions = 2,
		.now = 100 * SEC,
		.n_moves = 0,
	},
	{
		.name = "hot: swap beyond the margin, demotion first",
		.devices = { DEV(0, 0, 0) }, .n_devices = 1,
		.targets = { T(1, POLICY_KIND_HOT, 0, NONE, 0) }, .n_targets = 1,
		.regions = { R(0, 0, 4, 1, 0, 0, 0), R(0, 1, 13, 1, 0, SYS, 0) },
		.n_regions = 2,
		.now = 100 * SEC,
		.moves = { { 0, SYS, POLICY_REASON_DEMOTE }, { 1, 0, POLICY_REASON_PROMOTE } },
		.n_moves = 2,
	},
	{
		.name = "hot: a cold resident makes room without the margin",
		.devices = { DEV(0, 0, 0) }, .n_devices = 1,
		.targets = { T(1, POLICY_KIND_HOT, 0, NONE, 0) }, .n_targets = 1,
		.regions = { R(0, 0, 0, 0, 1, 0, 0), R(0, 1, 1, 1, 0, SYS, 0) },
		.n_regions = 2,
		.now = 100 * SEC,
		.moves = { { 0, SYS, POLICY_REASON_DEMOTE }, { 1, 0, POLICY_REASON_PROMOTE } },
		.n_moves = 2,
	},
	{
		.name = "hot: minimum residence blocks the swap",
		.devices = { DEV(0, 0, 0) }, .n_devices = 1,
		.targets = { T(1, POLICY_KIND_HOT, 0, NONE, 0) }, .n_targets = 1,
		.regions = { R(0, 0, 0, 0, 1, 0, 96 * SEC), R(0, 1, 100, 1, 0, SYS, 0) },
		.n_regions = 2,
		.now = 100 * SEC,
		.n_moves = 0,
	},
	{
		.name = "hot: cold for cold_demote_ticks is demoted even with room",
		.devices = { DEV(30 * PG, 0, 0) }, .n_devices = 1,
		.targets = { T(1, POLICY_KIND_HOT, 0, NONE, 0) }, .n_targets = 1,
		.regions = { R(0, 0, 0, 0, 3, 0, 0), R(0, 1, 0, 0, 2, 0, 0) },
		.n_regions = 2,
		.cold_demote = 3,
		.now = 100 * SEC,
		.moves = { { 0, SYS, POLICY_REASON_DEMOTE } },
		.n_moves = 1,
	},
	{
		.name = "hot: cold regions stay when there is no need (cold_demote_ticks 0)",
		.devices = { DEV(30 * PG, 0, 0) }, .n_devices = 1,
		.targets = { T(1, POLICY_KIND_HOT, 0, NONE, 0) }, .n_targets = 1,
		.regions = { R(0, 0, 0, 0, 300, 0, 0) },
		.n_regions = 1,
		.now = 100 * SEC,
		.n_moves = 0,
	},
	{
		.name = "hot: over quota, coldest out",
		.devices = { DEV(30 * PG, 0, 0) }, .n_devices = 1,
		.targets = { T(1, POLICY_KIND_HOT, 0, PG, 0) }, .n_targets = 1,
		.regions = { R(0, 0, 5, 1, 0, 0, 0), R(0, 1, 2, 1, 0, 0, 0) },
		.n_regions = 2,
		.moves = { { 1, SYS, POLICY_REASON_DEMOTE } },
		.n_moves = 1,
	},
	{
		.name = "watermarks: below low, lowest priority and coldest first, until high",
		.devices = { DEV(PG, 2 * PG, 3 * PG) }, .n_devices = 1,
		.targets = { T(1, POLICY_KIND_HOT, 0, NONE, 10), T(2, POLICY_KIND_BIND, 0, NONE, 0) },
		.n_targets = 2,
		.regions = { R(0, 0, 1, 1, 0, 0, 0), R(1, 1, 50, 1, 0, 0, 0), R(1, 2, 5, 1, 0, 0, 0),
			     R(0, 3, 0, 0, 9, SYS, 0) },
		.n_regions = 4,
		.moves = { { 2, SYS, POLICY_REASON_EVICT }, { 1, SYS, POLICY_REASON_EVICT } },
		.n_moves = 2,
	},
	{
		.name = "watermarks: at equal heat, the region cold for more ticks goes first",
		.devices = { DEV(PG, 2 * PG, 2 * PG) }, .n_devices = 1,
		.targets = { T(1, POLICY_KIND_HOT, 0, NONE, 0) }, .n_targets = 1,
		.regions = { R(0, 0, 0, 0, 1, 0, 0), R(0, 1, 0, 0, 9, 0, 0), R(0, 2, 3, 4, 0, 0, 0) },
		.n_regions = 3,
		.moves = { { 1, SYS, POLICY_REASON_EVICT } },
		.n_moves = 1,
	},
	{
		.name = "hot: at equal heat, the resident cold for more ticks makes room",
		.devices = { DEV(0, 0, 0) }, .n_devices = 1,
		.targets = { T(1, POLICY_KIND_HOT, 0, NONE, 0) }, .n_targets = 1,
		.regions = { R(0, 0, 0, 0, 2, 0, 0), R(0, 1, 0, 0, 7, 0, 0), R(0, 2, 9, 1, 0, SYS, 0) },
		.n_regions = 3,
		.now = 100 * SEC,
		.moves = { { 1, SYS, POLICY_REASON_DEMOTE }, { 2, 0, POLICY_REASON_PROMOTE } },
		.n_moves = 2,
	},
	{
		.name = "watermarks: at low nothing is evicted",
		.devices = { DEV(2 * PG, 2 * PG, 4 * PG) }, .n_devices = 1,
		.targets = { T(1, POLICY_KIND_HOT, 0, NONE, 0) }, .n_targets = 1,
		.regions = { R(0, 0, 0, 0, 9, 0, 0) },
		.n_regions = 1,
		.n_moves = 0,
	},
	{
		.name = "priority: the higher priority target gets the last free page",
		.devices = { DEV(PG, 0, 0) }, .n_devices = 1,
		.targets = { T(1, POLICY_KIND_HOT, 0, NONE, 0), T(2, POLICY_KIND_HOT, 0, NONE, 5) },
		.n_targets = 2,
		.regions = { R(0, 0, 90, 1, 0, SYS, 0), R(1, 1, 10, 1, 0, SYS, 0) },
		.n_regions = 2,
		.moves = { { 1, 0, POLICY_REASON_PROMOTE } },
		.n_moves = 1,
	},
	{
		.name = "rate limit: plan order kept, the rest dropped",
		.devices = { DEV(10 * PG, 0, 0) }, .n_devices = 1,
		.targets = { T(1, POLICY_KIND_HOT, 0, NONE, 0) }, .n_targets = 1,
		.regions = { R(0, 0, 5, 1, 0, SYS, 0), R(0, 1, 9, 1, 0, SYS, 0), R(0, 2, 7, 1, 0, SYS, 0) },
		.n_regions = 3,
		.rate = 2 * PG + 1,
		.moves = { { 1, 0, POLICY_REASON_PROMOTE }, { 2, 0, POLICY_REASON_PROMOTE } },
		.n_moves = 2,
	},
	{
		.name = "hot: a region on another device is promoted to the target's",
		.devices = { DEV(10 * PG, 0, 0), DEV(10 * PG, 0, 0) }, .n_devices = 2,
		.targets = { T(1, POLICY_KIND_HOT, 1, NONE, 0) }, .n_targets = 1,
		.regions = { R(0, 0, 5, 1, 0, 0, 0) },
		.n_regions = 1,
		.moves = { { 0, 1, POLICY_REASON_PROMOTE } },
		.n_moves = 1,
	},
};

static void build(const Case *c, PolicySnapshot *s)
{
	*s = (PolicySnapshot) {
		.now_usec = c->now,
		.devices = c->devices,
		.n_devices = c->n_devices,
		.targets = c->targets,
		.n_targets = c->n_targets,
		.regions = c->regions,
		.n_regions = c->n_regions,
	};
	policy_config_init(&s->config);
	if (c->hysteresis)
		s->config.hysteresis_ticks = c->hysteresis;
	if (c->rate)
		s->config.rate_bytes_per_tick = c->rate;
	if (c->min_residence)
		s->config.min_residence_usec = c->min_residence;
	s->config.cold_demote_ticks = c->cold_demote;
}

static void test_rules(void **state)
{
	for (size_t k = 0; k < ELEMENTSOF(cases); k++) {
		const Case *c = &cases[k];
		PolicyMove moves[MAXN];
		PolicySnapshot s;
		size_t n = 999;
		int r;

		build(c, &s);
		r = policy_plan_compute(&s, moves, MAXN, &n);
		if (r != 0 || n != c->n_moves)
			fail_msg("%s: r=%d, %zu moves, expected %zu", c->name, r, n, c->n_moves);
		for (size_t m = 0; m < n; m++) {
			const PolicyRegion *reg = &c->regions[moves[m].region];

			if (moves[m].region != c->moves[m].region ||
			    moves[m].destination != c->moves[m].dest ||
			    moves[m].reason != c->moves[m].reason)
				fail_msg("%s: move %zu is region %zu to %d (%s), expected region %zu "
					 "to %d (%s)", c->name, m, moves[m].region,
					 moves[m].destination, policy_reason_to_string(moves[m].reason),
					 c->moves[m].region, c->moves[m].dest,
					 policy_reason_to_string(c->moves[m].reason));
			assert_int_equal(moves[m].start, reg->start);
			assert_int_equal(moves[m].length, reg->length);
			assert_int_equal(moves[m].target_id, c->targets[reg->target].id);
		}
	}
}

/* Same snapshot, same plan; the snapshot is not written to. */
static void test_pure(void **state)
{
	for (size_t k = 0; k < ELEMENTSOF(cases); k++) {
		Case copy = cases[k];
		PolicyMove a[MAXN], b[MAXN];
		PolicySnapshot s;
		size_t na, nb;

		build(&copy, &s);
		assert_int_equal(policy_plan_compute(&s, a, MAXN, &na), 0);
		assert_int_equal(policy_plan_compute(&s, b, MAXN, &nb), 0);
		assert_int_equal(na, nb);
		assert_memory_equal(a, b, na * sizeof(PolicyMove));
		assert_memory_equal(&copy, &cases[k], sizeof(Case));
	}
}

static void test_invalid(void **state)
{
	PolicyDevice dev = DEV(PG, 0, 0);
	PolicyTarget tgt = T(1, POLICY_KIND_HOT, 0, NONE, 0);
	PolicyRegion reg = R(0, 0, 1, 1, 0, SYS, 0);
	PolicySnapshot s = {
		.devices = &dev, .n_devices = 1,
		.targets = &tgt, .n_targets = 1,
		.regions = &reg, .n_regions = 1,
	};
	PolicyMove moves[2];
	size_t n = 77;

	policy_config_init(&s.config);
	assert_int_equal(policy_plan_compute(&s, moves, 0, &n), -ENOBUFS);
	assert_int_equal(policy_plan_compute(&s, moves, 2, NULL), -EINVAL);
	assert_int_equal(policy_plan_compute(NULL, moves, 2, &n), -EINVAL);

	tgt.device = 1;
	assert_int_equal(policy_plan_compute(&s, moves, 2, &n), -EINVAL);
	tgt.device = -1;
	assert_int_equal(policy_plan_compute(&s, moves, 2, &n), -EINVAL);
	tgt.device = 0;
	tgt.kind = _POLICY_KIND_MAX;
	assert_int_equal(policy_plan_compute(&s, moves, 2, &n), -EINVAL);
	tgt.kind = POLICY_KIND_HOT;

	dev.low = 2 * PG;
	assert_int_equal(policy_plan_compute(&s, moves, 2, &n), -EINVAL);
	dev.low = 0;

	reg.length = 0;
	assert_int_equal(policy_plan_compute(&s, moves, 2, &n), -EINVAL);
	reg.length = PG;
	reg.start = UINT64_MAX - 1;
	assert_int_equal(policy_plan_compute(&s, moves, 2, &n), -EINVAL);
	reg.start = 0;
	reg.residency = 3;
	assert_int_equal(policy_plan_compute(&s, moves, 2, &n), -EINVAL);
	reg.residency = SYS;
	reg.target = 1;
	assert_int_equal(policy_plan_compute(&s, moves, 2, &n), -EINVAL);
	reg.target = 0;
	assert_int_equal(n, 77);

	assert_int_equal(policy_plan_compute(&s, moves, 2, &n), 0);
	assert_int_equal(n, 1);
}

static void test_settings(void **state)
{
	PolicySettings st, before;
	PolicyConfig c;
	const char *why = NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	policy_settings_init(&st);
	policy_settings_to_config(&st, 2 * SEC, &c);
	assert_int_equal(c.tick_usec, 2 * SEC);
	assert_int_equal(c.rate_bytes_per_tick, POLICY_RATE_NONE);
	assert_int_equal(c.hot_threshold, 1);
	assert_int_equal(c.swap_margin_pct, 200);

	assert_int_equal(policy_settings_set(&st, "RateLimitMiB", "64", NULL), 0);
	assert_int_equal(policy_settings_set(&st, "HotThreshold", "16", NULL), 0);
	assert_int_equal(policy_settings_set(&st, "MinResidenceSec", "1min", NULL), 0);
	assert_int_equal(policy_settings_set(&st, "ColdDemoteTicks", "9", NULL), 0);
	policy_settings_to_config(&st, SEC / 2, &c);
	assert_int_equal(c.rate_bytes_per_tick, 32 << 20);  /* 64 MiB/s, half a second */
	assert_int_equal(c.hot_threshold, 16);
	assert_int_equal(c.min_residence_usec, 60 * SEC);
	assert_int_equal(c.cold_demote_ticks, 9);

	before = st;
	assert_int_equal(policy_settings_set(&st, "TickSec", "1s", NULL), -ENOENT);
	assert_int_equal(policy_settings_set(&st, "HotThreshold", "0", &why), -EINVAL);
	assert_non_null(why);
	assert_int_equal(policy_settings_set(&st, "HysteresisTicks", "-1", NULL), -EINVAL);
	assert_int_equal(policy_settings_set(&st, "SwapMarginPercent", "50%", NULL), -EINVAL);
	assert_int_equal(policy_settings_set(&st, "RateLimitMiB", "1073741825", NULL), -EINVAL);
	assert_int_equal(policy_settings_set(&st, "MinResidenceSec", "soon", NULL), -EINVAL);
	assert_memory_equal(&st, &before, sizeof(st));

	/* Empty resets to the default; "infinity" is no limit. */
	assert_int_equal(policy_settings_set(&st, "HotThreshold", "", NULL), 0);
	assert_int_equal(st.hot_threshold, 1);
	assert_int_equal(policy_settings_set(&st, "RateLimitMiB", "infinity", NULL), 0);
	assert_int_equal(st.rate_mib_per_sec, 0);

	f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(policy_settings_dump(&st, f), 0);
	fclose(f);
	assert_string_equal(buf, "HotThreshold=1\nHysteresisTicks=1\nMinResidenceSec=1min\n"
			    "SwapMarginPercent=200\nColdDemoteTicks=9\nRateLimitMiB=infinity\n");
	free(buf);
}

static void test_strings(void **state)
{
	assert_string_equal(policy_reason_to_string(POLICY_REASON_EVICT), "evict");
	assert_string_equal(policy_kind_to_string(POLICY_KIND_BIND), "bind");
	assert_null(policy_reason_to_string(_POLICY_REASON_MAX));
	assert_null(policy_kind_to_string(_POLICY_KIND_MAX));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_pure),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_settings),
		cmocka_unit_test(test_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
