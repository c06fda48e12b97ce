// SPDX-License-Identifier: GPL-2.0
/*
 * cohmem-bench: pages/s of cohmem MIGRATE (system RAM <-> pool) against the
 * kernel's move_pages(2) between NUMA node 0 and node 1, same page count,
 * same boot, with memcpy of the same bytes as a ceiling. Runs as root in the
 * test VM and loads cohmem.ko itself. See bench/README.md.
 *
 * Output is TAP (tests/vm/run runs it like a test): the figures and ratio
 * lines are diagnostics ("# ratio cohmem_migrate/move_pages: 1.60"); the
 * points only say that every round moved every page and the data survived,
 * never how fast.
 *
 * Usage: cohmem-bench [-n PAGES] [-r ROUNDS]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <numa.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "cohmem-client.h"

/* libnuma must not print on its own. */
void numa_error(char *where)
{
	(void)where;
}

void numa_warn(int num, char *fmt, ...)
{
	(void)num;
	(void)fmt;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Moves every page of @buf to @node; returns seconds or -1. */
static double move_all(void **pages, int *nodes, int *status, size_t n, int node)
{
	double t;
	size_t i;
	long r;

	for (i = 0; i < n; i++)
		nodes[i] = node;
	t = now();
	r = move_pages(0, n, pages, nodes, status, MPOL_MF_MOVE);
	t = now() - t;
	if (r != 0)
		return -1;
	for (i = 0; i < n; i++)
		if (status[i] != node)
			return -1;
	return t;
}

static double migrate_all(struct coh_client *c, char *buf, size_t n, uint32_t dest)
{
	struct coh_counts k;
	double t;
	int r;

	t = now();
	r = coh_migrate(c, getpid(), (uintptr_t)buf, n * COH_PAGE_SIZE, dest, &k);
	t = now() - t;
	if (r < 0 || k.migrated != n) {
		tap_diag("cohmem-bench: MIGRATE: r=%d migrated %llu of %zu", r,
			(unsigned long long)k.migrated, n);
		return -1;
	}
	return t;
}

int main(int argc, char **argv)
{
	size_t n = 32768, i;
	int rounds = 5, opt, r, round;
	double *c_in, *c_out, *m_to1, *m_to0, *cpy;
	double ci, co, m1, m0, cp, c_avg, m_avg;
	struct coh_env env;
	void **pages;
	int *nodes, *status;
	char *buf, *dst;

	while ((opt = getopt(argc, argv, "n:r:h")) != -1) {
		switch (opt) {
		case 'n':
			n = strtoul(optarg, NULL, 0);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-n PAGES] [-r ROUNDS]\n", argv[0]);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (!n || rounds < 1)
		return 2;
	if (numa_available() < 0 || numa_max_node() < 1) {
		fprintf(stderr, "cohmem-bench: needs two NUMA nodes\n");
		return 77;
	}
	if (!coh_module_present()) {
		fprintf(stderr, "cohmem-bench: %s not found\n", coh_module_path());
		return 77;
	}
	r = coh_env_setup(&env, "bench", NULL);
	tap_init("cohmem-bench", 5);
	if (!tap_ok(r == 0 && env.pool.free >= n, "load cohmem with pool 'bench' (r=%d, %llu free "
		    "pages, need %zu)", r, (unsigned long long)env.pool.free, n))
		return tap_finish();

	c_in = calloc(rounds, sizeof(double));
	c_out = calloc(rounds, sizeof(double));
	m_to1 = calloc(rounds, sizeof(double));
	m_to0 = calloc(rounds, sizeof(double));
	cpy = calloc(rounds, sizeof(double));
	pages = calloc(n, sizeof(*pages));
	nodes = calloc(n, sizeof(*nodes));
	status = calloc(n, sizeof(*status));
	buf = mmap(NULL, n * COH_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	dst = mmap(NULL, n * COH_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	if (!c_in || !c_out || !m_to1 || !m_to0 || !cpy || !pages || !nodes || !status ||
	    buf == MAP_FAILED || dst == MAP_FAILED) {
		tap_ok(false, "allocate %zu pages twice", n);
		return tap_finish();
	}
	/* no THP: both paths move 4 KiB pages */
	madvise(buf, n * COH_PAGE_SIZE, MADV_NOHUGEPAGE);
	madvise(dst, n * COH_PAGE_SIZE, MADV_NOHUGEPAGE);
	coh_fill(buf, n, 1);
	memset(dst, 1, n * COH_PAGE_SIZE);
	for (i = 0; i < n; i++)
		pages[i] = buf + i * COH_PAGE_SIZE;
	if (move_all(pages, nodes, status, n, 0) < 0) {
		tap_ok(false, "move_pages(2) puts the buffer on node 0");
		return tap_finish();
	}

	tap_diag("cohmem-bench: %zu pages (%zu MiB), %d rounds, pool '%s' %llu pages", n,
		 n * COH_PAGE_SIZE >> 20, rounds, env.pool.name, (unsigned long long)env.pool.total);
	for (round = 0; round < rounds; round++) {
		c_in[round] = migrate_all(env.c, buf, n, env.pool.id);
		c_out[round] = migrate_all(env.c, buf, n, COHMEM_DEST_SYSTEM);
		m_to1[round] = move_all(pages, nodes, status, n, 1);
		m_to0[round] = move_all(pages, nodes, status, n, 0);
		cpy[round] = now();
		memcpy(dst, buf, n * COH_PAGE_SIZE);
		cpy[round] = now() - cpy[round];
		if (c_in[round] < 0 || c_out[round] < 0 || m_to1[round] < 0 || m_to0[round] < 0)
			break;
		tap_diag("round %d: cohmem in %.3fs out %.3fs  move_pages 0->1 %.3fs 1->0 %.3fs  "
			 "memcpy %.3fs", round, c_in[round], c_out[round], m_to1[round],
			 m_to0[round], cpy[round]);
	}
	if (!tap_ok(round == rounds, "every round moved all %zu pages both ways with both movers "
		    "(%d of %d rounds)", n, round, rounds))
		return tap_finish();
	tap_ok(coh_check(buf, n, 1) == 0, "data intact after %d rounds", rounds);
	ci = n / median(c_in, rounds);
	co = n / median(c_out, rounds);
	m1 = n / median(m_to1, rounds);
	m0 = n / median(m_to0, rounds);
	cp = n / median(cpy, rounds);
	/* both directions together: pages moved / time taken */
	c_avg = 2 / (1 / ci + 1 / co);
	m_avg = 2 / (1 / m1 + 1 / m0);
	tap_diag("cohmem_migrate system->pool: %.0f pages/s (median)", ci);
	tap_diag("cohmem_migrate pool->system: %.0f pages/s (median)", co);
	tap_diag("move_pages node0->node1: %.0f pages/s (median)", m1);
	tap_diag("move_pages node1->node0: %.0f pages/s (median)", m0);
	tap_diag("memcpy: %.0f pages/s (median, %.0f MiB/s)", cp, cp * COH_PAGE_SIZE / (1 << 20));
	tap_diag("ratio cohmem_migrate/move_pages: %.2f", c_avg / m_avg);
	tap_diag("ratio cohmem_to_pool/move_pages_to_node1: %.2f", ci / m1);
	tap_diag("ratio cohmem_to_system/move_pages_to_node0: %.2f", co / m0);
	tap_diag("ratio cohmem_migrate/memcpy: %.2f", c_avg / cp);
	tap_diag("ratio move_pages/memcpy: %.2f", m_avg / cp);

	munmap(buf, n * COH_PAGE_SIZE);
	munmap(dst, n * COH_PAGE_SIZE);
	coh_env_teardown(&env);
	r = coh_module_unload();
	tap_ok(r == 0, "unload (r=%d)", r);
	return tap_finish();
}
