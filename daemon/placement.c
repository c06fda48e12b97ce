/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The placement loop (placement.h). One tick is three steps, never two ticks
 * at a time:
 *
 *   loop thread    resolve every target's pids, hand the union (and the pids
 *                  being recorded) to the tracker, submit the tracker job
 *   mover worker   tracker_engine_tick(); every target region gets its
 *                  residency from the map below (region_residency)
 *   loop thread    refresh the devices (fresh free bytes), build the snapshot,
 *                  compute the plan, feed the recorders, submit one migration
 *                  job per move (exclusive per pid, like Migrate); as each one
 *                  ends, the region's residency and the statistics follow it;
 *                  the tick ends with the last one
 *
 * Where memory is, is the placement's own bookkeeping, per pid an extent map
 * of address ranges → device (an index into devices_seen, which only grows,
 * so that indexes stay valid while devices come and go) or system RAM,
 * written by the moves that succeeded. Ranges the map does not know yet are
 * asked from the kernel once (region_first_sight). Every tick each tracker
 * region gets the residency most of its bytes have in the map: trackers
 * re-split and merge regions (DAMON does so by itself, ignoring where pages
 * are), so a region's own inherited residency would drift. The engine gets
 * each tracker region cut at the map's boundaries, every piece with the
 * region's heat and its own exact residency: an eviction then frees the
 * bytes the plan counts, and pages on a device are never hidden inside a
 * region that is mostly in system RAM.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "manager.h"
#include "placement.h"
#include "state.h"
#include "util.h"

/* Pages read per region for a numa region's first residency (move_pages query). */
#define FIRST_SIGHT_NUMA_PAGES 8

typedef struct PlacementTargetState {
	uint64_t id;
	pid_t *pids;                  /* resolved at the start of the last tick */
	size_t n_pids;
	char *cgroup;                 /* job: the cgroup found */
	bool cgroup_seen;             /* job: a cgroup was found once */
	bool resolve_failed;          /* logged once */
	bool device_missing;          /* logged once */
	uint64_t promoted_bytes, demoted_bytes, evicted_bytes;
	uint64_t ticks;
	size_t n_regions;
	uint64_t tracked_bytes, device_bytes, hot_bytes;
} PlacementTargetState;

struct PlacementRecorder {
	Placement *placement;
	pid_t pid;
	PlacementRecordFn fn;
	void *userdata;
	bool finished;                /* the pid is gone: fn was called with NULL */
	bool stopped;                 /* stop() during the callbacks: freed after them */
};

/* A device as the worker needs it for first-sight residency. */
typedef struct SightDevice {
	int index;                    /* in devices_seen */
	bool cohmem;
	int64_t backend_id;           /* numa: node; cohmem: pool id */
} SightDevice;

typedef struct TrackerJob {
	Placement *placement;
	uint64_t now_usec;
	int r;
	char message[256];
	BackendRef *numa, *cohmem;    /* only when there are devices of theirs */
	SightDevice *devices;
	size_t n_devices;
	pid_t *pids;                  /* every pid tracked: the targets' and the recorded ones */
	size_t n_pids;
	pid_t *target_pids;           /* the targets' only: residency matters for them */
	size_t n_target_pids;
} TrackerJob;

typedef struct ResidencyExtent {
	uint64_t start, end;
	int residency;                /* devices_seen index or POLICY_SYSTEM_RAM */
	uint64_t since_usec;          /* when we moved it there; 0: found there */
} ResidencyExtent;

typedef struct PidResidency {
	pid_t pid;
	ResidencyExtent *extents;     /* sorted, not overlapping */
	size_t n_extents;
} PidResidency;

typedef struct MoveJob {
	Placement *placement;
	uint64_t tick;
	uint64_t target_id;
	int destination;              /* devices_seen index or POLICY_SYSTEM_RAM */
	int source;                   /* the region's residency when planned */
	PolicyReason reason;
	char *to;                     /* device name or "system" */
	MigrateRequest req;
	MigrateResult result;
} MoveJob;

struct Placement {
	Manager *manager;
	TargetSet targets;
	PlacementTargetState *states;
	size_t n_states;

	TrackerEngine *tracker;
	TrackerParams tracker_params; /* what the engine was created with */
	bool tracker_failed;          /* the last tick's tracker failed: logged */
	bool tracker_new_failed;      /* creating the engine failed: logged */
	int tracker_kind_logged;      /* the kind last logged, -1: none yet */
	BackendRef *sampler_override;

	char *cgroup_mount;
	bool cgroup_mount_failed;

	char **devices_seen;          /* names; the index is the residency */
	size_t n_devices_seen;

	/*
	 * Per target pid. The tracker job reads and extends it, moves update
	 * it: never at the same time (a tick's moves start after its tracker
	 * job). Pruned at the start of a tick.
	 */
	PidResidency *residency;
	size_t n_residency;

	PlacementRecorder **recorders;
	size_t n_recorders;
	bool in_record_callbacks;

	sd_event_source *defer;       /* a tick soon, after set/clear */
	bool ticking;
	bool tick_again;
	uint64_t tick;
	uint64_t tick_now_usec;
	unsigned n_moves_running;
	/* This tick's totals, for its log line. */
	uint64_t tick_bytes[_POLICY_REASON_MAX];
	unsigned tick_failures;
	bool stats_dirty;
	bool stats_save_failed;       /* logged */
};

static PlacementTargetState *state_find(Placement *p, uint64_t id)
{
	for (size_t i = 0; i < p->n_states; i++)
		if (p->states[i].id == id)
			return &p->states[i];
	return NULL;
}

static PlacementTargetState *state_get(Placement *p, uint64_t id)
{
	PlacementTargetState *s = state_find(p, id), *n;

	if (s)
		return s;
	n = realloc(p->states, (p->n_states + 1) * sizeof(*n));
	if (!n)
		return NULL;
	p->states = n;
	s = &p->states[p->n_states++];
	*s = (PlacementTargetState) { .id = id };
	return s;
}

static void state_remove(Placement *p, uint64_t id)
{
	PlacementTargetState *s = state_find(p, id);

	if (!s)
		return;
	free(s->pids);
	free(s->cgroup);
	*s = p->states[--p->n_states];
}

static int on_defer(sd_event_source *s, void *userdata)
{
	(void) placement_tick(userdata);
	return 0;
}

int placement_new(Manager *m, Placement **ret)
{
	Placement *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->manager = m;
	p->tracker_kind_logged = -1;
	target_set_init(&p->targets);
	*ret = p;
	return 0;
}

static void placement_save_stats(Placement *p)
{
	int r;

	if (!p->stats_dirty)
		return;
	r = state_save_stats(p->manager->state_dir, &p->manager->stats);
	if (r < 0) {
		if (!p->stats_save_failed)
			log_warning_errno(r, "Failed to save the statistics in %s, ignoring: %m",
					  p->manager->state_dir);
		p->stats_save_failed = true;
		return;
	}
	if (p->stats_save_failed)
		log_info("Saving the statistics in %s works again.", p->manager->state_dir);
	p->stats_save_failed = false;
	p->stats_dirty = false;
}

void placement_stats_changed(Placement *p)
{
	if (p)
		p->stats_dirty = true;
}

