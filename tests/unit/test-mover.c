/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon/mover: jobs off the event loop (serialization per pid, parallelism
 * across pids, progress and results delivered in the loop thread, cancel),
 * and migrate_run() on the scripted fake backend (counts, dry runs that
 * predict the move, a target that exits part way, errors).
 */

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend-fake.h"
#include "mover.h"
#include "util.h"

#define PG FAKE_PAGE_SIZE
/* Only a broken mover makes a test wait this long; passing never depends on it. */
#define DEADLINE_SEC 120

/* ------------------------------------------------------------------ merge */

static void test_merge_system_counts(void **state)
{
	/* cohmem moved 10 pool pages back; numa then saw them as already in RAM. */
	MoveCounts c = { .migrated = 10, .already = 90 };
	MoveCounts n = { .migrated = 5, .already = 95 };
	MoveCounts r;

	migrate_merge_system_counts(&c, &n, false, &r);
	assert_int_equal(r.migrated, 15);
	assert_int_equal(r.already, 85);
	assert_int_equal(move_counts_total(&r), 100);

	/* Dry run: the pool pages are still in the pool, not present for numa. */
	c = (MoveCounts) { .migrated = 10, .already = 90 };
	n = (MoveCounts) { .already = 80, .not_present = 20 };
	migrate_merge_system_counts(&c, &n, true, &r);
	assert_int_equal(r.migrated, 10);
	assert_int_equal(r.not_present, 10);
	assert_int_equal(r.already, 80);
	assert_int_equal(move_counts_total(&r), 100);

	/* Pool pages that failed or were pinned stay in the pool: not present for numa. */
	c = (MoveCounts) { .migrated = 4, .failed = 3, .pinned = 2, .already = 91 };
	n = (MoveCounts) { .already = 95, .not_present = 5 };
	migrate_merge_system_counts(&c, &n, false, &r);
	assert_int_equal(r.migrated, 4);
	assert_int_equal(r.already, 91);
	assert_int_equal(r.failed, 3);
	assert_int_equal(r.pinned, 2);
	assert_int_equal(r.not_present, 0);
	assert_int_equal(move_counts_total(&r), 100);

	/* Nothing from cohmem: numa's counts as they are. */
	c = (MoveCounts) {};
	n = (MoveCounts) { .migrated = 7, .file = 3, .shared = 1 };
	migrate_merge_system_counts(&c, &n, false, &r);
	assert_memory_equal(&r, &n, sizeof(r));
}

/* ------------------------------------------------------------------ migrate_run on the fake */

#define P_MAIN 4242
#define P_EXIT 4243
#define ANON_START UINT64_C(0x10000000)
#define ANON_PAGES 64
#define FILE_START (ANON_START + ANON_PAGES * PG)
#define FILE_PAGES 8
#define HOLE_PAGES 4
#define SHARED_START (FILE_START + (FILE_PAGES + HOLE_PAGES) * PG)
#define SHARED_PAGES 6
#define EXIT_PAGES 2048

static char *proc_root;

