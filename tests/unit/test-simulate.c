/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The trace format, the simulator, its oracle on traces whose optimum is known
 * by construction, the baselines' defining behaviour, and the generators.
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
#include "simulate.h"
#include "trace.h"

#define PG UINT64_C(4096)
#define H TRACE_HEADER "\n"

static Trace *parse_ok(const char *text)
{
	Trace *t = NULL;
	unsigned line = 99;

	assert_int_equal(trace_parse(text, strlen(text), &t, &line), 0);
	assert_int_equal(line, 0);
	return t;
}

static void test_trace_parse_good(void **state)
{
	Trace *t = parse_ok(H "# c\n\nregion 0 0x1000 4096\nregion 1 8192 0x2000\n"
			    "tick 3\naccess 1 5\naccess 0 2\naccess 1 1\ntick 7\n"
			    "\ttick\t9 \naccess 0 18");

	assert_int_equal(t->n_regions, 2);
	assert_int_equal(t->regions[0].start, 0x1000);
	assert_int_equal(t->regions[1].length, 8192);
	assert_int_equal(t->n_ticks, 3);
	assert_int_equal(t->ticks[0].tick, 3);
	assert_int_equal(t->ticks[0].n, 2);
	assert_int_equal(t->accesses[0].region, 1);
	assert_int_equal(t->accesses[0].count, 6);   /* repeated ids add up */
	assert_int_equal(t->ticks[1].n, 0);
	assert_int_equal(t->ticks[2].tick, 9);
	assert_int_equal(trace_total_accesses(t), 26);
	trace_free(t);
}

static void test_trace_parse_bad(void **state)
{
	static const struct {
		const char *text;
		unsigned line;
	} bad[] = {
		{ "", 1 },
		{ "# coherentd-trace v2\nregion 0 0 4096\n", 1 },
		{ "# coherentd-trace v1 \nregion 0 0 4096\n", 1 },
		{ H, 0 },                                       /* no region */
		{ H "# only comments\n", 0 },
		{ H "region 1 0 4096\n", 2 },                   /* ids in order from 0 */
		{ H "region 0 0 0\n", 2 },                      /* zero length */
		{ H "region 0 0 4096 9\n", 2 },
		{ H "region 0 -1 4096\n", 2 },
		{ H "region 0 0x 4096\n", 2 },
		{ H "region 0 0xffffffffffffffff 2\n", 2 },     /* wraps */
		{ H "region 0 99999999999999999999 1\n", 2 },   /* > 2^64 */
		{ H "region 0 0 8192\nregion 1 4096 4096\n", 0 }, /* overlap */
		{ H "region 0 0 4096\ntick 1\nregion 1 8192 4096\n", 4 }, /* after a tick */
		{ H "tick 0\n", 2 },                            /* tick before a region */
		{ H "region 0 0 4096\ntick 2\ntick 2\n", 4 },
		{ H "region 0 0 4096\ntick 16777217\n", 3 },   /* TRACE_TICK_MAX + 1 */
		{ H "region 0 0 4096\naccess 0 1\n", 3 },      /* access before a tick */
		{ H "region 0 0 4096\ntick 0\naccess 1 1\n", 4 },
		{ H "region 0 0 4096\ntick 0\naccess 0 0\n", 4 },
		{ H "region 0 0 4096\ntick 0\naccess 0 281474976710657\n", 4 },
		{ H "region 0 0 4096\ntick 0\naccess 0 281474976710656\naccess 0 1\n", 5 },
		{ H "region 0 0 4096\ntick 0\nAccess 0 1\n", 4 },
		{ H "region 0 0 4096\r\n", 2 },
		{ H "region 0 0 4096\nbogus\n", 3 },
	};

	for (size_t k = 0; k < ELEMENTSOF(bad); k++) {
		Trace *t = (Trace *) 0x1;
		unsigned line = 12345;
		int r = trace_parse(bad[k].text, strlen(bad[k].text), &t, &line);

		if (r != -EBADMSG || line != bad[k].line || t != (Trace *) 0x1)
			fail_msg("case %zu: r=%d line=%u, expected -EBADMSG at line %u", k, r, line,
				 bad[k].line);
	}

	/* A NUL in a line, and a line over the limit. */
	{
		static const char nul[] = H "region 0 0 40\0" "96\n";
		char *longl = malloc(TRACE_LINE_MAX + 64);
		Trace *t = NULL;
		unsigned line;

		assert_int_equal(trace_parse(nul, sizeof(nul) - 1, &t, &line), -EBADMSG);
		assert_int_equal(line, 2);
		assert_non_null(longl);
		strcpy(longl, H "region 0 0 4096\n#");
		memset(longl + strlen(longl), 'x', TRACE_LINE_MAX);
		longl[strlen(H "region 0 0 4096\n#") + TRACE_LINE_MAX] = '\0';
		assert_int_equal(trace_parse(longl, strlen(longl), &t, &line), -EBADMSG);
		assert_int_equal(line, 3);
		free(longl);
	}
}

