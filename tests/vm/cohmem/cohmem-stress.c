// SPDX-License-Identifier: GPL-2.0
/*
 * cohmem conformance: concurrent MIGRATE on one mm is safe. Migrator
 * threads move the same buffer in and out (whole and in overlapping
 * pieces), an evictor pulls pages out by PFN, while writer threads keep
 * every page self-describing (generation + checksummed pattern) and check
 * each page before rewriting it. A second process does the same against
 * a child's buffer. Nothing may be lost, torn or mis-counted.
 *
 * Work is bounded by round counts, never by time.
 *
 * Runs as root inside the test VM; loads cohmem.ko itself; prints TAP.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cohmem-client.h"

#define PLAN 13

#define NPAGES		2048
#define NWRITERS	2
#define NMIGRATORS	2
#define ROUNDS		24
#define CHURN_PAGES	256

static struct coh_env env;
static char *buf, *churn;
static atomic_ulong churn_bad, churn_iters;
static atomic_bool stop;
static atomic_ulong failed_pages, migrate_errors, count_errors, evict_errors, moved_in, moved_out;

struct writer {
	pthread_t t;
	unsigned int idx;
	unsigned long passes;
	unsigned long torn;
	uint64_t gen[NPAGES];
};

/* word 0: generation; words 1..: pattern(gen, page); last word: sum of the rest */
static void page_write(char *page, size_t pgno, uint64_t gen)
{
	uint64_t *w = (uint64_t *)page, sum = gen;
	size_t i;

	for (i = 1; i < COH_PAGE_SIZE / 8 - 1; i++) {
		w[i] = coh_pattern(gen, pgno, i);
		sum += w[i];
	}
	w[COH_PAGE_SIZE / 8 - 1] = sum;
	atomic_store_explicit((_Atomic uint64_t *)&w[0], gen, memory_order_release);
}

static bool page_ok(const char *page, size_t pgno, uint64_t gen)
{
	const uint64_t *w = (const uint64_t *)page;
	uint64_t sum = w[0];
	size_t i;

	if (w[0] != gen)
		return false;
	for (i = 1; i < COH_PAGE_SIZE / 8 - 1; i++) {
		if (w[i] != coh_pattern(gen, pgno, i))
			return false;
		sum += w[i];
	}
	return w[COH_PAGE_SIZE / 8 - 1] == sum;
}

static void *writer_main(void *arg)
{
	struct writer *wr = arg;
	size_t p;

	do {
		for (p = wr->idx; p < NPAGES; p += NWRITERS) {
			char *page = buf + p * COH_PAGE_SIZE;

			if (!page_ok(page, p, wr->gen[p]))
				wr->torn++;
			page_write(page, p, ++wr->gen[p]);
		}
		wr->passes++;
	} while (!atomic_load(&stop) || wr->passes < 2);
	return NULL;
}

/*
 * Churn: refill a second buffer, check it, sometimes fork a child that checks
 * it too (page tables copied mid-migration), then MADV_DONTNEED it (pages
 * zapped mid-migration). The migrators move this buffer as well.
 */
static void *churn_main(void *arg)
{
	unsigned long it = 0;
	int status;
	pid_t pid;

	(void)arg;
	while (!atomic_load(&stop) || it < 2) {
		coh_fill(churn, CHURN_PAGES, it);
		if (coh_check(churn, CHURN_PAGES, it))
			atomic_fetch_add(&churn_bad, 1);
		if (it % 4 == 0) {
			pid = fork();
			if (pid == 0)
				_exit(coh_check(churn, CHURN_PAGES, it) ? 1 : 0);
			if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
			    WEXITSTATUS(status))
				atomic_fetch_add(&churn_bad, 1);
		}
		madvise(churn, CHURN_PAGES * COH_PAGE_SIZE, MADV_DONTNEED);
		it++;
	}
	atomic_store(&churn_iters, it);
	return NULL;
}

struct migrator {
	pthread_t t;
	unsigned int idx;
	struct coh_client *c;
	pid_t pid;
	uint64_t addr;
	size_t npages;
};

