/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Trace replay through the policy engine, the per-tick oracle and the two
 * labelled baselines (see simulate.h for the model and what each one is).
 */

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "simulate.h"
#include "util.h"

#define DEV 0

typedef struct Sim {
	const Trace *t;
	const SimConfig *c;
	PolicyConfig pc;
	SimPolicy policy;
	uint64_t capacity, used;
	int *res;                       /* per region: DEV or POLICY_SYSTEM_RAM */
	uint64_t *heat;
	unsigned *hot_ticks, *cold_ticks;
	uint64_t *since_usec;
	int64_t *last_move_tick;        /* -1: never moved */
	int64_t *last_access_tick;      /* -1: never accessed */
	uint64_t *count;                /* this tick's accesses, zero elsewhere */
	size_t *scratch;
	PolicyMove *moves;
	SimResult r;
} Sim;

static const char *const policy_names[_SIM_POLICY_MAX] = {
	[SIM_POLICY_OURS] = "ours",
	[SIM_POLICY_ORACLE] = "oracle",
	[SIM_POLICY_HEAT] = "heat",
	[SIM_POLICY_LRU] = "lru",
};

static const char *const policy_labels[_SIM_POLICY_MAX] = {
	[SIM_POLICY_OURS] = "coherentd hot: policy",
	[SIM_POLICY_ORACLE] = "oracle (per-tick optimum)",
	[SIM_POLICY_HEAT] = "baseline: memtierd-style heat",
	[SIM_POLICY_LRU] = "baseline: LRU / hint-fault",
};

const char *sim_policy_to_string(SimPolicy p)
{
	return (unsigned) p < _SIM_POLICY_MAX ? policy_names[p] : NULL;
}

const char *sim_policy_label(SimPolicy p)
{
	return (unsigned) p < _SIM_POLICY_MAX ? policy_labels[p] : NULL;
}

void sim_config_init(SimConfig *c)
{
	*c = (SimConfig) { .tick_usec = USEC_PER_SEC, .pingpong_window = 4 };
	policy_settings_init(&c->policy);
}

/* ---- config file ---- */

enum { SECTION_OTHER, SECTION_DAEMON, SECTION_POLICY, SECTION_SIMULATE };

static int parse_kv(SimConfig *c, int section, const char *key, const char *value)
{
	uint64_t u;

	if (streq(key, "TickSec") && section != SECTION_POLICY) {
		if (parse_duration(value, &u) < 0 || u == 0)
			return -EINVAL;
		c->tick_usec = u;
	} else if (section == SECTION_DAEMON) {
		return 0;  /* coherentd's other keys are not ours to judge */
	} else if (section == SECTION_POLICY) {
		return policy_settings_set(&c->policy, key, value, NULL) < 0 ? -EINVAL : 0;
	} else if (streq(key, "PingPongWindowTicks")) {
		if (safe_atou64(value, &u) < 0 || u == 0 || u > 1000000)
			return -EINVAL;
		c->pingpong_window = (unsigned) u;
	} else if (streq(key, "DeviceSize")) {
		if (parse_size(value, &u) < 0 || u == 0)
			return -EINVAL;
		c->device_size = u;
	} else
		return -EINVAL;
	return 0;
}

