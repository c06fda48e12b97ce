/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The tracker engine (tracker.h): per pid, regions fitted to the anonymous
 * private mappings, heat from DAMON (tracker-damon.c) or from cohmem SAMPLE
 * windows, and the pure region helpers.
 *
 * Sampling windows: at the end of a tick every region that is to be sampled
 * gets a window of window_pages pages at a random place whose accessed bits
 * are cleared (SAMPLE with clear). At the next tick each window is read and
 * cleared again: its young pages per mille become the heat of the region
 * that holds the window then. Reading clears, so a window just read is ready
 * for the next tick: a region that still holds one keeps it (for up to
 * TRACKER_WINDOW_TICKS ticks) instead of paying a second call for a new one. Windows are kept apart from the regions so
 * that split, merge, mapping changes and DAMON's re-splitting in between
 * do not lose them. The sample tracker samples every region this way; the
 * damon tracker only the regions on a cohmem pool. A pid's windows go to the
 * backend in batches of BACKEND_SAMPLE_WINDOWS_MAX (sample_windows(): one
 * cohmem SAMPLE each, one TLB flush): a call to read the old windows and one
 * to clear the new ones per tick, for up to that many regions.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "tracker.h"
#include "util.h"

#define TRACKER_PAGE UINT64_C(4096)
#define TRACKER_WINDOW_PAGES_MAX 4096U
/*
 * A window read (and cleared) at a tick is ready for the next one: a region
 * that still holds it keeps it for up to this many ticks, one SAMPLE call a
 * tick instead of two, before a new random place is drawn.
 */
#define TRACKER_WINDOW_TICKS 4U
/* DAMON mode: regions in a pool are at most this big (a window each). */
#define TRACKER_POOL_REGION_BYTES (UINT64_C(2) << 20)
/* Neighbours whose heat differs by at most this much (per mille) merge. */
#define TRACKER_MERGE_THRESHOLD 100U

typedef struct TrackerWindow {
	uint64_t start, pages;
	unsigned ticks;                 /* ticks it has been read for */
	bool checked;                   /* read and cleared this tick */
} TrackerWindow;

typedef struct TrackerPid {
	pid_t pid;
	bool gone;
	TrackerRegion *regions;
	size_t n_regions;
	TrackerWindow *windows;         /* cleared at the end of the last tick */
	size_t n_windows;
} TrackerPid;

struct TrackerEngine {
	char *root;
	TrackerParams params;
	bool have_damon;
	TrackerDamon *damon;            /* started at the first damon tick */
	BackendRef *sampler;
	TrackerPid *pids;
	size_t n_pids;
	TrackerTickStats stats;
	uint64_t seed;
};

static const char *const kind_table[_TRACKER_KIND_MAX] = {
	[TRACKER_NONE] = "none",
	[TRACKER_SAMPLE] = "sample",
	[TRACKER_DAMON] = "damon",
};

const char *tracker_kind_to_string(TrackerKind k)
{
	return k >= 0 && k < _TRACKER_KIND_MAX ? kind_table[k] : NULL;
}

int tracker_kind_from_string(const char *s)
{
	if (!s)
		return -EINVAL;
	if (streq(s, "auto"))
		return -1;
	for (int k = 0; k < _TRACKER_KIND_MAX; k++)
		if (streq(s, kind_table[k]))
			return k;
	return -EINVAL;
}

void tracker_params_init(TrackerParams *p)
{
	*p = (TrackerParams) {
		.kind = -1,
		.min_regions = 10,
		.max_regions = 1000,
		.window_pages = 16,
		.tick_usec = USEC_PER_SEC,
		.seed = UINT64_C(0x9e3779b97f4a7c15),
	};
}

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s ?: UINT64_C(0x9e3779b97f4a7c15);

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* ---- pure helpers ---- */

static void region_init(TrackerRegion *r, uint64_t start, uint64_t length)
{
	*r = (TrackerRegion) {
		.start = start,
		.length = length,
		.residency = POLICY_SYSTEM_RAM,
	};
}

