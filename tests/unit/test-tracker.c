/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The trackers without a kernel: the pure region helpers (fit, adapt,
 * inherit), the sample tracker on the scripted fake backend with
 * /proc/PID/maps from a fixture root, and the damon tracker against a
 * fixture DAMON sysfs tree in which the test plays the kernel: it checks
 * what the tracker wrote and writes the tried regions the tracker reads.
 * The real kernels are in tests/vm/daemon/tracker-check.c.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend-fake.h"
#include "backend.h"
#include "mover.h"
#include "tracker.h"
#include "util.h"

#define PG UINT64_C(4096)
#define MiB (UINT64_C(1) << 20)

/* ------------------------------------------------------------------ fixture files */

static char *fixture_new(void)
{
	char *root = strdup("/tmp/test-tracker.XXXXXX");

	assert_non_null(root);
	assert_non_null(mkdtemp(root));
	return root;
}

static void fixture_free(char *root)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
	free(root);
}

/* Create (or replace) root/rel with the text, parents included. */
static void put(const char *root, const char *rel, const char *fmt, ...) _printf_(3, 4);
static void put(const char *root, const char *rel, const char *fmt, ...)
{
	char path[1024];
	va_list ap;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (char *s = path + strlen(root) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		(void) mkdir(path, 0755);
		*s = '/';
	}
	f = fopen(path, "we");
	assert_non_null(f);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	assert_int_equal(fclose(f), 0);
}

/* root/rel's content without the trailing newline ("" when missing). */
static const char *get(const char *root, const char *rel)
{
	static char buf[256];
	char path[1024];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	buf[0] = '\0';
	f = fopen(path, "re");
	if (!f)
		return buf;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return buf;
}

/* ------------------------------------------------------------------ kinds */

static void test_kind_strings(void **state)
{
	assert_int_equal(tracker_kind_from_string("auto"), -1);
	assert_int_equal(tracker_kind_from_string("none"), TRACKER_NONE);
	assert_int_equal(tracker_kind_from_string("sample"), TRACKER_SAMPLE);
	assert_int_equal(tracker_kind_from_string("damon"), TRACKER_DAMON);
	assert_int_equal(tracker_kind_from_string("Damon"), -EINVAL);
	assert_int_equal(tracker_kind_from_string(""), -EINVAL);
	assert_int_equal(tracker_kind_from_string(NULL), -EINVAL);
	assert_string_equal(tracker_kind_to_string(TRACKER_DAMON), "damon");
	assert_null(tracker_kind_to_string(_TRACKER_KIND_MAX));
	assert_null(tracker_kind_to_string(-1));
}

/* ------------------------------------------------------------------ pure helpers */

static TrackerRegion reg(uint64_t start, uint64_t len, uint64_t heat, int residency)
{
	return (TrackerRegion) {
		.start = start, .length = len, .heat = heat, .residency = residency,
		.resident_since_usec = residency >= 0 ? 77 : 0, .hot_ticks = 3, .cold_ticks = 1,
	};
}

static TrackerRegion *regions_dup(const TrackerRegion *v, size_t n)
{
	TrackerRegion *c = malloc(MAX(n, 1U) * sizeof(*c));

	assert_non_null(c);
	memcpy(c, v, n * sizeof(*c));
	return c;
}

static void test_fit(void **state)
{
	const TrackerRegion init[] = {
		reg(0x10000, 0x8000, 500, 0),       /* spans map 0's end and the gap */
		reg(0x30000, 0x2000, 900, 1),       /* entirely unmapped: dropped */
		reg(0x40000, 0x4000, 100, -1),      /* inside map 1, which extends both ways */
	};
	const uint64_t maps[][2] = { { 0x10000, 0x14000 }, { 0x3e000, 0x48000 }, { 0x50000, 0x51000 } };
	TrackerRegion *v = regions_dup(init, ELEMENTSOF(init));
	size_t n = ELEMENTSOF(init);

	assert_int_equal(tracker_regions_fit(&v, &n, maps, ELEMENTSOF(maps)), 0);
	assert_int_equal(n, 5);
	/* map 0: the first region cut at the mapping's end, state kept */
	assert_int_equal(v[0].start, 0x10000);
	assert_int_equal(v[0].length, 0x4000);
	assert_int_equal(v[0].heat, 500);
	assert_int_equal(v[0].residency, 0);
	assert_int_equal(v[0].resident_since_usec, 77);
	/* map 1: fresh, the old region, fresh */
	assert_int_equal(v[1].start, 0x3e000);
	assert_int_equal(v[1].length, 0x2000);
	assert_int_equal(v[1].heat, 0);
	assert_int_equal(v[1].residency, POLICY_SYSTEM_RAM);
	assert_int_equal(v[1].hot_ticks, 0);
	assert_int_equal(v[2].start, 0x40000);
	assert_int_equal(v[2].length, 0x4000);
	assert_int_equal(v[2].heat, 100);
	assert_int_equal(v[2].hot_ticks, 3);
	assert_int_equal(v[3].start, 0x44000);
	assert_int_equal(v[3].length, 0x4000);
	assert_int_equal(v[3].heat, 0);
	/* map 2: nothing covered it */
	assert_int_equal(v[4].start, 0x50000);
	assert_int_equal(v[4].length, 0x1000);

	/* A region across two mappings is split at the boundary, both halves keep its state. */
	{
		const uint64_t two[][2] = { { 0x10000, 0x12000 }, { 0x12000, 0x14000 } };

		assert_int_equal(tracker_regions_fit(&v, &n, two, ELEMENTSOF(two)), 0);
		assert_int_equal(n, 2);
		assert_int_equal(v[0].length, 0x2000);
		assert_int_equal(v[1].start, 0x12000);
		assert_int_equal(v[1].heat, 500);
		assert_int_equal(v[1].residency, 0);
	}
	/* No mappings: no regions. Unordered mappings: -EINVAL, regions untouched. */
	{
		const uint64_t bad[][2] = { { 0x20000, 0x30000 }, { 0x10000, 0x18000 } };

		assert_int_equal(tracker_regions_fit(&v, &n, bad, ELEMENTSOF(bad)), -EINVAL);
		assert_int_equal(n, 2);
		assert_int_equal(tracker_regions_fit(&v, &n, NULL, 0), 0);
		assert_int_equal(n, 0);
	}
	free(v);
}

static uint64_t total_len(const TrackerRegion *v, size_t n)
{
	uint64_t t = 0;

	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			assert_true(v[i].start >= v[i - 1].start + v[i - 1].length);
		assert_int_equal(v[i].start % PG, 0);
		assert_int_equal(v[i].length % PG, 0);
		assert_true(v[i].length > 0);
		t += v[i].length;
	}
	return t;
}