static void test_trace_roundtrip(void **state)
{
	TraceGenParams p;
	Trace *t = NULL, *t2 = NULL;
	char *a = NULL, *b = NULL;
	size_t la = 0, lb = 0;
	FILE *f;

	trace_gen_params_init(&p, TRACE_GEN_HOTSET);
	p.regions = 64;
	p.ticks = 20;
	p.accesses_per_tick = 500;
	p.hot_regions = 8;
	assert_int_equal(trace_generate(&p, &t), 0);
	f = open_memstream(&a, &la);
	assert_int_equal(trace_write(t, f), 0);
	fclose(f);
	assert_int_equal(trace_parse(a, la, &t2, NULL), 0);
	f = open_memstream(&b, &lb);
	assert_int_equal(trace_write(t2, f), 0);
	fclose(f);
	assert_int_equal(la, lb);
	assert_memory_equal(a, b, la);
	free(a);
	free(b);
	trace_free(t);
	trace_free(t2);
}

static void run(const Trace *t, uint64_t device_size, SimPolicy p, SimResult *r)
{
	SimConfig c;

	sim_config_init(&c);
	c.device_size = device_size;
	assert_int_equal(sim_run(t, &c, p, r), 0);
}

/*
 * Equal lengths, device of two regions: the optimum of each tick is its two
 * largest counts. Tick 0: 10+5 of 16; tick 1: 7+7 of 15; tick 2 repeats
 * tick 1. Moves: in r0 r1 (2), then out r0 r1 and in r2 r3 (4), then none.
 */
static void test_oracle_equal_lengths(void **state)
{
	Trace *t = parse_ok(H "region 0 0 4096\nregion 1 4096 4096\nregion 2 8192 4096\n"
			    "region 3 12288 4096\n"
			    "tick 0\naccess 0 10\naccess 1 5\naccess 2 1\n"
			    "tick 1\naccess 2 7\naccess 3 7\naccess 0 1\n"
			    "tick 2\naccess 2 7\naccess 3 7\naccess 0 1\n");
	SimResult r;

	run(t, 2 * PG, SIM_POLICY_ORACLE, &r);
	assert_int_equal(r.accesses, 46);
	assert_int_equal(r.hits, 15 + 14 + 14);
	assert_int_equal(r.bytes_moved, 6 * PG);
	assert_int_equal(r.moves, 6);
	/* r0 and r1 came in at tick 0 and left at tick 1: within the window. */
	assert_int_equal(r.bytes_pingpong, 2 * PG);
	trace_free(t);
}

/*
 * Unequal lengths, where taking the most accessed (or densest) region first is
 * wrong: device 10 pages, A = 6 pages 30 accesses, B and C = 5 pages 20 each.
 * The optimum is B + C = 40 of 70; greedy would take A alone (30).
 */
