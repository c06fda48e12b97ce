/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "mover.h"
#include "util.h"

/* ------------------------------------------------------------------ backend references */

int backend_ref_open(const BackendOps *ops, const char *root, BackendRef **ret)
{
	BackendRef *b;
	int r;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	r = ops->open(&b->backend, root);
	if (r < 0) {
		free(b);
		return r;
	}
	b->ops = ops;
	b->n_ref = 1;
	*ret = b;
	return 0;
}

BackendRef *backend_ref_ref(BackendRef *b)
{
	if (b)
		b->n_ref++;
	return b;
}

BackendRef *backend_ref_unref(BackendRef *b)
{
	if (!b || --b->n_ref > 0)
		return NULL;
	b->ops->close(b->backend);
	free(b);
	return NULL;
}

/* ------------------------------------------------------------------ jobs */

typedef enum JobState {
	JOB_QUEUED,
	JOB_RUNNING,
	JOB_FINISHED,
} JobState;

struct MoverJob {
	Mover *mover;
	MoverJob *next, *prev;          /* submission order */

	pid_t pid;
	bool exclusive;
	MoverWorkFn work;
	MoverProgressFn progress;
	MoverDoneFn done;
	void *userdata;

	/* Under mover->lock once running. */
	JobState state;
	int result;
	bool progress_pending;
	MoveCounts progress_counts;
	uint64_t progress_total;

	atomic_bool cancel;
	pthread_t thread;
};

struct Mover {
	sd_event *event;
	sd_event_source *source;
	int efd;
	unsigned max_workers;

	pthread_mutex_t lock;
	MoverJob *jobs, *jobs_tail;
	unsigned n_running, n_queued;
	bool dispatching;
};

static void mover_wake(Mover *m)
{
	uint64_t one = 1;

	/* EAGAIN (counter saturated) still leaves it readable. */
	(void) !write(m->efd, &one, sizeof(one));
}

static void job_unlink(Mover *m, MoverJob *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		m->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		m->jobs_tail = j->prev;
	j->next = j->prev = NULL;
}

static void *job_thread(void *userdata)
{
	MoverJob *j = userdata;
	Mover *m = j->mover;
	int r;

	r = j->work(j, j->userdata);

	pthread_mutex_lock(&m->lock);
	j->result = r;
	j->state = JOB_FINISHED;
	pthread_mutex_unlock(&m->lock);
	mover_wake(m);
	return NULL;
}

/* An earlier exclusive job of the same pid is queued or running. Loop thread. */
static bool job_blocked(const MoverJob *j)
{
	if (!j->exclusive || j->pid <= 0)
		return false;
	for (const MoverJob *i = j->prev; i; i = i->prev)
		if (i->exclusive && i->pid == j->pid)
			return true;
	return false;
}

static void mover_schedule(Mover *m)
{
	for (MoverJob *j = m->jobs; j && m->n_running < m->max_workers; j = j->next) {
		int r;

		if (j->state != JOB_QUEUED || job_blocked(j))
			continue;
		/* The worker is not running yet: no lock needed for the state. */
		j->state = JOB_RUNNING;
		r = pthread_create(&j->thread, NULL, job_thread, j);
		if (r != 0) {
			/* Try again when another job finishes. */
			j->state = JOB_QUEUED;
			break;
		}
		m->n_queued--;
		m->n_running++;
	}
}

static void job_finish(Mover *m, MoverJob *j, int r)
{
	job_unlink(m, j);
	if (j->done)
		j->done(j, r, j->userdata);
	free(j);
}

