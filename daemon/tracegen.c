/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Synthetic access traces: a hot set with phase changes, zipf popularity, and
 * a sequential scan beside a hot set. Deterministic for a given seed
 * (splitmix64), so a trace can be regenerated instead of stored.
 */

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "simulate.h"
#include "util.h"

static const char *const kind_names[_TRACE_GEN_MAX] = {
	[TRACE_GEN_HOTSET] = "hotset",
	[TRACE_GEN_ZIPF] = "zipf",
	[TRACE_GEN_SCAN] = "scan",
};

const char *trace_gen_kind_to_string(TraceGenKind k)
{
	return (unsigned) k < _TRACE_GEN_MAX ? kind_names[k] : NULL;
}

int trace_gen_kind_from_string(const char *s)
{
	for (int k = 0; k < _TRACE_GEN_MAX; k++)
		if (s && streq(s, kind_names[k]))
			return k;
	return -EINVAL;
}

void trace_gen_params_init(TraceGenParams *p, TraceGenKind kind)
{
	*p = (TraceGenParams) {
		.kind = kind,
		.regions = 1024,
		.region_size = UINT64_C(2) << 20,
		.ticks = 200,
		.accesses_per_tick = 20000,
		.seed = 1,
		.hot_regions = 128,
		.hot_percent = 90,
		.phase_ticks = 50,
		.zipf_s_percent = 100,
		.scan_width = 64,
	};
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0 (rejection against modulo bias). */
static uint64_t uniform(uint64_t *state, uint64_t n)
{
	uint64_t limit = UINT64_MAX - UINT64_MAX % n, x;

	do
		x = splitmix64(state);
	while (x >= limit);
	return x % n;
}

static double unit_double(uint64_t *state)
{
	return (double) (splitmix64(state) >> 11) * 0x1.0p-53;
}

/* The first k entries of perm[] become a uniformly chosen k-subset. */
static void partial_shuffle(uint64_t *state, uint32_t *perm, uint32_t n, uint32_t k)
{
	for (uint32_t i = 0; i < k && i < n; i++) {
		uint32_t j = i + (uint32_t) uniform(state, n - i), x = perm[i];

		perm[i] = perm[j];
		perm[j] = x;
	}
}

static int validate(const TraceGenParams *p)
{
	if ((unsigned) p->kind >= _TRACE_GEN_MAX || p->regions == 0 ||
	    p->regions > TRACE_REGIONS_MAX || p->region_size == 0 || p->ticks == 0 ||
	    p->ticks > TRACE_TICK_MAX || p->accesses_per_tick == 0 ||
	    p->accesses_per_tick > (UINT64_C(1) << 32) || p->hot_percent > 100)
		return -EINVAL;
	if (p->region_size > UINT64_MAX / 2 / p->regions)
		return -ERANGE;
	if ((p->kind == TRACE_GEN_HOTSET || p->kind == TRACE_GEN_SCAN) &&
	    (p->hot_regions > p->regions || (p->hot_regions == 0 && p->hot_percent > 0)))
		return -EINVAL;
	if (p->kind == TRACE_GEN_SCAN && (p->scan_width == 0 || p->scan_width > p->regions))
		return -EINVAL;
	if (p->kind == TRACE_GEN_ZIPF && p->zipf_s_percent > 1000)
		return -EINVAL;
	return 0;
}

int trace_generate(const TraceGenParams *p, Trace **ret)
{
	uint64_t state, scan_cursor = 0;
	uint32_t *perm = NULL;
	uint64_t *count = NULL;
	double *cdf = NULL;
	Trace *t = NULL;
	int r;

	if (!p || !ret)
		return -EINVAL;
	r = validate(p);
	if (r < 0)
		return r;
	state = p->seed;
	t = trace_new();
	perm = malloc(p->regions * sizeof(uint32_t));
	count = calloc(p->regions, sizeof(uint64_t));
	if (!t || !perm || !count) {
		r = -ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < p->regions; i++) {
		perm[i] = i;
		/* A gap between regions, as between mappings. */
		r = trace_add_region(t, UINT64_C(0x10000000) + (uint64_t) i * p->region_size * 2,
				     p->region_size);
		if (r < 0)
			goto fail;
	}

	if (p->kind == TRACE_GEN_ZIPF) {
		double sum = 0;

		partial_shuffle(&state, perm, p->regions, p->regions);
		cdf = malloc(p->regions * sizeof(double));
		if (!cdf) {
			r = -ENOMEM;
			goto fail;
		}
		for (uint32_t k = 0; k < p->regions; k++) {
			sum += pow((double) k + 1, -(double) p->zipf_s_percent / 100.0);
			cdf[k] = sum;
		}
		for (uint32_t k = 0; k < p->regions; k++)
			cdf[k] /= sum;
	} else
		partial_shuffle(&state, perm, p->regions, p->hot_regions);

	for (uint64_t tick = 0; tick < p->ticks; tick++) {
		uint64_t hot = p->accesses_per_tick * p->hot_percent / 100;

		memset(count, 0, p->regions * sizeof(uint64_t));
		switch (p->kind) {
		case TRACE_GEN_HOTSET:
			if (tick > 0 && p->phase_ticks > 0 && tick % p->phase_ticks == 0)
				partial_shuffle(&state, perm, p->regions, p->hot_regions);
			for (uint64_t a = 0; a < p->accesses_per_tick; a++)
				if (a < hot)
					count[perm[uniform(&state, p->hot_regions)]]++;
				else
					count[uniform(&state, p->regions)]++;
			break;
		case TRACE_GEN_ZIPF:
			for (uint64_t a = 0; a < p->accesses_per_tick; a++) {
				double u = unit_double(&state);
				uint32_t lo = 0, hi = p->regions - 1;

				while (lo < hi) {
					uint32_t mid = lo + (hi - lo) / 2;

					if (cdf[mid] < u)
						lo = mid + 1;
					else
						hi = mid;
				}
				count[perm[lo]]++;
			}
			break;
		case TRACE_GEN_SCAN: {
			uint64_t rest = p->accesses_per_tick - hot;

			for (uint64_t a = 0; a < hot; a++)
				count[perm[uniform(&state, p->hot_regions)]]++;
			/* The scan touches each region of its window about equally. */
			for (uint32_t w = 0; w < p->scan_width; w++)
				count[(scan_cursor + w) % p->regions] +=
					rest / p->scan_width + (w < rest % p->scan_width);
			scan_cursor = (scan_cursor + p->scan_width) % p->regions;
			break;
		}
		default:
			break;
		}
		r = trace_add_tick(t, tick);
		if (r < 0)
			goto fail;
		for (uint32_t i = 0; i < p->regions; i++)
			if (count[i] > 0) {
				r = trace_add_access(t, i, count[i]);
				if (r < 0)
					goto fail;
			}
	}
	free(perm);
	free(count);
	free(cdf);
	*ret = t;
	return 0;
fail:
	free(perm);
	free(count);
	free(cdf);
	trace_free(t);
	return r;
}
