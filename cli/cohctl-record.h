/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * cohctl record: from the regions a tracker reported per tick (io.coherentd.Record)
 * to an access trace (trace.h) that `cohctl simulate` replays. Pure, unit tested.
 *
 * Tracker regions change between ticks (adaptive split and merge), trace v1 has
 * one fixed set of regions. The trace's regions are therefore the common
 * refinement of every tick's regions: the pieces between consecutive region
 * boundaries of all ticks that at least one tick's region covers. A tick's
 * accesses are, per reported region, the estimated pages accessed,
 * heat (per mille) × pages / 1000 rounded, at least 1 when heat > 0, spread
 * over the pieces of the region in proportion to their length (cumulative
 * rounding, so the pieces' counts add up to the region's estimate exactly).
 */

#include <stddef.h>
#include <stdint.h>

#include "trace.h"

typedef struct RecordedRegion {
	uint64_t start, length;
	uint64_t heat;          /* per mille, 0..1000 */
} RecordedRegion;

typedef struct RecordedTick {
	uint64_t tick;          /* the daemon's tick number */
	RecordedRegion *regions;
	size_t n_regions;
} RecordedTick;

#define RECORD_HEAT_MAX 1000

/* Estimated accessed pages of a region of length bytes with this heat. */
uint64_t record_estimate_pages(uint64_t heat, uint64_t length, uint64_t page_size);

/*
 * Build the trace; trace ticks are the daemon's ticks minus the first one.
 * -EINVAL: a region of length 0 or wrapping around, heat above
 * RECORD_HEAT_MAX, regions of one tick overlapping, tick numbers not strictly
 * increasing; -ENODATA: no region at all; -E2BIG: more pieces than
 * TRACE_REGIONS_MAX or ticks spanning more than TRACE_TICK_MAX; -ENOMEM.
 * The regions of each tick are sorted in place by start.
 */
int record_build_trace(RecordedTick *ticks, size_t n_ticks, uint64_t page_size, Trace **ret);