static void mover_dispatch(Mover *m)
{
	MoverJob *finished = NULL;

	m->dispatching = true;
	for (;;) {
		MoverJob *progressed = NULL;
		MoveCounts counts;
		uint64_t total = 0;

		finished = NULL;
		pthread_mutex_lock(&m->lock);
		for (MoverJob *j = m->jobs; j; j = j->next) {
			if (j->state == JOB_FINISHED && !finished)
				finished = j;
			if (j->progress_pending && !progressed) {
				progressed = j;
				counts = j->progress_counts;
				total = j->progress_total;
				j->progress_pending = false;
			}
		}
		pthread_mutex_unlock(&m->lock);

		if (progressed && progressed->progress)
			progressed->progress(progressed, &counts, total, progressed->userdata);
		if (finished) {
			(void) pthread_join(finished->thread, NULL);
			m->n_running--;
			job_finish(m, finished, finished->result);
		}
		if (!progressed && !finished)
			break;
	}
	m->dispatching = false;
	mover_schedule(m);
}

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Mover *m = userdata;
	uint64_t v;

	(void) !read(m->efd, &v, sizeof(v));
	mover_dispatch(m);
	return 0;
}

int mover_new(sd_event *event, unsigned max_workers, Mover **ret)
{
	Mover *m;
	int r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->max_workers = max_workers > 0 ? max_workers : MOVER_WORKERS_MAX_DEFAULT;
	pthread_mutex_init(&m->lock, NULL);
	m->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->efd < 0) {
		r = -errno;
		goto fail;
	}
	m->event = sd_event_ref(event);
	r = sd_event_add_io(event, &m->source, m->efd, EPOLLIN, on_wake, m);
	if (r < 0)
		goto fail;
	(void) sd_event_source_set_description(m->source, "mover");
	*ret = m;
	return 0;
fail:
	mover_free(m);
	return r;
}

Mover *mover_free(Mover *m)
{
	if (!m)
		return NULL;

	/* Queued jobs never start; running ones stop at their next progress report. */
	for (MoverJob *j = m->jobs; j; j = j->next)
		atomic_store(&j->cancel, true);
	while (m->jobs) {
		MoverJob *j = m->jobs;

		if (j->state != JOB_QUEUED) {
			(void) pthread_join(j->thread, NULL);
			m->n_running--;
		} else
			m->n_queued--;
		job_finish(m, j, -ECANCELED);
	}

	sd_event_source_disable_unref(m->source);
	sd_event_unref(m->event);
	safe_close(m->efd);
	pthread_mutex_destroy(&m->lock);
	free(m);
	return NULL;
}

int mover_submit(Mover *m, pid_t pid, bool exclusive, MoverWorkFn work,
		 MoverProgressFn progress, MoverDoneFn done, void *userdata, MoverJob **ret)
{
	MoverJob *j;

	if (!m || !work)
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	*j = (MoverJob) {
		.mover = m,
		.pid = pid,
		.exclusive = exclusive,
		.work = work,
		.progress = progress,
		.done = done,
		.userdata = userdata,
		.state = JOB_QUEUED,
	};
	atomic_init(&j->cancel, false);

	j->prev = m->jobs_tail;
	if (m->jobs_tail)
		m->jobs_tail->next = j;
	else
		m->jobs = j;
	m->jobs_tail = j;
	m->n_queued++;

	if (ret)
		*ret = j;
	if (!m->dispatching)
		mover_schedule(m);
	return 0;
}

int mover_job_progress(MoverJob *j, const MoveCounts *so_far, uint64_t pages_total)
{
	Mover *m = j->mover;
	bool wake;

	pthread_mutex_lock(&m->lock);
	wake = !j->progress_pending;
	j->progress_pending = true;
	j->progress_counts = *so_far;
	j->progress_total = pages_total;
	pthread_mutex_unlock(&m->lock);
	if (wake)
		mover_wake(m);
	return atomic_load(&j->cancel) ? -ECANCELED : 0;
}

bool mover_job_cancelled(MoverJob *j)
{
	return atomic_load(&j->cancel);
}

void mover_job_cancel(MoverJob *j)
{
	atomic_store(&j->cancel, true);
}

pid_t mover_job_pid(const MoverJob *j)
{
	return j->pid;
}

unsigned mover_n_queued(const Mover *m)
{
	return m->n_queued;
}

unsigned mover_n_running(const Mover *m)
{
	return m->n_running;
}

