/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The common refinement of recorded tracker regions, as an access trace (cohctl-record.h). */

#include <errno.h>
#include <stdlib.h>

#include "cohctl-record.h"
#include "macro.h"

uint64_t record_estimate_pages(uint64_t heat, uint64_t length, uint64_t page_size)
{
	uint64_t pages, est;

	if (heat == 0 || length == 0 || page_size == 0)
		return 0;
	pages = length / page_size + !!(length % page_size);
	/* heat <= 1000 and pages < 2^52: no overflow. */
	est = (MIN(heat, (uint64_t) RECORD_HEAT_MAX) * pages + RECORD_HEAT_MAX / 2) / RECORD_HEAT_MAX;
	return est ?: 1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

	return x < y ? -1 : x > y;
}

static int cmp_region(const void *a, const void *b)
{
	const RecordedRegion *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Index of v in the sorted, duplicate-free b[0..n). v is always there. */
static size_t boundary_index(const uint64_t *b, size_t n, uint64_t v)
{
	size_t lo = 0, hi = n;

	while (lo + 1 < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (b[mid] <= v)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* Cumulative share of est up to offset off of a region of length len, rounded half up. */
static uint64_t cumulative(uint64_t est, uint64_t off, uint64_t len)
{
	return (uint64_t) (((unsigned __int128) est * off * 2 + len) / ((unsigned __int128) len * 2));
}

int record_build_trace(RecordedTick *ticks, size_t n_ticks, uint64_t page_size, Trace **ret)
{
	_cleanup_free_ uint64_t *b = NULL;
	_cleanup_free_ int64_t *cover = NULL;
	_cleanup_free_ uint32_t *piece_id = NULL;
	int64_t depth = 0;
	Trace *t = NULL;
	size_t n_b = 0, total = 0;
	uint32_t n_pieces = 0;
	int r;

	if (page_size == 0)
		return -EINVAL;
	for (size_t i = 0; i < n_ticks; i++) {
		RecordedTick *k = &ticks[i];

		if (i > 0 && k->tick <= ticks[i - 1].tick)
			return -EINVAL;
		if (k->tick - ticks[0].tick > TRACE_TICK_MAX)
			return -E2BIG;
		qsort(k->regions, k->n_regions, sizeof(RecordedRegion), cmp_region);
		for (size_t j = 0; j < k->n_regions; j++) {
			const RecordedRegion *g = &k->regions[j];

			if (g->length == 0 || g->start + g->length < g->start ||
			    g->heat > RECORD_HEAT_MAX)
				return -EINVAL;
			if (j > 0 && k->regions[j - 1].start + k->regions[j - 1].length > g->start)
				return -EINVAL;
		}
		total += k->n_regions;
	}
	if (total == 0)
		return -ENODATA;

	/* Every region boundary of every tick, sorted, once each. */
	b = malloc(total * 2 * sizeof(uint64_t));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < n_ticks; i++)
		for (size_t j = 0; j < ticks[i].n_regions; j++) {
			b[n_b++] = ticks[i].regions[j].start;
			b[n_b++] = ticks[i].regions[j].start + ticks[i].regions[j].length;
		}
	qsort(b, n_b, sizeof(uint64_t), cmp_u64);
	{
		size_t u = 1;

		for (size_t i = 1; i < n_b; i++)
			if (b[i] != b[u - 1])
				b[u++] = b[i];
		n_b = u;
	}

	/* Piece i is [b[i], b[i+1]); it is a trace region when some tick's region covers it. */
	cover = calloc(n_b, sizeof(int64_t));
	piece_id = calloc(n_b, sizeof(uint32_t));
	if (!cover || !piece_id)
		return -ENOMEM;
	for (size_t i = 0; i < n_ticks; i++)
		for (size_t j = 0; j < ticks[i].n_regions; j++) {
			const RecordedRegion *g = &ticks[i].regions[j];

			cover[boundary_index(b, n_b, g->start)]++;
			cover[boundary_index(b, n_b, g->start + g->length)]--;
		}

	t = trace_new();
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i + 1 < n_b; i++) {
		depth += cover[i];
		piece_id[i] = UINT32_MAX;
		if (depth == 0)
			continue;
		if (n_pieces >= TRACE_REGIONS_MAX) {
			r = -E2BIG;
			goto fail;
		}
		r = trace_add_region(t, b[i], b[i + 1] - b[i]);
		if (r < 0)
			goto fail;
		piece_id[i] = n_pieces++;
	}

	for (size_t i = 0; i < n_ticks; i++) {
		const RecordedTick *k = &ticks[i];

		r = trace_add_tick(t, k->tick - ticks[0].tick);
		if (r < 0)
			goto fail;
		for (size_t j = 0; j < k->n_regions; j++) {
			const RecordedRegion *g = &k->regions[j];
			uint64_t est = record_estimate_pages(g->heat, g->length, page_size), prev = 0;
			size_t first = boundary_index(b, n_b, g->start);
			size_t last = boundary_index(b, n_b, g->start + g->length);

			if (est == 0)
				continue;
			for (size_t p = first; p < last; p++) {
				uint64_t cum = cumulative(est, b[p + 1] - g->start, g->length);

				if (cum > prev) {
					r = trace_add_access(t, piece_id[p], cum - prev);
					if (r < 0)
						goto fail;
				}
				prev = cum;
			}
		}
	}
	*ret = t;
	return 0;
fail:
	trace_free(t);
	return r;
}