static void test_adapt(void **state)
{
	TrackerRegion *v;
	size_t n;
	uint64_t seed = 42;

	/* Eight equal neighbours of 64 pages merge down to min_regions (4), heat size-weighted. */
	v = malloc(8 * sizeof(*v));
	assert_non_null(v);
	for (int i = 0; i < 8; i++)
		v[i] = reg(0x100000 + (uint64_t) i * 64 * PG, 64 * PG, i < 4 ? 600 : 640, -1);
	n = 8;
	/* max 8: 4 regions are not fewer than max/2, so nothing splits again */
	assert_int_equal(tracker_regions_adapt(&v, &n, 4, 8, 100, 16, PG, &seed), 0);
	assert_int_equal(n, 4);
	assert_int_equal(total_len(v, n), 8 * 64 * PG);
	assert_int_equal(v[0].heat, 600);
	assert_int_equal(v[3].heat, 640);
	free(v);

	/* Different residency, a gap, or a heat difference above the threshold: no merge. */
	{
		const TrackerRegion init[] = {
			reg(0x100000, 16 * PG, 500, -1),
			reg(0x100000 + 16 * PG, 16 * PG, 500, 0),       /* on a device */
			reg(0x100000 + 40 * PG, 16 * PG, 500, 0),       /* after a gap */
			reg(0x100000 + 56 * PG, 16 * PG, 700, 0),       /* too different */
			reg(0x100000 + 72 * PG, 16 * PG, 650, 0),       /* merges with the one before */
		};

		v = regions_dup(init, ELEMENTSOF(init));
		n = ELEMENTSOF(init);
		assert_int_equal(tracker_regions_adapt(&v, &n, 1, 8, 100, 16, PG, &seed), 0);
		assert_int_equal(n, 4);
		assert_int_equal(v[3].start, 0x100000 + 56 * PG);
		assert_int_equal(v[3].length, 32 * PG);
		assert_int_equal(v[3].heat, 675);
		/* the smaller tick counts and the older residency time are kept */
		assert_int_equal(v[3].hot_ticks, 3);
		free(v);
	}

	/* Few regions: each splits once, at a page boundary at least min_pages from its ends. */
	{
		const TrackerRegion one = reg(0x200000, 1024 * PG, 300, 1);
		unsigned rounds = 0;

		v = regions_dup(&one, 1);
		n = 1;
		while (n < 64) {
			size_t want = 0;

			/* a region of fewer than 2 * min_pages pages stays whole */
			for (size_t i = 0; i < n; i++)
				want += v[i].length / PG >= 8 ? 2 : 1;
			assert_int_equal(tracker_regions_adapt(&v, &n, 1, 128, 0, 4, PG, &seed), 0);
			assert_true(++rounds < 20);
			/* neighbours differ by more than the threshold: no merges */
			for (size_t i = 0; i < n; i++)
				v[i].heat = i % 2 ? 0 : 1000;
			assert_int_equal(n, MIN(want, 128U));
			assert_int_equal(total_len(v, n), 1024 * PG);
			for (size_t i = 0; i < n; i++) {
				assert_true(v[i].length >= 4 * PG);
				assert_int_equal(v[i].residency, 1);
				assert_int_equal(v[i].resident_since_usec, 77);
			}
		}
		/* 64 regions of 128 max: no longer fewer than max / 2 */
		assert_int_equal(tracker_regions_adapt(&v, &n, 1, 128, 0, 4, PG, &seed), 0);
		assert_true(n >= 64);
		assert_true(rounds >= 6);
		free(v);
	}

	/* The split never goes past max_regions, and too-small regions stay whole. */
	{
		const TrackerRegion init[] = {
			reg(0x100000, 100 * PG, 0, -1), reg(0x100000 + 100 * PG, 7 * PG, 1000, -1),
			reg(0x100000 + 107 * PG, 100 * PG, 0, -1),
		};

		v = regions_dup(init, ELEMENTSOF(init));
		n = ELEMENTSOF(init);
		assert_int_equal(tracker_regions_adapt(&v, &n, 1, 8, 0, 4, PG, &seed), 0);
		assert_int_equal(n, 5);
		assert_int_equal(total_len(v, n), 207 * PG);
		assert_int_equal(v[2].length, 7 * PG);
		free(v);
		v = regions_dup(init, ELEMENTSOF(init));
		n = ELEMENTSOF(init);
		assert_int_equal(tracker_regions_adapt(&v, &n, 1, 7, 0, 4, PG, &seed), 0);
		assert_int_equal(n, 3);    /* 3 is not fewer than 7 / 2 */
		free(v);
	}

	/* Same seed, same splits. */
	{
		const TrackerRegion one = reg(0x200000, 1000 * PG, 0, -1);
		TrackerRegion *a = regions_dup(&one, 1), *b = regions_dup(&one, 1);
		size_t na = 1, nb = 1;
		uint64_t s1 = 7, s2 = 7;

		assert_int_equal(tracker_regions_adapt(&a, &na, 1, 100, 0, 1, PG, &s1), 0);
		assert_int_equal(tracker_regions_adapt(&b, &nb, 1, 100, 0, 1, PG, &s2), 0);
		assert_int_equal(na, 2);
		assert_int_equal(nb, 2);
		assert_int_equal(a[0].length, b[0].length);
		free(a);
		free(b);
	}

	n = 0;
	v = NULL;
	assert_int_equal(tracker_regions_adapt(&v, &n, 5, 4, 0, 1, PG, &seed), -EINVAL);
	assert_int_equal(tracker_regions_adapt(&v, &n, 1, 4, 0, 0, PG, &seed), -EINVAL);
	assert_int_equal(tracker_regions_adapt(&v, &n, 1, 4, 0, 1, PG, &seed), 0);
	assert_int_equal(n, 0);
	free(v);
}