int tracker_regions_fit(TrackerRegion **regions, size_t *n, const uint64_t (*maps)[2],
			size_t n_maps)
{
	TrackerRegion *old = *regions, *out = NULL;
	size_t n_old = *n, n_out = 0, alloc = 0, j = 0;

	for (size_t m = 0; m < n_maps; m++) {
		uint64_t pos = maps[m][0], end = maps[m][1];

		if (pos >= end || (m > 0 && pos < maps[m - 1][1]))
			return free(out), -EINVAL;
		/* Old regions are sorted: skip those that end before this mapping. */
		while (j < n_old && old[j].start + old[j].length <= pos)
			j++;
		while (pos < end) {
			TrackerRegion piece;
			uint64_t piece_end;

			if (j < n_old && old[j].start <= pos) {
				/* Covered by old[j] from pos on. */
				piece = old[j];
				piece_end = MIN(old[j].start + old[j].length, end);
			} else {
				/* A hole up to the next region or the mapping's end. */
				piece_end = j < n_old ? MIN(old[j].start, end) : end;
				region_init(&piece, pos, 0);
			}
			piece.start = pos;
			piece.length = piece_end - pos;
			if (n_out == alloc) {
				size_t na = alloc ? alloc * 2 : 16;
				TrackerRegion *no = realloc(out, na * sizeof(*out));

				if (!no)
					return free(out), -ENOMEM;
				out = no;
				alloc = na;
			}
			out[n_out++] = piece;
			pos = piece_end;
			if (j < n_old && old[j].start + old[j].length <= pos)
				j++;
		}
	}
	free(old);
	*regions = out;
	*n = n_out;
	return 0;
}

static void region_merge_into(TrackerRegion *a, const TrackerRegion *b, uint64_t page_size)
{
	uint64_t la = a->length, lb = b->length;

	/* Size-weighted heat, so density stays comparable. */
	a->heat = (a->heat * (la / page_size) + b->heat * (lb / page_size)) /
		  ((la + lb) / page_size);
	a->length = la + lb;
	a->on_cohmem = a->on_cohmem || b->on_cohmem;
	if (b->resident_since_usec < a->resident_since_usec)
		a->resident_since_usec = b->resident_since_usec;
	a->hot_ticks = MIN(a->hot_ticks, b->hot_ticks);
	a->cold_ticks = MIN(a->cold_ticks, b->cold_ticks);
}

int tracker_regions_adapt(TrackerRegion **regions, size_t *n, unsigned min_regions,
			  unsigned max_regions, uint64_t merge_threshold, uint64_t min_pages,
			  uint64_t page_size, uint64_t *seed)
{
	TrackerRegion *v = *regions;
	size_t k = *n, out;
	uint64_t total = 0, sz_limit;

	if (page_size == 0 || min_pages == 0 || max_regions < 2 || min_regions > max_regions)
		return -EINVAL;
	for (size_t i = 0; i < k; i++)
		total += v[i].length;
	/* As DAMON: no merged region above total / min_regions, so min_regions stay possible. */
	sz_limit = MAX(total / MAX(min_regions, 1U), page_size);

	/* Merge, left to right. */
	out = 0;
	for (size_t i = 0; i < k; i++) {
		if (out > 0) {
			TrackerRegion *p = &v[out - 1];
			uint64_t d = p->heat > v[i].heat ? p->heat - v[i].heat : v[i].heat - p->heat;
			size_t remaining = out + (k - i);

			if (p->start + p->length == v[i].start && p->residency == v[i].residency &&
			    d <= merge_threshold && p->length + v[i].length <= sz_limit &&
			    remaining > min_regions) {
				region_merge_into(p, &v[i], page_size);
				continue;
			}
		}
		v[out++] = v[i];
	}
	k = out;

	/* Split: one pass, each region at most once (DAMON's pace), up to max_regions. */
	if (k < max_regions / 2) {
		size_t budget = MIN(k, (size_t) max_regions - k), w = 0;
		TrackerRegion *nv = malloc((k + budget) * sizeof(*nv) ?: 1);

		if (!nv) {
			*regions = v;
			*n = k;
			return -ENOMEM;
		}
		for (size_t i = 0; i < k; i++) {
			uint64_t pages = v[i].length / page_size;

			if (budget > 0 && pages >= 2 * min_pages) {
				uint64_t cut = min_pages + xorshift64(seed) % (pages - 2 * min_pages + 1);

				nv[w] = v[i];
				nv[w].length = cut * page_size;
				nv[w + 1] = v[i];
				nv[w + 1].start = v[i].start + cut * page_size;
				nv[w + 1].length = v[i].length - cut * page_size;
				w += 2;
				budget--;
			} else
				nv[w++] = v[i];
		}
		free(v);
		v = nv;
		k = w;
	}
	*regions = v;
	*n = k;
	return 0;
}