static void *migrator_main(void *arg)
{
	struct migrator *m = arg;
	struct coh_counts k;
	unsigned int round;
	int r;

	for (round = 0; round < ROUNDS; round++) {
		/* even threads move the whole buffer, odd ones in 3 overlapping-ish pieces */
		size_t pieces = m->idx % 2 ? 3 : 1, step = m->npages / pieces, i;
		uint32_t dest = round % 2 ? COHMEM_DEST_SYSTEM : env.pool.id;

		for (i = 0; i < pieces; i++) {
			size_t first = i * step, len = i == pieces - 1 ? m->npages - first : step;

			memset(&k, 0, sizeof(k));
			r = coh_migrate(m->c, m->pid, m->addr + first * COH_PAGE_SIZE,
					len * COH_PAGE_SIZE, dest, &k);
			if (r < 0) {
				atomic_fetch_add(&migrate_errors, 1);
				continue;
			}
			if (coh_counts_sum(&k) != len || k.file || k.unmovable)
				atomic_fetch_add(&count_errors, 1);
			atomic_fetch_add(&failed_pages, k.failed);
			if (dest == COHMEM_DEST_SYSTEM)
				atomic_fetch_add(&moved_out, k.migrated);
			else
				atomic_fetch_add(&moved_in, k.migrated);
		}
		if (!churn || m->pid != getpid())
			continue;
		memset(&k, 0, sizeof(k));
		r = coh_migrate(m->c, m->pid, (uintptr_t)churn, CHURN_PAGES * COH_PAGE_SIZE, dest,
				&k);
		if (r < 0)
			atomic_fetch_add(&migrate_errors, 1);
		else if (coh_counts_sum(&k) != CHURN_PAGES || k.file || k.unmovable)
			atomic_fetch_add(&count_errors, 1);
	}
	return NULL;
}

static void *evictor_main(void *arg)
{
	struct coh_client *c = arg;
	uint64_t ev, failed;

	while (!atomic_load(&stop)) {
		if (coh_evict(c, env.pool.id, 97, &ev, &failed) < 0)
			atomic_fetch_add(&evict_errors, 1);
		usleep(1000);
	}
	return NULL;
}

static int run_migrators(pid_t pid, uint64_t addr, size_t npages, struct migrator *ms)
{
	int i, r = 0;

	for (i = 0; i < NMIGRATORS; i++) {
		ms[i] = (struct migrator){ .idx = i, .pid = pid, .addr = addr, .npages = npages };
		r = coh_open(&ms[i].c);
		if (r < 0)
			return r;
		if (pthread_create(&ms[i].t, NULL, migrator_main, &ms[i]))
			return -EAGAIN;
	}
	return 0;
}

static void join_migrators(struct migrator *ms)
{
	int i;

	for (i = 0; i < NMIGRATORS; i++) {
		pthread_join(ms[i].t, NULL);
		coh_close(ms[i].c);
	}
}