static void write_maps(pid_t pid, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/proc/%d", proc_root, (int) pid);
	(void) mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/proc/%d/maps", proc_root, (int) pid);
	f = fopen(path, "we");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup_fake(Backend *b, void *userdata)
{
	int r;

	r = fake_add_device(b, "hbm", 1, 100000);
	if (r != 0)
		return r < 0 ? r : -EINVAL;
	if (fake_add_process(b, P_MAIN) < 0 ||
	    fake_add_mapping(b, P_MAIN, ANON_START, FILE_START, BACKEND_MAP_ANON) < 0 ||
	    fake_add_mapping(b, P_MAIN, FILE_START, FILE_START + FILE_PAGES * PG, BACKEND_MAP_FILE) < 0 ||
	    fake_add_mapping(b, P_MAIN, SHARED_START, SHARED_START + SHARED_PAGES * PG,
			     BACKEND_MAP_SHARED) < 0 ||
	    /* 48 present in RAM, 4 already on the device, 12 never touched. */
	    fake_set_pages(b, P_MAIN, ANON_START, 48, FAKE_SYSTEM, 0) < 0 ||
	    fake_set_pages(b, P_MAIN, ANON_START + 48 * PG, 4, 0, 0) < 0 ||
	    fake_set_pages(b, P_MAIN, FILE_START, FILE_PAGES, FAKE_SYSTEM, 0) < 0 ||
	    fake_set_pages(b, P_MAIN, SHARED_START, SHARED_PAGES, FAKE_SYSTEM, 0) < 0)
		return -ENOMEM;
	if (fake_add_process(b, P_EXIT) < 0 ||
	    fake_add_mapping(b, P_EXIT, ANON_START, ANON_START + EXIT_PAGES * PG, BACKEND_MAP_ANON) < 0 ||
	    fake_set_pages(b, P_EXIT, ANON_START, EXIT_PAGES, FAKE_SYSTEM, 0) < 0)
		return -ENOMEM;
	return 0;
}

static int setup_migrate(void **state)
{
	char tmpl[] = "/tmp/coh-test-mover.XXXXXX", path[PATH_MAX];

	assert_non_null(mkdtemp(tmpl));
	proc_root = strdup(tmpl);
	snprintf(path, sizeof(path), "%s/proc", proc_root);
	assert_int_equal(mkdir(path, 0755), 0);

	write_maps(P_MAIN,
		   "10000000-10040000 rw-p 00000000 00:00 0 \n"
		   "10040000-10048000 r--p 00000000 08:01 1234 /usr/lib/libfoo.so\n"
		   "1004c000-10052000 rw-s 00000000 00:01 99 /dev/shm/x\n");
	write_maps(P_EXIT, "10000000-10800000 rw-p 00000000 00:00 0 [heap]\n");
	backend_fake_set_setup(setup_fake, NULL);
	return 0;
}

static int teardown_migrate(void **state)
{
	char cmd[PATH_MAX + 16];

	backend_fake_set_setup(NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", proc_root);
	assert_int_equal(system(cmd), 0);
	free(proc_root);
	return 0;
}

static void request_init(MigrateRequest *req, BackendRef *b, pid_t pid, uint64_t start,
			 uint64_t length, bool dry_run)
{
	*req = (MigrateRequest) {
		.pid = pid,
		.pidfd = -EBADF,
		.start = start,
		.length = length,
		.dry_run = dry_run,
		.root = strdup(proc_root),
		.n_steps = 1,
	};
	req->steps[0] = (MigrateStep) {
		.backend = backend_ref_ref(b),
		.target = { .system = false, .id = 0 },
	};
}

static void test_migrate_run(void **state)
{
	MigrateRequest req;
	MigrateResult dry, res;
	BackendRef *b;

	assert_int_equal(backend_ref_open(&backend_fake_ops, NULL, &b), 0);

	/* The whole process: the dry run predicts exactly what the move does here. */
	request_init(&req, b, P_MAIN, 0, 0, true);
	assert_int_equal(migrate_run(&req, NULL, &dry), 0);
	migrate_request_done(&req);
	assert_int_equal(dry.counts.migrated, 48);
	assert_int_equal(dry.counts.already, 4);
	assert_int_equal(dry.counts.not_present, 12);
	assert_int_equal(dry.counts.file, FILE_PAGES);
	assert_int_equal(dry.counts.shared, SHARED_PAGES);
	assert_int_equal(dry.counts.failed, 0);
	assert_false(dry.target_exited);
	/* Nothing moved. */
	assert_int_equal(fake_page_location(b->backend, P_MAIN, ANON_START), FAKE_SYSTEM);
	assert_int_equal(fake_calls(b->backend, FAKE_OP_MOVE), 0);

	request_init(&req, b, P_MAIN, 0, 0, false);
	assert_int_equal(migrate_run(&req, NULL, &res), 0);
	migrate_request_done(&req);
	assert_memory_equal(&res.counts, &dry.counts, sizeof(MoveCounts));
	assert_int_equal(res.page_size, PG);
	assert_int_equal(fake_page_location(b->backend, P_MAIN, ANON_START), 0);
	assert_int_equal(fake_page_location(b->backend, P_MAIN, ANON_START + 47 * PG), 0);
	assert_int_equal(fake_page_location(b->backend, P_MAIN, FILE_START), FAKE_SYSTEM);
	migrate_result_done(&res);
	migrate_result_done(&dry);

	/* Again: everything is there already. */
	request_init(&req, b, P_MAIN, 0, 0, false);
	assert_int_equal(migrate_run(&req, NULL, &res), 0);
	migrate_request_done(&req);
	assert_int_equal(res.counts.migrated, 0);
	assert_int_equal(res.counts.already, 52);
	migrate_result_done(&res);

	/* An explicit range over the file mapping, the hole and part of the shared one. */
	request_init(&req, b, P_MAIN, FILE_START, (FILE_PAGES + HOLE_PAGES + 2) * PG, true);
	assert_int_equal(migrate_run(&req, NULL, &dry), 0);
	migrate_request_done(&req);
	request_init(&req, b, P_MAIN, FILE_START, (FILE_PAGES + HOLE_PAGES + 2) * PG, false);
	assert_int_equal(migrate_run(&req, NULL, &res), 0);
	migrate_request_done(&req);
	assert_int_equal(res.counts.file, FILE_PAGES);
	assert_int_equal(res.counts.not_present, HOLE_PAGES);
	assert_int_equal(res.counts.shared, 2);
	assert_int_equal(move_counts_total(&res.counts), FILE_PAGES + HOLE_PAGES + 2);
	assert_memory_equal(&res.counts, &dry.counts, sizeof(MoveCounts));
	migrate_result_done(&res);
	migrate_result_done(&dry);

	/* Nothing mapped there: -EFAULT, moving or not. */
	for (int d = 0; d < 2; d++) {
		request_init(&req, b, P_MAIN, 0x1000, 0x1000, d);
		assert_int_equal(migrate_run(&req, NULL, &res), -EFAULT);
		migrate_request_done(&req);
		migrate_result_done(&res);
	}

	/* A backend error comes through as it is. */
	fake_fail_next(b->backend, FAKE_OP_MOVE, -EPERM);
	request_init(&req, b, P_MAIN, 0, 0, false);
	assert_int_equal(migrate_run(&req, NULL, &res), -EPERM);
	migrate_request_done(&req);
	migrate_result_done(&res);

	/* Exits part way: exact partial counts, the request succeeds and says so. */
	fake_set_batch(b->backend, 512, 0);
	assert_int_equal(fake_exit_after(b->backend, P_EXIT, 700), 0);
	request_init(&req, b, P_EXIT, 0, 0, false);
	assert_int_equal(migrate_run(&req, NULL, &res), 0);
	migrate_request_done(&req);
	assert_true(res.target_exited);
	assert_int_equal(res.counts.migrated, 700);
	assert_true(move_counts_total(&res.counts) < EXIT_PAGES);
	migrate_result_done(&res);

	/* Gone before anything was done: no such process. */
	request_init(&req, b, P_EXIT, 0, 0, false);
	assert_int_equal(migrate_run(&req, NULL, &res), -ESRCH);
	migrate_request_done(&req);
	migrate_result_done(&res);

	backend_ref_unref(b);
}

/*
 * A backend that loses the process during its move without counting anything
 * (a whole-process migrate_pages(2) step): the process was alive when the
 * request started, so the request ends as an exit part way, not NoSuchProcess.
 */
static pid_t victim;

static int move_then_lose(Backend *b, pid_t pid, uint64_t start, uint64_t length,
			  const BackendTarget *target, BackendProgressFn progress, void *userdata,
			  MoveCounts *ret)
{
	kill(victim, SIGKILL);
	(void) waitpid(victim, NULL, 0);
	*ret = (MoveCounts) {};
	return -ESRCH;
}

static void test_migrate_exit_uncounted(void **state)
{
	BackendOps ops = backend_fake_ops;
	MigrateRequest req;
	MigrateResult res;
	BackendRef *b;
	int pidfd;

	ops.move = move_then_lose;
	assert_int_equal(backend_ref_open(&ops, NULL, &b), 0);

	victim = fork();
	assert_true(victim >= 0);
	if (victim == 0) {
		pause();
		_exit(0);
	}
	pidfd = (int) syscall(SYS_pidfd_open, victim, 0);
	assert_true(pidfd >= 0);

	request_init(&req, b, P_MAIN, 0, 0, false);
	req.pidfd = pidfd;
	assert_int_equal(migrate_run(&req, NULL, &res), 0);
	assert_true(res.target_exited);
	assert_int_equal(move_counts_total(&res.counts), 0);
	migrate_result_done(&res);

	/* Dead before the request started: that is no such process. */
	assert_int_equal(migrate_run(&req, NULL, &res), -ESRCH);
	migrate_result_done(&res);
	migrate_request_done(&req);   /* closes the pidfd */

	/* Without a pidfd to tell, -ESRCH from the only step stays NoSuchProcess. */
	request_init(&req, b, P_MAIN, 0, 0, false);
	assert_int_equal(migrate_run(&req, NULL, &res), -ESRCH);
	migrate_result_done(&res);
	migrate_request_done(&req);
	backend_ref_unref(b);
}

/*
 * Killed during the move and not reaped yet: a zombie takes signal 0 but has
 * exited, so the request still ends as an exit part way.
 */
static int move_then_zombie(Backend *b, pid_t pid, uint64_t start, uint64_t length,
			    const BackendTarget *target, BackendProgressFn progress, void *userdata,
			    MoveCounts *ret)
{
	siginfo_t si = {};

	kill(victim, SIGKILL);
	/* Until it is a zombie; WNOWAIT leaves it one. */
	assert_int_equal(waitid(P_PID, (id_t) victim, &si, WEXITED | WNOWAIT), 0);
	*ret = (MoveCounts) {};
	return -ESRCH;
}

static void test_migrate_exit_zombie(void **state)
{
	BackendOps ops = backend_fake_ops;
	MigrateRequest req;
	MigrateResult res;
	BackendRef *b;
	int pidfd;

	ops.move = move_then_zombie;
	assert_int_equal(backend_ref_open(&ops, NULL, &b), 0);

	victim = fork();
	assert_true(victim >= 0);
	if (victim == 0) {
		pause();
		_exit(0);
	}
	pidfd = (int) syscall(SYS_pidfd_open, victim, 0);
	assert_true(pidfd >= 0);

	request_init(&req, b, P_MAIN, 0, 0, false);
	req.pidfd = pidfd;
	assert_int_equal(migrate_run(&req, NULL, &res), 0);
	assert_true(res.target_exited);
	assert_int_equal(move_counts_total(&res.counts), 0);
	migrate_result_done(&res);

	/* Still a zombie: a new request finds no such process. */
	assert_int_equal(migrate_run(&req, NULL, &res), -ESRCH);
	migrate_result_done(&res);
	migrate_request_done(&req);
	assert_int_equal(waitpid(victim, NULL, 0), victim);
	backend_ref_unref(b);
}

/* Residency before and after, when asked for: the numbers bytes_out is made of. */
static void test_migrate_snapshot(void **state)
{
	MigrateRequest req;
	MigrateResult res;
	BackendRef *b;
	BackendTarget dev = { .id = 0 }, sys = { .system = true };
	const MigrateSnapshot *s;

	assert_int_equal(backend_ref_open(&backend_fake_ops, NULL, &b), 0);
	request_init(&req, b, P_MAIN, 0, 0, false);
	req.steps[0].target = (BackendTarget) { .system = true, .id = -1 };
	req.steps[0].snapshot = true;
	/* First everything onto the device, then back. */
	fake_set_pages(b->backend, P_MAIN, ANON_START, 52, 0, 0);
	assert_int_equal(migrate_run(&req, NULL, &res), 0);
	migrate_request_done(&req);
	s = &res.snapshots[0];
	assert_true(s->have_after);
	assert_int_equal(residency_bytes_on(s->before, s->n_before, &dev), 52 * PG);
	assert_int_equal(residency_bytes_on(s->after, s->n_after, &dev), 0);
	assert_int_equal(residency_bytes_on(s->after, s->n_after, &sys),
			 (52 + FILE_PAGES + SHARED_PAGES) * PG);
	assert_int_equal(res.counts.migrated, 52);
	migrate_result_done(&res);

	/* An observer: its residency before and after, and nothing moved through it. */
	{
		BackendRef *o;

		assert_int_equal(backend_ref_open(&backend_fake_ops, NULL, &o), 0);
		request_init(&req, b, P_MAIN, 0, 0, false);
		req.observers[0].backend = backend_ref_ref(o);
		req.n_observers = 1;
		assert_int_equal(migrate_run(&req, NULL, &res), 0);
		migrate_request_done(&req);
		assert_int_equal(fake_calls(o->backend, FAKE_OP_RESIDENCY), 2);
		assert_int_equal(fake_calls(o->backend, FAKE_OP_MOVE), 0);
		s = &res.observed[0];
		assert_true(s->have_after);
		assert_int_equal(residency_bytes_on(s->before, s->n_before, &sys),
				 (48 + FILE_PAGES + SHARED_PAGES) * PG);
		migrate_result_done(&res);

		/* A dry run takes no snapshots. */
		request_init(&req, b, P_MAIN, 0, 0, true);
		req.observers[0].backend = backend_ref_ref(o);
		req.n_observers = 1;
		assert_int_equal(migrate_run(&req, NULL, &res), 0);
		migrate_request_done(&req);
		assert_int_equal(fake_calls(o->backend, FAKE_OP_RESIDENCY), 2);
		assert_false(res.observed[0].have_after);
		migrate_result_done(&res);

		/*
		 * Nothing on a device before: nothing can leave one, so no
		 * residency after (for the observer nor for a step).
		 */
		assert_int_equal(fake_set_pages(o->backend, P_MAIN, ANON_START + 48 * PG, 4,
						FAKE_SYSTEM, 0), 0);
		request_init(&req, b, P_MAIN, 0, 0, false);
		req.observers[0].backend = backend_ref_ref(o);
		req.n_observers = 1;
		assert_int_equal(migrate_run(&req, NULL, &res), 0);
		migrate_request_done(&req);
		assert_int_equal(fake_calls(o->backend, FAKE_OP_RESIDENCY), 3);
		assert_false(res.observed[0].have_after);
		assert_int_equal(residency_bytes_on(res.observed[0].before, res.observed[0].n_before,
						    &sys), (52 + FILE_PAGES + SHARED_PAGES) * PG);
		migrate_result_done(&res);

		request_init(&req, o, P_MAIN, 0, 0, false);
		req.steps[0].target = (BackendTarget) { .system = true, .id = -1 };
		req.steps[0].snapshot = true;
		assert_int_equal(migrate_run(&req, NULL, &res), 0);
		migrate_request_done(&req);
		assert_int_equal(fake_calls(o->backend, FAKE_OP_RESIDENCY), 4);
		assert_int_equal(fake_calls(o->backend, FAKE_OP_MOVE), 1);
		assert_false(res.snapshots[0].have_after);
		assert_int_equal(res.counts.already, 52);
		assert_int_equal(res.counts.migrated, 0);
		migrate_result_done(&res);
		backend_ref_unref(o);
	}
	backend_ref_unref(b);
}

/*
 * A move to system RAM in two steps: the first step's backend has nothing on
 * its devices before, so it is not asked to move (nor for its residency after),
 * and the counts are the second step's.
 */
static void test_migrate_skip_empty_step(void **state)
{
	MigrateRequest req;
	MigrateResult res;
	BackendRef *pools, *nodes;
	MoveCounts once;

	assert_int_equal(backend_ref_open(&backend_fake_ops, NULL, &pools), 0);
	assert_int_equal(backend_ref_open(&backend_fake_ops, NULL, &nodes), 0);

	/* What the second step alone counts. */
	request_init(&req, nodes, P_MAIN, 0, 0, true);
	req.steps[0].target = (BackendTarget) { .system = true, .id = -1 };
	assert_int_equal(migrate_run(&req, NULL, &res), 0);
	migrate_request_done(&req);
	once = res.counts;
	assert_int_equal(once.migrated, 4);
	migrate_result_done(&res);

	for (int on_device = 0; on_device <= 1; on_device++) {
		unsigned moves = fake_calls(pools->backend, FAKE_OP_MOVE);

		assert_int_equal(fake_set_pages(pools->backend, P_MAIN, ANON_START + 48 * PG, 4,
						on_device ? 0 : FAKE_SYSTEM, 0), 0);
		assert_int_equal(fake_set_pages(nodes->backend, P_MAIN, ANON_START + 48 * PG, 4,
						0, 0), 0);
		request_init(&req, pools, P_MAIN, 0, 0, false);
		req.steps[0].target = (BackendTarget) { .system = true, .id = -1 };
		req.steps[0].snapshot = true;
		req.steps[1] = (MigrateStep) {
			.backend = backend_ref_ref(nodes),
			.target = { .system = true, .id = -1 },
			.snapshot = true,
		};
		req.n_steps = 2;
		assert_int_equal(migrate_run(&req, NULL, &res), 0);
		migrate_request_done(&req);
		assert_int_equal(fake_calls(pools->backend, FAKE_OP_MOVE), moves + on_device);
		assert_int_equal(res.snapshots[0].have_after, on_device);
		assert_true(res.snapshots[1].have_after);
		/* Without the first step's move, exactly the second step's counts. */
		if (!on_device)
			assert_memory_equal(&res.counts, &once, sizeof(once));
		migrate_result_done(&res);
	}
	backend_ref_unref(nodes);
	backend_ref_unref(pools);
}

/* ------------------------------------------------------------------ the job machinery */

typedef struct Ctx {
	sd_event *event;
	pthread_t loop_thread;
	atomic_int inflight[3];       /* per pid 0..2 */
	atomic_int inflight_total;
	atomic_int max_inflight_pid, max_inflight_total;
	sem_t gate;                   /* pid 1's first job waits for pid 2's job */
	int order[16];
	unsigned n_order, n_done;
	int results[16];
	unsigned n_progress;
	bool progress_in_loop;
	MoveCounts last_progress;
} Ctx;

typedef struct JobArg {
	Ctx *ctx;
	int id;
	pid_t pid;
	bool wait_gate, post_gate, report, loop_until_cancelled;
	atomic_bool ran;
} JobArg;

static void atomic_max(atomic_int *m, int v)
{
	int cur = atomic_load(m);

	while (v > cur && !atomic_compare_exchange_weak(m, &cur, v))
		;
}

static int job_work(MoverJob *j, void *userdata)
{
	JobArg *a = userdata;
	Ctx *c = a->ctx;
	int n;

	atomic_store(&a->ran, true);
	n = atomic_fetch_add(&c->inflight[a->pid], 1) + 1;
	atomic_max(&c->max_inflight_pid, n);
	n = atomic_fetch_add(&c->inflight_total, 1) + 1;
	atomic_max(&c->max_inflight_total, n);

	if (a->post_gate)
		sem_post(&c->gate);
	if (a->wait_gate) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += DEADLINE_SEC;
		/* Times out only when pid 2's job could not run beside this one. */
		if (sem_timedwait(&c->gate, &ts) < 0) {
			atomic_fetch_sub(&c->inflight[a->pid], 1);
			atomic_fetch_sub(&c->inflight_total, 1);
			return -ETIMEDOUT;
		}
	}
	/* Widen the window in which a second job of the pid would overlap. */
	usleep(2000);
	if (a->report) {
		MoveCounts mc = { .migrated = 7, .already = 3 };

		(void) mover_job_progress(j, &mc, 10);
	}
	if (a->loop_until_cancelled)
		for (unsigned i = 0; i < 1000000; i++) {
			MoveCounts mc = { .migrated = i };

			if (mover_job_progress(j, &mc, 0) < 0)
				break;
			usleep(100);
		}

	atomic_fetch_sub(&c->inflight[a->pid], 1);
	atomic_fetch_sub(&c->inflight_total, 1);
	return a->id;
}

static void job_progress(MoverJob *j, const MoveCounts *so_far, uint64_t total, void *userdata)
{
	JobArg *a = userdata;

	a->ctx->n_progress++;
	a->ctx->progress_in_loop = pthread_equal(pthread_self(), a->ctx->loop_thread);
	a->ctx->last_progress = *so_far;
	assert_int_equal(total, 10);
}

static void job_done(MoverJob *j, int r, void *userdata)
{
	JobArg *a = userdata;
	Ctx *c = a->ctx;

	assert_true(pthread_equal(pthread_self(), c->loop_thread));
	c->order[c->n_order++] = a->id;
	c->results[a->id] = r;
	c->n_done++;
}

static void run_until(Ctx *c, unsigned n_done)
{
	while (c->n_done < n_done)
		assert_true(sd_event_run(c->event, (uint64_t) DEADLINE_SEC * USEC_PER_SEC) > 0);
}

static void ctx_init(Ctx *c)
{
	*c = (Ctx) {};
	assert_int_equal(sd_event_new(&c->event), 0);
	c->loop_thread = pthread_self();
	sem_init(&c->gate, 0, 0);
}

static void ctx_done(Ctx *c)
{
	sem_destroy(&c->gate);
	sd_event_unref(c->event);
}

static void test_serialized_per_pid(void **state)
{
	Ctx c;
	Mover *m;
	JobArg a[5];

	ctx_init(&c);
	assert_int_equal(mover_new(c.event, 8, &m), 0);

	/* pid 1: jobs 0, 1, 2 (0 waits until pid 2's job 3 ran beside it); pid 2: job 3. */
	for (int i = 0; i < 4; i++)
		a[i] = (JobArg) { .ctx = &c, .id = i, .pid = i < 3 ? 1 : 2 };
	a[0].wait_gate = true;
	a[3].post_gate = true;
	a[1].report = true;
	for (int i = 0; i < 4; i++)
		assert_int_equal(mover_submit(m, a[i].pid, true, job_work, job_progress, job_done,
					      &a[i], NULL), 0);
	/* pid 1's later jobs wait; pid 2's job does not. */
	assert_int_equal(mover_n_running(m), 2);
	assert_int_equal(mover_n_queued(m), 2);

	run_until(&c, 4);
	assert_int_equal(atomic_load(&c.max_inflight_pid), 1);
	assert_int_equal(atomic_load(&c.max_inflight_total), 2);
	for (int i = 0; i < 4; i++)
		assert_int_equal(c.results[i], i);   /* no -ETIMEDOUT: pid 2 ran beside pid 1 */
	/* pid 1's jobs ended in submission order (pid 2's anywhere among them). */
	{
		int pos[4] = { -1, -1, -1, -1 };

		for (int i = 0; i < 4; i++)
			pos[c.order[i]] = i;
		assert_true(pos[0] >= 0 && pos[0] < pos[1] && pos[1] < pos[2]);
		assert_true(pos[3] >= 0);
	}
	/* Progress reached the loop thread before the job's end. */
	assert_int_equal(c.n_progress, 1);
	assert_true(c.progress_in_loop);
	assert_int_equal(c.last_progress.migrated, 7);

	mover_free(m);
	ctx_done(&c);
}

static void test_shared_jobs_and_limit(void **state)
{
	Ctx c;
	Mover *m;
	JobArg a[4];

	ctx_init(&c);
	/* One worker: everything runs one at a time, whatever the pids. */
	assert_int_equal(mover_new(c.event, 1, &m), 0);
	for (int i = 0; i < 4; i++) {
		a[i] = (JobArg) { .ctx = &c, .id = i, .pid = i % 2 + 1 };
		assert_int_equal(mover_submit(m, a[i].pid, i < 2, job_work, NULL, job_done, &a[i],
					      NULL), 0);
	}
	run_until(&c, 4);
	assert_int_equal(atomic_load(&c.max_inflight_total), 1);
	for (int i = 0; i < 4; i++)
		assert_int_equal(c.order[i], i);
	mover_free(m);
	ctx_done(&c);

	/* Shared jobs (residency) of one pid run side by side. */
	ctx_init(&c);
	assert_int_equal(mover_new(c.event, 8, &m), 0);
	a[0] = (JobArg) { .ctx = &c, .id = 0, .pid = 1, .wait_gate = true };
	a[1] = (JobArg) { .ctx = &c, .id = 1, .pid = 1, .post_gate = true };
	assert_int_equal(mover_submit(m, 1, false, job_work, NULL, job_done, &a[0], NULL), 0);
	assert_int_equal(mover_submit(m, 1, false, job_work, NULL, job_done, &a[1], NULL), 0);
	run_until(&c, 2);
	assert_int_equal(c.results[0], 0);
	assert_int_equal(c.results[1], 1);
	mover_free(m);
	ctx_done(&c);
}

static void test_cancel_on_free(void **state)
{
	Ctx c;
	Mover *m;
	JobArg a[2];

	ctx_init(&c);
	assert_int_equal(mover_new(c.event, 8, &m), 0);
	a[0] = (JobArg) { .ctx = &c, .id = 0, .pid = 1, .loop_until_cancelled = true };
	a[1] = (JobArg) { .ctx = &c, .id = 1, .pid = 1 };
	atomic_init(&a[0].ran, false);
	atomic_init(&a[1].ran, false);
	assert_int_equal(mover_submit(m, 1, true, job_work, NULL, job_done, &a[0], NULL), 0);
	assert_int_equal(mover_submit(m, 1, true, job_work, NULL, job_done, &a[1], NULL), 0);

	/* Stops the running job at its next progress report; the queued one never runs. */
	mover_free(m);
	assert_int_equal(c.n_done, 2);
	assert_int_equal(c.results[0], -ECANCELED);
	assert_int_equal(c.results[1], -ECANCELED);
	assert_true(atomic_load(&a[0].ran));
	assert_false(atomic_load(&a[1].ran));
	ctx_done(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge_system_counts),
		cmocka_unit_test_setup_teardown(test_migrate_run, setup_migrate, teardown_migrate),
		cmocka_unit_test_setup_teardown(test_migrate_exit_uncounted, setup_migrate,
						teardown_migrate),
		cmocka_unit_test_setup_teardown(test_migrate_exit_zombie, setup_migrate,
						teardown_migrate),
		cmocka_unit_test_setup_teardown(test_migrate_skip_empty_step, setup_migrate,
						teardown_migrate),
		cmocka_unit_test_setup_teardown(test_migrate_snapshot, setup_migrate,
						teardown_migrate),
		cmocka_unit_test(test_serialized_per_pid),
		cmocka_unit_test(test_shared_jobs_and_limit),
		cmocka_unit_test(test_cancel_on_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