int tracker_regions_keep_pool(TrackerRegion **regions, size_t *n, const TrackerRegion *old,
			      size_t n_old)
{
	TrackerRegion *v = *regions, *out;
	size_t n_out = 0, n_pool = 0, j = 0;
	uint64_t covered = 0;   /* end of the last pool region taken */

	for (size_t k = 0; k < n_old; k++)
		n_pool += old[k].on_cohmem;
	if (n_pool == 0)
		return 0;
	/* Each pool region cuts at most one region in two. */
	out = calloc(*n + 2 * n_pool, sizeof(*out));
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i <= *n; i++) {
		uint64_t end = i < *n ? v[i].start + v[i].length : UINT64_MAX;
		uint64_t pos = i < *n ? MAX(v[i].start, covered) : end;

		for (;;) {
			while (j < n_old && !old[j].on_cohmem)
				j++;
			if (j == n_old || old[j].start >= end)
				break;
			if (old[j].start > pos) {
				out[n_out] = v[i];
				out[n_out].start = pos;
				out[n_out++].length = old[j].start - pos;
			}
			out[n_out++] = old[j];
			covered = old[j].start + old[j].length;
			pos = MAX(pos, covered);
			j++;
		}
		if (i < *n && pos < end) {
			out[n_out] = v[i];
			out[n_out].start = pos;
			out[n_out++].length = end - pos;
		}
	}
	free(v);
	*regions = out;
	*n = n_out;
	return 0;
}

void tracker_regions_inherit(TrackerRegion *new_regions, size_t n_new,
			     const TrackerRegion *old_regions, size_t n_old)
{
	size_t j = 0;

	for (size_t i = 0; i < n_new; i++) {
		TrackerRegion *r = &new_regions[i];
		uint64_t s = r->start, e = r->start + r->length, best = 0;
		const TrackerRegion *from = NULL;

		while (j < n_old && old_regions[j].start + old_regions[j].length <= s)
			j++;
		for (size_t k = j; k < n_old && old_regions[k].start < e; k++) {
			uint64_t os = MAX(s, old_regions[k].start);
			uint64_t oe = MIN(e, old_regions[k].start + old_regions[k].length);

			if (oe > os && oe - os > best) {
				best = oe - os;
				from = &old_regions[k];
			}
		}
		if (from) {
			r->residency = from->residency;
			r->on_cohmem = from->on_cohmem;
			r->resident_since_usec = from->resident_since_usec;
			r->hot_ticks = from->hot_ticks;
			r->cold_ticks = from->cold_ticks;
		} else {
			r->residency = POLICY_SYSTEM_RAM;
			r->on_cohmem = false;
			r->resident_since_usec = 0;
			r->hot_ticks = r->cold_ticks = 0;
		}
	}
}

/*
 * Split the largest region in halves until there are min_regions (DAMON's
 * own regions also cover file mappings and gaps: cut to the anonymous
 * mappings, fewer may remain). Halves keep the state and heat.
 */