int sim_config_parse(const char *buf, size_t len, SimConfig *c, unsigned *ret_line)
{
	SimConfig n = *c;
	int section = SECTION_OTHER;
	unsigned line = 0;
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t l = nl ? (size_t) (nl - (buf + pos)) : len - pos;
		char text[512], *s, *e, *eq;

		line++;
		pos += l + (nl ? 1 : 0);
		if (l >= sizeof(text) || memchr(buf + pos - l - (nl ? 1 : 0), '\0', l))
			goto bad;
		memcpy(text, buf + pos - l - (nl ? 1 : 0), l);
		text[l] = '\0';
		s = text + strspn(text, " \t");
		e = s + strlen(s);
		while (e > s && strchr(" \t\r", e[-1]))
			*--e = '\0';
		if (!*s || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			if (e[-1] != ']')
				goto bad;
			section = streq(s, "[Policy]") ? SECTION_POLICY :
				  streq(s, "[Daemon]") ? SECTION_DAEMON :
				  streq(s, "[Simulate]") ? SECTION_SIMULATE : SECTION_OTHER;
			continue;
		}
		eq = strchr(s, '=');
		if (!eq)
			goto bad;
		if (section == SECTION_OTHER)
			continue;
		*eq = '\0';
		for (char *k = eq - 1; k >= s && (*k == ' ' || *k == '\t'); k--)
			*k = '\0';
		eq++;
		eq += strspn(eq, " \t");
		if (parse_kv(&n, section, s, eq) < 0)
			goto bad;
	}
	*c = n;
	if (ret_line)
		*ret_line = 0;
	return 0;
bad:
	if (ret_line)
		*ret_line = line;
	return -EBADMSG;
}

/* ---- bookkeeping shared by all policies ---- */

static void move_region(Sim *s, size_t i, int dest, int64_t tick)
{
	uint64_t len = s->t->regions[i].length;

	if (s->res[i] == dest)
		return;
	if (dest == DEV)
		s->used += len;
	else
		s->used -= len;
	s->res[i] = dest;
	s->r.bytes_moved += len;
	s->r.moves++;
	if (s->last_move_tick[i] >= 0 && tick - s->last_move_tick[i] <= (int64_t) s->c->pingpong_window)
		s->r.bytes_pingpong += len;
	s->last_move_tick[i] = tick;
	s->since_usec[i] = (uint64_t) tick * s->pc.tick_usec;
}

static void update_heat(Sim *s)
{
	for (size_t i = 0; i < s->t->n_regions; i++) {
		s->heat[i] = s->heat[i] / 2 + s->count[i];
		if (s->heat[i] >= s->pc.hot_threshold) {
			s->hot_ticks[i]++;
			s->cold_ticks[i] = 0;
		} else {
			s->cold_ticks[i]++;
			s->hot_ticks[i] = 0;
		}
	}
}

static uint64_t rate_budget(const Sim *s)
{
	return s->pc.rate_bytes_per_tick;
}

/* Spend from a per-tick budget; false (and nothing spent) if it does not fit. */
static bool spend(uint64_t *budget, uint64_t len)
{
	if (*budget == POLICY_RATE_NONE)
		return true;
	if (len > *budget)
		return false;
	*budget -= len;
	return true;
}

/* ---- ours ---- */

static int step_ours(Sim *s, int64_t tick)
{
	const Trace *t = s->t;
	PolicyRegion *regions = (PolicyRegion *) s->scratch;
	PolicyDevice dev = {
		.name = "sim0",
		.capacity = s->capacity,
		.free = s->capacity - s->used,
	};
	PolicyTarget target = {
		.id = 1,
		.kind = POLICY_KIND_HOT,
		.device = DEV,
		.quota = POLICY_QUOTA_NONE,
	};
	PolicySnapshot snap = {
		.now_usec = (uint64_t) tick * s->pc.tick_usec,
		.config = s->pc,
		.devices = &dev,
		.n_devices = 1,
		.targets = &target,
		.n_targets = 1,
		.regions = regions,
		.n_regions = t->n_regions,
	};
	size_t n;
	int r;

	for (size_t i = 0; i < t->n_regions; i++)
		regions[i] = (PolicyRegion) {
			.target = 0,
			.start = t->regions[i].start,
			.length = t->regions[i].length,
			.heat = s->heat[i],
			.hot_ticks = s->hot_ticks[i],
			.cold_ticks = s->cold_ticks[i],
			.residency = s->res[i],
			.resident_since_usec = s->since_usec[i],
		};
	r = policy_plan_compute(&snap, s->moves, t->n_regions, &n);
	if (r < 0)
		return r;
	for (size_t k = 0; k < n; k++)
		move_region(s, s->moves[k].region, s->moves[k].destination, tick);
	return 0;
}