static void test_oracle_knapsack(void **state)
{
	Trace *t = parse_ok(H "region 0 0 24576\nregion 1 0x100000 20480\nregion 2 0x200000 20480\n"
			    "tick 0\naccess 0 30\naccess 1 20\naccess 2 20\n");
	SimResult r;

	run(t, 10 * PG, SIM_POLICY_ORACLE, &r);
	assert_int_equal(r.hits, 40);
	assert_int_equal(r.accesses, 70);
	assert_int_equal(r.bytes_moved, 10 * PG);

	/* Device of 11 pages: A + B (6 + 5) = 50; of 16 all; of 4 none fits. */
	run(t, 11 * PG, SIM_POLICY_ORACLE, &r);
	assert_int_equal(r.hits, 50);
	run(t, 16 * PG, SIM_POLICY_ORACLE, &r);
	assert_int_equal(r.hits, 70);
	run(t, 4 * PG, SIM_POLICY_ORACLE, &r);
	assert_int_equal(r.hits, 0);
	assert_int_equal(r.bytes_moved, 0);
	trace_free(t);
}

/* Ties go to what is already on the device: no move for no gain. */
static void test_oracle_ties_stay(void **state)
{
	Trace *t = parse_ok(H "region 0 0 4096\nregion 1 4096 4096\n"
			    "tick 0\naccess 0 5\ntick 1\naccess 0 3\naccess 1 3\n"
			    "tick 2\naccess 1 3\naccess 0 3\ntick 3\n");
	SimResult r;

	run(t, PG, SIM_POLICY_ORACLE, &r);
	assert_int_equal(r.hits, 11);
	assert_int_equal(r.bytes_moved, PG);
	trace_free(t);
}

/*
 * A stable hot set that fits: ours misses only the first tick (it learns from
 * it), moves each hot region once, never back.
 */
static void test_ours_stable(void **state)
{
	char text[4096];
	size_t l = 0;
	Trace *t;
	SimResult r, o;

	l += snprintf(text + l, sizeof(text) - l, H);
	for (int i = 0; i < 8; i++)
		l += snprintf(text + l, sizeof(text) - l, "region %d %d 4096\n", i, i * 4096);
	for (int k = 0; k < 10; k++)
		l += snprintf(text + l, sizeof(text) - l, "tick %d\naccess 0 10\naccess 1 10\n", k);
	t = parse_ok(text);

	run(t, 2 * PG, SIM_POLICY_OURS, &r);
	assert_int_equal(r.accesses, 200);
	assert_int_equal(r.hits, 180);
	assert_int_equal(r.bytes_moved, 2 * PG);
	assert_int_equal(r.bytes_pingpong, 0);
	assert_int_equal(r.ticks, 10);
	run(t, 2 * PG, SIM_POLICY_ORACLE, &o);
	assert_int_equal(o.hits, 200);
	assert_int_equal(o.bytes_moved, 2 * PG);
	trace_free(t);
}

/*
 * Two regions taking turns on a one-region device: LRU faults each in after
 * every access and ping-pongs (17 of 19 moves reverse one made a tick before);
 * ours' minimum residence keeps the first one, so it moves once.
 */
static void test_pingpong(void **state)
{
	char text[4096];
	size_t l = 0;
	Trace *t;
	SimResult r;

	l += snprintf(text + l, sizeof(text) - l, H "region 0 0 4096\nregion 1 4096 4096\n");
	for (int k = 0; k < 10; k++)
		l += snprintf(text + l, sizeof(text) - l, "tick %d\naccess %d 4\n", k, k % 2);
	t = parse_ok(text);

	run(t, PG, SIM_POLICY_LRU, &r);
	assert_int_equal(r.hits, 0);
	assert_int_equal(r.moves, 19);
	assert_int_equal(r.bytes_pingpong, 17 * PG);

	run(t, PG, SIM_POLICY_OURS, &r);
	assert_int_equal(r.bytes_pingpong, 0);
	assert_true(r.moves <= 3);
	trace_free(t);
}