/* DAMON mode: pool regions stay the sampler's, DAMON's are cut around them. */
static void test_keep_pool(void **state)
{
	const uint64_t B = 0x100000;
	TrackerRegion old[] = {
		reg(B, 10 * PG, 0, -1),                 /* not in a pool: DAMON's next */
		reg(B + 50 * PG, 70 * PG, 900, 1),      /* across DAMON's 1st and 2nd */
		reg(B + 250 * PG, 10 * PG, 600, 1),     /* inside DAMON's 3rd */
		reg(B + 400 * PG, 5 * PG, 700, 1),      /* in a gap between DAMON's */
		reg(B + 900 * PG, 4 * PG, 800, 1),      /* after DAMON's last */
	};
	const TrackerRegion damon[] = {
		reg(B, 100 * PG, 10, -1),
		reg(B + 100 * PG, 100 * PG, 20, -1),
		reg(B + 200 * PG, 100 * PG, 0, -1),
		reg(B + 500 * PG, 100 * PG, 30, -1),
		reg(B + 600 * PG, 10 * PG, 40, -1),
	};
	static const struct {
		uint64_t start, pages, heat;
	} want[] = {
		{ 0, 50, 10 }, { 50, 70, 900 }, { 120, 80, 20 }, { 200, 50, 0 }, { 250, 10, 600 },
		{ 260, 40, 0 }, { 400, 5, 700 }, { 500, 100, 30 }, { 600, 10, 40 }, { 900, 4, 800 },
	};
	TrackerRegion *v = regions_dup(damon, ELEMENTSOF(damon));
	size_t n = ELEMENTSOF(damon);

	for (size_t i = 1; i < ELEMENTSOF(old); i++)
		old[i].on_cohmem = true;
	assert_int_equal(tracker_regions_keep_pool(&v, &n, old, ELEMENTSOF(old)), 0);
	assert_int_equal(n, ELEMENTSOF(want));
	for (size_t i = 0; i < n; i++) {
		if (v[i].start != B + want[i].start * PG || v[i].length != want[i].pages * PG ||
		    v[i].heat != want[i].heat)
			fail_msg("region %zu: 0x%" PRIx64 "+%" PRIu64 " heat %" PRIu64, i, v[i].start,
				 v[i].length / PG, v[i].heat);
		/* Kept pool regions keep their state; DAMON's pieces are DAMON's. */
		assert_int_equal(v[i].on_cohmem, want[i].heat >= 600);
		assert_int_equal(v[i].residency, want[i].heat >= 600 ? 1 : -1);
	}
	free(v);

	/* No pool region: DAMON's regions as they were. */
	v = regions_dup(damon, ELEMENTSOF(damon));
	n = ELEMENTSOF(damon);
	old[1].on_cohmem = old[2].on_cohmem = old[3].on_cohmem = old[4].on_cohmem = false;
	assert_int_equal(tracker_regions_keep_pool(&v, &n, old, ELEMENTSOF(old)), 0);
	assert_int_equal(n, ELEMENTSOF(damon));
	assert_memory_equal(v, damon, sizeof(damon));
	free(v);

	/* DAMON has none (not a target yet): only the pool regions. */
	v = NULL;
	n = 0;
	old[2].on_cohmem = true;
	assert_int_equal(tracker_regions_keep_pool(&v, &n, old, ELEMENTSOF(old)), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].start, B + 250 * PG);
	assert_int_equal(v[0].heat, 600);
	free(v);
}

static void test_inherit(void **state)
{
	const TrackerRegion old[] = {
		reg(0x100000, 32 * PG, 0, 2),
		reg(0x100000 + 32 * PG, 64 * PG, 0, -1),
	};
	TrackerRegion nv[] = {
		reg(0x100000, 20 * PG, 10, -1),                 /* old[0] only */
		reg(0x100000 + 20 * PG, 30 * PG, 20, -1),       /* 12 pages of old[0], 18 of old[1] */
		reg(0x100000 + 50 * PG, 40 * PG, 30, 3),        /* old[1] only */
		reg(0x900000, 8 * PG, 40, 5),                   /* no overlap: fresh */
	};

	nv[0].hot_ticks = nv[1].hot_ticks = 0;
	tracker_regions_inherit(nv, ELEMENTSOF(nv), old, ELEMENTSOF(old));
	assert_int_equal(nv[0].residency, 2);
	assert_int_equal(nv[0].resident_since_usec, 77);
	assert_int_equal(nv[0].hot_ticks, 3);
	assert_int_equal(nv[0].heat, 10);     /* heat is the new region's own */
	assert_int_equal(nv[1].residency, -1);
	assert_int_equal(nv[1].start, 0x100000 + 20 * PG);
	assert_int_equal(nv[2].residency, -1);
	assert_int_equal(nv[2].resident_since_usec, 0);
	assert_int_equal(nv[3].residency, POLICY_SYSTEM_RAM);
	assert_int_equal(nv[3].resident_since_usec, 0);
	assert_int_equal(nv[3].hot_ticks, 0);
	assert_int_equal(nv[3].heat, 40);
}

/* ------------------------------------------------------------------ engine: none, sample */

#define SPID 4242
#define SA UINT64_C(0x10000000)
#define SPAGES 1024U    /* 4 MiB */
#define SHOT 256U       /* the hot mapping: 1 MiB */
#define SCOLD (SA + 2 * MiB)    /* the cold mapping: SPAGES after a gap */

/* A program, anonymous mappings [start, end) (one or two), a shared mapping. */
static void put_maps2(const char *root, pid_t pid, uint64_t s0, uint64_t e0, uint64_t s1,
		      uint64_t e1)
{
	char rel[64], second[64] = "";

	snprintf(rel, sizeof(rel), "proc/%d/maps", (int) pid);
	if (s1 < e1)
		snprintf(second, sizeof(second), "%08llx-%08llx rw-p 00000000 00:00 0 \n",
			 (unsigned long long) s1, (unsigned long long) e1);
	put(root, rel,
	    "00400000-00401000 r-xp 00000000 08:01 1234 /usr/bin/work\n"
	    "%08llx-%08llx rw-p 00000000 00:00 0 \n"
	    "%s"
	    "7ffd0000-7ffd1000 rw-s 00000000 00:01 99 /dev/shm/x\n",
	    (unsigned long long) s0, (unsigned long long) e0, second);
}

static void put_maps(const char *root, pid_t pid, uint64_t start, uint64_t end)
{
	put_maps2(root, pid, start, end, 0, 0);
}

static void heat_by_part(const TrackerRegion *v, size_t n, uint64_t hot_end, uint64_t *ret_hot_min,
			 uint64_t *ret_cold_max, size_t *ret_nh, size_t *ret_nc)
{
	*ret_hot_min = UINT64_MAX;
	*ret_cold_max = 0;
	*ret_nh = *ret_nc = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i].start + v[i].length <= hot_end) {
			*ret_hot_min = MIN(*ret_hot_min, v[i].heat);
			(*ret_nh)++;
		} else if (v[i].start >= hot_end) {
			*ret_cold_max = MAX(*ret_cold_max, v[i].heat);
			(*ret_nc)++;
		}
	}
}