unsigned mover_job_position(const MoverJob *j)
{
	unsigned n = 0;

	if (j->state != JOB_QUEUED || !j->exclusive)
		return 0;
	for (const MoverJob *i = j->prev; i; i = i->prev)
		if (i->exclusive && i->pid == j->pid)
			n++;
	return n;
}

/* ------------------------------------------------------------------ migration */

void migrate_request_done(MigrateRequest *r)
{
	for (size_t i = 0; i < r->n_steps; i++)
		r->steps[i].backend = backend_ref_unref(r->steps[i].backend);
	r->n_steps = 0;
	for (size_t i = 0; i < r->n_observers; i++)
		r->observers[i].backend = backend_ref_unref(r->observers[i].backend);
	r->n_observers = 0;
	r->pidfd = safe_close(r->pidfd);
	r->root = mfree(r->root);
}

void migrate_result_done(MigrateResult *r)
{
	for (size_t i = 0; i < MIGRATE_STEPS_MAX; i++) {
		free(r->snapshots[i].before);
		free(r->snapshots[i].after);
		free(r->observed[i].before);
		free(r->observed[i].after);
	}
	*r = (MigrateResult) {};
}

uint64_t residency_bytes_on(const ResidencyEntry *e, size_t n, const BackendTarget *target)
{
	uint64_t t = 0;

	for (size_t i = 0; i < n; i++)
		if (target->system ? e[i].system : (!e[i].system && e[i].id == target->id))
			t += e[i].bytes;
	return t;
}

void migrate_merge_system_counts(const MoveCounts *cohmem, const MoveCounts *numa, bool dry_run,
				 MoveCounts *ret)
{
	MoveCounts c = *numa;
	uint64_t t;

	/* Pages cohmem moved (or would move) out of its pools. */
	if (dry_run) {
		t = MIN(cohmem->migrated, c.not_present);
		c.not_present -= t;
	} else {
		/* Already in RAM for numa; those it moved on from a device node are counted once. */
		t = MIN(cohmem->migrated, c.already);
		c.already -= t;
	}
	c.migrated += t;

	/* Pages that stayed in a pool are invisible to numa: not present there. */
	t = MIN(cohmem->failed, c.not_present);
	c.not_present -= t;
	c.failed += t;
	t = MIN(cohmem->pinned, c.not_present);
	c.not_present -= t;
	c.pinned += t;
	t = MIN(cohmem->no_space, c.not_present);
	c.not_present -= t;
	c.no_space += t;
	/* unmovable, file, shared: classified by mapping, the same pages numa counted. */
	*ret = c;
}

int migrate_predict(const BackendOps *ops, Backend *b, const char *root, pid_t pid,
		    uint64_t start, uint64_t length, const BackendTarget *target,
		    uint64_t page_size, MoveCounts *ret)
{
	BackendMapping *maps = NULL;
	size_t n_maps = 0;
	MoveCounts c = {};
	/* The whole process: every mapping, [vsyscall] above the user range included. */
	uint64_t end = length > 0 ? start + length : UINT64_MAX, covered = 0;
	bool any = false;
	int r;

	r = backend_check_range(start, length, page_size);
	if (r < 0)
		return r;
	r = backend_maps_read(root, pid, &maps, &n_maps);
	if (r < 0)
		return r;
	if (n_maps == 0) {
		r = -ESRCH;   /* no address space */
		goto finish;
	}

	for (size_t i = 0; i < n_maps; i++) {
		uint64_t s = MAX(maps[i].start, start), e = MIN(maps[i].end, end), pages;
		ResidencyEntry *res = NULL;
		size_t n_res = 0;
		uint64_t present = 0, on_target;

		if (s >= e)
			continue;
		any = true;
		pages = (e - s) / page_size;
		covered += e - s;

		if (maps[i].kind != BACKEND_MAP_ANON) {
			uint64_t *f = move_counts_field_for_map_kind(&c, maps[i].kind);

			if (f)
				*f += pages;
			continue;
		}

		r = ops->residency(b, pid, s, e - s, &res, &n_res);
		if (r < 0)
			goto finish;
		for (size_t k = 0; k < n_res; k++)
			present += res[k].bytes;
		on_target = residency_bytes_on(res, n_res, target);
		free(res);

		present = MIN(present / page_size, pages);
		on_target = MIN(on_target / page_size, present);
		c.already += on_target;
		c.migrated += present - on_target;
		c.not_present += pages - present;
	}

	if (!any) {
		r = -EFAULT;
		goto finish;
	}
	/* Holes of an explicit range count as not present, as in a move. */
	if (length > 0)
		c.not_present += (length - covered) / page_size;
	*ret = c;
	r = 0;
finish:
	backend_mappings_free(maps, n_maps);
	return r;
}