/* ---- baselines ---- */

static int cmp_heat_desc(const void *a, const void *b, void *u)
{
	const Sim *s = u;
	size_t i = *(const size_t *) a, j = *(const size_t *) b;

	if (s->heat[i] != s->heat[j])
		return s->heat[i] > s->heat[j] ? -1 : 1;
	return i < j ? -1 : i > j;
}

static int step_heat(Sim *s, int64_t tick)
{
	uint64_t budget = rate_budget(s);
	size_t n = 0;

	for (size_t i = 0; i < s->t->n_regions; i++)
		if (s->res[i] == DEV && s->heat[i] < s->pc.hot_threshold &&
		    spend(&budget, s->t->regions[i].length))
			move_region(s, i, POLICY_SYSTEM_RAM, tick);
	for (size_t i = 0; i < s->t->n_regions; i++)
		if (s->res[i] != DEV && s->heat[i] >= s->pc.hot_threshold)
			s->scratch[n++] = i;
	qsort_r(s->scratch, n, sizeof(size_t), cmp_heat_desc, s);
	for (size_t k = 0; k < n; k++) {
		uint64_t len = s->t->regions[s->scratch[k]].length;

		if (s->capacity - s->used < len)
			continue;
		if (!spend(&budget, len))
			break;
		move_region(s, s->scratch[k], DEV, tick);
	}
	return 0;
}

static int cmp_lru(const void *a, const void *b, void *u)
{
	const Sim *s = u;
	size_t i = *(const size_t *) a, j = *(const size_t *) b;

	if (s->last_access_tick[i] != s->last_access_tick[j])
		return s->last_access_tick[i] < s->last_access_tick[j] ? -1 : 1;
	return i < j ? -1 : i > j;
}

static int cmp_count_desc(const void *a, const void *b, void *u)
{
	const Sim *s = u;
	size_t i = *(const size_t *) a, j = *(const size_t *) b;

	if (s->count[i] != s->count[j])
		return s->count[i] > s->count[j] ? -1 : 1;
	return i < j ? -1 : i > j;
}

static int step_lru(Sim *s, int64_t tick)
{
	const Trace *t = s->t;
	uint64_t budget = rate_budget(s);
	size_t n_fault = 0, n_res = 0, v = 0;
	size_t *fault = s->scratch, *res;

	for (size_t i = 0; i < t->n_regions; i++)
		if (s->res[i] != DEV && s->count[i] > 0)
			fault[n_fault++] = i;
	res = fault + n_fault;
	for (size_t i = 0; i < t->n_regions; i++)
		if (s->res[i] == DEV && s->last_access_tick[i] < tick)
			res[n_res++] = i;
	qsort_r(fault, n_fault, sizeof(size_t), cmp_count_desc, s);
	qsort_r(res, n_res, sizeof(size_t), cmp_lru, s);

	for (size_t k = 0; k < n_fault; k++) {
		uint64_t len = t->regions[fault[k]].length;

		if (len > s->capacity)
			continue;
		while (s->capacity - s->used < len && v < n_res) {
			if (!spend(&budget, t->regions[res[v]].length))
				return 0;
			move_region(s, res[v++], POLICY_SYSTEM_RAM, tick);
		}
		if (s->capacity - s->used < len)
			return 0;
		if (!spend(&budget, len))
			return 0;
		move_region(s, fault[k], DEV, tick);
	}
	return 0;
}

/* ---- oracle ---- */

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t x = a % b;

		a = b;
		b = x;
	}
	return a;
}

typedef unsigned __int128 u128;

/* Value of keeping region i on the device for this tick: hits first, staying put second. */
static u128 oracle_value(const Sim *s, size_t i)
{
	return (u128) s->count[i] * (s->t->n_regions + 1) + (s->res[i] == DEV ? 1 : 0);
}