/* The rate limit caps bytes per tick for ours and the baselines, not the oracle. */
static void test_rate_limit(void **state)
{
	TraceGenParams p;
	SimResult r, u;
	SimConfig c;
	Trace *t;

	trace_gen_params_init(&p, TRACE_GEN_HOTSET);
	p.regions = 256;
	p.region_size = 256 * 1024;
	p.ticks = 40;
	p.hot_regions = 32;
	p.phase_ticks = 10;
	assert_int_equal(trace_generate(&p, &t), 0);
	sim_config_init(&c);
	c.device_size = 64 * p.region_size;
	c.policy.rate_mib_per_sec = 1;         /* 4 regions per 1 s tick */
	for (int k = 0; k < _SIM_POLICY_MAX; k++) {
		assert_int_equal(sim_run(t, &c, k, &r), 0);
		if (k == SIM_POLICY_ORACLE)
			continue;
		assert_true(r.bytes_moved <= r.ticks * (UINT64_C(1) << 20));
	}
	c.policy.rate_mib_per_sec = 0;
	assert_int_equal(sim_run(t, &c, SIM_POLICY_OURS, &u), 0);
	c.policy.rate_mib_per_sec = 1;
	assert_int_equal(sim_run(t, &c, SIM_POLICY_OURS, &r), 0);
	assert_true(u.bytes_moved > 40 * (UINT64_C(1) << 20));
	assert_true(r.hits < u.hits);
	trace_free(t);
}

/* On every generated kind, nothing beats the oracle's hits; defaults are sane. */
static void test_oracle_bound(void **state)
{
	for (int kind = 0; kind < _TRACE_GEN_MAX; kind++) {
		TraceGenParams p;
		SimResult r[_SIM_POLICY_MAX];
		Trace *t;

		trace_gen_params_init(&p, kind);
		p.regions = 200;
		p.ticks = 60;
		p.accesses_per_tick = 3000;
		p.hot_regions = 20;
		p.phase_ticks = 20;
		p.scan_width = 10;
		assert_int_equal(trace_generate(&p, &t), 0);
		for (int k = 0; k < _SIM_POLICY_MAX; k++)
			run(t, 50 * p.region_size, k, &r[k]);
		for (int k = 0; k < _SIM_POLICY_MAX; k++) {
			assert_int_equal(r[k].accesses, 60 * 3000);
			assert_true(r[k].hits <= r[SIM_POLICY_ORACLE].hits);
			assert_true(r[k].bytes_pingpong <= r[k].bytes_moved);
		}
		/* Ours within 10% of the optimum on these small traces. */
		assert_true(r[SIM_POLICY_OURS].hit_ratio >= 0.85 * r[SIM_POLICY_ORACLE].hit_ratio);
		trace_free(t);
	}
}

/* A trace whose replay would take hours is refused up front. */
static void test_too_large(void **state)
{
	Trace *t = trace_new();
	SimResult r = { .hits = 77 };
	SimConfig c;

	assert_non_null(t);
	for (uint32_t i = 0; i < 2000; i++)
		assert_int_equal(trace_add_region(t, (uint64_t) i * PG, PG), 0);
	assert_int_equal(trace_add_tick(t, 0), 0);
	assert_int_equal(trace_add_access(t, 0, 1), 0);
	assert_int_equal(trace_add_tick(t, TRACE_TICK_MAX), 0);
	sim_config_init(&c);
	for (int k = 0; k < _SIM_POLICY_MAX; k++)
		assert_int_equal(sim_run(t, &c, k, &r), -E2BIG);
	assert_int_equal(r.hits, 77);
	trace_free(t);
}

static char *written(const Trace *t, size_t *ret_len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, ret_len);

	assert_non_null(f);
	assert_int_equal(trace_write(t, f), 0);
	fclose(f);
	return buf;
}