static void test_engine_none(void **state)
{
	char *root = fixture_new();
	TrackerParams p;
	TrackerEngine *e = NULL;
	TrackerTickStats st;
	TrackerRegion *v;
	size_t n;
	pid_t pids[] = { SPID, SPID + 1 };

	tracker_params_init(&p);
	p.kind = TRACKER_NONE;
	put_maps(root, SPID, SA, SA + SPAGES * PG);
	assert_int_equal(tracker_engine_new(root, &p, &e), 0);
	assert_int_equal(tracker_engine_kind(e), TRACKER_NONE);
	assert_int_equal(tracker_engine_set_pids(e, (pid_t[]) { 2, 1 }, 2), -EINVAL);
	assert_int_equal(tracker_engine_set_pids(e, pids, 2), 0);
	assert_null(tracker_engine_regions(e, SPID, &n));    /* nothing before the first tick */
	assert_int_equal(tracker_engine_tick(e, 1), 0);
	v = tracker_engine_regions(e, SPID, &n);
	assert_non_null(v);
	assert_int_equal(n, 1);    /* the anonymous mapping only */
	assert_int_equal(v[0].start, SA);
	assert_int_equal(v[0].length, SPAGES * PG);
	assert_int_equal(v[0].heat, 0);
	/* SPID + 1 has no /proc entry: gone */
	assert_null(tracker_engine_regions(e, SPID + 1, &n));
	assert_int_equal(n, 0);
	/* A zombie (or a kernel thread) has no mappings: gone too. */
	{
		char rel[64];
		pid_t z[] = { SPID, SPID + 2 };

		snprintf(rel, sizeof(rel), "proc/%d/maps", SPID + 2);
		put(root, rel, "%s", "");
		assert_int_equal(tracker_engine_set_pids(e, z, 2), 0);
		assert_int_equal(tracker_engine_tick(e, 1), 0);
		assert_null(tracker_engine_regions(e, SPID + 2, &n));
		assert_non_null(tracker_engine_regions(e, SPID, &n));
	}
	tracker_engine_tick_stats(e, &st);
	assert_int_equal(st.n_regions, 1);
	assert_int_equal(st.n_calls, 0);
	assert_int_equal(st.pages_tracked, SPAGES);
	/* The mapping shrinks: the region follows; the pid dropped from the set is forgotten. */
	put_maps(root, SPID, SA, SA + 16 * PG);
	assert_int_equal(tracker_engine_tick(e, 2), 0);
	v = tracker_engine_regions(e, SPID, &n);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].length, 16 * PG);
	assert_int_equal(tracker_engine_set_pids(e, NULL, 0), 0);
	assert_null(tracker_engine_regions(e, SPID, &n));
	tracker_engine_free(e);

	/* Bad parameters; damon asked for where there is none. */
	p.min_regions = 0;
	assert_int_equal(tracker_engine_new(root, &p, &e), -EINVAL);
	tracker_params_init(&p);
	p.window_pages = 0;
	assert_int_equal(tracker_engine_new(root, &p, &e), -EINVAL);
	tracker_params_init(&p);
	p.kind = TRACKER_DAMON;
	assert_int_equal(tracker_engine_new(root, &p, &e), -EOPNOTSUPP);
	p.kind = 7;
	assert_int_equal(tracker_engine_new(root, &p, &e), -EINVAL);
	fixture_free(root);
}

static void fake_anon(BackendRef *ref, pid_t pid, uint64_t start, unsigned pages)
{
	assert_int_equal(fake_add_mapping(ref->backend, pid, start, start + pages * PG,
					  BACKEND_MAP_ANON), 0);
	assert_int_equal(fake_set_pages(ref->backend, pid, start, pages, FAKE_SYSTEM, 0), 0);
}

static BackendRef *fake_sampler(pid_t pid, uint64_t start, unsigned pages)
{
	BackendRef *ref = NULL;

	assert_int_equal(backend_ref_open(&backend_fake_ops, NULL, &ref), 0);
	assert_int_equal(fake_add_process(ref->backend, pid), 0);
	fake_anon(ref, pid, start, pages);
	return ref;
}

/* The workload: every hot page accessed since the last tick. */
static void touch_hot(BackendRef *ref, pid_t pid, uint64_t start, unsigned hot)
{
	assert_int_equal(fake_set_pages(ref->backend, pid, start, hot, FAKE_SYSTEM, FAKE_PAGE_YOUNG),
			 0);
}

