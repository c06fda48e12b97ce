/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The policy engine (see policy.h for the rules). Pure: the only side effect
 * is scratch memory, freed before return.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

typedef struct Plan {
	const PolicySnapshot *s;
	PolicyMove *moves;
	size_t n_moves;
	uint64_t *dev_free;     /* projected after the moves so far */
	uint64_t *used;         /* per target: bytes on its device, projected */
	int *res;               /* per region: projected residency */
	bool *moved;
	size_t *order;          /* scratch: region indices */
} Plan;

static const char *const reason_table[_POLICY_REASON_MAX] = {
	[POLICY_REASON_SYSTEM] = "system",
	[POLICY_REASON_EVICT] = "evict",
	[POLICY_REASON_BIND] = "bind",
	[POLICY_REASON_DEMOTE] = "demote",
	[POLICY_REASON_PROMOTE] = "promote",
};

static const char *const kind_table[_POLICY_KIND_MAX] = {
	[POLICY_KIND_SYSTEM] = "system",
	[POLICY_KIND_BIND] = "bind",
	[POLICY_KIND_HOT] = "hot",
};

const char *policy_reason_to_string(PolicyReason r)
{
	return (unsigned) r < _POLICY_REASON_MAX ? reason_table[r] : NULL;
}

const char *policy_kind_to_string(PolicyKind k)
{
	return (unsigned) k < _POLICY_KIND_MAX ? kind_table[k] : NULL;
}

void policy_config_init(PolicyConfig *c)
{
	*c = (PolicyConfig) {
		.tick_usec = 1000000,
		.rate_bytes_per_tick = POLICY_RATE_NONE,
		.hot_threshold = 1,
		.hysteresis_ticks = 1,
		.min_residence_usec = 5000000,
		.swap_margin_pct = 200,
		.cold_demote_ticks = 0,
	};
}

static int validate(const PolicySnapshot *s)
{
	if (s->n_devices > 0 && !s->devices)
		return -EINVAL;
	if (s->n_targets > 0 && !s->targets)
		return -EINVAL;
	if (s->n_regions > 0 && !s->regions)
		return -EINVAL;
	for (size_t i = 0; i < s->n_devices; i++)
		if (s->devices[i].low > s->devices[i].high)
			return -EINVAL;
	for (size_t i = 0; i < s->n_targets; i++) {
		const PolicyTarget *t = &s->targets[i];

		if ((unsigned) t->kind >= _POLICY_KIND_MAX)
			return -EINVAL;
		if (t->kind != POLICY_KIND_SYSTEM &&
		    (t->device < 0 || (size_t) t->device >= s->n_devices))
			return -EINVAL;
	}
	for (size_t i = 0; i < s->n_regions; i++) {
		const PolicyRegion *r = &s->regions[i];

		if (r->target >= s->n_targets || r->length == 0 ||
		    r->start + r->length < r->start)
			return -EINVAL;
		if (r->residency != POLICY_SYSTEM_RAM &&
		    (r->residency < 0 || (size_t) r->residency >= s->n_devices))
			return -EINVAL;
	}
	return 0;
}

static const PolicyTarget *target_of(const Plan *p, size_t region)
{
	return &p->s->targets[p->s->regions[region].target];
}

static void add_move(Plan *p, size_t i, int dest, PolicyReason reason)
{
	const PolicyRegion *r = &p->s->regions[i];
	const PolicyTarget *t = target_of(p, i);
	size_t ti = r->target;

	if (p->res[i] >= 0) {
		p->dev_free[p->res[i]] += r->length;
		if (t->kind != POLICY_KIND_SYSTEM && p->res[i] == t->device)
			p->used[ti] -= r->length;
	}
	if (dest >= 0) {
		/* Callers check room first; saturate rather than wrap if the device lied. */
		p->dev_free[dest] -= (p->dev_free[dest] < r->length ? p->dev_free[dest] : r->length);
		if (t->kind != POLICY_KIND_SYSTEM && dest == t->device)
			p->used[ti] += r->length;
	}
	p->res[i] = dest;
	p->moved[i] = true;
	p->moves[p->n_moves++] = (PolicyMove) {
		.region = i,
		.target_id = t->id,
		.start = r->start,
		.length = r->length,
		.destination = dest,
		.reason = reason,
	};
}

