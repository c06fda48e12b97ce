/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Access traces: what a tracker saw, replayed by `cohctl simulate`. Text, one
 * record per line, fields separated by single spaces or tabs:
 *
 *   # coherentd-trace v1            first line, exactly (the version)
 *   # anything                      a comment; empty lines are ignored
 *   region ID START LENGTH          ID = 0, 1, 2, ... in order; START and LENGTH
 *                                   decimal or 0x hex, LENGTH > 0; regions do not
 *                                   overlap; all regions come before the first tick
 *   tick T                          T strictly increasing; ticks not listed had no
 *                                   accesses
 *   access ID COUNT                 COUNT >= 1 accesses to region ID during the
 *                                   current tick; repeated IDs add up
 *
 * Limits: lines up to TRACE_LINE_MAX bytes, TRACE_REGIONS_MAX regions, tick
 * numbers up to TRACE_TICK_MAX, counts up to 2^48.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TRACE_HEADER "# coherentd-trace v1"
#define TRACE_LINE_MAX 4096
#define TRACE_REGIONS_MAX (UINT32_C(1) << 20)
#define TRACE_TICK_MAX (UINT64_C(1) << 24)
#define TRACE_COUNT_MAX (UINT64_C(1) << 48)

typedef struct TraceRegion {
	uint64_t start, length;
} TraceRegion;

typedef struct TraceAccess {
	uint32_t region;
	uint64_t count;
} TraceAccess;

typedef struct TraceTick {
	uint64_t tick;
	size_t first, n;        /* into accesses[] */
} TraceTick;

typedef struct Trace {
	TraceRegion *regions;
	size_t n_regions;
	TraceTick *ticks;
	size_t n_ticks;
	TraceAccess *accesses;
	size_t n_accesses;
} Trace;

/*
 * Parse buf[0..len). -EBADMSG with *ret_line set to the 1-based offending line
 * (0: the input as a whole, e.g. no region) and nothing handed out; -ENOMEM.
 */
int trace_parse(const char *buf, size_t len, Trace **ret, unsigned *ret_line);
Trace *trace_free(Trace *t);

/* Write t in the format above (what trace_parse reads back to the same trace). */
int trace_write(const Trace *t, FILE *f);

/* Building a trace in code (generators, tests): regions first, then ticks in order. */
Trace *trace_new(void);
int trace_add_region(Trace *t, uint64_t start, uint64_t length);
int trace_add_tick(Trace *t, uint64_t tick);
int trace_add_access(Trace *t, uint32_t region, uint64_t count);

/* Total accesses in the trace. */
uint64_t trace_total_accesses(const Trace *t);