static void test_engine_sample(void **state)
{
	char *root = fixture_new();
	TrackerParams p;
	TrackerEngine *e = NULL;
	TrackerTickStats st;
	TrackerRegion *v;
	BackendRef *ref;
	uint64_t hot_min, cold_max, sum_calls = 0, sum_regions = 0;
	unsigned calls_before;
	size_t n, nh, nc;
	pid_t pid = SPID;
	char rel[64];

	/*
	 * A hot and a cold mapping: regions never straddle mappings, so every
	 * region is all hot or all cold and its heat must say which.
	 */
	put_maps2(root, SPID, SA, SA + SHOT * PG, SCOLD, SCOLD + SPAGES * PG);
	ref = fake_sampler(SPID, SA, SHOT);
	fake_anon(ref, SPID, SCOLD, SPAGES);
	tracker_params_init(&p);
	p.min_regions = 4;
	p.max_regions = 32;
	p.seed = 1234;

	/* auto on a root without DAMON: none until a sampler comes, then sample */
	assert_int_equal(tracker_engine_new(root, &p, &e), 0);
	assert_int_equal(tracker_engine_kind(e), TRACKER_NONE);
	tracker_engine_set_sampler(e, ref);
	assert_int_equal(tracker_engine_kind(e), TRACKER_SAMPLE);
	backend_ref_unref(ref);    /* the engine holds its own reference */
	assert_int_equal(tracker_engine_set_pids(e, &pid, 1), 0);

	for (int tick = 0; tick < 12; tick++) {
		touch_hot(ref, SPID, SA, SHOT);
		calls_before = fake_calls(ref->backend, FAKE_OP_SAMPLE_WINDOWS);
		assert_int_equal(tracker_engine_tick(e, (uint64_t) tick), 0);
		v = tracker_engine_regions(e, SPID, &n);
		assert_non_null(v);
		assert_int_equal(total_len(v, n), (SHOT + SPAGES) * PG);
		assert_true(n >= 2 && n <= p.max_regions);
		tracker_engine_tick_stats(e, &st);
		assert_int_equal(st.n_regions, n);
		assert_int_equal(st.pages_tracked, SHOT + SPAGES);
		/* Fewer regions than BACKEND_SAMPLE_WINDOWS_MAX: a batch to read, one to clear. */
		assert_true(st.n_calls >= 1 && st.n_calls <= 2);
		assert_int_equal(st.n_calls,
				 fake_calls(ref->backend, FAKE_OP_SAMPLE_WINDOWS) - calls_before);
		sum_calls += st.n_calls;
		sum_regions += n;
	}
	/* Windows go in batches, never one call each. */
	assert_int_equal(fake_calls(ref->backend, FAKE_OP_SAMPLE), 0);
	assert_true(sum_calls <= 2 * 12 && sum_calls < sum_regions);
	v = tracker_engine_regions(e, SPID, &n);
	assert_true(n >= p.min_regions);
	heat_by_part(v, n, SA + SHOT * PG, &hot_min, &cold_max, &nh, &nc);
	assert_int_equal(nh + nc, n);
	assert_true(nh > 0 && nc > 0);
	/* Every window in the hot part finds all its pages young, none in the cold part. */
	assert_int_equal(hot_min, TRACKER_HEAT_MAX);
	assert_int_equal(cold_max, 0);
	/* The windows are cleared: SAMPLE saw them, and cold pages were never made young. */
	assert_int_equal(fake_calls(ref->backend, FAKE_OP_SAMPLE_WINDOWS) > 12, true);

	/* The access stops: one tick later every window is cold. */
	assert_int_equal(tracker_engine_tick(e, 100), 0);
	v = tracker_engine_regions(e, SPID, &n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(v[i].heat, 0);

	/* A SAMPLE failure other than the process going away fails the tick. */
	fake_fail_next(ref->backend, FAKE_OP_SAMPLE_WINDOWS, -EIO);
	assert_int_equal(tracker_engine_tick(e, 101), -EIO);
	assert_non_null(tracker_engine_regions(e, SPID, &n));

	/* Without a sampler, an explicit sample tracker fits regions and says why there is no heat. */
	tracker_engine_set_sampler(e, NULL);
	assert_int_equal(tracker_engine_kind(e), TRACKER_NONE);
	tracker_engine_free(e);
	p.kind = TRACKER_SAMPLE;
	assert_int_equal(tracker_engine_new(root, &p, &e), 0);
	assert_int_equal(tracker_engine_set_pids(e, &pid, 1), 0);
	assert_int_equal(tracker_engine_tick(e, 1), -ENODEV);
	assert_non_null(backend_last_message());
	assert_non_null(tracker_engine_regions(e, SPID, &n));
	assert_int_equal(n, 2);

	/* The process exits: gone, not an error (the tick fails for want of cohmem only). */
	snprintf(rel, sizeof(rel), "%s/proc/%d/maps", root, SPID);
	assert_int_equal(unlink(rel), 0);
	assert_int_equal(tracker_engine_tick(e, 2), -ENODEV);
	assert_null(tracker_engine_regions(e, SPID, &n));
	tracker_engine_free(e);
	fixture_free(root);
}

/*
 * More regions than one sample_windows() call takes: the windows go in batches of
 * BACKEND_SAMPLE_WINDOWS_MAX, and the result is the same as with one sample() per window
 * (a backend without sample_windows): same seed, same regions, same heat.
 */
static void test_engine_sample_batches(void **state)
{
	static BackendOps single;    /* the fake without sample_windows; outlives its refs */
	enum { TICKS = 16 };
	const unsigned pages = 4096;    /* 16 MiB, hot in its first half */
	char *root = fixture_new();
	TrackerRegion *single_regions = NULL;
	size_t single_n = 0, max_windows = 0;
	uint64_t windows[TICKS];
	TrackerParams p;
	TrackerEngine *e = NULL;
	TrackerTickStats st;
	TrackerRegion *v;
	BackendRef *ref;
	pid_t pid = SPID;
	size_t n;

	put_maps(root, SPID, SA, SA + pages * PG);
	tracker_params_init(&p);
	p.kind = TRACKER_SAMPLE;
	p.min_regions = 150;
	p.max_regions = 200;
	p.seed = 99;
	single = backend_fake_ops;
	single.sample_windows = NULL;

	for (int batched = 0; batched <= 1; batched++) {
		FakeOp op = batched ? FAKE_OP_SAMPLE_WINDOWS : FAKE_OP_SAMPLE;
		FakeOp other = batched ? FAKE_OP_SAMPLE : FAKE_OP_SAMPLE_WINDOWS;

		assert_int_equal(backend_ref_open(batched ? &backend_fake_ops : &single, NULL,
						  &ref), 0);
		assert_int_equal(fake_add_process(ref->backend, SPID), 0);
		fake_anon(ref, SPID, SA, pages);
		assert_int_equal(tracker_engine_new(root, &p, &e), 0);
		tracker_engine_set_sampler(e, ref);
		assert_int_equal(tracker_engine_set_pids(e, &pid, 1), 0);
		for (int tick = 0; tick < TICKS; tick++) {
			unsigned before = fake_calls(ref->backend, op);

			touch_hot(ref, SPID, SA, pages / 2);
			assert_int_equal(tracker_engine_tick(e, (uint64_t) tick), 0);
			tracker_engine_tick_stats(e, &st);
			assert_int_equal(st.n_calls, fake_calls(ref->backend, op) - before);
			if (!batched) {
				/* one call per window read or cleared */
				windows[tick] = st.n_calls;
				max_windows = MAX(max_windows, (size_t) st.n_calls);
				continue;
			}
			/* the windows read, then the new ones: each in batches of 64 */
			assert_true(st.n_calls >= (windows[tick] + 63) / 64 &&
				    st.n_calls <= (windows[tick] + 63) / 64 + 1);
		}
		assert_int_equal(fake_calls(ref->backend, other), 0);
		v = tracker_engine_regions(e, SPID, &n);
		if (!batched) {
			single_regions = malloc(n * sizeof(*v));
			assert_non_null(single_regions);
			memcpy(single_regions, v, n * sizeof(*v));
			single_n = n;
		} else {
			assert_int_equal(n, single_n);
			for (size_t i = 0; i < n; i++) {
				assert_int_equal(v[i].start, single_regions[i].start);
				assert_int_equal(v[i].length, single_regions[i].length);
				assert_int_equal(v[i].heat, single_regions[i].heat);
			}
		}
		tracker_engine_free(e);
		backend_ref_unref(ref);
	}
	/* Enough windows in a tick for several batches, and both hot and cold regions. */
	assert_true(max_windows > 2 * BACKEND_SAMPLE_WINDOWS_MAX);
	{
		uint64_t hot_min, cold_max;
		size_t nh, nc;

		heat_by_part(single_regions, single_n, SA + pages / 2 * PG, &hot_min, &cold_max,
			     &nh, &nc);
		assert_true(nh > 0 && nc > 0);
		assert_int_equal(hot_min, TRACKER_HEAT_MAX);
		assert_int_equal(cold_max, 0);
	}
	free(single_regions);
	fixture_free(root);
}

/* ------------------------------------------------------------------ engine: damon */

#define KD "sys/kernel/mm/damon/admin/kdamonds"
#define CTX KD "/0/contexts/0"
#define DA UINT64_C(0x10000000)
#define DB UINT64_C(0x20000000)

/* What the kernel shows after "echo 1 > nr_kdamonds" etc., for n targets/schemes. */
static void damon_tree(const char *root, unsigned n, const char *state)
{
	static const char *const files[] = {
		"action", "access_pattern/sz/min", "access_pattern/sz/max",
		"access_pattern/nr_accesses/min", "access_pattern/nr_accesses/max",
		"access_pattern/age/min", "access_pattern/age/max", "filters/nr_filters",
		"filters/0/type", "filters/0/matching", "filters/0/damon_target_idx",
		"filters/0/memcg_path", "tried_regions/total_bytes",
	};
	char rel[256];

	put(root, KD "/nr_kdamonds", "0\n");
	put(root, KD "/0/state", "%s\n", state);
	put(root, KD "/0/pid", "%s\n", streq(state, "off") ? "-1" : "77");
	put(root, KD "/0/contexts/nr_contexts", "0\n");
	put(root, CTX "/avail_operations", "vaddr\nfvaddr\npaddr\n");
	put(root, CTX "/operations", "paddr\n");
	put(root, CTX "/monitoring_attrs/intervals/sample_us", "5000\n");
	put(root, CTX "/monitoring_attrs/intervals/aggr_us", "100000\n");
	put(root, CTX "/monitoring_attrs/intervals/update_us", "1000000\n");
	put(root, CTX "/monitoring_attrs/nr_regions/min", "10\n");
	put(root, CTX "/monitoring_attrs/nr_regions/max", "1000\n");
	put(root, CTX "/targets/nr_targets", "0\n");
	put(root, CTX "/schemes/nr_schemes", "0\n");
	for (unsigned i = 0; i < n; i++) {
		snprintf(rel, sizeof(rel), CTX "/targets/%u/pid_target", i);
		put(root, rel, "0\n");
		snprintf(rel, sizeof(rel), CTX "/targets/%u/regions/nr_regions", i);
		put(root, rel, "0\n");
		for (size_t k = 0; k < ELEMENTSOF(files); k++) {
			snprintf(rel, sizeof(rel), CTX "/schemes/%u/%s", i, files[k]);
			put(root, rel, "0\n");
		}
	}
}

static void tried(const char *root, unsigned scheme, unsigned idx, uint64_t start, uint64_t end,
		  unsigned nr_accesses)
{
	char rel[256];

	snprintf(rel, sizeof(rel), CTX "/schemes/%u/tried_regions/%u/start", scheme, idx);
	put(root, rel, "%llu\n", (unsigned long long) start);
	snprintf(rel, sizeof(rel), CTX "/schemes/%u/tried_regions/%u/end", scheme, idx);
	put(root, rel, "%llu\n", (unsigned long long) end);
	snprintf(rel, sizeof(rel), CTX "/schemes/%u/tried_regions/%u/nr_accesses", scheme, idx);
	put(root, rel, "%u\n", nr_accesses);
	snprintf(rel, sizeof(rel), CTX "/schemes/%u/tried_regions/%u/age", scheme, idx);
	put(root, rel, "3\n");
}

static void tried_clear(const char *root)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s/" CTX "/schemes/'*/tried_regions/[0-9]*", root);
	assert_int_equal(system(cmd), 0);
}