static int cmp_value_desc(const void *a, const void *b, void *u)
{
	const Sim *s = u;
	size_t i = *(const size_t *) a, j = *(const size_t *) b;
	u128 x = oracle_value(s, i), y = oracle_value(s, j);

	if (x != y)
		return x > y ? -1 : 1;
	return i < j ? -1 : i > j;
}

/*
 * Choose this tick's device set (want[i]) before the tick's accesses are served.
 * Only regions with a positive value can be worth a place. Equal lengths: the
 * top values. Otherwise a 0/1 knapsack in units of the lengths' gcd.
 */
static int oracle_choose(Sim *s, bool *want)
{
	const Trace *t = s->t;
	size_t n = 0;
	uint64_t g = 0, units;
	bool equal = true;

	memset(want, 0, t->n_regions * sizeof(bool));
	for (size_t i = 0; i < t->n_regions; i++)
		if (oracle_value(s, i) > 0) {
			s->scratch[n++] = i;
			g = gcd_u64(g, t->regions[i].length);
			equal = equal && t->regions[i].length == t->regions[s->scratch[0]].length;
		}
	if (n == 0)
		return 0;

	if (equal) {
		uint64_t room = s->capacity / t->regions[s->scratch[0]].length;

		qsort_r(s->scratch, n, sizeof(size_t), cmp_value_desc, s);
		for (size_t k = 0; k < n && k < room; k++)
			want[s->scratch[k]] = true;
		return 0;
	}

	units = s->capacity / g;
	if (units == 0)
		return 0;
	if (units > SIM_ORACLE_CELLS_MAX || (uint64_t) n * units > SIM_ORACLE_CELLS_MAX)
		return -E2BIG;
	{
		u128 *best = calloc(units + 1, sizeof(u128));
		uint8_t *take = calloc(n * (units + 1), 1);
		uint64_t w;

		if (!best || !take) {
			free(best);
			free(take);
			return -ENOMEM;
		}
		for (size_t k = 0; k < n; k++) {
			size_t i = s->scratch[k];
			uint64_t wi = t->regions[i].length / g;
			u128 v = oracle_value(s, i);

			if (wi > units)
				continue;
			for (w = units; w >= wi; w--) {
				if (best[w - wi] + v > best[w]) {
					best[w] = best[w - wi] + v;
					take[k * (units + 1) + w] = 1;
				}
				if (w == wi)
					break;
			}
		}
		w = units;
		for (size_t k = n; k-- > 0;)
			if (take[k * (units + 1) + w]) {
				want[s->scratch[k]] = true;
				w -= t->regions[s->scratch[k]].length / g;
			}
		free(best);
		free(take);
	}
	return 0;
}

static int step_oracle_before(Sim *s, int64_t tick, bool *want)
{
	int r = oracle_choose(s, want);

	if (r < 0)
		return r;
	/* Out first so the device never holds more than its size. */
	for (size_t i = 0; i < s->t->n_regions; i++)
		if (!want[i] && s->res[i] == DEV)
			move_region(s, i, POLICY_SYSTEM_RAM, tick);
	for (size_t i = 0; i < s->t->n_regions; i++)
		if (want[i] && s->res[i] != DEV)
			move_region(s, i, DEV, tick);
	return 0;
}

/* ---- the replay ---- */

static uint64_t footprint(const Trace *t)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < t->n_regions; i++)
		sum += t->regions[i].length;
	return sum;
}

