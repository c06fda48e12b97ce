/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * numa-tap - in-guest check of the test VM's NUMA layout through libnuma.
 *
 * Dynamically linked on purpose: it proves that tests/vm/run copies a test's
 * shared libraries (libnuma, libc, the loader) into the initramfs.  Checks that
 * node 1 is memory-only, that memory bound to node 1 really lands there, and
 * that move_pages(2) moves a page between the nodes.  Prints TAP.
 */
#include <errno.h>
#include <numa.h>
#include <numaif.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int test_count;
static int failure_count;

static void tap(int ok, const char *fmt, ...)
{
	va_list ap;

	test_count++;
	if (!ok)
		failure_count++;
	printf("%sok %d - ", ok ? "" : "not ", test_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* libnuma prints on its own unless these are overridden. */
void numa_error(char *where)
{
	printf("# libnuma error: %s: %s\n", where, strerror(errno));
}

void numa_warn(int num, char *fmt, ...)
{
	(void)num;
	(void)fmt;
}

/* The node a page of this process is on, or a negative errno. */
static int page_node(void *addr)
{
	int node = -1;

	if (get_mempolicy(&node, NULL, 0, addr, MPOL_F_NODE | MPOL_F_ADDR) < 0)
		return -errno;
	return node;
}

int main(void)
{
	long page_size = sysconf(_SC_PAGESIZE);
	struct bitmask *cpus;
	long long size, free_bytes;
	char *buf;
	void *pages[1];
	int nodes[1], status[1];
	int r;

	printf("1..7\n");
	fflush(stdout);

	if (numa_available() < 0) {
		tap(0, "libnuma reports NUMA available");
		printf("Bail out! no NUMA support\n");
		return 1;
	}
	tap(1, "libnuma reports NUMA available");
	tap(numa_max_node() == 1, "highest node is 1 (got %d)", numa_max_node());

	cpus = numa_allocate_cpumask();
	r = numa_node_to_cpus(1, cpus);
	tap(r == 0 && numa_bitmask_weight(cpus) == 0,
	    "node 1 has no CPUs (%u CPUs)", r == 0 ? numa_bitmask_weight(cpus) : 0);
	r = numa_node_to_cpus(0, cpus);
	tap(r == 0 && numa_bitmask_weight(cpus) >= 1,
	    "node 0 has the CPUs (%u CPUs)", r == 0 ? numa_bitmask_weight(cpus) : 0);
	numa_free_cpumask(cpus);

	size = numa_node_size64(1, &free_bytes);
	tap(size > 0 && free_bytes > 0, "node 1 has memory (%lld MiB, %lld MiB free)",
	    size >> 20, free_bytes >> 20);

	buf = numa_alloc_onnode(page_size, 1);
	if (buf)
		memset(buf, 0x5a, page_size);
	r = buf ? page_node(buf) : -ENOMEM;
	tap(r == 1, "memory bound to node 1 is on node 1 (node %d)", r);

	/* Move it to node 0 and check where it went and that data survived. */
	pages[0] = buf;
	nodes[0] = 0;
	status[0] = -1;
	r = buf ? (int)numa_move_pages(0, 1, pages, nodes, status, MPOL_MF_MOVE) : -1;
	tap(r == 0 && status[0] == 0 && page_node(buf) == 0 && buf[page_size - 1] == 0x5a,
	    "move_pages moves a page from node 1 to node 0 (ret %d, status %d)", r, status[0]);
	if (buf)
		numa_free(buf, page_size);

	return failure_count ? 1 : 0;
}