typedef struct StepProgress {
	MoverJob *job;
	MoveCounts before;   /* migrated by earlier steps */
	uint64_t pages_before;
} StepProgress;

static int step_progress(const MoveCounts *so_far, uint64_t pages_total, void *userdata)
{
	StepProgress *p = userdata;
	MoveCounts c = p->before;

	if (!p->job)
		return 0;
	move_counts_add(&c, so_far);
	return mover_job_progress(p->job, &c, p->pages_before + pages_total);
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/*
 * Whether the residency after the move is worth asking for: bytes_out
 * (manager_account_migration()) counts only what a device held before and
 * holds less of after. When the before snapshot shows nothing on a device
 * (pages only in system RAM, or none), nothing can have left one, and the
 * after snapshot, a second pass over the process's mappings in the backend
 * (cohmem: one RESIDENCY per mapping), is left out: have_after stays false.
 */
static bool snapshot_on_device(const MigrateSnapshot *snap)
{
	for (size_t i = 0; i < snap->n_before; i++)
		if (!snap->before[i].system && snap->before[i].bytes > 0)
			return true;
	return false;
}

/*
 * A backend said -ESRCH (no address space any more) for a process that was
 * alive when the request started: has it exited? A killed process drops its
 * address space early in its exit and becomes a zombie (its pidfd polls
 * readable) a moment later, so wait for that, for a bounded time: a process
 * that still runs after it was not the one that went away.
 */
#define EXIT_WAIT_MS 5000

static bool exited_after_esrch(int pidfd)
{
	if (pidfd < 0)
		return false;
	return auth_pidfd_exited(pidfd, EXIT_WAIT_MS) != 0;
}

int migrate_run(const MigrateRequest *req, MoverJob *job, MigrateResult *result)
{
	MoveCounts step_counts[MIGRATE_STEPS_MAX] = {};
	uint64_t t0 = now_usec();
	size_t done_steps = 0;
	bool stepped = false;   /* a backend moved (or tried to) for an earlier step */
	long ps = sysconf(_SC_PAGESIZE);
	int r = 0;

	*result = (MigrateResult) { .page_size = ps > 0 ? (uint64_t) ps : 4096 };
	backend_set_last_message(NULL);

	if (req->pidfd >= 0 && auth_pidfd_alive(req->pidfd) < 0)
		return -ESRCH;

	/*
	 * Residency before any step moves anything: pages that pass through a
	 * device between two steps (a pool page evicted to the pool's node, then
	 * moved on by numa) did not leave it for the statistics.
	 */
	for (size_t i = 0; i < req->n_steps && !req->dry_run; i++) {
		const MigrateStep *st = &req->steps[i];
		MigrateSnapshot *snap = &result->snapshots[i];

		if (!st->snapshot)
			continue;
		r = st->backend->ops->residency(st->backend->backend, req->pid, req->start,
						req->length, &snap->before, &snap->n_before);
		if (r == -EFAULT)
			r = 0;   /* nothing mapped: the move says so */
		if (r < 0)
			goto finish;
	}
	for (size_t i = 0; i < req->n_observers && !req->dry_run; i++) {
		const BackendRef *b = req->observers[i].backend;
		MigrateSnapshot *snap = &result->observed[i];

		r = b->ops->residency(b->backend, req->pid, req->start, req->length, &snap->before,
				      &snap->n_before);
		if (r == -EFAULT)
			r = 0;
		if (r < 0)
			goto finish;
	}

	for (size_t i = 0; i < req->n_steps; i++) {
		const MigrateStep *st = &req->steps[i];
		StepProgress p = { .job = job };

		if (job && mover_job_cancelled(job)) {
			r = -ECANCELED;
			break;
		}

		for (size_t k = 0; k < i; k++) {
			move_counts_add(&p.before, &step_counts[k]);
			p.pages_before += move_counts_total(&step_counts[k]);
		}

		/*
		 * A step that takes pages off its backend's devices to system RAM
		 * before another step (cohmem's pools, then numa), whose snapshot
		 * just found nothing on them, has nothing to move: its counts
		 * would only be merged for the pages it moved or could not move
		 * (migrate_merge_system_counts()), none, and the next step counts
		 * every page of the range.
		 */
		if (!req->dry_run && i + 1 < req->n_steps && st->snapshot && st->target.system &&
		    !snapshot_on_device(&result->snapshots[i])) {
			done_steps = i + 1;
			continue;
		}
		if (req->dry_run)
			r = migrate_predict(st->backend->ops, st->backend->backend, req->root,
					    req->pid, req->start, req->length, &st->target,
					    result->page_size, &step_counts[i]);
		else
			r = st->backend->ops->move(st->backend->backend, req->pid, req->start,
						   req->length, &st->target, step_progress, &p,
						   &step_counts[i]);
		/*
		 * The process went away during the request: it was alive when the
		 * request started (checked above), so this is an exit part way, also
		 * when the backend could not count anything of the step (a
		 * migrate_pages(2) call of a whole process is one step for it).
		 */
		if (r == BACKEND_MOVE_EXITED ||
		    (r == -ESRCH && (stepped || exited_after_esrch(req->pidfd)))) {
			result->target_exited = true;
			done_steps = i + 1;
			r = 0;
			goto merge;
		}
		if (r < 0) {
			/* Cancelled part way: report what was done, as for an exit. */
			if (r == -ECANCELED)
				done_steps = i + 1;
			break;
		}
		done_steps = i + 1;
		stepped = true;
	}
	if (r < 0 && r != -ECANCELED)
		goto finish;

	for (size_t i = 0; i < done_steps && !req->dry_run; i++) {
		const MigrateStep *st = &req->steps[i];
		MigrateSnapshot *snap = &result->snapshots[i];

		if (st->snapshot && snapshot_on_device(snap))
			snap->have_after = st->backend->ops->residency(st->backend->backend, req->pid,
								       req->start, req->length,
								       &snap->after,
								       &snap->n_after) >= 0;
	}
	for (size_t i = 0; i < req->n_observers && done_steps > 0 && !req->dry_run; i++) {
		const BackendRef *b = req->observers[i].backend;
		MigrateSnapshot *snap = &result->observed[i];

		if (!snapshot_on_device(snap))
			continue;
		snap->have_after = b->ops->residency(b->backend, req->pid, req->start, req->length,
						     &snap->after, &snap->n_after) >= 0;
	}

merge:
	if (done_steps == 2 && move_counts_total(&step_counts[1]) > 0)
		/* Only a move to system RAM has two steps: cohmem, then numa. */
		migrate_merge_system_counts(&step_counts[0], &step_counts[1], req->dry_run,
					    &result->counts);
	else if (done_steps >= 1)
		/* numa counted nothing (the process exited at once): cohmem's is all there is. */
		result->counts = step_counts[0];

	/* Whatever the backends said, a pidfd that is gone means the process is. */
	if (req->pidfd >= 0 && auth_pidfd_alive(req->pidfd) < 0)
		result->target_exited = true;

finish:
	result->elapsed_usec = now_usec() - t0;
	if (backend_last_message())
		(void) snprintf(result->message, sizeof(result->message), "%s",
				backend_last_message());
	return r;
}