static void test_engine_damon(void **state)
{
	char *root = fixture_new();
	TrackerParams p;
	TrackerEngine *e = NULL;
	TrackerTickStats st;
	TrackerRegion *v;
	BackendRef *ref;
	size_t n;
	pid_t pids[] = { 100, 200 };
	char rel[256];

	damon_tree(root, 2, "off");
	put_maps(root, 100, DA, DA + 4 * MiB);
	put_maps(root, 200, DB, DB + 1 * MiB);
	tracker_params_init(&p);
	p.min_regions = 1;    /* DAMON's regions as they are (test_engine_damon_min) */
	assert_int_equal(tracker_engine_new(root, &p, &e), 0);
	assert_int_equal(tracker_engine_kind(e), TRACKER_DAMON);
	assert_int_equal(tracker_engine_set_pids(e, pids, 2), 0);

	/* The kernel's answer to update_schemes_tried_regions, ready before it is asked. */
	tried(root, 0, 0, DA, DA + 1 * MiB, 20);
	tried(root, 0, 1, DA + 1 * MiB, DA + 4 * MiB, 0);
	/* DAMON covers more than the anonymous mapping: cut to it */
	tried(root, 1, 0, DB - 1 * MiB, DB + 1 * MiB, 10);
	assert_int_equal(tracker_engine_tick(e, 1), 0);

	/* What was configured. */
	assert_string_equal(get(root, KD "/nr_kdamonds"), "1");
	assert_string_equal(get(root, KD "/0/contexts/nr_contexts"), "1");
	assert_string_equal(get(root, CTX "/operations"), "vaddr");
	assert_string_equal(get(root, CTX "/monitoring_attrs/intervals/aggr_us"), "250000");
	assert_string_equal(get(root, CTX "/monitoring_attrs/intervals/sample_us"), "12500");
	assert_string_equal(get(root, CTX "/monitoring_attrs/intervals/update_us"), "1000000");
	assert_string_equal(get(root, CTX "/monitoring_attrs/nr_regions/min"), "3");
	assert_string_equal(get(root, CTX "/monitoring_attrs/nr_regions/max"), "2000");
	assert_string_equal(get(root, CTX "/targets/nr_targets"), "2");
	assert_string_equal(get(root, CTX "/targets/0/pid_target"), "100");
	assert_string_equal(get(root, CTX "/targets/1/pid_target"), "200");
	assert_string_equal(get(root, CTX "/schemes/nr_schemes"), "2");
	for (unsigned i = 0; i < 2; i++) {
		char want[8];

		snprintf(rel, sizeof(rel), CTX "/schemes/%u/action", i);
		assert_string_equal(get(root, rel), "stat");
		snprintf(rel, sizeof(rel), CTX "/schemes/%u/access_pattern/sz/max", i);
		assert_string_equal(get(root, rel), "18446744073709551615");
		snprintf(rel, sizeof(rel), CTX "/schemes/%u/access_pattern/nr_accesses/max", i);
		assert_string_equal(get(root, rel), "4294967295");
		snprintf(rel, sizeof(rel), CTX "/schemes/%u/filters/nr_filters", i);
		assert_string_equal(get(root, rel), "1");
		snprintf(rel, sizeof(rel), CTX "/schemes/%u/filters/0/type", i);
		assert_string_equal(get(root, rel), "target");
		snprintf(rel, sizeof(rel), CTX "/schemes/%u/filters/0/matching", i);
		assert_string_equal(get(root, rel), "N");
		snprintf(rel, sizeof(rel), CTX "/schemes/%u/filters/0/damon_target_idx", i);
		snprintf(want, sizeof(want), "%u", i);
		assert_string_equal(get(root, rel), want);
	}
	/* the last word to the state file: the tried regions update */
	assert_string_equal(get(root, KD "/0/state"), "update_schemes_tried_regions");

	v = tracker_engine_regions(e, 100, &n);
	assert_non_null(v);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].start, DA);
	assert_int_equal(v[0].length, 1 * MiB);
	assert_int_equal(v[0].heat, TRACKER_HEAT_MAX);
	assert_int_equal(v[1].heat, 0);
	v = tracker_engine_regions(e, 200, &n);
	assert_non_null(v);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].start, DB);
	assert_int_equal(v[0].length, 1 * MiB);
	assert_int_equal(v[0].heat, 500);
	tracker_engine_tick_stats(e, &st);
	assert_int_equal(st.n_regions, 3);
	assert_int_equal(st.pages_tracked, 5 * MiB / PG);

	/* The placement marks pid 100's hot region as moved; DAMON re-splits; state follows. */
	v = tracker_engine_regions(e, 100, &n);
	v[0].residency = 0;
	v[0].resident_since_usec = 5;
	tried_clear(root);
	tried(root, 0, 0, DA, DA + MiB / 2, 14);
	tried(root, 0, 1, DA + MiB / 2, DA + 4 * MiB, 1);
	tried(root, 1, 0, DB, DB + MiB, 0);
	assert_int_equal(tracker_engine_tick(e, 2), 0);
	v = tracker_engine_regions(e, 100, &n);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].residency, 0);
	assert_int_equal(v[0].resident_since_usec, 5);
	assert_int_equal(v[0].heat, 700);
	assert_int_equal(v[1].residency, POLICY_SYSTEM_RAM);
	assert_int_equal(v[1].heat, 50);

	/*
	 * Pool pages are invisible to DAMON: it makes one idle lump of them and
	 * the rest. The pool region stays the sampler's (kept, split and merged
	 * by SAMPLE heat), the rest is DAMON's.
	 */
	ref = fake_sampler(100, DA, 4 * MiB / PG);
	tracker_engine_set_sampler(e, ref);
	v[0].on_cohmem = true;
	tried_clear(root);
	tried(root, 0, 0, DA, DA + 4 * MiB, 0);
	tried(root, 1, 0, DB, DB + MiB, 0);
	assert_int_equal(tracker_engine_tick(e, 3), 0);    /* windows prepared */
	v = tracker_engine_regions(e, 100, &n);
	assert_true(n >= 2);
	for (size_t i = 0; i < n; i++) {
		/* the pool part keeps its heat until SAMPLE says (no window read yet) */
		assert_int_equal(v[i].on_cohmem, v[i].start < DA + MiB / 2);
		assert_int_equal(v[i].heat, v[i].start < DA + MiB / 2 ? 700 : 0);
	}
	assert_int_equal(v[n - 1].start, DA + MiB / 2);
	touch_hot(ref, 100, DA, MiB / 2 / PG);
	assert_int_equal(tracker_engine_tick(e, 4), 0);    /* windows read */
	v = tracker_engine_regions(e, 100, &n);
	assert_true(n >= 2);
	for (size_t i = 0; i < n; i++) {
		if (v[i].start < DA + MiB / 2) {
			assert_true(v[i].on_cohmem);
			assert_int_equal(v[i].residency, 0);
			assert_int_equal(v[i].heat, TRACKER_HEAT_MAX);
		} else {
			assert_false(v[i].on_cohmem);
			assert_int_equal(v[i].heat, 0);    /* DAMON's */
		}
	}
	backend_ref_unref(ref);
	/* The pages leave the pool (the placement says so): DAMON's regions again from now. */
	for (size_t i = 0; i < n; i++)
		v[i].on_cohmem = false;

	/* A tried region of another target would overlap: the filter failed, say so. */
	tried(root, 1, 1, DB + MiB / 2, DB + 2 * MiB, 0);
	assert_int_equal(tracker_engine_tick(e, 5), -EBADMSG);
	assert_non_null(strstr(backend_last_message(), "overlapping"));
	tried_clear(root);

	/* The pid set changes: off, new configuration, on. */
	assert_int_equal(tracker_engine_set_pids(e, pids, 1), 0);
	tried(root, 0, 0, DA, DA + 4 * MiB, 4);
	assert_int_equal(tracker_engine_tick(e, 6), 0);
	assert_string_equal(get(root, CTX "/targets/nr_targets"), "1");
	assert_string_equal(get(root, CTX "/schemes/nr_schemes"), "1");
	assert_string_equal(get(root, CTX "/monitoring_attrs/nr_regions/min"), "3");
	assert_string_equal(get(root, CTX "/monitoring_attrs/nr_regions/max"), "1000");
	/* DAMON started over: for one tick the pid keeps its own regions (and heat) */
	v = tracker_engine_regions(e, 100, &n);
	assert_true(n >= 2);
	assert_int_equal(v[0].residency, 0);
	/* then DAMON's */
	assert_int_equal(tracker_engine_tick(e, 7), 0);
	v = tracker_engine_regions(e, 100, &n);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].heat, 200);
	/* an inherited state: the larger overlap was on system RAM */
	assert_int_equal(v[0].residency, POLICY_SYSTEM_RAM);

	/* The state file cannot be used: the tick fails with the errno and names the file. */
	{
		char saved[300];

		snprintf(rel, sizeof(rel), "%s/" KD "/0/state", root);
		snprintf(saved, sizeof(saved), "%s.saved", rel);
		assert_int_equal(rename(rel, saved), 0);
		assert_int_equal(mkdir(rel, 0755), 0);
		assert_int_equal(tracker_engine_tick(e, 7), -EISDIR);
		assert_non_null(strstr(backend_last_message(), "state"));
		assert_int_equal(rmdir(rel), 0);
		assert_int_equal(rename(saved, rel), 0);
	}

	/* The process exits. */
	snprintf(rel, sizeof(rel), "%s/proc/100/maps", root);
	assert_int_equal(unlink(rel), 0);
	assert_int_equal(tracker_engine_tick(e, 8), 0);
	assert_null(tracker_engine_regions(e, 100, &n));

	/* free stops the kdamond it started */
	put(root, KD "/0/state", "on\n");
	tracker_engine_free(e);
	assert_string_equal(get(root, KD "/0/state"), "off");
	fixture_free(root);
}