Placement *placement_free(Placement *p)
{
	if (!p)
		return NULL;
	placement_save_stats(p);
	sd_event_source_disable_unref(p->defer);
	for (size_t i = 0; i < p->n_recorders; i++)
		free(p->recorders[i]);
	free(p->recorders);
	while (p->n_states > 0)
		state_remove(p, p->states[0].id);
	free(p->states);
	target_set_done(&p->targets);
	tracker_engine_free(p->tracker);
	backend_ref_unref(p->sampler_override);
	free(p->cgroup_mount);
	strv_free(p->devices_seen);
	for (size_t i = 0; i < p->n_residency; i++)
		free(p->residency[i].extents);
	free(p->residency);
	free(p);
	return NULL;
}

const TargetSet *placement_targets(const Placement *p)
{
	return &p->targets;
}

bool placement_is_ticking(const Placement *p)
{
	return p->ticking;
}

void placement_set_sampler(Placement *p, BackendRef *sampler)
{
	backend_ref_unref(p->sampler_override);
	p->sampler_override = backend_ref_ref(sampler);
}

/* A tick as soon as the loop is free: policy changes apply at once. */
static void placement_schedule_tick(Placement *p)
{
	int r;

	if (p->ticking) {
		p->tick_again = true;
		return;
	}
	if (!p->manager->event)
		return;
	if (!p->defer) {
		r = sd_event_add_defer(p->manager->event, &p->defer, on_defer, p);
		if (r < 0) {
			log_warning_errno(r, "Failed to schedule a placement tick, the next one "
					  "comes with the timer: %m");
			return;
		}
		(void) sd_event_source_set_description(p->defer, "placement-tick");
	}
	(void) sd_event_source_set_enabled(p->defer, SD_EVENT_ONESHOT);
}

/* ------------------------------------------------------------------ tracker */

static void tracker_params_from_conf(const Manager *m, TrackerParams *ret)
{
	tracker_params_init(ret);
	if (!m->conf)
		return;
	ret->kind = m->conf->tracker;
	ret->max_regions = m->conf->max_regions;
	if (ret->min_regions > ret->max_regions)
		ret->min_regions = ret->max_regions;
	ret->tick_usec = m->conf->tick_usec;
}

/* The engine for the configuration now; a changed [Policy] Tracker= or MaxRegions= starts anew. */
static int placement_ensure_tracker(Placement *p)
{
	TrackerParams want;
	int r;

	tracker_params_from_conf(p->manager, &want);
	if (p->tracker && !p->ticking && (want.kind != p->tracker_params.kind ||
					  want.max_regions != p->tracker_params.max_regions ||
					  want.tick_usec != p->tracker_params.tick_usec)) {
		log_info("The tracker settings changed: tracking starts anew.");
		p->tracker = tracker_engine_free(p->tracker);
	}
	if (p->tracker)
		goto sampler;

	want.seed = (uint64_t) time(NULL) ^ ((uint64_t) getpid() << 32);
	r = tracker_engine_new(p->manager->root, &want, &p->tracker);
	if (r < 0) {
		if (!p->tracker_new_failed)
			log_warning_errno(r, "Failed to set up the %s access tracker: %m%s%s",
					  want.kind < 0 ? "auto" : tracker_kind_to_string(want.kind),
					  backend_last_message() ? " — " : "",
					  backend_last_message() ?: "");
		p->tracker_new_failed = true;
		return r;
	}
	p->tracker_new_failed = false;
	p->tracker_params = want;
sampler:
	/* "auto" is sample when there is a sampler: cohmem may have come or gone. */
	if (!p->ticking)
		tracker_engine_set_sampler(p->tracker, p->sampler_override ?: p->manager->cohmem);
	if ((int) tracker_engine_kind(p->tracker) != p->tracker_kind_logged) {
		p->tracker_kind_logged = (int) tracker_engine_kind(p->tracker);
		log_info("Access tracker: %s.", tracker_kind_to_string(tracker_engine_kind(p->tracker)));
	}
	return 0;
}

/* ------------------------------------------------------------------ devices */

static int device_seen_index(Placement *p, const char *name)
{
	for (size_t i = 0; i < p->n_devices_seen; i++)
		if (streq(p->devices_seen[i], name))
			return (int) i;
	if (strv_extend(&p->devices_seen, name) < 0)
		return -ENOMEM;
	return (int) p->n_devices_seen++;
}

/* The manager's device of a devices_seen index, NULL when it is gone. */
static const Device *device_of_index(const Placement *p, int index)
{
	if (index < 0 || (size_t) index >= p->n_devices_seen)
		return NULL;
	return devices_find(p->manager->devices, p->manager->n_devices, p->devices_seen[index]);
}

/* The device at index is there and a cohmem pool (system RAM and gone devices are not). */
static bool index_is_pool(const Placement *p, int index)
{
	const Device *d = device_of_index(p, index);

	return d && d->kind == DEVICE_KIND_COHMEM;
}

static const char *index_name(const Placement *p, int index)
{
	return index < 0 ? "system" : p->devices_seen[index];
}

/* ------------------------------------------------------------------ targets */

static int placement_find_mount(Placement *p)
{
	int r;

	if (p->cgroup_mount)
		return 0;
	r = cgroup2_find_mount(p->manager->root, &p->cgroup_mount);
	if (r < 0) {
		if (!p->cgroup_mount_failed)
			log_warning_errno(r, "Failed to find the cgroup2 mount under %s, cgroup and "
					  "job targets have no processes: %m", p->manager->root);
		p->cgroup_mount_failed = true;
		return r;
	}
	p->cgroup_mount_failed = false;
	return 0;
}

static int placement_save_targets(Placement *p, const TargetSet *s)
{
	int r = state_save(p->manager->state_dir, s);

	if (r < 0)
		log_warning_errno(r, "Failed to save the policies in %s: %m", p->manager->state_dir);
	return r;
}

/* Resolve a target's pids; 1 when it is gone and was dropped. */
static int placement_resolve_target(Placement *p, const Target *t, PlacementTargetState *st)
{
	_cleanup_free_ char *cgroup = NULL;
	char buf[TARGET_KEY_STRING_MAX];
	pid_t *pids = NULL;
	size_t n = 0;
	bool gone;
	int r;

	/* Jobs are found through their slurmstepd where there is no cgroup2 at all. */
	if (t->key.kind == TARGET_CGROUP && placement_find_mount(p) < 0) {
		free(st->pids);
		st->pids = NULL;
		st->n_pids = 0;
		return 0;
	}
	r = target_resolve_pids(p->manager->root, p->cgroup_mount, &t->key, &pids, &n,
				t->key.kind == TARGET_JOB ? &cgroup : NULL);
	if (t->key.kind == TARGET_JOB) {
		/* A job without a cgroup is pending or between steps until one was seen. */
		gone = st->cgroup_seen && (r == -ENOENT || (r >= 0 && !cgroup));
		if (r == -ENOENT && !gone)
			r = 0;
	} else
		gone = r == -ENOENT || r == -ESRCH;

	if (gone) {
		free(pids);
		log_info("Target %s is gone, dropping its policy.",
			 target_key_format(&t->key, buf, sizeof(buf)));
		return 1;
	}
	if (r < 0) {
		if (!st->resolve_failed)
			log_warning_errno(r, "Failed to find the processes of %s, skipping it: %m",
					  target_key_format(&t->key, buf, sizeof(buf)));
		st->resolve_failed = true;
		n = 0;
	} else
		st->resolve_failed = false;

	free(st->pids);
	st->pids = pids;
	st->n_pids = n;
	if (cgroup) {
		st->cgroup_seen = true;
		free(st->cgroup);
		st->cgroup = TAKE_PTR(cgroup);
	}
	return 0;
}

