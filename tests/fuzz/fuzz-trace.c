/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz the access trace parser (daemon/trace.c) that cohctl simulate trusts.
 * Invariants: it accepts or says -EBADMSG (with a line number within the input)
 * and hands out nothing; what it accepts has at least one region, regions of
 * non-zero length that do not overlap, ticks strictly increasing, accesses
 * naming declared regions with counts in range and no region twice in a tick;
 * written back it parses to the same trace. Small accepted traces are then
 * simulated with every policy: hits never exceed accesses, the oracle's hit
 * ratio is at least every other policy's. The same bytes go through the
 * simulate --config parser.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "simulate.h"
#include "trace.h"

#define CHECK(x)                                                                       \
	do {                                                                           \
		if (!(x)) {                                                            \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x); \
			abort();                                                       \
		}                                                                      \
	} while (0)

static void check_simulate(const Trace *t)
{
	SimResult r[_SIM_POLICY_MAX];
	SimConfig c;

	if (t->n_regions > 64 || t->n_ticks == 0 ||
	    t->ticks[t->n_ticks - 1].tick - t->ticks[0].tick > 256)
		return;
	sim_config_init(&c);
	c.device_size = t->regions[0].length * 2;
	for (int p = 0; p < _SIM_POLICY_MAX; p++) {
		int k = sim_run(t, &c, p, &r[p]);

		CHECK(k == 0 || (p == SIM_POLICY_ORACLE && k == -E2BIG));
		if (k < 0)
			return;
		CHECK(r[p].hits <= r[p].accesses);
		CHECK(r[p].bytes_pingpong <= r[p].bytes_moved);
	}
	for (int p = 0; p < _SIM_POLICY_MAX; p++)
		CHECK(r[p].hits <= r[SIM_POLICY_ORACLE].hits);
}

/* The same bytes as a simulate --config file: accepted, or rejected naming a line, unchanged. */
static void fuzz_config(const uint8_t *data, size_t size, unsigned lines)
{
	SimConfig c, before;
	unsigned line = 12345;
	int r;

	sim_config_init(&c);
	before = c;
	r = sim_config_parse((const char *) data, size, &c, &line);
	CHECK(r == 0 || r == -EBADMSG);
	if (r < 0) {
		CHECK(line >= 1 && line <= lines);
		CHECK(memcmp(&c, &before, sizeof(c)) == 0);
		return;
	}
	CHECK(line == 0);
	CHECK(c.tick_usec > 0 && c.pingpong_window > 0 && c.policy.hot_threshold > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Trace *t = (Trace *) 0x1, *t2 = NULL;
	unsigned line = 12345, lines = 1;
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	if (size > 1 << 20)
		return 0;
	for (size_t k = 0; k < size; k++)
		lines += data[k] == '\n';
	fuzz_config(data, size, lines);
	r = trace_parse((const char *) data, size, &t, &line);
	CHECK(r == 0 || r == -EBADMSG || r == -ENOMEM);
	if (r < 0) {
		CHECK(t == (Trace *) 0x1);
		CHECK(line <= lines);
		return 0;
	}
	CHECK(line == 0);
	CHECK(t->n_regions > 0);
	for (size_t i = 0; i < t->n_regions; i++) {
		CHECK(t->regions[i].length > 0);
		for (size_t j = 0; j < i; j++)
			CHECK(t->regions[j].start + t->regions[j].length <= t->regions[i].start ||
			      t->regions[i].start + t->regions[i].length <= t->regions[j].start);
	}
	for (size_t k = 0; k < t->n_ticks; k++) {
		CHECK(k == 0 || t->ticks[k - 1].tick < t->ticks[k].tick);
		CHECK(t->ticks[k].first + t->ticks[k].n <= t->n_accesses);
		for (size_t a = t->ticks[k].first; a < t->ticks[k].first + t->ticks[k].n; a++) {
			CHECK(t->accesses[a].region < t->n_regions);
			CHECK(t->accesses[a].count > 0 && t->accesses[a].count <= TRACE_COUNT_MAX);
			for (size_t b = t->ticks[k].first; b < a; b++)
				CHECK(t->accesses[b].region != t->accesses[a].region);
		}
	}

	f = open_memstream(&text, &len);
	CHECK(f);
	CHECK(trace_write(t, f) == 0);
	CHECK(fclose(f) == 0);
	CHECK(trace_parse(text, len, &t2, NULL) == 0);
	CHECK(t2->n_regions == t->n_regions && t2->n_ticks == t->n_ticks &&
	      t2->n_accesses == t->n_accesses);
	CHECK(memcmp(t2->regions, t->regions, t->n_regions * sizeof(TraceRegion)) == 0);
	for (size_t k = 0; k < t->n_ticks; k++)
		CHECK(t2->ticks[k].tick == t->ticks[k].tick && t2->ticks[k].n == t->ticks[k].n);
	for (size_t a = 0; a < t->n_accesses; a++)
		CHECK(t2->accesses[a].region == t->accesses[a].region &&
		      t2->accesses[a].count == t->accesses[a].count);
	trace_free(t2);
	free(text);

	check_simulate(t);
	trace_free(t);
	return 0;
}