int main(void)
{
	struct writer wr[NWRITERS];
	struct migrator ms[NMIGRATORS];
	struct coh_client *evc = NULL;
	struct coh_victim v;
	pthread_t evt, cht;
	unsigned long torn = 0, bad = 0, passes = 0;
	uint64_t free_now;
	size_t p;
	int i, r;

	r = coh_env_setup(&env, "t0", NULL);
	tap_init("cohmem-stress", PLAN);
	if (!tap_ok(r == 0, "load cohmem with pool t0 and find it (r=%d)", r))
		return tap_finish();
	buf = mmap(NULL, NPAGES * COH_PAGE_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(buf, NPAGES * COH_PAGE_SIZE, MADV_NOHUGEPAGE);
	for (p = 0; p < NPAGES; p++)
		page_write(buf + p * COH_PAGE_SIZE, p, 0);

	churn = mmap(NULL, CHURN_PAGES * COH_PAGE_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	madvise(churn, CHURN_PAGES * COH_PAGE_SIZE, MADV_NOHUGEPAGE);
	pthread_create(&cht, NULL, churn_main, NULL);
	memset(wr, 0, sizeof(wr));
	for (i = 0; i < NWRITERS; i++) {
		wr[i].idx = i;
		pthread_create(&wr[i].t, NULL, writer_main, &wr[i]);
	}
	r = coh_open(&evc);
	if (r == 0)
		pthread_create(&evt, NULL, evictor_main, evc);
	r = r ?: run_migrators(getpid(), (uintptr_t)buf, NPAGES, ms);
	tap_ok(r == 0, "%d writers, %d migrators, 1 evictor on %d pages (r=%d)", NWRITERS,
	       NMIGRATORS, NPAGES, r);
	join_migrators(ms);
	atomic_store(&stop, true);
	for (i = 0; i < NWRITERS; i++) {
		pthread_join(wr[i].t, NULL);
		torn += wr[i].torn;
		passes += wr[i].passes;
	}
	pthread_join(evt, NULL);
	pthread_join(cht, NULL);
	coh_close(evc);
	for (p = 0; p < NPAGES; p++)
		bad += !page_ok(buf + p * COH_PAGE_SIZE, p, wr[p % NWRITERS].gen[p]);
	tap_diag("moved in %lu, out %lu, failed %lu; writer passes %lu", atomic_load(&moved_in),
		 atomic_load(&moved_out), atomic_load(&failed_pages), passes);
	tap_ok(atomic_load(&migrate_errors) == 0 && atomic_load(&evict_errors) == 0,
	       "every concurrent MIGRATE and EVICT succeeded (%lu, %lu errors)",
	       atomic_load(&migrate_errors), atomic_load(&evict_errors));
	tap_ok(atomic_load(&count_errors) == 0,
	       "every reply's counts add up to its length (%lu bad)",
	       atomic_load(&count_errors));
	tap_ok(atomic_load(&moved_in) > 0, "pages really moved in (%lu)", atomic_load(&moved_in));
	tap_ok(torn == 0 && bad == 0, "writers saw no lost or torn page (%lu torn, %lu bad at end)",
	       torn, bad);

	tap_ok(atomic_load(&churn_bad) == 0,
	       "churn: refill, fork and MADV_DONTNEED under migration lost nothing (%lu iterations, "
	       "%lu bad)", atomic_load(&churn_iters), atomic_load(&churn_bad));

	/* everything out, pool whole */
	{
		struct coh_counts k;

		r = coh_migrate(env.c, getpid(), (uintptr_t)buf, NPAGES * COH_PAGE_SIZE,
				COHMEM_DEST_SYSTEM, &k);
		munmap(buf, NPAGES * COH_PAGE_SIZE);
		munmap(churn, CHURN_PAGES * COH_PAGE_SIZE);
		churn = NULL;
		free_now = coh_env_free(&env);
		tap_ok(r == 0 && free_now == env.pool.total,
		       "after the storm the pool is whole (free %llu of %llu)",
		       (unsigned long long)free_now, (unsigned long long)env.pool.total);
	}

	/* the same against another process, with its own checker afterwards */
	atomic_store(&migrate_errors, 0);
	atomic_store(&count_errors, 0);
	r = coh_victim_start(&v, NPAGES, 301);
	r = r ?: run_migrators(v.pid, v.addr, NPAGES, ms);
	if (r == 0)
		join_migrators(ms);
	tap_ok(r == 0 && atomic_load(&migrate_errors) == 0 && atomic_load(&count_errors) == 0,
	       "concurrent MIGRATE of another process: no errors, counts add up (r=%d)", r);
	tap_ok(coh_victim_cmd(&v, VICTIM_CHECK, 301) == 0, "the other process's data is intact");
	r = coh_victim_stop(&v);
	free_now = coh_env_free(&env);
	tap_ok(r == 0 && free_now == env.pool.total, "its exit returns every page (free %llu)",
	       (unsigned long long)free_now);

	coh_env_teardown(&env);
	r = coh_module_unload();
	tap_ok(r == 0, "unload (r=%d)", r);
	return tap_finish();
}