/* Resolve every target, drop the gone ones (and persist that). */
static void placement_resolve_targets(Placement *p)
{
	bool dropped = false;

	for (size_t i = 0; i < p->targets.n_targets;) {
		Target *t = &p->targets.targets[i];
		PlacementTargetState *st = state_get(p, t->id);
		uint64_t id = t->id;

		if (!st) {
			log_oom();
			return;
		}
		if (placement_resolve_target(p, t, st) > 0) {
			state_remove(p, id);
			(void) target_set_remove_id(&p->targets, id);
			dropped = true;
			continue;
		}
		i++;
	}
	if (dropped)
		(void) placement_save_targets(p, &p->targets);
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *) a, y = *(const pid_t *) b;

	return x < y ? -1 : x > y;
}

/* Every pid of every target (and recorder), sorted, unique. */
static int placement_collect_pids(Placement *p, bool recorders, pid_t **ret, size_t *ret_n)
{
	pid_t *pids = NULL;
	size_t n = 0, k = 0;

	for (size_t i = 0; i < p->n_states; i++)
		n += p->states[i].n_pids;
	n += p->n_recorders;
	pids = calloc(n ?: 1, sizeof(pid_t));
	if (!pids)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_states; i++)
		for (size_t j = 0; j < p->states[i].n_pids; j++)
			pids[k++] = p->states[i].pids[j];
	for (size_t i = 0; recorders && i < p->n_recorders; i++)
		if (!p->recorders[i]->finished && !p->recorders[i]->stopped)
			pids[k++] = p->recorders[i]->pid;
	qsort(pids, k, sizeof(pid_t), cmp_pid);
	n = 0;
	for (size_t i = 0; i < k; i++)
		if (n == 0 || pids[n - 1] != pids[i])
			pids[n++] = pids[i];
	*ret = pids;
	*ret_n = n;
	return 0;
}

/* ------------------------------------------------------------------ residency bookkeeping */

static PidResidency *residency_find(Placement *p, pid_t pid)
{
	for (size_t i = 0; i < p->n_residency; i++)
		if (p->residency[i].pid == pid)
			return &p->residency[i];
	return NULL;
}

/* Keep the maps of exactly these pids (sorted), adding empty ones. Loop thread, no tick. */
static int residency_keep(Placement *p, const pid_t *pids, size_t n)
{
	PidResidency *nr;
	size_t k = 0;

	for (size_t i = 0; i < p->n_residency; i++) {
		if (bsearch(&p->residency[i].pid, pids, n, sizeof(pid_t), cmp_pid))
			p->residency[k++] = p->residency[i];
		else
			free(p->residency[i].extents);
	}
	p->n_residency = k;
	for (size_t i = 0; i < n; i++) {
		if (residency_find(p, pids[i]))
			continue;
		nr = realloc(p->residency, (p->n_residency + 1) * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		p->residency = nr;
		p->residency[p->n_residency++] = (PidResidency) { .pid = pids[i] };
	}
	return 0;
}

/* [start, end) is at residency from now on; neighbours at the same place merge. */
static int extents_set(PidResidency *pr, uint64_t start, uint64_t end, int residency,
		       uint64_t since_usec)
{
	ResidencyExtent *e = calloc(pr->n_extents + 2, sizeof(*e));
	size_t k = 0, m = 0;

	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < pr->n_extents; i++)
		if (pr->extents[i].start < start) {
			e[k] = pr->extents[i];
			e[k++].end = MIN(pr->extents[i].end, start);
		}
	e[k++] = (ResidencyExtent) { start, end, residency, since_usec };
	for (size_t i = 0; i < pr->n_extents; i++)
		if (pr->extents[i].end > end) {
			e[k] = pr->extents[i];
			e[k++].start = MAX(pr->extents[i].start, end);
		}
	for (size_t i = 0; i < k; i++)
		if (m > 0 && e[m - 1].end == e[i].start && e[m - 1].residency == e[i].residency) {
			e[m - 1].end = e[i].end;
			e[m - 1].since_usec = MAX(e[m - 1].since_usec, e[i].since_usec);
		} else
			e[m++] = e[i];
	free(pr->extents);
	pr->extents = e;
	pr->n_extents = m;
	return 0;
}

/* Forget what lies outside the regions (sorted): unmapped memory is nowhere. */
static int extents_clip(PidResidency *pr, const TrackerRegion *regs, size_t n_regs)
{
	ResidencyExtent *e;
	size_t k = 0, cap = pr->n_extents + n_regs + 1, r = 0;

	e = calloc(cap, sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < pr->n_extents; i++) {
		const ResidencyExtent *x = &pr->extents[i];

		while (r < n_regs && regs[r].start + regs[r].length <= x->start)
			r++;
		for (size_t q = r; q < n_regs && regs[q].start < x->end; q++) {
			uint64_t a = MAX(x->start, regs[q].start);
			uint64_t b = MIN(x->end, regs[q].start + regs[q].length);

			if (a >= b)
				continue;
			if (k == cap) {
				ResidencyExtent *ne = realloc(e, 2 * cap * sizeof(*e));

				if (!ne) {
					free(e);
					return -ENOMEM;
				}
				e = ne;
				cap *= 2;
			}
			e[k++] = (ResidencyExtent) { a, b, x->residency, x->since_usec };
		}
	}
	free(pr->extents);
	pr->extents = e;
	pr->n_extents = k;
	return 0;
}

/*
 * Where most known bytes of [start, end) are (system RAM on a tie), and since
 * when (the latest move among those extents); *ret_unknown: bytes the map does
 * not know.
 */
static int extents_majority(const PidResidency *pr, uint64_t start, uint64_t end,
			    uint64_t *ret_since, uint64_t *ret_unknown)
{
	struct { int residency; uint64_t bytes, since; } acc[8];
	size_t n_acc = 0;
	uint64_t known = 0, best = 0, since = 0;
	int residency = POLICY_SYSTEM_RAM;

	for (size_t i = 0; i < pr->n_extents; i++) {
		const ResidencyExtent *x = &pr->extents[i];
		uint64_t a = MAX(x->start, start), b = MIN(x->end, end);
		size_t q;

		if (a >= b)
			continue;
		known += b - a;
		for (q = 0; q < n_acc; q++)
			if (acc[q].residency == x->residency)
				break;
		if (q == n_acc) {
			if (n_acc == ELEMENTSOF(acc))
				continue;
			acc[n_acc++] = (typeof(acc[0])) { x->residency, 0, 0 };
		}
		acc[q].bytes += b - a;
		acc[q].since = MAX(acc[q].since, x->since_usec);
	}
	for (size_t q = 0; q < n_acc; q++)
		if (acc[q].bytes > best ||
		    (acc[q].bytes == best && acc[q].residency == POLICY_SYSTEM_RAM)) {
			best = acc[q].bytes;
			residency = acc[q].residency;
			since = acc[q].since;
		}
	*ret_since = since;
	*ret_unknown = end - start - known;
	return residency;
}

/* ------------------------------------------------------------------ the tracker job */

static void tracker_job_free(TrackerJob *j)
{
	if (!j)
		return;
	backend_ref_unref(j->numa);
	backend_ref_unref(j->cohmem);
	free(j->devices);
	free(j->pids);
	free(j->target_pids);
	free(j);
}

