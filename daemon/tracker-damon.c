/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * DAMON through its sysfs admin interface (Documentation/admin-guide/mm/
 * damon/usage.rst), under a root directory so that unit tests play the
 * kernel in a fixture tree:
 *
 *   kdamonds/nr_kdamonds = 1, kdamonds/0/contexts/nr_contexts = 1,
 *   operations = vaddr, intervals from the tick, nr_regions from the params,
 *   targets/<i>/pid_target = the i-th pid (ascending),
 *   schemes/<i>: action stat, an access pattern matching every region, and
 *   one filter: type target, damon_target_idx i, matching N (regions of any
 *   other target are filtered out before the scheme is tried), so the
 *   tried_regions of scheme i are exactly target i's regions.
 *
 * A changed pid set turns the kdamond off, rewrites targets and schemes and
 * turns it on again: a commit keeps each target index's regions, and with
 * pids sorted an index can change hands, mixing two processes' regions.
 * A kdamond stops by itself when every target exited; it is turned on again
 * with the next pid set that has live pids.
 *
 * Intervals: writing update_schemes_tried_regions returns once the kdamond
 * has applied every scheme again, one to two aggregation intervals (plus the
 * kernel's 100 ms polling). The aggregation interval is a quarter of the
 * tick, so that a tick's update returns well within the tick; the sampling
 * interval is 1/20 of that, so nr_accesses counts to 20.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "tracker.h"
#include "util.h"

#define DAMON_ADMIN "/sys/kernel/mm/damon/admin/kdamonds"
#define DAMON_CTX DAMON_ADMIN "/0/contexts/0"
#define DAMON_NR_ACCESSES_MAX 20U
#define DAMON_PAGE UINT64_C(4096)
/* Tried regions read per scheme at most (DAMON keeps max_nr_regions; this is a sanity bound). */
#define DAMON_TRIED_MAX 100000U

typedef struct DamonTried {
	TrackerRegion *regions;
	size_t n;
} DamonTried;

struct TrackerDamon {
	char *root;
	TrackerParams params;
	bool configured;                /* we wrote nr_kdamonds and own kdamond 0 */
	bool started;                   /* we turned it on at least once */
	pid_t *pids;                    /* the targets, by index */
	size_t n_pids;
	DamonTried *tried;              /* per target, from the last update */
	pid_t kdamond_pid;
	bool restarted;                 /* the last update turned the kdamond on afresh */
};

bool tracker_damon_available(const char *root)
{
	_cleanup_free_ char *v = NULL;

	return read_one_line_root(root, DAMON_ADMIN "/nr_kdamonds", &v) >= 0;
}

static int damon_write(TrackerDamon *d, const char *path, const char *value)
{
	_cleanup_free_ char *p = path_join_root(d->root, path);
	size_t l = strlen(value);
	ssize_t k;
	int fd, r = 0;

	if (!p)
		return -ENOMEM;
	fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		r = -errno;
	else {
		k = write(fd, value, l);
		if (k < 0)
			r = -errno;
		else if ((size_t) k != l)
			r = -EIO;
		if (close(fd) < 0 && r == 0)
			r = -errno;
	}
	if (r < 0)
		backend_set_last_message("DAMON: writing \"%s\" to %s: %s", value, path, strerror(-r));
	return r;
}

static int damon_writef(TrackerDamon *d, const char *value, const char *fmt, ...)
	_printf_(3, 4);
static int damon_writef(TrackerDamon *d, const char *value, const char *fmt, ...)
{
	char path[256];
	va_list ap;

	va_start(ap, fmt);
	(void) vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	return damon_write(d, path, value);
}

static int damon_write_u64(TrackerDamon *d, const char *path, uint64_t v)
{
	char buf[32];

	(void) snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return damon_write(d, path, buf);
}

static int damon_read_u64(const char *root, const char *path, uint64_t *ret)
{
	_cleanup_free_ char *v = NULL;
	int r;

	r = read_one_line_root(root, path, &v);
	if (r < 0)
		return r;
	r = safe_atou64(strstrip(v), ret);
	return r < 0 ? -EBADMSG : 0;
}

/* 1 on, 0 off (anything but "off" counts as on: the commands read back as on). */
static int damon_state(const char *root, unsigned idx)
{
	_cleanup_free_ char *v = NULL;
	char path[128];
	int r;

	(void) snprintf(path, sizeof(path), DAMON_ADMIN "/%u/state", idx);
	r = read_one_line_root(root, path, &v);
	if (r < 0) {
		backend_set_last_message("DAMON: reading %s: %s", path, strerror(-r));
		return r;
	}
	return !streq(strstrip(v), "off");
}

bool tracker_damon_busy(const char *root)
{
	uint64_t n;

	if (damon_read_u64(root, DAMON_ADMIN "/nr_kdamonds", &n) < 0)
		return false;
	for (unsigned i = 0; i < n && i < 1024; i++)
		if (damon_state(root, i) == 1)
			return true;
	return false;
}

static void tried_free(TrackerDamon *d)
{
	for (size_t i = 0; d->tried && i < d->n_pids; i++)
		free(d->tried[i].regions);
	d->tried = mfree(d->tried);
}

int tracker_damon_new(const char *root, const TrackerParams *p, TrackerDamon **ret)
{
	TrackerDamon *d;

	if (!tracker_damon_available(root))
		return -EOPNOTSUPP;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->root = strdup(root ?: "/");
	if (!d->root) {
		free(d);
		return -ENOMEM;
	}
	d->params = *p;
	*ret = d;
	return 0;
}

TrackerDamon *tracker_damon_free(TrackerDamon *d)
{
	if (!d)
		return NULL;
	if (d->started && damon_state(d->root, 0) == 1)
		(void) damon_write(d, DAMON_ADMIN "/0/state", "off");
	tried_free(d);
	free(d->pids);
	free(d->root);
	free(d);
	return NULL;
}

size_t tracker_damon_index(const TrackerDamon *d, pid_t pid)
{
	if (!d)
		return SIZE_MAX;
	for (size_t i = 0; i < d->n_pids; i++)
		if (d->pids[i] == pid)
			return i;
	return SIZE_MAX;
}

bool tracker_damon_restarted(const TrackerDamon *d)
{
	return d && d->restarted;
}

pid_t tracker_damon_kdamond_pid(const TrackerDamon *d)
{
	return d ? d->kdamond_pid : 0;
}

/* Take kdamond 0 for ourselves: -EBUSY when some kdamond runs that we did not start. */
static int damon_claim(TrackerDamon *d)
{
	uint64_t n;
	int r;

	r = damon_read_u64(d->root, DAMON_ADMIN "/nr_kdamonds", &n);
	if (r < 0) {
		backend_set_last_message("DAMON: reading nr_kdamonds: %s", strerror(-r));
		return r;
	}
	for (unsigned i = 0; i < n && i < 1024; i++)
		if (damon_state(d->root, i) == 1) {
			backend_set_last_message("DAMON: kdamond %u is on: in use by another program",
						 i);
			return -EBUSY;
		}
	/* Writing nr_kdamonds recreates every kdamond directory, empty. */
	r = damon_write(d, DAMON_ADMIN "/nr_kdamonds", "1");
	if (r < 0)
		return r;
	r = damon_write(d, DAMON_ADMIN "/0/contexts/nr_contexts", "1");
	if (r < 0)
		return r;
	r = damon_write(d, DAMON_CTX "/operations", "vaddr");
	if (r < 0)
		return r;
	d->configured = true;
	return 0;
}

static int damon_write_config(TrackerDamon *d, const pid_t *pids, size_t n)
{
	uint64_t aggr = MAX(d->params.tick_usec / 4, UINT64_C(1000));
	uint64_t sample = MAX(aggr / DAMON_NR_ACCESSES_MAX, UINT64_C(50));
	uint64_t nn = MAX(n, 1U);
	uint64_t min_nr = MAX((uint64_t) d->params.min_regions * nn, UINT64_C(3));
	uint64_t max_nr = MAX((uint64_t) d->params.max_regions * nn, min_nr);
	char buf[32];
	int r;

	/* sample must divide evenly into aggr for nr_accesses to count to 20. */
	aggr = sample * DAMON_NR_ACCESSES_MAX;
	if ((r = damon_write_u64(d, DAMON_CTX "/monitoring_attrs/intervals/sample_us", sample)) < 0 ||
	    (r = damon_write_u64(d, DAMON_CTX "/monitoring_attrs/intervals/aggr_us", aggr)) < 0 ||
	    (r = damon_write_u64(d, DAMON_CTX "/monitoring_attrs/intervals/update_us",
				 MAX(d->params.tick_usec, aggr))) < 0 ||
	    /* max first: the kernel checks min <= max only when it starts. */
	    (r = damon_write_u64(d, DAMON_CTX "/monitoring_attrs/nr_regions/max", max_nr)) < 0 ||
	    (r = damon_write_u64(d, DAMON_CTX "/monitoring_attrs/nr_regions/min", min_nr)) < 0 ||
	    (r = damon_write_u64(d, DAMON_CTX "/targets/nr_targets", n)) < 0 ||
	    (r = damon_write_u64(d, DAMON_CTX "/schemes/nr_schemes", n)) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		(void) snprintf(buf, sizeof(buf), "%d", (int) pids[i]);
		r = damon_writef(d, buf, DAMON_CTX "/targets/%zu/pid_target", i);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < n; i++) {
		static const struct {
			const char *file, *value;
		} scheme[] = {
			{ "action", "stat" },
			{ "access_pattern/sz/min", "0" },
			{ "access_pattern/sz/max", "18446744073709551615" },
			{ "access_pattern/nr_accesses/min", "0" },
			{ "access_pattern/nr_accesses/max", "4294967295" },
			{ "access_pattern/age/min", "0" },
			{ "access_pattern/age/max", "4294967295" },
			{ "filters/nr_filters", "1" },
			{ "filters/0/type", "target" },
			{ "filters/0/matching", "N" },
		};

		for (size_t k = 0; k < ELEMENTSOF(scheme); k++) {
			r = damon_writef(d, scheme[k].value, DAMON_CTX "/schemes/%zu/%s", i,
					 scheme[k].file);
			if (r < 0)
				return r;
		}
		(void) snprintf(buf, sizeof(buf), "%zu", i);
		r = damon_writef(d, buf, DAMON_CTX "/schemes/%zu/filters/0/damon_target_idx", i);
		if (r < 0)
			return r;
	}
	return 0;
}

static int region_cmp(const void *a, const void *b)
{
	const TrackerRegion *x = a, *y = b;

	return (x->start > y->start) - (x->start < y->start);
}

/* Scheme idx's tried regions, sorted, heat from nr_accesses. */
static int damon_read_tried(TrackerDamon *d, size_t idx, DamonTried *ret)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_closedir_ DIR *dp = NULL;
	TrackerRegion *v = NULL;
	size_t n = 0, alloc = 0;
	char base[160];
	struct dirent *de;
	int r = 0;

	(void) snprintf(base, sizeof(base), DAMON_CTX "/schemes/%zu/tried_regions", idx);
	dir = path_join_root(d->root, base);
	if (!dir)
		return -ENOMEM;
	dp = opendir(dir);
	if (!dp) {
		r = -errno;
		backend_set_last_message("DAMON: reading %s: %s", base, strerror(-r));
		return r;
	}
	while ((de = readdir(dp))) {
		char path[256];
		uint64_t start, end, acc;
		unsigned k;

		if (safe_atou(de->d_name, &k) < 0)
			continue;    /* ".", "..", total_bytes */
		if (n >= DAMON_TRIED_MAX) {
			r = -E2BIG;
			break;
		}
		(void) snprintf(path, sizeof(path), "%s/%u/start", base, k);
		r = damon_read_u64(d->root, path, &start);
		if (r >= 0) {
			(void) snprintf(path, sizeof(path), "%s/%u/end", base, k);
			r = damon_read_u64(d->root, path, &end);
		}
		if (r >= 0) {
			(void) snprintf(path, sizeof(path), "%s/%u/nr_accesses", base, k);
			r = damon_read_u64(d->root, path, &acc);
		}
		if (r == -ENOENT)
			continue;    /* removed under us: the next update has it */
		if (r >= 0 && (start >= end || (start | end) % DAMON_PAGE ||
			       end > BACKEND_USER_ADDR_MAX))
			r = -EBADMSG;
		if (r < 0) {
			backend_set_last_message("DAMON: tried region %s/%u: %s", base, k,
						 strerror(-r));
			break;
		}
		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 64;
			TrackerRegion *nv = realloc(v, na * sizeof(*v));

			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
			alloc = na;
		}
		v[n++] = (TrackerRegion) {
			.start = start,
			.length = end - start,
			.heat = MIN(acc * TRACKER_HEAT_MAX / DAMON_NR_ACCESSES_MAX,
				    (uint64_t) TRACKER_HEAT_MAX),
			.residency = POLICY_SYSTEM_RAM,
		};
	}
	if (r >= 0 && n > 0) {
		qsort(v, n, sizeof(*v), region_cmp);
		for (size_t i = 1; i < n; i++)
			if (v[i].start < v[i - 1].start + v[i - 1].length) {
				/* Another target's region: the target filter did not work. */
				backend_set_last_message("DAMON: scheme %zu: overlapping tried regions",
							 idx);
				r = -EBADMSG;
				break;
			}
	}
	if (r < 0) {
		free(v);
		return r;
	}
	*ret = (DamonTried) { v, n };
	return 0;
}