static void test_generators(void **state)
{
	for (int kind = 0; kind < _TRACE_GEN_MAX; kind++) {
		TraceGenParams p;
		Trace *a, *b, *c;
		char *ta, *tb, *tc;
		size_t la, lb, lc;

		trace_gen_params_init(&p, kind);
		p.regions = 100;
		p.ticks = 30;
		p.accesses_per_tick = 1000;
		p.hot_regions = 10;
		p.scan_width = 7;
		assert_int_equal(trace_generate(&p, &a), 0);
		assert_int_equal(trace_generate(&p, &b), 0);
		p.seed = 2;
		assert_int_equal(trace_generate(&p, &c), 0);
		ta = written(a, &la);
		tb = written(b, &lb);
		tc = written(c, &lc);
		assert_int_equal(la, lb);
		assert_memory_equal(ta, tb, la);
		if (kind != TRACE_GEN_SCAN || p.hot_percent > 0)
			assert_true(la != lc || memcmp(ta, tc, la) != 0);
		assert_int_equal(a->n_regions, 100);
		assert_int_equal(a->n_ticks, 30);
		assert_int_equal(trace_total_accesses(a), 30 * 1000);
		for (size_t k = 0; k < a->n_ticks; k++) {
			uint64_t sum = 0;

			for (size_t x = a->ticks[k].first; x < a->ticks[k].first + a->ticks[k].n; x++)
				sum += a->accesses[x].count;
			assert_int_equal(sum, 1000);
		}
		free(ta);
		free(tb);
		free(tc);
		trace_free(a);
		trace_free(b);
		trace_free(c);
	}

	/* Hot set: at least hot_percent of a tick's accesses land on hot_regions regions. */
	{
		TraceGenParams p;
		Trace *t;
		uint64_t top[10] = { 0 };

		trace_gen_params_init(&p, TRACE_GEN_HOTSET);
		p.regions = 100;
		p.ticks = 1;
		p.accesses_per_tick = 10000;
		p.hot_regions = 10;
		assert_int_equal(trace_generate(&p, &t), 0);
		for (size_t x = 0; x < t->n_accesses; x++) {
			uint64_t v = t->accesses[x].count;

			for (int k = 0; k < 10; k++)
				if (v > top[k]) {
					uint64_t s = top[k];

					top[k] = v;
					v = s;
				}
		}
		{
			uint64_t sum = 0;

			for (int k = 0; k < 10; k++)
				sum += top[k];
			assert_true(sum >= 9000);
		}
		trace_free(t);
	}

	/* Scan: the window moves by scan_width each tick. */
	{
		TraceGenParams p;
		Trace *t;

		trace_gen_params_init(&p, TRACE_GEN_SCAN);
		p.regions = 10;
		p.ticks = 3;
		p.accesses_per_tick = 40;
		p.hot_percent = 0;
		p.hot_regions = 0;
		p.scan_width = 4;
		assert_int_equal(trace_generate(&p, &t), 0);
		assert_int_equal(t->ticks[1].n, 4);
		assert_int_equal(t->accesses[t->ticks[1].first].region, 4);
		assert_int_equal(t->accesses[t->ticks[1].first].count, 10);
		/* Tick 2 wraps: 8, 9, 0, 1 (written in region order). */
		assert_int_equal(t->accesses[t->ticks[2].first].region, 0);
		trace_free(t);
	}
}

static void test_generator_params(void **state)
{
	TraceGenParams p;
	Trace *t = (Trace *) 0x1;

	trace_gen_params_init(&p, TRACE_GEN_HOTSET);
	p.hot_regions = p.regions + 1;
	assert_int_equal(trace_generate(&p, &t), -EINVAL);
	trace_gen_params_init(&p, TRACE_GEN_SCAN);
	p.scan_width = 0;
	assert_int_equal(trace_generate(&p, &t), -EINVAL);
	trace_gen_params_init(&p, TRACE_GEN_ZIPF);
	p.regions = 0;
	assert_int_equal(trace_generate(&p, &t), -EINVAL);
	trace_gen_params_init(&p, TRACE_GEN_ZIPF);
	p.hot_percent = 101;
	assert_int_equal(trace_generate(&p, &t), -EINVAL);
	assert_ptr_equal(t, (Trace *) 0x1);
	assert_int_equal(trace_gen_kind_from_string("zipf"), TRACE_GEN_ZIPF);
	assert_int_equal(trace_gen_kind_from_string("Zipf"), -EINVAL);
	assert_int_equal(trace_gen_kind_from_string(NULL), -EINVAL);
}

