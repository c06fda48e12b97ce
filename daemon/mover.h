/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The mover: blocking backend work (migrations, residency queries) runs in
 * worker threads so the event loop keeps answering other clients.
 *
 *   - One thread per running job, at most max_workers at a time; the rest
 *     wait in submission order.
 *   - Exclusive jobs (migrations) of the same pid run one after another, in
 *     the order they were submitted; shared jobs (residency) run any time.
 *   - A worker never touches loop state: it posts progress and its result
 *     into the job under the mover's mutex and wakes the loop through an
 *     eventfd. Progress and done callbacks run in the loop thread.
 *
 * migrate_run() is what a migration job does: it drives one or two backends
 * (system RAM as target: cohmem's pools first, then numa's device nodes),
 * merges their counts, and reports progress. It takes plain structs, so unit
 * tests run it on the fake backend without a loop.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "backend.h"

#define MOVER_WORKERS_MAX_DEFAULT 8U

/* ---- backends shared between the loop and workers ---- */

/*
 * An open backend with a reference count, so that a backend the loop drops
 * (cohmem.ko unloaded) stays valid for the jobs still using it. Referenced
 * and unreferenced in the loop thread only.
 */
typedef struct BackendRef {
	const BackendOps *ops;
	Backend *backend;
	unsigned n_ref;
} BackendRef;

int backend_ref_open(const BackendOps *ops, const char *root, BackendRef **ret);
BackendRef *backend_ref_ref(BackendRef *b);
BackendRef *backend_ref_unref(BackendRef *b);

/* ---- jobs ---- */

typedef struct Mover Mover;
typedef struct MoverJob MoverJob;

/* Worker thread. Returns what the done callback gets as r. */
typedef int (*MoverWorkFn)(MoverJob *j, void *userdata);
/* Loop thread, coalesced: the latest counts since the last call. */
typedef void (*MoverProgressFn)(MoverJob *j, const MoveCounts *so_far, uint64_t pages_total,
				void *userdata);
/* Loop thread, once per job; the job is freed right after. r -ECANCELED when cancelled. */
typedef void (*MoverDoneFn)(MoverJob *j, int r, void *userdata);

int mover_new(sd_event *event, unsigned max_workers, Mover **ret);
/* Cancels every job (done callbacks run with -ECANCELED) and joins the workers. */
Mover *mover_free(Mover *m);

/*
 * Queue a job. pid > 0 with exclusive: serialized after earlier exclusive
 * jobs of that pid. *ret (optional) stays valid until the done callback returns.
 */
int mover_submit(Mover *m, pid_t pid, bool exclusive, MoverWorkFn work,
		 MoverProgressFn progress, MoverDoneFn done, void *userdata, MoverJob **ret);

/* Worker side: post progress; -ECANCELED when the job should stop. */
int mover_job_progress(MoverJob *j, const MoveCounts *so_far, uint64_t pages_total);
bool mover_job_cancelled(MoverJob *j);
/* Loop side: ask a running job to stop (it ends at its next progress report). */
void mover_job_cancel(MoverJob *j);

pid_t mover_job_pid(const MoverJob *j);
/* Jobs waiting (not started) and running. */
unsigned mover_n_queued(const Mover *m);
unsigned mover_n_running(const Mover *m);
/* Jobs queued before j for its pid (0 when j is running or first in line). */
unsigned mover_job_position(const MoverJob *j);

/* ---- migration ---- */

/* One backend's part of a migration. */
typedef struct MigrateStep {
	BackendRef *backend;          /* a reference the request holds */
	BackendTarget target;
	/* Take this backend's residency of the range before and after, for bytes_out. */
	bool snapshot;
} MigrateStep;

#define MIGRATE_STEPS_MAX 2

/* A backend whose residency is taken before and after, without moving through it. */
typedef struct MigrateObserver {
	BackendRef *backend;          /* a reference the request holds */
} MigrateObserver;

typedef struct MigrateRequest {
	pid_t pid;
	int pidfd;                    /* from auth_check_process(); owned by the request */
	uint64_t start, length;       /* length 0: the whole process */
	bool dry_run;
	char *root;                   /* where /proc/PID/maps is read for dry runs */
	MigrateStep steps[MIGRATE_STEPS_MAX];
	size_t n_steps;
	/*
	 * Pages a step takes may come off devices of another backend (cohmem
	 * migrates pages from a device node into a pool): their residency is
	 * snapshotted too, for bytes_out.
	 */
	MigrateObserver observers[MIGRATE_STEPS_MAX];
	size_t n_observers;
} MigrateRequest;

typedef struct MigrateSnapshot {
	ResidencyEntry *before, *after;
	size_t n_before, n_after;
	bool have_after;
} MigrateSnapshot;

typedef struct MigrateResult {
	MoveCounts counts;
	uint64_t page_size;
	uint64_t elapsed_usec;
	bool target_exited;           /* the process exited part way: counts are partial */
	MigrateSnapshot snapshots[MIGRATE_STEPS_MAX];
	MigrateSnapshot observed[MIGRATE_STEPS_MAX];   /* per observer */
	char message[256];            /* the backend's last message, "" when none */
} MigrateResult;

void migrate_request_done(MigrateRequest *r);
void migrate_result_done(MigrateResult *r);

/*
 * Run the request in the calling thread. progress may be NULL. Returns 0
 * (also when the target exited part way: result->target_exited), or a
 * negative errno as the backends define them (backend.h): -ESRCH (gone
 * before anything was done), -EFAULT (nothing mapped in the range), -EINVAL,
 * -ENODEV, -EPERM, -ECANCELED.
 */
int migrate_run(const MigrateRequest *req, MoverJob *job, MigrateResult *result);

/*
 * Combine a move to system RAM done in two steps: first cohmem (pool pages to
 * RAM), then numa (device-node pages to CPU nodes). The numa counts classify
 * every page of the range; the pages cohmem moved show up there as already in
 * RAM (moved) or not present (dry run: still in the pool), and so do pages
 * cohmem failed to move. Pure.
 */
void migrate_merge_system_counts(const MoveCounts *cohmem, const MoveCounts *numa, bool dry_run,
				 MoveCounts *ret);

/*
 * Dry run of one step: what a move would do, from the mappings and the
 * backend's residency. Pinned and shared-page refusals are known only when
 * moving and are not predicted.
 */
int migrate_predict(const BackendOps *ops, Backend *b, const char *root, pid_t pid,
		    uint64_t start, uint64_t length, const BackendTarget *target,
		    uint64_t page_size, MoveCounts *ret);

/* Bytes on target (system: every system entry) in a residency answer. */
uint64_t residency_bytes_on(const ResidencyEntry *e, size_t n, const BackendTarget *target);