static int regions_split_to_min(TrackerRegion **regions, size_t *n, unsigned min_regions)
{
	while (*n < min_regions) {
		TrackerRegion *v = *regions, *nv;
		size_t big = 0;
		uint64_t half;

		for (size_t i = 1; i < *n; i++)
			if (v[i].length > v[big].length)
				big = i;
		if (*n == 0 || v[big].length < 2 * TRACKER_PAGE)
			return 0;
		nv = realloc(v, (*n + 1) * sizeof(*v));
		if (!nv)
			return -ENOMEM;
		v = nv;
		half = v[big].length / TRACKER_PAGE / 2 * TRACKER_PAGE;
		memmove(v + big + 1, v + big, (*n - big) * sizeof(*v));
		v[big].length = half;
		v[big + 1].start += half;
		v[big + 1].length -= half;
		*regions = v;
		(*n)++;
	}
	return 0;
}

/* ---- the engine ---- */

int tracker_engine_new(const char *root, const TrackerParams *p, TrackerEngine **ret)
{
	TrackerEngine *e;

	if (!p || p->kind < -1 || p->kind >= _TRACKER_KIND_MAX || p->min_regions < 1 ||
	    p->max_regions < 2 || p->min_regions > p->max_regions || p->window_pages == 0 ||
	    p->window_pages > TRACKER_WINDOW_PAGES_MAX || p->tick_usec == 0)
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->root = strdup(root ?: "/");
	if (!e->root) {
		free(e);
		return -ENOMEM;
	}
	e->params = *p;
	e->seed = p->seed ?: 1;
	e->have_damon = tracker_damon_available(e->root);
	/* auto leaves a DAMON that is in use alone; damon asked for says -EBUSY at its tick */
	if (p->kind < 0 && e->have_damon && tracker_damon_busy(e->root))
		e->have_damon = false;
	if (p->kind == TRACKER_DAMON && !e->have_damon) {
		free(e->root);
		free(e);
		return -EOPNOTSUPP;
	}
	*ret = e;
	return 0;
}

static void pid_done(TrackerPid *t)
{
	free(t->regions);
	free(t->windows);
	*t = (TrackerPid) {};
}

TrackerEngine *tracker_engine_free(TrackerEngine *e)
{
	if (!e)
		return NULL;
	tracker_damon_free(e->damon);
	backend_ref_unref(e->sampler);
	for (size_t i = 0; i < e->n_pids; i++)
		pid_done(&e->pids[i]);
	free(e->pids);
	free(e->root);
	free(e);
	return NULL;
}

TrackerKind tracker_engine_kind(const TrackerEngine *e)
{
	if (e->params.kind >= 0)
		return (TrackerKind) e->params.kind;
	if (e->have_damon)
		return TRACKER_DAMON;
	return e->sampler && e->sampler->ops->sample ? TRACKER_SAMPLE : TRACKER_NONE;
}

void tracker_engine_set_sampler(TrackerEngine *e, BackendRef *sampler)
{
	if (sampler)
		backend_ref_ref(sampler);
	backend_ref_unref(e->sampler);
	e->sampler = sampler;
	if (!sampler)
		/* Windows cleared through the old backend mean nothing to a new one. */
		for (size_t i = 0; i < e->n_pids; i++) {
			e->pids[i].windows = mfree(e->pids[i].windows);
			e->pids[i].n_windows = 0;
		}
}

int tracker_engine_set_pids(TrackerEngine *e, const pid_t *pids, size_t n)
{
	TrackerPid *nv;
	size_t j = 0;

	for (size_t i = 1; i < n; i++)
		if (pids[i] <= pids[i - 1])
			return -EINVAL;
	nv = calloc(MAX(n, 1U), sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		while (j < e->n_pids && e->pids[j].pid < pids[i])
			pid_done(&e->pids[j++]);
		if (j < e->n_pids && e->pids[j].pid == pids[i])
			nv[i] = e->pids[j++];
		else
			nv[i] = (TrackerPid) { .pid = pids[i] };
	}
	while (j < e->n_pids)
		pid_done(&e->pids[j++]);
	free(e->pids);
	e->pids = nv;
	e->n_pids = n;
	return 0;
}