/* Bytes of a residency answer per SightDevice; the largest one's index, or system. */
static int residency_majority(const TrackerJob *j, bool cohmem, const ResidencyEntry *e, size_t n,
			      uint64_t *ret_bytes)
{
	uint64_t system = 0, best = 0;
	int index = POLICY_SYSTEM_RAM;

	for (size_t k = 0; k < n; k++) {
		if (e[k].system) {
			system += e[k].bytes;
			continue;
		}
		for (size_t d = 0; d < j->n_devices; d++)
			if (j->devices[d].cohmem == cohmem && j->devices[d].backend_id == e[k].id &&
			    e[k].bytes > best) {
				best = e[k].bytes;
				index = j->devices[d].index;
			}
	}
	*ret_bytes = best;
	return best > system ? index : POLICY_SYSTEM_RAM;
}

/*
 * A region the placement has not seen yet (its tick counts are both 0; after
 * one tick one of them is not) may already be on a device: left there by an
 * earlier coherentd, by cohctl migrate or by the kernel. Its residency is
 * asked once: cohmem's RESIDENCY for the whole region (one call, the module
 * walks the page tables), numa's move_pages(2) query for a few pages spread
 * over it. Where most of what was seen is, the region is; nothing seen:
 * system RAM.
 */
static int region_first_sight(const TrackerJob *j, pid_t pid, const TrackerRegion *reg)
{
	long ps = sysconf(_SC_PAGESIZE);
	uint64_t page = ps > 0 ? (uint64_t) ps : 4096, pages = reg->length / page;
	uint64_t best_bytes = 0, numa_bytes[FIRST_SIGHT_NUMA_PAGES] = {};
	int best = POLICY_SYSTEM_RAM;

	if (j->cohmem) {
		_cleanup_free_ ResidencyEntry *e = NULL;
		size_t n = 0;
		uint64_t b;
		int i;

		if (j->cohmem->ops->residency(j->cohmem->backend, pid, reg->start, reg->length, &e,
					      &n) >= 0) {
			i = residency_majority(j, true, e, n, &b);
			if (i != POLICY_SYSTEM_RAM) {
				best = i;
				best_bytes = b;
			}
		}
	}
	if (j->numa && pages > 0) {
		uint64_t step = pages > FIRST_SIGHT_NUMA_PAGES ? pages / FIRST_SIGHT_NUMA_PAGES : 1;
		int votes[FIRST_SIGHT_NUMA_PAGES];
		size_t n_votes = 0;

		for (uint64_t k = 0; k < pages && n_votes < FIRST_SIGHT_NUMA_PAGES; k += step) {
			_cleanup_free_ ResidencyEntry *e = NULL;
			size_t n = 0;

			if (j->numa->ops->residency(j->numa->backend, pid, reg->start + k * page,
						    page, &e, &n) < 0)
				continue;
			votes[n_votes] = residency_majority(j, false, e, n, &numa_bytes[n_votes]);
			n_votes++;
		}
		/* Scale the sampled pages to the region to compare with cohmem's count. */
		for (size_t a = 0; a < n_votes; a++) {
			uint64_t c = 0;

			if (votes[a] == POLICY_SYSTEM_RAM)
				continue;
			for (size_t b = 0; b < n_votes; b++)
				c += votes[b] == votes[a];
			if (c * 2 > n_votes && c * (reg->length / n_votes) > best_bytes) {
				best = votes[a];
				best_bytes = c * (reg->length / n_votes);
			}
		}
	}
	return best;
}

static bool sight_is_cohmem(const TrackerJob *j, int index)
{
	for (size_t d = 0; d < j->n_devices; d++)
		if (j->devices[d].index == index)
			return j->devices[d].cohmem;
	return false;
}

/*
 * A region's residency from the map; what the map does not know yet is
 * asked from the kernel and remembered (with no move time: it may leave).
 */
static int region_residency(const TrackerJob *j, PidResidency *pr, TrackerRegion *reg)
{
	uint64_t end = reg->start + reg->length, since, unknown;
	int r;

	r = extents_majority(pr, reg->start, end, &since, &unknown);
	if (unknown > 0) {
		int found = (j->numa || j->cohmem) ? region_first_sight(j, pr->pid, reg) :
			    POLICY_SYSTEM_RAM;
		_cleanup_free_ uint64_t (*gaps)[2] = calloc(pr->n_extents + 1, sizeof(*gaps));
		uint64_t at = reg->start;
		size_t n_gaps = 0;

		/* Fill the gaps only: what we moved ourselves stays as we know it. */
		if (!gaps)
			return -ENOMEM;
		for (size_t i = 0; i < pr->n_extents; i++) {
			const ResidencyExtent *x = &pr->extents[i];

			if (x->end <= at)
				continue;
			if (x->start >= end)
				break;
			if (x->start > at) {
				gaps[n_gaps][0] = at;
				gaps[n_gaps++][1] = x->start;
			}
			at = MAX(at, x->end);
		}
		if (at < end) {
			gaps[n_gaps][0] = at;
			gaps[n_gaps++][1] = end;
		}
		for (size_t i = 0; i < n_gaps; i++) {
			int k = extents_set(pr, gaps[i][0], gaps[i][1], found, 0);

			if (k < 0)
				return k;
		}
		r = extents_majority(pr, reg->start, end, &since, &unknown);
	}
	reg->residency = r;
	reg->on_cohmem = r >= 0 && sight_is_cohmem(j, r);
	reg->resident_since_usec = since;
	return 0;
}