/* ---- orderings (qsort_r with the snapshot as context) ---- */

static int cmp_u64(uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b;
}

static int cmp_size(size_t a, size_t b)
{
	return a < b ? -1 : a > b;
}

/*
 * Colder: less heat; at equal heat, cold for more ticks (a sampled heat of 0
 * for one tick is often a hot region's noise, many ticks of it are not).
 */
static int cmp_heat(const PolicyRegion *x, const PolicyRegion *y)
{
	if (x->heat != y->heat)
		return cmp_u64(x->heat, y->heat);
	if (x->cold_ticks != y->cold_ticks)
		return x->cold_ticks > y->cold_ticks ? -1 : 1;
	return 0;
}

/* Eviction order: lowest priority, then coldest, then lowest address, then index. */
static int cmp_evict(const void *a, const void *b, void *u)
{
	const PolicySnapshot *s = u;
	size_t i = *(const size_t *) a, j = *(const size_t *) b;
	const PolicyRegion *x = &s->regions[i], *y = &s->regions[j];
	int px = s->targets[x->target].priority, py = s->targets[y->target].priority;
	int c;

	if (px != py)
		return px < py ? -1 : 1;
	c = cmp_heat(x, y);
	if (c != 0)
		return c;
	if (x->start != y->start)
		return cmp_u64(x->start, y->start);
	return cmp_size(i, j);
}

static int cmp_coldest(const void *a, const void *b, void *u)
{
	const PolicySnapshot *s = u;
	size_t i = *(const size_t *) a, j = *(const size_t *) b;
	int c = cmp_heat(&s->regions[i], &s->regions[j]);

	return c != 0 ? c : cmp_size(i, j);
}

static int cmp_hottest(const void *a, const void *b, void *u)
{
	return cmp_coldest(b, a, u);
}

static int cmp_address(const void *a, const void *b, void *u)
{
	const PolicySnapshot *s = u;
	size_t i = *(const size_t *) a, j = *(const size_t *) b;

	if (s->regions[i].start != s->regions[j].start)
		return cmp_u64(s->regions[i].start, s->regions[j].start);
	return cmp_size(i, j);
}

static int cmp_target_priority(const void *a, const void *b, void *u)
{
	const PolicySnapshot *s = u;
	size_t i = *(const size_t *) a, j = *(const size_t *) b;
	const PolicyTarget *x = &s->targets[i], *y = &s->targets[j];

	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	if (x->id != y->id)
		return cmp_u64(x->id, y->id);
	return cmp_size(i, j);
}

/* ---- rules ---- */

static void rule_system(Plan *p)
{
	for (size_t i = 0; i < p->s->n_regions; i++)
		if (target_of(p, i)->kind == POLICY_KIND_SYSTEM && p->res[i] >= 0)
			add_move(p, i, POLICY_SYSTEM_RAM, POLICY_REASON_SYSTEM);
}

static void rule_watermarks(Plan *p)
{
	const PolicySnapshot *s = p->s;

	for (size_t d = 0; d < s->n_devices; d++) {
		size_t n = 0;

		if (p->dev_free[d] >= s->devices[d].low)
			continue;
		for (size_t i = 0; i < s->n_regions; i++)
			if (!p->moved[i] && p->res[i] == (int) d)
				p->order[n++] = i;
		qsort_r(p->order, n, sizeof(size_t), cmp_evict, (void *) s);
		for (size_t k = 0; k < n && p->dev_free[d] < s->devices[d].high; k++)
			add_move(p, p->order[k], POLICY_SYSTEM_RAM, POLICY_REASON_EVICT);
	}
}