int sim_run(const Trace *t, const SimConfig *c, SimPolicy p, SimResult *ret)
{
	Sim s = { .t = t, .policy = p };
	bool *want = NULL;
	size_t n = t ? t->n_regions : 0, tk = 0;
	int r = 0;

	if (!t || !c || !ret || (unsigned) p >= _SIM_POLICY_MAX || c->tick_usec == 0 ||
	    c->pingpong_window == 0)
		return -EINVAL;
	/* Every tick costs O(regions), listed or not: refuse what would run for hours. */
	if (t->n_ticks > 0 &&
	    (u128) (t->ticks[t->n_ticks - 1].tick - t->ticks[0].tick + 1) * (n + 1) > SIM_WORK_MAX)
		return -E2BIG;
	s.c = c;
	policy_settings_to_config(&c->policy, c->tick_usec, &s.pc);
	s.capacity = c->device_size ? c->device_size : footprint(t) / 4;

	s.res = malloc((n + 1) * sizeof(int));
	s.heat = calloc(n + 1, sizeof(uint64_t));
	s.hot_ticks = calloc(n + 1, sizeof(unsigned));
	s.cold_ticks = calloc(n + 1, sizeof(unsigned));
	s.since_usec = calloc(n + 1, sizeof(uint64_t));
	s.last_move_tick = malloc((n + 1) * sizeof(int64_t));
	s.last_access_tick = malloc((n + 1) * sizeof(int64_t));
	s.count = calloc(n + 1, sizeof(uint64_t));
	/* Room for PolicyRegion[n] or 2n indices. */
	s.scratch = calloc(n + 1, MAX(sizeof(PolicyRegion), 2 * sizeof(size_t)));
	s.moves = calloc(n + 1, sizeof(PolicyMove));
	want = calloc(n + 1, sizeof(bool));
	if (!s.res || !s.heat || !s.hot_ticks || !s.cold_ticks || !s.since_usec ||
	    !s.last_move_tick || !s.last_access_tick || !s.count || !s.scratch || !s.moves || !want) {
		r = -ENOMEM;
		goto finish;
	}
	for (size_t i = 0; i < n; i++) {
		s.res[i] = POLICY_SYSTEM_RAM;
		s.last_move_tick[i] = -1;
		s.last_access_tick[i] = -1;
	}

	if (t->n_ticks > 0) {
		uint64_t first = t->ticks[0].tick, last = t->ticks[t->n_ticks - 1].tick;

		for (uint64_t tick = first; tick <= last; tick++) {
			const TraceTick *tt = NULL;

			if (tk < t->n_ticks && t->ticks[tk].tick == tick)
				tt = &t->ticks[tk++];
			if (tt)
				for (size_t a = tt->first; a < tt->first + tt->n; a++)
					s.count[t->accesses[a].region] = t->accesses[a].count;

			if (p == SIM_POLICY_ORACLE) {
				r = step_oracle_before(&s, (int64_t) tick, want);
				if (r < 0)
					goto finish;
			}
			/* Serve. */
			if (tt)
				for (size_t a = tt->first; a < tt->first + tt->n; a++) {
					uint32_t i = t->accesses[a].region;

					s.r.accesses += t->accesses[a].count;
					if (s.res[i] == DEV)
						s.r.hits += t->accesses[a].count;
					s.last_access_tick[i] = (int64_t) tick;
				}
			update_heat(&s);
			switch (p) {
			case SIM_POLICY_OURS:
				r = step_ours(&s, (int64_t) tick);
				break;
			case SIM_POLICY_HEAT:
				r = step_heat(&s, (int64_t) tick);
				break;
			case SIM_POLICY_LRU:
				r = step_lru(&s, (int64_t) tick);
				break;
			default:
				break;
			}
			if (r < 0)
				goto finish;
			if (tt)
				for (size_t a = tt->first; a < tt->first + tt->n; a++)
					s.count[t->accesses[a].region] = 0;
			s.r.ticks++;
		}
	}

	s.r.device_size = s.capacity;
	s.r.hit_ratio = s.r.accesses ? (double) s.r.hits / (double) s.r.accesses : 0.0;
	s.r.pingpong_fraction = s.r.bytes_moved ?
		(double) s.r.bytes_pingpong / (double) s.r.bytes_moved : 0.0;
	*ret = s.r;
finish:
	free(s.res);
	free(s.heat);
	free(s.hot_ticks);
	free(s.cold_ticks);
	free(s.since_usec);
	free(s.last_move_tick);
	free(s.last_access_tick);
	free(s.count);
	free(s.scratch);
	free(s.moves);
	free(want);
	return r;
}