static int tracker_work(MoverJob *mj, void *userdata)
{
	TrackerJob *j = userdata;
	TrackerEngine *e = j->placement->tracker;
	int r;

	r = tracker_engine_tick(e, j->now_usec);
	if (r < 0) {
		if (backend_last_message())
			(void) snprintf(j->message, sizeof(j->message), "%s", backend_last_message());
		return r;
	}
	for (size_t i = 0; i < j->n_target_pids; i++) {
		PidResidency *pr = residency_find(j->placement, j->target_pids[i]);
		TrackerRegion *regs;
		size_t n = 0;

		regs = tracker_engine_regions(e, j->target_pids[i], &n);
		if (!regs || !pr)
			continue;
		r = extents_clip(pr, regs, n);
		if (r < 0)
			return r;
		for (size_t k = 0; k < n; k++) {
			if (mover_job_cancelled(mj))
				return -ECANCELED;
			r = region_residency(j, pr, &regs[k]);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static void placement_plan(Placement *p, TrackerJob *j);
static void placement_tick_end(Placement *p);

static void tracker_done(MoverJob *mj, int r, void *userdata)
{
	TrackerJob *j = userdata;
	Placement *p = j->placement;

	if (r == -ECANCELED) {
		tracker_job_free(j);
		p->ticking = false;
		return;
	}
	if (r < 0) {
		if (!p->tracker_failed)
			log_warning_errno(r, "The access tracker failed, no placement this tick: %m%s%s",
					  j->message[0] ? " — " : "", j->message);
		p->tracker_failed = true;
		tracker_job_free(j);
		placement_tick_end(p);
		return;
	}
	if (p->tracker_failed)
		log_info("The access tracker works again.");
	p->tracker_failed = false;
	placement_plan(p, j);
	tracker_job_free(j);
}

/* ------------------------------------------------------------------ ticks */

int placement_tick(Placement *p)
{
	Manager *m;
	TrackerJob *j;
	int r;

	if (!p || p->ticking)
		return 0;
	m = p->manager;
	/* Counters Migrate requests changed since the last save (a crash loses at most a tick). */
	placement_save_stats(p);
	if (p->targets.n_targets == 0 && p->n_recorders == 0) {
		/* The last policy went: stop watching its processes (DAMON's kdamond too). */
		p->tracker = tracker_engine_free(p->tracker);
		return 0;
	}

	r = placement_ensure_tracker(p);
	if (r < 0)
		return r;

	placement_resolve_targets(p);

	j = calloc(1, sizeof(*j));
	if (!j)
		return log_oom();
	j->placement = p;
	r = placement_collect_pids(p, true, &j->pids, &j->n_pids);
	if (r >= 0)
		r = placement_collect_pids(p, false, &j->target_pids, &j->n_target_pids);
	if (r >= 0)
		r = residency_keep(p, j->target_pids, j->n_target_pids);
	if (r < 0)
		goto fail;
	r = tracker_engine_set_pids(p->tracker, j->pids, j->n_pids);
	if (r < 0)
		goto fail;

	/* What the worker needs to read residency of regions seen for the first time. */
	j->devices = calloc(m->n_devices ?: 1, sizeof(SightDevice));
	if (!j->devices) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < m->n_devices; i++) {
		const Device *d = &m->devices[i];
		int index = device_seen_index(p, d->name);

		if (index < 0) {
			r = index;
			goto fail;
		}
		j->devices[j->n_devices++] = (SightDevice) {
			.index = index,
			.cohmem = d->kind == DEVICE_KIND_COHMEM,
			.backend_id = d->kind == DEVICE_KIND_COHMEM ? d->id : d->node,
		};
	}
	for (size_t i = 0; i < j->n_devices; i++) {
		if (j->devices[i].cohmem && !j->cohmem)
			j->cohmem = backend_ref_ref(m->cohmem);
		if (!j->devices[i].cohmem && !j->numa)
			j->numa = backend_ref_ref(m->numa);
	}

	r = sd_event_now(m->event, CLOCK_MONOTONIC, &j->now_usec);
	if (r < 0)
		goto fail;

	p->ticking = true;
	p->tick_again = false;
	p->tick++;
	p->tick_now_usec = j->now_usec;
	r = mover_submit(m->mover, 0, false, tracker_work, NULL, tracker_done, j, NULL);
	if (r < 0) {
		p->ticking = false;
		goto fail;
	}
	return 0;
fail:
	tracker_job_free(j);
	return log_warning_errno(r, "Failed to start a placement tick: %m");
}

static void placement_tick_end(Placement *p)
{
	char a[FORMAT_SIZE_MAX], b[FORMAT_SIZE_MAX], c[FORMAT_SIZE_MAX];
	uint64_t promoted = p->tick_bytes[POLICY_REASON_PROMOTE] + p->tick_bytes[POLICY_REASON_BIND];
	uint64_t demoted = p->tick_bytes[POLICY_REASON_DEMOTE];
	uint64_t evicted = p->tick_bytes[POLICY_REASON_EVICT] + p->tick_bytes[POLICY_REASON_SYSTEM];

	if (p->tick_failures > 0)
		log_info("Placement tick %" PRIu64 ": %s promoted, %s demoted, %s evicted, %u move%s "
			 "failed.", p->tick, format_size(a, sizeof(a), promoted),
			 format_size(b, sizeof(b), demoted), format_size(c, sizeof(c), evicted),
			 p->tick_failures, p->tick_failures == 1 ? "" : "s");
	else if (promoted + demoted + evicted > 0)
		log_info("Placement tick %" PRIu64 ": %s promoted, %s demoted, %s evicted.", p->tick,
			 format_size(a, sizeof(a), promoted), format_size(b, sizeof(b), demoted),
			 format_size(c, sizeof(c), evicted));
	memset(p->tick_bytes, 0, sizeof(p->tick_bytes));
	p->tick_failures = 0;
	p->ticking = false;
	placement_save_stats(p);
	if (p->tick_again) {
		p->tick_again = false;
		placement_schedule_tick(p);
	}
}

/* The target (and its policy) a pid's regions belong to: the most specific one. */
typedef struct PidOwner {
	pid_t pid;
	int rank;                     /* pid 0, job 1, cgroup 2 */
	size_t target;                /* index into the snapshot's targets */
} PidOwner;

static int cmp_owner(const void *a, const void *b)
{
	const PidOwner *x = a, *y = b;

	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return x->target < y->target ? -1 : x->target > y->target;
}

typedef struct RegionRef {
	pid_t pid;
	size_t index;                 /* in the tracker's regions of pid */
	uint64_t target_id;
} RegionRef;

typedef struct Plan {
	PolicyDevice *devices;
	PolicyTarget *targets;
	const Target **target_of;     /* snapshot target → Target */
	size_t n_targets;
	PolicyRegion *regions;
	RegionRef *refs;
	size_t n_regions;
	PidOwner *owners;
	size_t n_owners;
	PolicyMove *moves;
} Plan;

static void plan_done(Plan *pl)
{
	free(pl->devices);
	free(pl->targets);
	free(pl->target_of);
	free(pl->regions);
	free(pl->refs);
	free(pl->owners);
	free(pl->moves);
}

static void placement_feed_recorders(Placement *p)
{
	p->in_record_callbacks = true;
	for (size_t i = 0; i < p->n_recorders; i++) {
		PlacementRecorder *rec = p->recorders[i];
		TrackerRegion *regs;
		size_t n = 0;

		if (rec->finished || rec->stopped)
			continue;
		regs = tracker_engine_regions(p->tracker, rec->pid, &n);
		if (!regs) {
			/* Not tracked yet (started during this tick), or gone. */
			if (pid_read_starttime(p->manager->root, rec->pid, &(uint64_t) { 0 }) == -ESRCH) {
				rec->finished = true;
				rec->fn(rec, p->tick, NULL, 0, rec->userdata);
			}
			continue;
		}
		rec->fn(rec, p->tick, regs, n, rec->userdata);
	}
	p->in_record_callbacks = false;
	for (size_t i = 0; i < p->n_recorders;)
		if (p->recorders[i]->stopped) {
			free(p->recorders[i]);
			p->recorders[i] = p->recorders[--p->n_recorders];
		} else
			i++;
}

static void move_job_free(MoveJob *mv)
{
	migrate_request_done(&mv->req);
	migrate_result_done(&mv->result);
	free(mv->to);
	free(mv);
}

static int move_work(MoverJob *j, void *userdata)
{
	MoveJob *mv = userdata;

	return migrate_run(&mv->req, j, &mv->result);
}

static void account_reason(Placement *p, MoveJob *mv, uint64_t bytes)
{
	PlacementTargetState *st = state_find(p, mv->target_id);
	const char *device;
	StatsEntry *s;

	/* Promotions count for the device they went to, the rest for the one they left. */
	device = index_name(p, mv->reason == POLICY_REASON_PROMOTE ||
			       mv->reason == POLICY_REASON_BIND ? mv->destination : mv->source);
	s = streq(device, "system") ? NULL : stats_get(&p->manager->stats, device);
	p->tick_bytes[mv->reason] += bytes;
	switch (mv->reason) {
	case POLICY_REASON_PROMOTE:
	case POLICY_REASON_BIND:
		if (st)
			st->promoted_bytes += bytes;
		if (s)
			s->promoted_bytes += bytes;
		break;
	case POLICY_REASON_DEMOTE:
		if (st)
			st->demoted_bytes += bytes;
		if (s)
			s->demoted_bytes += bytes;
		break;
	case POLICY_REASON_EVICT:
	case POLICY_REASON_SYSTEM:
	default:
		if (st)
			st->evicted_bytes += bytes;
		if (s)
			s->evicted_bytes += bytes;
		break;
	}
}

static void move_done(MoverJob *j, int r, void *userdata)
{
	MoveJob *mv = userdata;
	Placement *p = mv->placement;
	const MigrateResult *res = &mv->result;
	uint64_t present = move_counts_total(&res->counts) - res->counts.not_present;
	TrackerRegion *regs;
	size_t n = 0;

	manager_account_migration(p->manager, &mv->req, mv->to, r, res);
	p->stats_dirty = true;

	if (r >= 0) {
		account_reason(p, mv, res->counts.migrated * res->page_size);
		log_debug("Moved %" PRIu64 " of %" PRIu64 " pages of PID %d at 0x%" PRIx64 " to %s (%s).",
			  res->counts.migrated, present, (int) mv->req.pid, mv->req.start, mv->to,
			  policy_reason_to_string(mv->reason));
	} else if (r != -ESRCH && r != -ECANCELED && r != -EFAULT) {
		if (p->tick_failures == 0)
			log_warning_errno(r, "Failed to move %" PRIu64 " bytes of PID %d at 0x%" PRIx64
					  " to %s: %m%s%s", mv->req.length, (int) mv->req.pid,
					  mv->req.start, mv->to, res->message[0] ? " — " : "",
					  res->message);
		p->tick_failures++;
	}

	/*
	 * The region is where it was sent once most of its present pages are
	 * there (moved or already). Nothing present (a reserved PROT_NONE
	 * arena, memory never touched): it is on no device, and the pages it
	 * gets later come from the local node, system RAM. Recording the
	 * destination would count bytes on the device that are not there, so
	 * that an eviction of them frees nothing and takes hot regions next.
	 */
	if (r >= 0 && p->tracker &&
	    (present == 0 || (res->counts.migrated + res->counts.already) * 2 > present)) {
		PidResidency *pr = residency_find(p, mv->req.pid);
		int at = present == 0 ? POLICY_SYSTEM_RAM : mv->destination;
		bool to_pool = index_is_pool(p, at);

		if (pr && extents_set(pr, mv->req.start, mv->req.start + mv->req.length, at,
				      p->tick_now_usec) < 0)
			log_oom();
		/*
		 * The tracker's regions: those inside the range are where it went;
		 * any that reaches into the pool is sampled there from the next
		 * tick on (DAMON does not see pool pages, and the engine got the
		 * regions cut at residency boundaries, so a move rarely matches a
		 * tracker region exactly).
		 */
		regs = tracker_engine_regions(p->tracker, mv->req.pid, &n);
		for (size_t k = 0; regs && k < n; k++) {
			uint64_t s = regs[k].start, e = regs[k].start + regs[k].length;

			if (e <= mv->req.start || s >= mv->req.start + mv->req.length)
				continue;
			if (s >= mv->req.start && e <= mv->req.start + mv->req.length) {
				regs[k].residency = at;
				regs[k].on_cohmem = to_pool;
				regs[k].resident_since_usec = p->tick_now_usec;
			} else if (to_pool)
				regs[k].on_cohmem = true;
		}
	}

	move_job_free(mv);
	if (--p->n_moves_running == 0)
		placement_tick_end(p);
}

static int placement_submit_move(Placement *p, const Plan *pl, const PolicyMove *mv)
{
	Manager *m = p->manager;
	const RegionRef *ref = &pl->refs[mv->region];
	const Device *src, *dst;
	MoveJob *j;
	int r;

	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->placement = p;
	j->tick = p->tick;
	j->target_id = mv->target_id;
	j->destination = mv->destination;
	j->source = pl->regions[mv->region].residency;
	j->reason = mv->reason;
	src = device_of_index(p, j->source);
	dst = device_of_index(p, j->destination);
	if (src && dst && src->kind == DEVICE_KIND_COHMEM && dst->kind != DEVICE_KIND_COHMEM) {
		/*
		 * move_pages(2) cannot see pool pages: out of the pool to system
		 * RAM now (a demotion off the pool), onto the node at a later tick.
		 */
		j->destination = POLICY_SYSTEM_RAM;
		j->reason = POLICY_REASON_DEMOTE;
	}
	j->req.pid = ref->pid;
	j->req.pidfd = -EBADF;
	j->req.start = mv->start;
	j->req.length = mv->length;
	j->to = strdup(index_name(p, j->destination));
	j->req.root = strdup(m->root);
	if (!j->to || !j->req.root) {
		r = -ENOMEM;
		goto fail;
	}
	/* Pin the process, so a pid reused meanwhile is not what moves (real procfs only). */
	if (streq(m->root, "/")) {
		j->req.pidfd = (int) syscall(SYS_pidfd_open, ref->pid, 0);
		if (j->req.pidfd < 0) {
			r = -errno;
			goto fail;
		}
	}
	r = manager_resolve_target(m, j->to, &j->req);
	if (r < 0)
		goto fail;
	r = mover_submit(m->mover, ref->pid, true, move_work, NULL, move_done, j, NULL);
	if (r < 0)
		goto fail;
	p->n_moves_running++;
	return 0;
fail:
	move_job_free(j);
	return r;
}

/* Build the snapshot. Regions of pids that are gone are left out (dropped next tick). */
static int placement_build(Placement *p, Plan *pl, size_t *ret_n_devices)
{
	Manager *m = p->manager;
	uint64_t threshold = m->conf ? m->conf->policy.hot_threshold : 1;
	size_t n_regions = 0, k = 0;

	/* Every device, present or not, so that residency indexes need no translation. */
	for (size_t i = 0; i < m->n_devices; i++)
		if (device_seen_index(p, m->devices[i].name) < 0)
			return -ENOMEM;
	pl->devices = calloc(p->n_devices_seen ?: 1, sizeof(PolicyDevice));
	if (!pl->devices)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_devices_seen; i++) {
		const Device *d = device_of_index(p, (int) i);
		PolicyDevice *pd = &pl->devices[i];

		pd->name = p->devices_seen[i];
		if (!d)
			continue;   /* gone: capacity 0, nothing on it, no policy names it */
		pd->capacity = d->total_bytes;
		pd->free = d->free_bytes;
		pd->low = d->has_low_watermark ? d->low_watermark_bytes : 0;
		pd->high = d->has_high_watermark ? d->high_watermark_bytes : pd->low;
		if (pd->high < pd->low)
			pd->high = pd->low;
	}
	*ret_n_devices = p->n_devices_seen;

	pl->targets = calloc(p->targets.n_targets ?: 1, sizeof(PolicyTarget));
	pl->target_of = calloc(p->targets.n_targets ?: 1, sizeof(Target *));
	if (!pl->targets || !pl->target_of)
		return -ENOMEM;
	for (size_t i = 0; i < p->targets.n_targets; i++) {
		const Target *t = &p->targets.targets[i];
		PlacementTargetState *st = state_find(p, t->id);
		char buf[TARGET_KEY_STRING_MAX];
		int device = -1;

		if (!st)
			continue;   /* set during this tick: its pids come next tick */
		if (t->policy.kind != POLICY_KIND_SYSTEM) {
			for (size_t d = 0; d < p->n_devices_seen; d++)
				if (streq(p->devices_seen[d], t->policy.device) &&
				    device_of_index(p, (int) d))
					device = (int) d;
			if (device < 0) {
				if (!st->device_missing)
					log_warning("Device %s of the policy of %s is gone, skipping "
						    "the target until it is back.", t->policy.device,
						    target_key_format(&t->key, buf, sizeof(buf)));
				st->device_missing = true;
				continue;
			}
			if (st->device_missing)
				log_info("Device %s is back, placing %s again.", t->policy.device,
					 target_key_format(&t->key, buf, sizeof(buf)));
			st->device_missing = false;
		}
		pl->target_of[pl->n_targets] = t;
		pl->targets[pl->n_targets++] = (PolicyTarget) {
			.id = t->id,
			.kind = t->policy.kind,
			.device = device,
			.quota = t->policy.quota,
			.priority = t->policy.priority,
		};
	}

	/* Which target each pid's regions belong to. */
	for (size_t i = 0; i < pl->n_targets; i++)
		pl->n_owners += state_find(p, pl->targets[i].id)->n_pids;
	pl->owners = calloc(pl->n_owners ?: 1, sizeof(PidOwner));
	if (!pl->owners)
		return -ENOMEM;
	for (size_t i = 0; i < pl->n_targets; i++) {
		const PlacementTargetState *st = state_find(p, pl->targets[i].id);
		int rank = pl->target_of[i]->key.kind == TARGET_PID ? 0 :
			   pl->target_of[i]->key.kind == TARGET_JOB ? 1 : 2;

		for (size_t j = 0; j < st->n_pids; j++)
			pl->owners[k++] = (PidOwner) { .pid = st->pids[j], .rank = rank, .target = i };
	}
	qsort(pl->owners, pl->n_owners, sizeof(PidOwner), cmp_owner);

	/* A region becomes one snapshot region per residency extent it overlaps. */
	for (size_t i = 0; i < pl->n_owners; i++) {
		const PidResidency *pr = residency_find(p, pl->owners[i].pid);
		size_t n = 0;

		if (i > 0 && pl->owners[i - 1].pid == pl->owners[i].pid)
			continue;
		if (tracker_engine_regions(p->tracker, pl->owners[i].pid, &n))
			/* Pieces: a region's extents and the gaps between them. */
			n_regions += 3 * n + 2 * (pr ? pr->n_extents : 0);
	}
	pl->regions = calloc(n_regions ?: 1, sizeof(PolicyRegion));
	pl->refs = calloc(n_regions ?: 1, sizeof(RegionRef));
	pl->moves = calloc(n_regions ?: 1, sizeof(PolicyMove));
	if (!pl->regions || !pl->refs || !pl->moves)
		return -ENOMEM;

	for (size_t i = 0; i < pl->n_owners; i++) {
		const PidOwner *o = &pl->owners[i];
		PlacementTargetState *st = state_find(p, pl->targets[o->target].id);
		const PidResidency *pr;
		TrackerRegion *regs;
		size_t n = 0, x;
		bool pool;

		if (i > 0 && pl->owners[i - 1].pid == o->pid)
			continue;
		regs = tracker_engine_regions(p->tracker, o->pid, &n);
		pr = residency_find(p, o->pid);
		x = 0;
		for (size_t r = 0; regs && r < n; r++) {
			TrackerRegion *reg = &regs[r];
			uint64_t at = reg->start, end = reg->start + reg->length;

			/* A device that went away took its pages back to RAM (cohmem unload). */
			if (reg->residency >= 0 && !device_of_index(p, reg->residency)) {
				reg->residency = POLICY_SYSTEM_RAM;
				reg->on_cohmem = false;
			}
			if (reg->heat >= threshold) {
				reg->hot_ticks = reg->hot_ticks < UINT_MAX ? reg->hot_ticks + 1 : UINT_MAX;
				reg->cold_ticks = 0;
			} else {
				reg->cold_ticks = reg->cold_ticks < UINT_MAX ? reg->cold_ticks + 1 : UINT_MAX;
				reg->hot_ticks = 0;
			}
			st->n_regions++;
			st->tracked_bytes += reg->length;
			if (reg->heat >= threshold)
				st->hot_bytes += reg->length;

			/*
			 * The engine gets the region cut where the residency map
			 * changes: each piece is entirely where the map says, so
			 * an eviction frees what it counts and takes nothing
			 * from elsewhere, and no page on a device hides in a
			 * region most of which is in system RAM.
			 */
			while (pr && x < pr->n_extents && pr->extents[x].end <= at)
				x++;
			pool = false;
			while (at < end) {
				const ResidencyExtent *e = pr && x < pr->n_extents &&
							   pr->extents[x].start < end ?
							   &pr->extents[x] : NULL;
				uint64_t to = end, since = reg->resident_since_usec;
				int res = reg->residency;

				if (e && e->start > at)
					to = e->start;      /* a gap: the region's own residency */
				else if (e) {
					to = MIN(e->end, end);
					res = e->residency;
					since = e->since_usec;
					if (res >= 0 && !device_of_index(p, res))
						res = POLICY_SYSTEM_RAM;
				}
				if (pl->n_regions == n_regions)
					return -ENOBUFS;    /* cannot be: the count above bounds it */
				pl->regions[pl->n_regions] = (PolicyRegion) {
					.target = o->target,
					.start = at,
					.length = to - at,
					.heat = reg->heat,
					.hot_ticks = reg->hot_ticks,
					.cold_ticks = reg->cold_ticks,
					.residency = res,
					.resident_since_usec = since,
				};
				pl->refs[pl->n_regions++] = (RegionRef) {
					.pid = o->pid, .index = r,
					.target_id = pl->targets[o->target].id,
				};
				if (res >= 0 && res == pl->targets[o->target].device)
					st->device_bytes += to - at;
				if (index_is_pool(p, res))
					pool = true;
				if (e && to == e->end)
					x++;
				at = to;
			}
			/* Any of it in a pool: sampled there (DAMON cannot see pool pages). */
			reg->on_cohmem = pool;
		}
	}
	return 0;
}

static void placement_plan(Placement *p, TrackerJob *j)
{
	Manager *m = p->manager;
	_cleanup_(plan_done) Plan pl = {};
	PolicySnapshot snap = {};
	size_t n_devices = 0, n_moves = 0;
	int r;

	/* Free bytes as they are now, after the last tick's moves. */
	(void) manager_refresh_devices(m);

	for (size_t i = 0; i < p->n_states; i++) {
		PlacementTargetState *st = &p->states[i];

		st->n_regions = 0;
		st->tracked_bytes = st->device_bytes = st->hot_bytes = 0;
	}

	r = placement_build(p, &pl, &n_devices);
	if (r < 0) {
		log_warning_errno(r, "Failed to build the placement snapshot: %m");
		goto end;
	}
	for (size_t i = 0; i < pl.n_targets; i++)
		state_find(p, pl.targets[i].id)->ticks++;

	placement_feed_recorders(p);

	snap = (PolicySnapshot) {
		.now_usec = j->now_usec,
		.devices = pl.devices,
		.n_devices = n_devices,
		.targets = pl.targets,
		.n_targets = pl.n_targets,
		.regions = pl.regions,
		.n_regions = pl.n_regions,
	};
	if (m->conf)
		policy_settings_to_config(&m->conf->policy, m->conf->tick_usec, &snap.config);
	else
		policy_config_init(&snap.config);

	for (size_t d = 0; d < n_devices; d++)
		if (pl.devices[d].free < pl.devices[d].low)
			log_debug("Plan %" PRIu64 ": %s below its low watermark, %" PRIu64 " bytes "
				  "free, low %" PRIu64 ", high %" PRIu64 ".", p->tick,
				  pl.devices[d].name, pl.devices[d].free, pl.devices[d].low,
				  pl.devices[d].high);
	r = policy_plan_compute(&snap, pl.moves, pl.n_regions, &n_moves);
	if (r < 0) {
		log_warning_errno(r, "Failed to compute the placement plan: %m");
		goto end;
	}
	for (size_t i = 0; i < n_moves; i++) {
		const PolicyRegion *reg = &pl.regions[pl.moves[i].region];

		log_debug("Plan %" PRIu64 ": %s target %" PRIu64 " 0x%" PRIx64 "+%" PRIu64 "K %s → %s, "
			  "heat %" PRIu64 ", hot %u, cold %u ticks.", p->tick,
			  policy_reason_to_string(pl.moves[i].reason), pl.moves[i].target_id,
			  reg->start, reg->length >> 10, index_name(p, reg->residency),
			  index_name(p, pl.moves[i].destination), reg->heat, reg->hot_ticks,
			  reg->cold_ticks);
		r = placement_submit_move(p, &pl, &pl.moves[i]);
		if (r == -ESRCH)
			continue;   /* exited since the tracker looked: dropped next tick */
		if (r < 0) {
			log_warning_errno(r, "Failed to submit a placement move, skipping the rest "
					  "of this tick's plan: %m");
			break;
		}
	}
end:
	if (p->n_moves_running == 0)
		placement_tick_end(p);
}

/* ------------------------------------------------------------------ policies */

int placement_load_state(Placement *p)
{
	_cleanup_free_ char *aside = NULL, *reason = NULL;
	Manager *m = p->manager;
	TargetSet loaded;
	int r;

	target_set_init(&loaded);
	r = state_load(m->state_dir, &loaded, &aside, &reason);
	if (r < 0) {
		target_set_done(&loaded);
		return log_warning_errno(r, "Failed to read the policies in %s, starting without "
					 "them: %m", m->state_dir);
	}
	if (aside)
		log_warning("The saved policies were not valid (%s) and were moved to %s; starting "
			    "without policies.", reason ?: "unknown reason", aside);
	for (size_t i = 0; i < loaded.n_targets; i++) {
		const Target *t = &loaded.targets[i];

		r = target_set_put(&p->targets, &t->key, t->owner, &t->policy,
				   t->set_realtime_usec, NULL);
		if (r < 0) {
			target_set_done(&loaded);
			return log_oom();
		}
	}
	if (loaded.n_targets > 0)
		log_info("Restored %zu polic%s from %s.", loaded.n_targets,
			 loaded.n_targets == 1 ? "y" : "ies", m->state_dir);
	target_set_done(&loaded);

	free(aside);
	free(reason);
	aside = reason = NULL;
	r = state_load_stats(m->state_dir, &m->stats, &aside, &reason);
	if (r < 0)
		log_warning_errno(r, "Failed to read the statistics in %s, starting from zero: %m",
				  m->state_dir);
	else if (aside)
		log_warning("The saved statistics were not valid (%s) and were moved to %s; "
			    "starting from zero.", reason ?: "unknown reason", aside);
	if (p->targets.n_targets > 0)
		placement_schedule_tick(p);
	return 0;
}

int placement_set_policy(Placement *p, const TargetKey *key, uid_t owner,
			 const PolicySpec *policy, uint64_t *ret_id)
{
	Manager *m = p->manager;
	Target *old, saved = {};
	struct timespec ts;
	uint64_t id;
	int r;

	if (policy->kind != POLICY_KIND_SYSTEM &&
	    !devices_find(m->devices, m->n_devices, policy->device))
		return -ENODEV;
	if (policy->kind == POLICY_KIND_HOT) {
		r = placement_ensure_tracker(p);
		if (r < 0)
			return r;
		if (tracker_engine_kind(p->tracker) == TRACKER_NONE)
			return -EOPNOTSUPP;
	}

	old = target_set_find(&p->targets, key);
	if (old)
		saved = *old;   /* the key stays owned by the set; only scalars are restored */
	(void) clock_gettime(CLOCK_REALTIME, &ts);
	r = target_set_put(&p->targets, key, owner, policy,
			   (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000, &id);
	if (r < 0)
		return r;

	r = placement_save_targets(p, &p->targets);
	if (r < 0) {
		if (old)
			(void) target_set_put(&p->targets, key, saved.owner, &saved.policy,
					      saved.set_realtime_usec, NULL);
		else
			(void) target_set_remove_id(&p->targets, id);
		return r;
	}

	/* A new policy: its counters start from zero. */
	state_remove(p, id);
	if (ret_id)
		*ret_id = id;
	placement_schedule_tick(p);
	return 0;
}

int placement_clear_policy(Placement *p, const TargetKey *key)
{
	Target *t = target_set_find(&p->targets, key);
	TargetSet without;
	uint64_t id;
	size_t k = 0;
	int r;

	if (!t)
		return -ENOENT;
	id = t->id;

	/* Save the set without it first: a failed save changes nothing. */
	without = p->targets;
	without.targets = calloc(p->targets.n_targets ?: 1, sizeof(Target));
	if (!without.targets)
		return -ENOMEM;
	for (size_t i = 0; i < p->targets.n_targets; i++)
		if (p->targets.targets[i].id != id)
			without.targets[k++] = p->targets.targets[i];
	without.n_targets = k;
	r = placement_save_targets(p, &without);
	free(without.targets);
	if (r < 0)
		return r;

	(void) target_set_remove_id(&p->targets, id);
	state_remove(p, id);
	placement_schedule_tick(p);
	return 0;
}

int placement_target_status(Placement *p, uint64_t id, PlacementTargetStatus *ret)
{
	const PlacementTargetState *st;

	if (!target_set_find_id(&p->targets, id))
		return -ENOENT;
	st = state_find(p, id);
	*ret = (PlacementTargetStatus) {
		.tracker = p->tracker ? tracker_kind_to_string(tracker_engine_kind(p->tracker)) :
			   "none",
	};
	if (!st)
		return 0;
	ret->n_pids = st->n_pids;
	ret->n_regions = st->n_regions;
	ret->tracked_bytes = st->tracked_bytes;
	ret->device_bytes = st->device_bytes;
	ret->hot_bytes = st->hot_bytes;
	ret->promoted_bytes = st->promoted_bytes;
	ret->demoted_bytes = st->demoted_bytes;
	ret->evicted_bytes = st->evicted_bytes;
	ret->ticks = st->ticks;
	if (st->cgroup) {
		ret->cgroup = strdup(st->cgroup);
		if (!ret->cgroup)
			return -ENOMEM;
	}
	return 0;
}

/* ------------------------------------------------------------------ recording */

int placement_record_start(Placement *p, pid_t pid, PlacementRecordFn fn, void *userdata,
			   PlacementRecorder **ret)
{
	PlacementRecorder *rec, **n;
	uint64_t starttime;
	int r;

	if (pid <= 0 || !fn)
		return -EINVAL;
	r = pid_read_starttime(p->manager->root, pid, &starttime);
	if (r < 0)
		return r;
	r = placement_ensure_tracker(p);
	if (r < 0)
		return r;

	rec = calloc(1, sizeof(*rec));
	if (!rec)
		return -ENOMEM;
	n = realloc(p->recorders, (p->n_recorders + 1) * sizeof(*n));
	if (!n) {
		free(rec);
		return -ENOMEM;
	}
	p->recorders = n;
	*rec = (PlacementRecorder) { .placement = p, .pid = pid, .fn = fn, .userdata = userdata };
	p->recorders[p->n_recorders++] = rec;
	if (ret)
		*ret = rec;
	return 0;
}

void placement_record_stop(PlacementRecorder *r)
{
	Placement *p;

	if (!r)
		return;
	p = r->placement;
	if (p->in_record_callbacks) {
		r->stopped = true;
		return;
	}
	for (size_t i = 0; i < p->n_recorders; i++)
		if (p->recorders[i] == r) {
			p->recorders[i] = p->recorders[--p->n_recorders];
			break;
		}
	free(r);
}
