/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The access trace format (trace.h): a parser that is fed bytes, a writer, and
 * a builder used by the parser, the generators and tests.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

typedef struct TraceBuilder {
	Trace t;
	size_t cap_regions, cap_ticks, cap_accesses;
	size_t *slot;           /* per region: 1 + its access index in the current tick, or 0 */
} TraceBuilder;

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
	size_t n;
	void *q;

	if (need <= *cap)
		return 0;
	n = *cap ? *cap * 2 : 64;
	if (n < need)
		n = need;
	q = reallocarray(*p, n, size);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

Trace *trace_new(void)
{
	return calloc(1, sizeof(TraceBuilder));
}

Trace *trace_free(Trace *t)
{
	TraceBuilder *b = (TraceBuilder *) t;

	if (!b)
		return NULL;
	free(b->t.regions);
	free(b->t.ticks);
	free(b->t.accesses);
	free(b->slot);
	free(b);
	return NULL;
}

int trace_add_region(Trace *t, uint64_t start, uint64_t length)
{
	TraceBuilder *b = (TraceBuilder *) t;
	int r;

	if (t->n_ticks > 0 || length == 0 || start + length < start)
		return -EINVAL;
	if (t->n_regions >= TRACE_REGIONS_MAX)
		return -E2BIG;
	r = grow((void **) &t->regions, &b->cap_regions, t->n_regions + 1, sizeof(TraceRegion));
	if (r < 0)
		return r;
	t->regions[t->n_regions++] = (TraceRegion) { .start = start, .length = length };
	return 0;
}

int trace_add_tick(Trace *t, uint64_t tick)
{
	TraceBuilder *b = (TraceBuilder *) t;
	int r;

	if (tick > TRACE_TICK_MAX)
		return -ERANGE;
	if (t->n_ticks > 0 && tick <= t->ticks[t->n_ticks - 1].tick)
		return -EINVAL;
	if (!b->slot) {
		b->slot = calloc(t->n_regions + 1, sizeof(size_t));
		if (!b->slot)
			return -ENOMEM;
	}
	r = grow((void **) &t->ticks, &b->cap_ticks, t->n_ticks + 1, sizeof(TraceTick));
	if (r < 0)
		return r;
	t->ticks[t->n_ticks++] = (TraceTick) { .tick = tick, .first = t->n_accesses };
	return 0;
}

int trace_add_access(Trace *t, uint32_t region, uint64_t count)
{
	TraceBuilder *b = (TraceBuilder *) t;
	TraceTick *cur;
	size_t s;
	int r;

	if (t->n_ticks == 0 || region >= t->n_regions || count == 0)
		return -EINVAL;
	if (count > TRACE_COUNT_MAX)
		return -ERANGE;
	cur = &t->ticks[t->n_ticks - 1];
	s = b->slot[region];
	if (s > 0 && s - 1 >= cur->first) {
		if (t->accesses[s - 1].count > TRACE_COUNT_MAX - count)
			return -ERANGE;
		t->accesses[s - 1].count += count;
		return 0;
	}
	r = grow((void **) &t->accesses, &b->cap_accesses, t->n_accesses + 1, sizeof(TraceAccess));
	if (r < 0)
		return r;
	t->accesses[t->n_accesses] = (TraceAccess) { .region = region, .count = count };
	b->slot[region] = ++t->n_accesses;
	cur->n++;
	return 0;
}

uint64_t trace_total_accesses(const Trace *t)
{
	uint64_t sum = 0;

	for (size_t k = 0; k < t->n_accesses; k++)
		sum += t->accesses[k].count;
	return sum;
}

static int cmp_region_start(const void *a, const void *b)
{
	const TraceRegion *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static bool regions_overlap(const Trace *t)
{
	TraceRegion *copy;
	bool bad = false;

	copy = malloc((t->n_regions + 1) * sizeof(TraceRegion));
	if (!copy)
		return true;  /* caller turns it into -ENOMEM */
	memcpy(copy, t->regions, t->n_regions * sizeof(TraceRegion));
	qsort(copy, t->n_regions, sizeof(TraceRegion), cmp_region_start);
	for (size_t k = 1; k < t->n_regions && !bad; k++)
		bad = copy[k - 1].start + copy[k - 1].length > copy[k].start;
	free(copy);
	return bad;
}

/* Decimal, or hex with 0x; no sign, no junk, no empty field. */
static int parse_u64(const char *s, size_t n, uint64_t *ret)
{
	uint64_t v = 0;
	unsigned base = 10;

	if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		n -= 2;
	}
	if (n == 0)
		return -EINVAL;
	for (size_t k = 0; k < n; k++) {
		unsigned d;

		if (s[k] >= '0' && s[k] <= '9')
			d = s[k] - '0';
		else if (base == 16 && s[k] >= 'a' && s[k] <= 'f')
			d = s[k] - 'a' + 10;
		else if (base == 16 && s[k] >= 'A' && s[k] <= 'F')
			d = s[k] - 'A' + 10;
		else
			return -EINVAL;
		if (v > (UINT64_MAX - d) / base)
			return -ERANGE;
		v = v * base + d;
	}
	*ret = v;
	return 0;
}