static void test_config(void **state)
{
	static const char good[] =
		"[Daemon]\nTickSec=99\nUnknown=ignored: coherentd judges its own keys\n"
		"[Device gpu0]\nNode=1\n"
		"[Policy]\n# comment\n HotThreshold = 3 \nRateLimitMiB=64\n"
		"HysteresisTicks=2\nMinResidenceSec=2s\nSwapMarginPercent=50\n"
		"ColdDemoteTicks=4\n"
		"[Simulate]\nTickSec=500ms\nPingPongWindowTicks=8\nDeviceSize=1G\n";
	static const struct {
		const char *text;
		unsigned line;
	} bad[] = {
		{ "[Simulate]\nTickSec=0\n", 2 },
		{ "[Daemon]\nTickSec=fast\n", 2 },
		{ "[Policy]\nTickSec=1s\n", 2 },             /* the tick is not a [Policy] key */
		{ "[Policy]\nHysteresisTicks=1001\n", 2 },
		{ "[Policy]\nSwapMarginPercent=10001\n", 2 },
		{ "[Policy]\nRateLimitMiB=1073741825\n", 2 },
		{ "[Simulate]\nHotThreshold=3\n", 2 },
		{ "[Policy]\nHotThreshold=0\n", 2 },
		{ "[Policy]\nRateLimitMiB=-1\n", 2 },
		{ "[Policy]\nBogus=1\n", 2 },
		{ "[Policy]\nno equals sign\n", 2 },
		{ "[Policy\n", 1 },
		{ "[Simulate]\n\nDeviceSize=0\n", 3 },
		{ "[Simulate]\nPingPongWindowTicks=0\n", 2 },
		{ "[Daemon]\nLogLevel=debug\nTickSec=never\n", 3 },
	};
	SimConfig c, before;
	unsigned line = 7;

	sim_config_init(&c);
	assert_int_equal(sim_config_parse(good, strlen(good), &c, &line), 0);
	assert_int_equal(line, 0);
	assert_int_equal(c.tick_usec, 500000);
	assert_int_equal(c.policy.hot_threshold, 3);
	assert_int_equal(c.policy.hysteresis_ticks, 2);
	assert_int_equal(c.policy.min_residence_usec, 2000000);
	assert_int_equal(c.policy.rate_mib_per_sec, 64);
	assert_int_equal(c.policy.swap_margin_pct, 50);
	assert_int_equal(c.policy.cold_demote_ticks, 4);
	assert_int_equal(c.pingpong_window, 8);
	assert_int_equal(c.device_size, UINT64_C(1) << 30);

	/* coherentd.conf's own tick; its other [Daemon] keys are not ours to judge. */
	sim_config_init(&c);
	assert_int_equal(sim_config_parse("[Daemon]\nLogLevel=debug\nTickSec=2s\n[Device gpu0]\nNode=3\n",
					  strlen("[Daemon]\nLogLevel=debug\nTickSec=2s\n[Device gpu0]\nNode=3\n"),
					  &c, &line), 0);
	assert_int_equal(c.tick_usec, 2000000);

	for (size_t k = 0; k < ELEMENTSOF(bad); k++) {
		sim_config_init(&c);
		before = c;
		if (sim_config_parse(bad[k].text, strlen(bad[k].text), &c, &line) != -EBADMSG ||
		    line != bad[k].line)
			fail_msg("case %zu: line %u, expected -EBADMSG at %u", k, line, bad[k].line);
		assert_memory_equal(&c, &before, sizeof(c));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trace_parse_good),
		cmocka_unit_test(test_trace_parse_bad),
		cmocka_unit_test(test_trace_roundtrip),
		cmocka_unit_test(test_oracle_equal_lengths),
		cmocka_unit_test(test_oracle_knapsack),
		cmocka_unit_test(test_oracle_ties_stay),
		cmocka_unit_test(test_ours_stable),
		cmocka_unit_test(test_pingpong),
		cmocka_unit_test(test_rate_limit),
		cmocka_unit_test(test_oracle_bound),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_generators),
		cmocka_unit_test(test_generator_params),
		cmocka_unit_test(test_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