/* Fewer DAMON regions than min_regions inside the anonymous mappings: halves of the largest. */
/* DAMON mode: a region promoted to a pool is cut into pieces of at most 2 MiB, each sampled. */
static void test_engine_damon_pool_pieces(void **state)
{
	char *root = fixture_new();
	TrackerParams p;
	TrackerEngine *e = NULL;
	TrackerRegion *v;
	BackendRef *ref;
	size_t n, n_pool = 0;
	pid_t pid = 100;

	damon_tree(root, 1, "off");
	put_maps(root, 100, DA, DA + 32 * MiB);
	tried(root, 0, 0, DA, DA + 16 * MiB, 10);
	tried(root, 0, 1, DA + 16 * MiB, DA + 32 * MiB, 0);
	tracker_params_init(&p);
	p.min_regions = 1;
	assert_int_equal(tracker_engine_new(root, &p, &e), 0);
	ref = fake_sampler(100, DA, 32 * MiB / PG);
	tracker_engine_set_sampler(e, ref);
	assert_int_equal(tracker_engine_set_pids(e, &pid, 1), 0);
	assert_int_equal(tracker_engine_tick(e, 1), 0);
	v = tracker_engine_regions(e, 100, &n);
	assert_int_equal(n, 2);
	/* The placement moves the first 16 MiB to the pool. */
	v[0].residency = 1;
	v[0].on_cohmem = true;
	assert_int_equal(tracker_engine_tick(e, 2), 0);
	v = tracker_engine_regions(e, 100, &n);
	assert_int_equal(total_len(v, n), 32 * MiB);
	for (size_t i = 0; i < n; i++) {
		if (!v[i].on_cohmem)
			continue;
		n_pool++;
		assert_true(v[i].start + v[i].length <= DA + 16 * MiB);
		assert_true(v[i].length <= 2 * MiB);
		assert_int_equal(v[i].heat, 500);    /* DAMON's, until SAMPLE says */
	}
	assert_true(n_pool >= 8);
	backend_ref_unref(ref);
	tracker_engine_free(e);
	fixture_free(root);
}