static bool fits(const Plan *p, size_t ti, uint64_t len)
{
	const PolicyTarget *t = &p->s->targets[ti];
	const PolicyDevice *d = &p->s->devices[t->device];
	uint64_t free = p->dev_free[t->device];

	if (t->quota != POLICY_QUOTA_NONE && (p->used[ti] > t->quota || t->quota - p->used[ti] < len))
		return false;
	return free >= d->high && free - d->high >= len;
}

static void rule_bind(Plan *p, size_t ti)
{
	const PolicySnapshot *s = p->s;
	const PolicyTarget *t = &s->targets[ti];
	size_t n = 0;

	for (size_t i = 0; i < s->n_regions; i++)
		if (s->regions[i].target == ti && !p->moved[i] && p->res[i] != t->device)
			p->order[n++] = i;
	qsort_r(p->order, n, sizeof(size_t), cmp_address, (void *) s);
	for (size_t k = 0; k < n; k++)
		if (fits(p, ti, s->regions[p->order[k]].length))
			add_move(p, p->order[k], t->device, POLICY_REASON_BIND);
}

static bool may_leave(const Plan *p, size_t i)
{
	const PolicySnapshot *s = p->s;
	uint64_t since = s->regions[i].resident_since_usec;

	return s->now_usec >= since && s->now_usec - since >= s->config.min_residence_usec;
}

static bool worth_swap(const PolicyConfig *c, uint64_t cand_heat, uint64_t victim_heat)
{
	return (unsigned __int128) cand_heat * 100 >
	       (unsigned __int128) victim_heat * (100 + c->swap_margin_pct);
}

static bool is_cold(const PolicyConfig *c, const PolicyRegion *r)
{
	return r->heat < c->hot_threshold && r->cold_ticks >= c->hysteresis_ticks;
}

static void rule_hot(Plan *p, size_t ti)
{
	const PolicySnapshot *s = p->s;
	const PolicyConfig *c = &s->config;
	const PolicyTarget *t = &s->targets[ti];
	size_t n_cand = 0, n_vict = 0, v = 0;
	size_t *cand = p->order, *vict;

	/* Over quota (the quota was lowered): coldest out first. */
	if (t->quota != POLICY_QUOTA_NONE && p->used[ti] > t->quota) {
		for (size_t i = 0; i < s->n_regions; i++)
			if (s->regions[i].target == ti && !p->moved[i] && p->res[i] == t->device)
				cand[n_cand++] = i;
		qsort_r(cand, n_cand, sizeof(size_t), cmp_coldest, (void *) s);
		for (size_t k = 0; k < n_cand && p->used[ti] > t->quota; k++)
			add_move(p, cand[k], POLICY_SYSTEM_RAM, POLICY_REASON_DEMOTE);
		n_cand = 0;
	}

	/* Cold long enough and resident long enough. */
	for (size_t i = 0; c->cold_demote_ticks > 0 && i < s->n_regions; i++) {
		const PolicyRegion *r = &s->regions[i];

		if (r->target == ti && !p->moved[i] && p->res[i] == t->device &&
		    r->heat < c->hot_threshold && r->cold_ticks >= c->cold_demote_ticks &&
		    may_leave(p, i))
			add_move(p, i, POLICY_SYSTEM_RAM, POLICY_REASON_DEMOTE);
	}

	for (size_t i = 0; i < s->n_regions; i++) {
		const PolicyRegion *r = &s->regions[i];

		if (r->target != ti || p->moved[i])
			continue;
		if (p->res[i] != t->device) {
			if (r->heat >= c->hot_threshold && r->hot_ticks >= c->hysteresis_ticks)
				cand[n_cand++] = i;
		}
	}
	vict = cand + n_cand;
	for (size_t i = 0; i < s->n_regions; i++)
		if (s->regions[i].target == ti && !p->moved[i] && p->res[i] == t->device &&
		    may_leave(p, i))
			vict[n_vict++] = i;
	qsort_r(cand, n_cand, sizeof(size_t), cmp_hottest, (void *) s);
	qsort_r(vict, n_vict, sizeof(size_t), cmp_coldest, (void *) s);

	for (size_t k = 0; k < n_cand; k++) {
		const PolicyRegion *r = &s->regions[cand[k]];
		uint64_t gain = 0;
		size_t w = v;

		if (fits(p, ti, r->length)) {
			add_move(p, cand[k], t->device, POLICY_REASON_PROMOTE);
			continue;
		}
		/* How many of the coldest residents would have to go, all clearly colder. */
		while (w < n_vict && (is_cold(c, &s->regions[vict[w]]) ||
				      worth_swap(c, r->heat, s->regions[vict[w]].heat))) {
			gain += s->regions[vict[w]].length;
			w++;
			if (fits(p, ti, r->length > gain ? r->length - gain : 0))
				break;
		}
		if (w == v || !fits(p, ti, r->length > gain ? r->length - gain : 0))
			continue;
		for (; v < w; v++)
			add_move(p, vict[v], POLICY_SYSTEM_RAM, POLICY_REASON_DEMOTE);
		if (fits(p, ti, r->length))
			add_move(p, cand[k], t->device, POLICY_REASON_PROMOTE);
	}
}