TrackerRegion *tracker_engine_regions(TrackerEngine *e, pid_t pid, size_t *ret_n)
{
	size_t lo = 0, hi = e->n_pids;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (e->pids[mid].pid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo >= e->n_pids || e->pids[lo].pid != pid || e->pids[lo].gone) {
		if (ret_n)
			*ret_n = 0;
		return NULL;
	}
	if (ret_n)
		*ret_n = e->pids[lo].n_regions;
	return e->pids[lo].regions;
}

void tracker_engine_tick_stats(const TrackerEngine *e, TrackerTickStats *ret)
{
	*ret = e->stats;
}

static uint64_t thread_cpu_usec(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
		return 0;
	return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* The anonymous private mappings of pid as [start, end) pairs; -ESRCH when gone. */
static int anon_maps(const char *root, pid_t pid, uint64_t (**ret)[2], size_t *ret_n)
{
	BackendMapping *m = NULL;
	uint64_t (*v)[2];
	size_t n = 0, k = 0;
	int r;

	r = backend_maps_read(root, pid, &m, &n);
	if (r < 0)
		return r;
	if (n == 0)
		return -ESRCH;    /* no address space: a zombie, or a kernel thread */
	v = calloc(MAX(n, 1U), sizeof(*v));
	if (!v) {
		backend_mappings_free(m, n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		if (m[i].kind == BACKEND_MAP_ANON) {
			v[k][0] = m[i].start;
			v[k][1] = m[i].end;
			k++;
		}
	backend_mappings_free(m, n);
	*ret = v;
	*ret_n = k;
	return 0;
}

/* Index of the region holding addr, or n. */
static size_t region_find(const TrackerRegion *v, size_t n, uint64_t addr)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (v[mid].start + v[mid].length <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && v[lo].start <= addr ? lo : n;
}

/*
 * Read and clear n windows of t's process (n at most BACKEND_SAMPLE_WINDOWS_MAX, in address
 * order): one sample_windows() call, or one sample() per window when the backend has only
 * that. Sets each window's young and unmapped.
 */
static int windows_sample(TrackerEngine *e, TrackerPid *t, BackendSampleWindow *bw, size_t n)
{
	const BackendOps *ops = e->sampler->ops;
	uint8_t bitmap[TRACKER_WINDOW_PAGES_MAX / 8];

	if (n == 0)
		return 0;
	if (ops->sample_windows) {
		e->stats.n_calls++;
		return ops->sample_windows(e->sampler->backend, t->pid, bw, n, true);
	}
	for (size_t k = 0; k < n; k++) {
		int r = ops->sample(e->sampler->backend, t->pid, bw[k].start, bw[k].length, true,
				    bitmap, sizeof(bitmap), &bw[k].young);

		e->stats.n_calls++;
		bw[k].unmapped = r == -EFAULT;
		if (r < 0 && r != -EFAULT)
			return r;
	}
	return 0;
}

/*
 * Read (and clear) the windows prepared last tick; the heat of a region that
 * holds one becomes the window's young pages per mille. Only regions with
 * only_cohmem set when asked. -ESRCH when the process went away.
 */
static int windows_check(TrackerEngine *e, TrackerPid *t, bool only_cohmem)
{
	BackendSampleWindow bw[BACKEND_SAMPLE_WINDOWS_MAX];
	size_t wi[BACKEND_SAMPLE_WINDOWS_MAX], ri[BACKEND_SAMPLE_WINDOWS_MAX], n = 0;
	_Static_assert(TRACKER_WINDOW_PAGES_MAX * BACKEND_SAMPLE_WINDOWS_MAX <=
		       BACKEND_SAMPLE_PAGES_MAX,
		       "a batch of windows must fit one sample_windows() call");

	for (size_t i = 0; i <= t->n_windows; i++) {
		int r;

		if (i < t->n_windows) {
			TrackerWindow *w = &t->windows[i];
			size_t j = region_find(t->regions, t->n_regions, w->start);
			const TrackerRegion *reg;

			w->checked = false;
			if (j == t->n_regions)
				continue;
			reg = &t->regions[j];
			if (only_cohmem && !reg->on_cohmem)
				continue;
			bw[n] = (BackendSampleWindow) {
				.start = w->start,
				.length = MIN(w->pages, (reg->start + reg->length - w->start) /
						       TRACKER_PAGE) * TRACKER_PAGE,
			};
			wi[n] = i;
			ri[n++] = j;
			if (n < BACKEND_SAMPLE_WINDOWS_MAX)
				continue;
		}
		r = windows_sample(e, t, bw, n);
		if (r < 0)
			return r;
		for (size_t k = 0; k < n; k++) {
			TrackerWindow *w = &t->windows[wi[k]];
			uint64_t pages = bw[k].length / TRACKER_PAGE;

			if (bw[k].unmapped)
				continue;    /* unmapped since */
			t->regions[ri[k]].heat = MIN(bw[k].young * TRACKER_HEAT_MAX / pages,
						     (uint64_t) TRACKER_HEAT_MAX);
			w->pages = pages;
			w->checked = true;
			w->ticks++;
		}
		n = 0;
	}
	return 0;
}

/* A window for every (cohmem) region: the one just read if it may stay, else a new one, cleared. */
static int windows_prepare(TrackerEngine *e, TrackerPid *t, bool only_cohmem)
{
	BackendSampleWindow bw[BACKEND_SAMPLE_WINDOWS_MAX];
	size_t ni[BACKEND_SAMPLE_WINDOWS_MAX], n = 0;
	_cleanup_free_ TrackerWindow *nw = NULL;
	_cleanup_free_ bool *drop = NULL;
	size_t k = 0, j = 0, kept = 0;

	nw = calloc(MAX(t->n_regions, 1U), sizeof(*nw));
	drop = calloc(MAX(t->n_regions, 1U), sizeof(*drop));
	if (!nw || !drop)
		return -ENOMEM;
	for (size_t i = 0; i <= t->n_regions; i++) {
		int r;

		if (i < t->n_regions) {
			const TrackerRegion *reg = &t->regions[i];
			uint64_t rp = reg->length / TRACKER_PAGE;
			uint64_t pages = MIN((uint64_t) e->params.window_pages, rp), off;

			if (only_cohmem && !reg->on_cohmem)
				continue;
			/* Windows are in address order, like the regions. */
			while (j < t->n_windows && t->windows[j].start < reg->start)
				j++;
			if (j < t->n_windows && t->windows[j].checked &&
			    t->windows[j].ticks < TRACKER_WINDOW_TICKS &&
			    t->windows[j].start + t->windows[j].pages * TRACKER_PAGE <=
			    reg->start + reg->length) {
				nw[k++] = t->windows[j++];
				continue;
			}
			off = rp > pages ? xorshift64(&e->seed) % (rp - pages + 1) : 0;
			nw[k] = (TrackerWindow) { .start = reg->start + off * TRACKER_PAGE,
						  .pages = pages };
			bw[n] = (BackendSampleWindow) { .start = nw[k].start,
							.length = pages * TRACKER_PAGE };
			ni[n++] = k++;
			if (n < BACKEND_SAMPLE_WINDOWS_MAX)
				continue;
		}
		r = windows_sample(e, t, bw, n);
		if (r < 0)
			return r;
		for (size_t m = 0; m < n; m++)
			drop[ni[m]] = bw[m].unmapped;
		n = 0;
	}
	for (size_t i = 0; i < k; i++)
		if (!drop[i])
			nw[kept++] = nw[i];
	free(t->windows);
	t->windows = TAKE_PTR(nw);
	t->n_windows = kept;
	return 0;
}

static void pid_gone(TrackerPid *t)
{
	pid_t pid = t->pid;

	pid_done(t);
	t->pid = pid;
	t->gone = true;
}

static bool pid_exists(const char *root, pid_t pid)
{
	_cleanup_free_ char *p = NULL;
	char rel[32];

	(void) snprintf(rel, sizeof(rel), "/proc/%d", (int) pid);
	p = path_join_root(root, rel);
	return !p || access(p, F_OK) == 0;
}

/*
 * DAMON mode: the regions in a pool split and merge by their SAMPLE heat as
 * the sample tracker's do. DAMON's own regions there would be one idle lump,
 * since it sees no access to pool pages, and one window could not tell a hot
 * part of it from a cold one.
 */
static int pool_regions_adapt(TrackerEngine *e, TrackerPid *t)
{
	_cleanup_free_ TrackerRegion *pool = NULL;
	TrackerRegion *out;
	size_t n_pool = 0, n_other, k = 0, a = 0, b = 0;
	uint64_t pool_bytes = 0, want;
	int r;

	for (size_t i = 0; i < t->n_regions; i++)
		n_pool += t->regions[i].on_cohmem;
	if (n_pool == 0)
		return 0;
	n_other = t->n_regions - n_pool;
	pool = malloc(n_pool * sizeof(*pool));
	if (!pool)
		return -ENOMEM;
	for (size_t i = 0; i < t->n_regions; i++)
		if (t->regions[i].on_cohmem) {
			pool[k++] = t->regions[i];
			pool_bytes += t->regions[i].length;
		}
	/*
	 * At most TRACKER_POOL_REGION_BYTES each, at once: what was promoted is
	 * DAMON's region, hot and cold parts together, and a cold window must
	 * not send the hot part back with it (halving one region a tick, as
	 * the sample tracker does, is too slow for that).
	 */
	want = MAX((pool_bytes + TRACKER_POOL_REGION_BYTES - 1) / TRACKER_POOL_REGION_BYTES,
		   UINT64_C(1));
	want = MIN(want, (uint64_t) e->params.max_regions / 2);
	r = regions_split_to_min(&pool, &n_pool, (unsigned) want);
	if (r < 0)
		return r;
	r = tracker_regions_adapt(&pool, &n_pool, MIN((unsigned) want, e->params.max_regions),
				  e->params.max_regions, TRACKER_MERGE_THRESHOLD,
				  e->params.window_pages, TRACKER_PAGE, &e->seed);
	if (r < 0)
		return r;
	out = malloc(MAX(n_other + n_pool, 1U) * sizeof(*out));
	if (!out)
		return -ENOMEM;
	/* Both in address order: merge them. */
	for (k = 0; k < n_other + n_pool; k++) {
		while (a < t->n_regions && t->regions[a].on_cohmem)
			a++;
		if (a < t->n_regions && (b == n_pool || t->regions[a].start < pool[b].start))
			out[k] = t->regions[a++];
		else
			out[k] = pool[b++];
	}
	free(t->regions);
	t->regions = out;
	t->n_regions = n_other + n_pool;
	return 0;
}

/* One pid's tick. -ESRCH: gone. */
static int pid_tick(TrackerEngine *e, TrackerPid *t, TrackerKind kind, size_t damon_idx,
		    bool damon_ok)
{
	uint64_t (*maps)[2] = NULL;
	size_t n_maps = 0;
	bool sampler = e->sampler && e->sampler->ops->sample;
	int r;

	r = anon_maps(e->root, t->pid, &maps, &n_maps);
	if (r < 0)
		return r;

	if (kind == TRACKER_DAMON && damon_ok && tracker_damon_restarted(e->damon) &&
	    t->n_regions > 0) {
		/* DAMON started over: its first regions are coarse; keep this pid's for a tick. */
		r = tracker_regions_fit(&t->regions, &t->n_regions, (const uint64_t (*)[2]) maps,
					n_maps);
		goto out;
	}
	if (kind == TRACKER_DAMON && damon_ok) {
		TrackerRegion *nv = NULL;
		size_t nn = 0;

		r = tracker_damon_regions(e->damon, damon_idx, &nv, &nn);
		if (r == -ENOENT)
			r = 0;    /* not a DAMON target yet: mapped parts come in fresh */
		if (r >= 0 && sampler)
			r = tracker_regions_keep_pool(&nv, &nn, t->regions, t->n_regions);
		if (r >= 0)
			r = tracker_regions_fit(&nv, &nn, (const uint64_t (*)[2]) maps, n_maps);
		if (r < 0) {
			free(nv);
			goto out;
		}
		r = regions_split_to_min(&nv, &nn, e->params.min_regions);
		if (r < 0) {
			free(nv);
			goto out;
		}
		tracker_regions_inherit(nv, nn, t->regions, t->n_regions);
		free(t->regions);
		t->regions = nv;
		t->n_regions = nn;
		e->stats.n_calls++;
		if (sampler) {
			/* DAMON does not see pool pages: their heat comes from SAMPLE. */
			r = windows_check(e, t, true);
			if (r >= 0)
				r = pool_regions_adapt(e, t);
			if (r >= 0)
				r = windows_prepare(e, t, true);
		}
		goto out;
	}

	r = tracker_regions_fit(&t->regions, &t->n_regions, (const uint64_t (*)[2]) maps, n_maps);
	if (r < 0)
		goto out;
	if (kind == TRACKER_SAMPLE && sampler) {
		r = windows_check(e, t, false);
		if (r < 0)
			goto out;
		r = tracker_regions_adapt(&t->regions, &t->n_regions, e->params.min_regions,
					  e->params.max_regions, TRACKER_MERGE_THRESHOLD,
					  e->params.window_pages, TRACKER_PAGE, &e->seed);
		if (r < 0)
			goto out;
		r = windows_prepare(e, t, false);
	} else
		for (size_t i = 0; i < t->n_regions; i++)
			t->regions[i].heat = 0;
out:
	free(maps);
	return r;
}

int tracker_engine_tick(TrackerEngine *e, uint64_t now_usec)
{
	TrackerKind kind = tracker_engine_kind(e);
	uint64_t cpu0 = thread_cpu_usec();
	bool damon_ok = false;
	int ret = 0, r;

	(void) now_usec;
	backend_set_last_message(NULL);
	e->stats = (TrackerTickStats) {};

	if (kind == TRACKER_DAMON) {
		pid_t *live = calloc(MAX(e->n_pids, 1U), sizeof(*live));
		size_t n_live = 0;

		if (!live)
			return -ENOMEM;
		for (size_t i = 0; i < e->n_pids; i++) {
			/* DAMON refuses to start with a target that has exited: leave it out. */
			if (!e->pids[i].gone && !pid_exists(e->root, e->pids[i].pid))
				pid_gone(&e->pids[i]);
			if (!e->pids[i].gone)
				live[n_live++] = e->pids[i].pid;
		}
		r = 0;
		if (!e->damon)
			r = tracker_damon_new(e->root, &e->params, &e->damon);
		if (r >= 0)
			r = tracker_damon_update(e->damon, live, n_live);
		free(live);
		if (r < 0)
			ret = r;
		else
			damon_ok = true;
	} else if (kind == TRACKER_SAMPLE && !(e->sampler && e->sampler->ops->sample)) {
		backend_set_last_message("cohmem is not loaded: nothing to sample with");
		ret = -ENODEV;
	}

	for (size_t i = 0; i < e->n_pids; i++) {
		TrackerPid *t = &e->pids[i];

		if (t->gone)
			continue;
		r = pid_tick(e, t, kind, tracker_damon_index(e->damon, t->pid), damon_ok);
		if (r == -ESRCH) {
			pid_gone(t);
			continue;
		}
		if (r < 0 && ret == 0)
			ret = r;
		e->stats.n_regions += t->n_regions;
		for (size_t k = 0; k < t->n_regions; k++)
			e->stats.pages_tracked += t->regions[k].length / TRACKER_PAGE;
	}
	e->stats.cpu_usec = thread_cpu_usec() - cpu0;
	return ret;
}