static void test_engine_damon_min(void **state)
{
	char *root = fixture_new();
	TrackerParams p;
	TrackerEngine *e = NULL;
	TrackerRegion *v;
	size_t n;
	pid_t pid = 100;

	damon_tree(root, 1, "off");
	put_maps(root, 100, DA, DA + 4 * MiB);
	tried(root, 0, 0, DA - 4 * MiB, DA + MiB, 10);    /* mostly outside */
	tried(root, 0, 1, DA + MiB, DA + 4 * MiB + 3 * MiB, 2);
	tracker_params_init(&p);
	p.min_regions = 5;
	assert_int_equal(tracker_engine_new(root, &p, &e), 0);
	assert_int_equal(tracker_engine_set_pids(e, &pid, 1), 0);
	assert_int_equal(tracker_engine_tick(e, 1), 0);
	assert_string_equal(get(root, CTX "/monitoring_attrs/nr_regions/min"), "5");
	v = tracker_engine_regions(e, 100, &n);
	assert_non_null(v);
	assert_int_equal(n, 5);
	assert_int_equal(total_len(v, n), 4 * MiB);
	assert_int_equal(v[0].start, DA);
	assert_int_equal(v[0].length, MiB);
	assert_int_equal(v[0].heat, 500);
	for (size_t i = 1; i < n; i++) {
		assert_int_equal(v[i].heat, 100);
		assert_int_equal(v[i].length, 3 * MiB / 4);
	}
	tracker_engine_free(e);
	fixture_free(root);
}

static void test_engine_damon_busy(void **state)
{
	char *root = fixture_new();
	TrackerParams p;
	TrackerEngine *e = NULL;
	size_t n;
	pid_t pid = 100;

	/* Someone else's kdamond runs: we leave it alone. */
	damon_tree(root, 1, "on");
	put(root, KD "/nr_kdamonds", "1\n");
	put_maps(root, 100, DA, DA + MiB);
	tracker_params_init(&p);
	/* auto does not pick it */
	assert_int_equal(tracker_engine_new(root, &p, &e), 0);
	assert_int_equal(tracker_engine_kind(e), TRACKER_NONE);
	tracker_engine_free(e);
	/* damon asked for: every tick says why not */
	p.kind = TRACKER_DAMON;
	assert_int_equal(tracker_engine_new(root, &p, &e), 0);
	assert_int_equal(tracker_engine_kind(e), TRACKER_DAMON);
	assert_int_equal(tracker_engine_set_pids(e, &pid, 1), 0);
	assert_int_equal(tracker_engine_tick(e, 1), -EBUSY);
	assert_non_null(strstr(backend_last_message(), "kdamond 0 is on"));
	/* regions without heat all the same */
	assert_non_null(tracker_engine_regions(e, 100, &n));
	assert_int_equal(n, 1);
	tracker_engine_free(e);
	assert_string_equal(get(root, KD "/0/state"), "on");
	assert_string_equal(get(root, CTX "/operations"), "paddr");

	/* A tried region that is not a region. */
	damon_tree(root, 1, "off");
	tried(root, 0, 0, DA + MiB, DA, 1);
	assert_int_equal(tracker_engine_new(root, &p, &e), 0);
	assert_int_equal(tracker_engine_set_pids(e, &pid, 1), 0);
	assert_int_equal(tracker_engine_tick(e, 1), -EBADMSG);
	tracker_engine_free(e);
	fixture_free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kind_strings),
		cmocka_unit_test(test_fit),
		cmocka_unit_test(test_adapt),
		cmocka_unit_test(test_keep_pool),
		cmocka_unit_test(test_engine_damon_pool_pieces),
		cmocka_unit_test(test_inherit),
		cmocka_unit_test(test_engine_none),
		cmocka_unit_test(test_engine_sample),
		cmocka_unit_test(test_engine_sample_batches),
		cmocka_unit_test(test_engine_damon),
		cmocka_unit_test(test_engine_damon_min),
		cmocka_unit_test(test_engine_damon_busy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