static size_t rate_limit(const PolicyConfig *c, const PolicyMove *moves, size_t n)
{
	uint64_t total = 0;

	if (c->rate_bytes_per_tick == POLICY_RATE_NONE)
		return n;
	for (size_t k = 0; k < n; k++) {
		if (moves[k].length > c->rate_bytes_per_tick - total)
			return k;
		total += moves[k].length;
	}
	return n;
}

int policy_plan_compute(const PolicySnapshot *s, PolicyMove *moves, size_t max_moves,
			size_t *ret_n_moves)
{
	Plan p = { .s = s, .moves = moves };
	size_t *torder = NULL;
	int r;

	if (!s || !ret_n_moves || (max_moves > 0 && !moves))
		return -EINVAL;
	r = validate(s);
	if (r < 0)
		return r;
	if (max_moves < s->n_regions)
		return -ENOBUFS;

	p.dev_free = calloc(s->n_devices + 1, sizeof(uint64_t));
	p.used = calloc(s->n_targets + 1, sizeof(uint64_t));
	p.res = calloc(s->n_regions + 1, sizeof(int));
	p.moved = calloc(s->n_regions + 1, sizeof(bool));
	p.order = calloc(2 * s->n_regions + 1, sizeof(size_t));
	torder = calloc(s->n_targets + 1, sizeof(size_t));
	if (!p.dev_free || !p.used || !p.res || !p.moved || !p.order || !torder) {
		r = -ENOMEM;
		goto finish;
	}

	for (size_t d = 0; d < s->n_devices; d++)
		p.dev_free[d] = s->devices[d].free;
	for (size_t i = 0; i < s->n_regions; i++) {
		const PolicyRegion *reg = &s->regions[i];
		const PolicyTarget *t = &s->targets[reg->target];

		p.res[i] = reg->residency;
		if (t->kind != POLICY_KIND_SYSTEM && reg->residency == t->device)
			p.used[reg->target] += reg->length;
	}

	rule_system(&p);
	rule_watermarks(&p);

	for (size_t k = 0; k < s->n_targets; k++)
		torder[k] = k;
	qsort_r(torder, s->n_targets, sizeof(size_t), cmp_target_priority, (void *) s);
	for (size_t k = 0; k < s->n_targets; k++) {
		switch (s->targets[torder[k]].kind) {
		case POLICY_KIND_BIND:
			rule_bind(&p, torder[k]);
			break;
		case POLICY_KIND_HOT:
			rule_hot(&p, torder[k]);
			break;
		default:
			break;
		}
	}

	*ret_n_moves = rate_limit(&s->config, moves, p.n_moves);
	r = 0;
finish:
	free(p.dev_free);
	free(p.used);
	free(p.res);
	free(p.moved);
	free(p.order);
	free(torder);
	return r;
}