#define FIELDS_MAX 5

/* Split on runs of spaces/tabs; -EINVAL for more than FIELDS_MAX fields. */
static int split(const char *line, size_t len, const char **f, size_t *fl, size_t *ret_n)
{
	size_t n = 0, k = 0;

	while (k < len) {
		size_t s;

		while (k < len && (line[k] == ' ' || line[k] == '\t'))
			k++;
		if (k == len)
			break;
		s = k;
		while (k < len && line[k] != ' ' && line[k] != '\t')
			k++;
		if (n == FIELDS_MAX)
			return -EINVAL;
		f[n] = line + s;
		fl[n++] = k - s;
	}
	*ret_n = n;
	return 0;
}

static bool field_is(const char *f, size_t n, const char *word)
{
	return strlen(word) == n && memcmp(f, word, n) == 0;
}

static int parse_line(Trace *t, const char *line, size_t len)
{
	const char *f[FIELDS_MAX];
	size_t fl[FIELDS_MAX], n;
	uint64_t a, b;

	if (len > 0 && line[0] == '#')
		return 0;
	if (memchr(line, '\0', len) || memchr(line, '\r', len))
		return -EINVAL;
	if (split(line, len, f, fl, &n) < 0)
		return -EINVAL;
	if (n == 0)
		return 0;
	if (field_is(f[0], fl[0], "region") && n == 4) {
		uint64_t id;

		if (parse_u64(f[1], fl[1], &id) < 0 || id != t->n_regions ||
		    parse_u64(f[2], fl[2], &a) < 0 || parse_u64(f[3], fl[3], &b) < 0)
			return -EINVAL;
		return trace_add_region(t, a, b);
	}
	if (field_is(f[0], fl[0], "tick") && n == 2) {
		if (parse_u64(f[1], fl[1], &a) < 0 || t->n_regions == 0)
			return -EINVAL;
		return trace_add_tick(t, a);
	}
	if (field_is(f[0], fl[0], "access") && n == 3) {
		if (parse_u64(f[1], fl[1], &a) < 0 || parse_u64(f[2], fl[2], &b) < 0 ||
		    a >= t->n_regions)
			return -EINVAL;
		return trace_add_access(t, (uint32_t) a, b);
	}
	return -EINVAL;
}

int trace_parse(const char *buf, size_t len, Trace **ret, unsigned *ret_line)
{
	Trace *t;
	size_t pos = 0;
	unsigned line = 0;
	int r;

	if (!ret || (!buf && len > 0))
		return -EINVAL;
	t = trace_new();
	if (!t)
		return -ENOMEM;

	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t l = nl ? (size_t) (nl - (buf + pos)) : len - pos;

		line++;
		if (l > TRACE_LINE_MAX) {
			r = -EBADMSG;
			goto fail;
		}
		if (line == 1)
			r = (l == strlen(TRACE_HEADER) && memcmp(buf, TRACE_HEADER, l) == 0) ? 0 : -EINVAL;
		else
			r = parse_line(t, buf + pos, l);
		if (r == -ENOMEM)
			goto fail;
		if (r < 0) {
			r = -EBADMSG;
			goto fail;
		}
		pos += l + (nl ? 1 : 0);
	}
	if (line == 0 || t->n_regions == 0) {
		line = line == 0 ? 1 : 0;
		r = -EBADMSG;
		goto fail;
	}
	if (regions_overlap(t)) {
		line = 0;
		r = -EBADMSG;
		goto fail;
	}
	if (ret_line)
		*ret_line = 0;
	*ret = t;
	return 0;
fail:
	if (ret_line)
		*ret_line = r == -ENOMEM ? 0 : line;
	trace_free(t);
	return r;
}

int trace_write(const Trace *t, FILE *f)
{
	fprintf(f, "%s\n", TRACE_HEADER);
	for (size_t k = 0; k < t->n_regions; k++)
		fprintf(f, "region %zu 0x%" PRIx64 " %" PRIu64 "\n", k, t->regions[k].start,
			t->regions[k].length);
	for (size_t k = 0; k < t->n_ticks; k++) {
		fprintf(f, "tick %" PRIu64 "\n", t->ticks[k].tick);
		for (size_t a = t->ticks[k].first; a < t->ticks[k].first + t->ticks[k].n; a++)
			fprintf(f, "access %" PRIu32 " %" PRIu64 "\n", t->accesses[a].region,
				t->accesses[a].count);
	}
	return ferror(f) ? -EIO : 0;
}