static bool same_pids(const TrackerDamon *d, const pid_t *pids, size_t n)
{
	return d->n_pids == n && (n == 0 || memcmp(d->pids, pids, n * sizeof(*pids)) == 0);
}

int tracker_damon_update(TrackerDamon *d, const pid_t *pids, size_t n)
{
	uint64_t kpid;
	int on = 0, r;

	d->restarted = false;
	if (!d->configured) {
		if (n == 0)
			return 0;    /* nothing to track: leave DAMON as it is */
		r = damon_claim(d);
		if (r < 0)
			return r;
	} else {
		on = damon_state(d->root, 0);
		if (on < 0)
			return on;
	}
	if (!on || !same_pids(d, pids, n)) {
		pid_t *np = NULL;

		tried_free(d);
		if (on) {
			r = damon_write(d, DAMON_ADMIN "/0/state", "off");
			if (r < 0)
				return r;
		}
		np = n ? malloc(n * sizeof(*np)) : NULL;
		if (n && !np)
			return -ENOMEM;
		if (n)
			memcpy(np, pids, n * sizeof(*np));
		free(d->pids);
		d->pids = np;
		d->n_pids = 0;
		d->kdamond_pid = 0;
		if (n == 0)
			return 0;
		r = damon_write_config(d, pids, n);
		if (r < 0)
			return r;
		r = damon_write(d, DAMON_ADMIN "/0/state", "on");
		if (r < 0)
			return r;
		d->n_pids = n;
		d->started = true;
		d->restarted = true;
		if (damon_read_u64(d->root, DAMON_ADMIN "/0/pid", &kpid) >= 0 && kpid <= INT32_MAX)
			d->kdamond_pid = (pid_t) kpid;
	}
	if (n == 0)
		return 0;

	tried_free(d);
	r = damon_write(d, DAMON_ADMIN "/0/state", "update_schemes_tried_regions");
	if (r < 0)
		return r;
	d->tried = calloc(n, sizeof(*d->tried));
	if (!d->tried)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		r = damon_read_tried(d, i, &d->tried[i]);
		if (r < 0) {
			tried_free(d);
			return r;
		}
	}
	return 0;
}

int tracker_damon_regions(TrackerDamon *d, size_t idx, TrackerRegion **ret, size_t *ret_n)
{
	TrackerRegion *v;

	if (!d || !d->tried || idx >= d->n_pids)
		return -ENOENT;
	v = malloc(MAX(d->tried[idx].n, 1U) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (d->tried[idx].n)
		memcpy(v, d->tried[idx].regions, d->tried[idx].n * sizeof(*v));
	*ret = v;
	*ret_n = d->tried[idx].n;
	return 0;
}
