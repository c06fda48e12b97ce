// SPDX-License-Identifier: GPL-2.0
/*
 * cohmem conformance: migration semantics (the coherent-type checks of
 * tools/testing/selftests/vm/hmm-tests.c, against the cohmem pools).
 *
 * Runs as root inside the test VM; loads cohmem.ko itself; prints TAP.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/mempolicy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cohmem-client.h"

#define PLAN 87

static struct coh_env env;
static uint32_t P;

/*
 * Debian's kernel has THP "always": without MADV_NOHUGEPAGE a buffer (or
 * the VMA it merges into) may be PMD-mapped, which populates untouched
 * pages and turns partial munmaps into PTE-mapped THPs. Only test_thp()
 * wants huge pages.
 */
static void *map_anon(size_t npages)
{
	void *p = mmap(NULL, npages * COH_PAGE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	madvise(p, npages * COH_PAGE_SIZE, MADV_NOHUGEPAGE);
	return p;
}

/* Pages of our own range whose PFN is in the pool; (size_t)-1 on error. */
static size_t in_pool(pid_t pid, uint64_t addr, size_t npages)
{
	size_t in;

	if (coh_pages_in(pid, addr, npages, env.lo_pfn, env.hi_pfn, &in, NULL) < 0)
		return (size_t)-1;
	return in;
}

static size_t present(pid_t pid, uint64_t addr, size_t npages)
{
	size_t p;

	if (coh_pages_in(pid, addr, npages, env.lo_pfn, env.hi_pfn, NULL, &p) < 0)
		return (size_t)-1;
	return p;
}

static bool check_counts(const char *what, int r, const struct coh_counts *got,
			 const struct coh_counts *want)
{
	char g[400], w[400];
	bool ok = r == 0 && !memcmp(got, want, sizeof(*got));

	coh_counts_str(got, g, sizeof(g));
	coh_counts_str(want, w, sizeof(w));
	tap_ok(ok, "%s: r=%d {%s}", what, r, g);
	if (!ok)
		tap_diag("  expected r=0 {%s}", w);
	return ok;
}

static int migrate(pid_t pid, const void *addr, size_t npages, uint32_t dest,
		   struct coh_counts *k)
{
	memset(k, 0, sizeof(*k));
	return coh_migrate(env.c, pid, (uintptr_t)addr, npages * COH_PAGE_SIZE, dest, k);
}

/* Another process's memory to the pool and back, CPU access in between (10). */
static void test_cross_process(void)
{
	const size_t n = 1024;
	struct coh_counts k, want = { 0 };
	struct coh_victim v;
	struct coh_pool p0, p1;
	uint64_t free0;
	int r;

	r = coh_victim_start(&v, n, 1);
	if (!tap_ok(r == 0, "victim: child with a %zu-page buffer (r=%d)", n, r))
		return;
	coh_pool_get(env.c, P, &p0);
	free0 = p0.free;
	r = migrate(v.pid, (void *)v.addr, n, P, &k);
	want.migrated = n;
	check_counts("victim: MIGRATE another process's pages to the pool", r, &k, &want);
	tap_ok(coh_env_free(&env) == free0 - n, "victim: pool free dropped by exactly %zu", n);
	tap_ok(in_pool(v.pid, v.addr, n) == n, "victim: pagemap shows all %zu PFNs in the pool", n);
	tap_ok(coh_victim_cmd(&v, VICTIM_CHECK, 1) == 0 && in_pool(v.pid, v.addr, n) == n,
	       "victim: child reads its data intact and the pages stay in the pool");
	tap_ok(coh_victim_cmd(&v, VICTIM_FILL, 2) == 0 && coh_victim_cmd(&v, VICTIM_CHECK, 2) == 0 &&
	       in_pool(v.pid, v.addr, n) == n,
	       "victim: child writes new data and the pages stay in the pool");
	r = migrate(v.pid, (void *)v.addr, n, P, &k);
	want = (struct coh_counts){ .already = n };
	check_counts("victim: MIGRATE again reports ALREADY", r, &k, &want);
	r = migrate(v.pid, (void *)v.addr, n, COHMEM_DEST_SYSTEM, &k);
	want = (struct coh_counts){ .migrated = n };
	check_counts("victim: MIGRATE back to system RAM", r, &k, &want);
	tap_ok(coh_env_free(&env) == free0 && in_pool(v.pid, v.addr, n) == 0 &&
	       present(v.pid, v.addr, n) == n && coh_victim_cmd(&v, VICTIM_CHECK, 2) == 0,
	       "victim: back in RAM, pool free restored, data intact");
	coh_pool_get(env.c, P, &p1);
	tap_ok(p1.migrated_in - p0.migrated_in == n && p1.migrated_out - p0.migrated_out == n,
	       "victim: pool counters in +%llu out +%llu",
	       (unsigned long long)(p1.migrated_in - p0.migrated_in),
	       (unsigned long long)(p1.migrated_out - p0.migrated_out));
	coh_victim_stop(&v);
}

/* CPU reads and writes of pool pages from the owner itself (4). */
static void test_cpu_access(void)
{
	const size_t n = 256;
	struct coh_counts k, want = { .migrated = n };
	volatile uint64_t sink = 0;
	char *buf = map_anon(n);
	size_t i;
	int r;

	if (!tap_ok(buf != NULL, "cpu: map %zu pages", n))
		return;
	coh_fill(buf, n, 11);
	r = migrate(getpid(), buf, n, P, &k);
	check_counts("cpu: MIGRATE own pages to the pool", r, &k, &want);
	for (i = 0; i < n; i++)
		sink += ((uint64_t *)(buf + i * COH_PAGE_SIZE))[7];
	tap_ok(coh_check(buf, n, 11) == 0 && in_pool(getpid(), (uintptr_t)buf, n) == n,
	       "cpu: reads see the data and do not migrate pages out of the pool");
	coh_fill(buf, n, 12);
	tap_ok(coh_check(buf, n, 12) == 0 && in_pool(getpid(), (uintptr_t)buf, n) == n,
	       "cpu: writes land and do not migrate pages out of the pool");
	{
		/* zone-device pages are invisible to move_pages(2): -ENOENT, not moved */
		void *pages[256];
		int nodes[256], status[256], bad_q = 0, bad_m = 0;
		long rq, rm;

		for (i = 0; i < n; i++) {
			pages[i] = buf + i * COH_PAGE_SIZE;
			nodes[i] = 0;
			status[i] = 12345;
		}
		rq = syscall(SYS_move_pages, 0, n, pages, NULL, status, 0);
		for (i = 0; i < n; i++)
			bad_q += status[i] != -ENOENT;
		tap_ok(rq == 0 && bad_q == 0,
		       "cpu: move_pages(2) query reports pool pages as -ENOENT (r=%ld, %d others, "
		       "status[0]=%d)", rq, bad_q, status[0]);
		rm = syscall(SYS_move_pages, 0, n, pages, nodes, status, MPOL_MF_MOVE);
		for (i = 0; i < n; i++)
			bad_m += status[i] != -ENOENT;
		tap_ok(rm == 0 && bad_m == 0 && in_pool(getpid(), (uintptr_t)buf, n) == n &&
		       coh_check(buf, n, 12) == 0,
		       "cpu: move_pages(2) cannot move them: -ENOENT, still in the pool (r=%ld, %d others)",
		       rm, bad_m);
	}
	munmap(buf, n * COH_PAGE_SIZE);
	(void)sink;
}

/* fork() after migrate: COW from device memory (7). */
static void test_fork_cow(void)
{
	const size_t n = 256, half = n / 2;
	struct coh_counts k, want = { .migrated = n };
	int to_child[2], to_parent[2], status;
	uint64_t free0 = coh_env_free(&env);
	char *buf = map_anon(n);
	char c = 0;
	pid_t pid;
	int r;

	if (!tap_ok(buf != NULL && pipe(to_child) == 0 && pipe(to_parent) == 0,
		    "fork: map %zu pages and pipes", n))
		return;
	coh_fill(buf, n, 21);
	r = migrate(getpid(), buf, n, P, &k);
	check_counts("fork: MIGRATE to the pool before fork", r, &k, &want);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int bad = 0;

		/* child: reads device pages, writes the first half (COW) */
		bad |= coh_check(buf, n, 21) != 0;
		coh_fill(buf, half, 22);
		bad |= coh_check(buf, half, 22) != 0;
		bad |= coh_check_at(buf + half * COH_PAGE_SIZE, half, half, 21) != 0;
		if (write(to_parent[1], &c, 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(3);
		/* parent has written everything meanwhile: ours must be unchanged */
		bad |= coh_check(buf, half, 22) != 0;
		bad |= coh_check_at(buf + half * COH_PAGE_SIZE, half, half, 21) != 0;
		_exit(bad ? 1 : 0);
	}
	if (!tap_ok(pid > 0 && read(to_parent[0], &c, 1) == 1, "fork: child ran its COW writes"))
		return;
	tap_ok(coh_check(buf, n, 21) == 0, "fork: parent does not see the child's writes");
	coh_fill(buf, n, 23);
	tap_ok(coh_check(buf, n, 23) == 0, "fork: parent writes its own copy");
	r = write(to_child[1], &c, 1);
	waitpid(pid, &status, 0);
	tap_ok(r == 1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "fork: child saw the original data, its own writes and not the parent's (status %#x)",
	       status);
	r = migrate(getpid(), buf, n, COHMEM_DEST_SYSTEM, &k);
	tap_ok(r == 0 && coh_counts_sum(&k) == n && coh_check(buf, n, 23) == 0 &&
	       coh_env_free(&env) == free0,
	       "fork: after the child exits and the parent migrates back, free is %llu (want %llu)",
	       (unsigned long long)coh_env_free(&env), (unsigned long long)free0);
	munmap(buf, n * COH_PAGE_SIZE);
	close(to_child[0]);
	close(to_child[1]);
	close(to_parent[0]);
	close(to_parent[1]);
}

/* A page mapped by two processes (fork, no write) is skipped as shared (2). */
static void test_fork_shared(void)
{
	const size_t n = 64;
	struct coh_counts k, want = { .shared = n };
	int p[2], status;
	char *buf = map_anon(n);
	char c;
	pid_t pid;
	int r;

	if (!tap_ok(buf != NULL && pipe(p) == 0, "shared-after-fork: map %zu pages", n))
		return;
	coh_fill(buf, n, 31);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		r = read(p[0], &c, 1);
		_exit(coh_check(buf, n, 31) ? 1 : 0);
	}
	r = migrate(getpid(), buf, n, P, &k);
	check_counts("shared-after-fork: pages mapped by two processes are SKIP_SHARED", r, &k,
		     &want);
	r = write(p[1], "x", 1);
	waitpid(pid, &status, 0);
	close(p[0]);
	close(p[1]);
	munmap(buf, n * COH_PAGE_SIZE);
}

static int sys_io_uring_setup(unsigned int entries, struct io_uring_params *p)
{
	return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_io_uring_register(int fd, unsigned int op, void *arg, unsigned int nr)
{
	return (int)syscall(__NR_io_uring_register, fd, op, arg, nr);
}

/* FOLL_LONGTERM pin (io_uring fixed buffers) moves pages out of the pool (5). */
static void test_longterm_pin(void)
{
	const size_t n = 16;
	struct coh_counts k, want = { .migrated = n };
	struct io_uring_params params;
	char *buf = map_anon(n);
	struct iovec iov;
	int ring, r;

	if (!tap_ok(buf != NULL, "pin: map %zu pages", n))
		return;
	coh_fill(buf, n, 41);
	r = migrate(getpid(), buf, n, P, &k);
	check_counts("pin: MIGRATE to the pool", r, &k, &want);
	memset(&params, 0, sizeof(params));
	ring = sys_io_uring_setup(4, &params);
	if (ring < 0) {
		tap_skip("io_uring unavailable", "pin: IORING_REGISTER_BUFFERS moves pages out");
		tap_skip("io_uring unavailable", "pin: MIGRATE of pinned pages is SKIP_PINNED");
		tap_skip("io_uring unavailable", "pin: unpinned pages migrate again");
		goto out;
	}
	iov.iov_base = buf;
	iov.iov_len = n * COH_PAGE_SIZE;
	r = sys_io_uring_register(ring, IORING_REGISTER_BUFFERS, &iov, 1);
	tap_ok(r == 0 && in_pool(getpid(), (uintptr_t)buf, n) == 0 &&
	       present(getpid(), (uintptr_t)buf, n) == n && coh_check(buf, n, 41) == 0,
	       "pin: IORING_REGISTER_BUFFERS (FOLL_LONGTERM) moved all pages out, data intact "
	       "(r=%d errno=%d, in pool %zu)", r, r ? errno : 0,
	       in_pool(getpid(), (uintptr_t)buf, n));
	r = migrate(getpid(), buf, n, P, &k);
	want = (struct coh_counts){ .pinned = n };
	check_counts("pin: MIGRATE of long-term pinned pages is SKIP_PINNED", r, &k, &want);
	sys_io_uring_register(ring, IORING_UNREGISTER_BUFFERS, NULL, 0);
	close(ring);
	r = migrate(getpid(), buf, n, P, &k);
	want = (struct coh_counts){ .migrated = n };
	check_counts("pin: unpinned pages migrate again", r, &k, &want);
out:
	munmap(buf, n * COH_PAGE_SIZE);
}

/* munmap and process exit return pool pages (4). */
static void test_release(void)
{
	const size_t n = 512;
	struct coh_counts k;
	uint64_t free0 = coh_env_free(&env);
	struct coh_victim v;
	char *buf = map_anon(n);
	int r, st;

	if (!tap_ok(buf != NULL, "release: map %zu pages", n))
		return;
	coh_fill(buf, n, 51);
	r = migrate(getpid(), buf, n, P, &k);
	tap_ok(r == 0 && k.migrated == n && coh_env_free(&env) == free0 - n,
	       "release: %llu pages migrated, free %llu", (unsigned long long)k.migrated,
	       (unsigned long long)coh_env_free(&env));
	munmap(buf, n * COH_PAGE_SIZE);
	tap_ok(coh_env_free(&env) == free0, "release: munmap returns every page (free %llu, want %llu)",
	       (unsigned long long)coh_env_free(&env), (unsigned long long)free0);
	r = coh_victim_start(&v, n, 52);
	if (r == 0)
		r = migrate(v.pid, (void *)v.addr, n, P, &k);
	tap_ok(r == 0 && k.migrated == n && coh_env_free(&env) == free0 - n,
	       "release: child's %zu pages in the pool", n);
	st = coh_victim_stop(&v);
	tap_ok(st == 0 && coh_env_free(&env) == free0,
	       "release: process exit returns every page (free %llu, want %llu)",
	       (unsigned long long)coh_env_free(&env), (unsigned long long)free0);
}

/* mprotect(PROT_READ) ranges (4). */
static void test_readonly(void)
{
	const size_t n = 64;
	struct coh_counts k, want = { .migrated = n };
	char *buf = map_anon(n);
	int r;

	if (!tap_ok(buf != NULL, "readonly: map %zu pages", n))
		return;
	coh_fill(buf, n, 61);
	mprotect(buf, n * COH_PAGE_SIZE, PROT_READ);
	r = migrate(getpid(), buf, n, P, &k);
	check_counts("readonly: MIGRATE of a PROT_READ range", r, &k, &want);
	tap_ok(coh_check(buf, n, 61) == 0 && in_pool(getpid(), (uintptr_t)buf, n) == n,
	       "readonly: readable in the pool, pages stay there");
	r = migrate(getpid(), buf, n, COHMEM_DEST_SYSTEM, &k);
	check_counts("readonly: MIGRATE back", r, &k, &want);
	munmap(buf, n * COH_PAGE_SIZE);
}

static long smaps_anon_huge_kb(void *addr)
{
	char line[512];
	FILE *f = fopen("/proc/self/smaps", "re");
	bool in = false;
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			continue;
		}
		if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

/* THP-backed range (4). */
static void test_thp(void)
{
	const size_t n = 1024;		/* two 2 MiB huge pages */
	const size_t huge = 2UL << 20;
	struct coh_counts k, want = { .migrated = n };
	char old[128] = "", *raw, *buf;
	long kb;
	int fd, r;

	fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDWR);
	if (fd >= 0) {
		r = read(fd, old, sizeof(old) - 1);
		(void)!write(fd, "always", 6);
	}
	raw = mmap(NULL, n * COH_PAGE_SIZE + huge, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!tap_ok(raw != MAP_FAILED, "thp: map %zu pages", n))
		goto out_fd;
	buf = (char *)(((uintptr_t)raw + huge - 1) & ~(huge - 1));
	madvise(buf, n * COH_PAGE_SIZE, MADV_HUGEPAGE);
	coh_fill(buf, n, 71);
	kb = smaps_anon_huge_kb(buf);
	if (kb > 0)
		tap_ok(true, "thp: range is THP-backed (AnonHugePages %ld kB)", kb);
	else
		tap_skip("no THP (AnonHugePages 0)", "thp: range is THP-backed");
	r = migrate(getpid(), buf, n, P, &k);
	check_counts("thp: MIGRATE of a THP-backed range", r, &k, &want);
	tap_ok(coh_check(buf, n, 71) == 0 && in_pool(getpid(), (uintptr_t)buf, n) == n,
	       "thp: data intact in the pool");
	r = migrate(getpid(), buf, n, COHMEM_DEST_SYSTEM, &k);
	tap_ok(r == 0 && k.migrated == n && coh_check(buf, n, 71) == 0,
	       "thp: back in RAM with data intact (migrated %llu)", (unsigned long long)k.migrated);
	munmap(raw, n * COH_PAGE_SIZE + huge);

	/*
	 * A PTE-mapped THP (one page of a huge page mprotect()ed differently
	 * splits the PMD, not the page): whatever the module can or cannot move,
	 * the counts add up, the pool holds what it says and nothing is lost.
	 */
	raw = mmap(NULL, n * COH_PAGE_SIZE + huge, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED) {
		tap_ok(false, "thp: PTE-mapped THP: map");
		tap_ok(false, "thp: PTE-mapped THP: back");
		goto out_fd;
	}
	buf = (char *)(((uintptr_t)raw + huge - 1) & ~(huge - 1));
	madvise(buf, n * COH_PAGE_SIZE, MADV_HUGEPAGE);
	coh_fill(buf, n, 72);
	mprotect(buf + 100 * COH_PAGE_SIZE, COH_PAGE_SIZE, PROT_READ);
	mprotect(buf + 100 * COH_PAGE_SIZE, COH_PAGE_SIZE, PROT_READ | PROT_WRITE);
	kb = smaps_anon_huge_kb(buf);
	r = migrate(getpid(), buf, n, P, &k);
	{
		char g[400];
		size_t in = in_pool(getpid(), (uintptr_t)buf, n);

		coh_counts_str(&k, g, sizeof(g));
		tap_ok(r == 0 && coh_counts_sum(&k) == n && k.failed == 0 && in == k.migrated &&
		       coh_check(buf, n, 72) == 0,
		       "thp: PTE-mapped THP: counts add up to %zu, pool holds the migrated ones, "
		       "data intact (AnonHugePages %ld kB before; r=%d {%s}, %zu in pool)", n, kb, r,
		       g, in);
	}
	r = migrate(getpid(), buf, n, COHMEM_DEST_SYSTEM, &k);
	tap_ok(r == 0 && in_pool(getpid(), (uintptr_t)buf, n) == 0 && coh_check(buf, n, 72) == 0,
	       "thp: PTE-mapped THP: back in RAM with data intact");
	munmap(raw, n * COH_PAGE_SIZE + huge);
out_fd:
	if (fd >= 0) {
		/* "always [madvise] never" -> the bracketed word */
		char *s = strchr(old, '['), *e = s ? strchr(s, ']') : NULL;

		if (s && e) {
			lseek(fd, 0, SEEK_SET);
			(void)!write(fd, s + 1, e - s - 1);
		}
		close(fd);
	}
}

/* Partly mapped and partly populated ranges (4). */
static void test_partial(void)
{
	const size_t n = 128;
	struct coh_counts k, want;
	char *buf = map_anon(n);
	int r;

	if (!tap_ok(buf != NULL, "partial: map %zu pages", n))
		return;
	coh_fill(buf, n / 2, 81);	/* second half never touched */
	r = migrate(getpid(), buf, n, P, &k);
	want = (struct coh_counts){ .migrated = n / 2, .not_present = n / 2 };
	check_counts("partial: untouched pages are SKIP_NOT_PRESENT", r, &k, &want);
	r = migrate(getpid(), buf, n, COHMEM_DEST_SYSTEM, &k);
	check_counts("partial: and back", r, &k, &want);
	/* a hole in the middle: 32 mapped, 32 unmapped, 64 mapped */
	coh_fill(buf, n, 82);
	munmap(buf + 32 * COH_PAGE_SIZE, 32 * COH_PAGE_SIZE);
	r = migrate(getpid(), buf, n, P, &k);
	want = (struct coh_counts){ .migrated = n - 32, .not_present = 32 };
	check_counts("partial: a hole in the middle counts as SKIP_NOT_PRESENT", r, &k, &want);
	munmap(buf, n * COH_PAGE_SIZE);
}

/* File-backed and shared mappings are skipped with their reason (4). */
static void test_ineligible(void)
{
	const size_t n = 32;
	struct coh_counts k, want;
	char *buf, *data = malloc(n * COH_PAGE_SIZE);
	volatile char sink = 0;
	size_t i;
	int fd, r;

	fd = memfd_create("cohmem-test", MFD_CLOEXEC);
	coh_fill(data, n, 91);
	if (!tap_ok(fd >= 0 && write(fd, data, n * COH_PAGE_SIZE) == (ssize_t)(n * COH_PAGE_SIZE),
		    "file: memfd with %zu pages", n))
		return;
	buf = mmap(NULL, n * COH_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	for (i = 0; i < n; i++)
		sink += buf[i * COH_PAGE_SIZE];
	r = migrate(getpid(), buf, n, P, &k);
	want = (struct coh_counts){ .file = n };
	check_counts("file: MAP_PRIVATE file pages (not written) are SKIP_FILE", r, &k, &want);
	coh_fill(buf, n / 2, 92);	/* first half becomes private anonymous (COW) */
	r = migrate(getpid(), buf, n, P, &k);
	want = (struct coh_counts){ .migrated = n / 2, .file = n / 2 };
	tap_ok(r == 0 && !memcmp(&k, &want, sizeof(k)) && coh_check(buf, n / 2, 92) == 0 &&
	       coh_check_at(buf + n / 2 * COH_PAGE_SIZE, n / 2, n / 2, 91) == 0 &&
	       coh_check(data, n / 2, 91) == 0,
	       "file: COW-ed pages migrate, the rest is SKIP_FILE, data intact "
	       "(migrated %llu file %llu)", (unsigned long long)k.migrated,
	       (unsigned long long)k.file);
	munmap(buf, n * COH_PAGE_SIZE);
	close(fd);
	free(data);

	buf = mmap(NULL, n * COH_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		   -1, 0);
	coh_fill(buf, n, 93);
	r = migrate(getpid(), buf, n, P, &k);
	want = (struct coh_counts){ .shared = n };
	check_counts("shared: MAP_SHARED|MAP_ANONYMOUS pages are SKIP_SHARED", r, &k, &want);
	munmap(buf, n * COH_PAGE_SIZE);
	(void)sink;
}

/* RESIDENCY counts and extents (3). */
static void test_residency(void)
{
	const size_t n = 64;
	struct coh_req q = {
		.present = COH_BIT(COHMEM_A_PID) | COH_BIT(COHMEM_A_START) |
			   COH_BIT(COHMEM_A_LENGTH),
		.pid = getpid(), .length = n * COH_PAGE_SIZE,
	};
	struct coh_reply rep;
	struct coh_counts k1, k2;
	char *buf = map_anon(n);
	bool ok;
	int r;

	if (!tap_ok(buf != NULL, "residency: map %zu pages", n))
		return;
	coh_fill(buf, n - 8, 101);	/* last 8 never touched */
	r = migrate(getpid(), buf + 8 * COH_PAGE_SIZE, 16, P, &k1);
	r |= migrate(getpid(), buf + 40 * COH_PAGE_SIZE, 8, P, &k2);
	q.start = (uintptr_t)buf;
	r = r ?: coh_request(env.c, COHMEM_CMD_RESIDENCY, false, &q, &rep);
	ok = r == 0 && rep.nr_resident == 1 && rep.resident[0].pool_id == P &&
	     rep.resident[0].nr_pages == 24 && rep.v[COHMEM_A_SYSTEM_PAGES] == n - 8 - 24;
	tap_ok(ok, "residency: pool %u has 24 pages, system %llu (want %zu) (r=%d, %d pool entries)",
	       P, (unsigned long long)rep.v[COHMEM_A_SYSTEM_PAGES], n - 32, r, rep.nr_resident);
	ok = r == 0 && rep.nr_extents == 2 && !rep.truncated &&
	     rep.extents[0].pool_id == P && rep.extents[0].start == (uintptr_t)buf + 8 * COH_PAGE_SIZE &&
	     rep.extents[0].length == 16 * COH_PAGE_SIZE &&
	     rep.extents[1].pool_id == P && rep.extents[1].start == (uintptr_t)buf + 40 * COH_PAGE_SIZE &&
	     rep.extents[1].length == 8 * COH_PAGE_SIZE;
	tap_ok(ok, "residency: exactly the two extents [+8,+24) and [+40,+48) pages (%d extents)",
	       rep.nr_extents);
	for (int i = 0; i < rep.nr_extents && i < 4; i++)
		tap_diag("  extent pool %u start +%llu len %llu", rep.extents[i].pool_id,
			 (unsigned long long)((rep.extents[i].start - (uintptr_t)buf) / COH_PAGE_SIZE),
			 (unsigned long long)(rep.extents[i].length / COH_PAGE_SIZE));
	coh_reply_free(&rep);
	munmap(buf, n * COH_PAGE_SIZE);

	/* more extents than a reply holds: every other page in the pool */
	{
		const size_t m = 2 * (COHMEM_EXTENTS_MAX + 8);
		char *big = map_anon(m);
		size_t i;

		r = big ? 0 : -ENOMEM;
		if (big)
			coh_fill(big, m, 102);
		for (i = 0; i < m && r == 0; i += 2)
			r = migrate(getpid(), big + i * COH_PAGE_SIZE, 1, P, &k1);
		q.start = (uintptr_t)big;
		q.length = m * COH_PAGE_SIZE;
		r = r ?: coh_request(env.c, COHMEM_CMD_RESIDENCY, false, &q, &rep);
		ok = r == 0 && rep.truncated && rep.nr_extents == COHMEM_EXTENTS_MAX &&
		     rep.nr_resident == 1 && rep.resident[0].nr_pages == m / 2 &&
		     rep.v[COHMEM_A_SYSTEM_PAGES] == m / 2;
		tap_ok(ok, "residency: %zu alternating pages: TRUNCATED at %d extents, counts still "
		       "exact (r=%d truncated %d, %d extents, pool %llu, system %llu)", m,
		       COHMEM_EXTENTS_MAX, r, rep.truncated, rep.nr_extents,
		       rep.nr_resident ? (unsigned long long)rep.resident[0].nr_pages : 0ULL,
		       (unsigned long long)rep.v[COHMEM_A_SYSTEM_PAGES]);
		coh_reply_free(&rep);
		if (big)
			munmap(big, m * COH_PAGE_SIZE);
	}
}

static int sample(void *buf, size_t n, bool clear, struct coh_reply *rep)
{
	struct coh_req q = {
		.present = COH_BIT(COHMEM_A_PID) | COH_BIT(COHMEM_A_START) |
			   COH_BIT(COHMEM_A_LENGTH) | (clear ? COH_BIT(COHMEM_A_CLEAR) : 0),
		.pid = getpid(), .start = (uintptr_t)buf, .length = n * COH_PAGE_SIZE, .clear = clear,
	};

	return coh_request(env.c, COHMEM_CMD_SAMPLE, false, &q, rep);
}

static bool bit(const struct coh_reply *rep, size_t i)
{
	return i / 8 < rep->bitmap_len && (rep->bitmap[i / 8] >> (i % 8)) & 1;
}

/* SAMPLE young bits on pool pages, and its bound (5). */
static void test_sample(void)
{
	static const size_t touch[] = { 1, 2, 3, 10, 33, 62 };
	const size_t n = 64;
	struct coh_counts k;
	struct coh_reply rep;
	volatile uint64_t sink = 0;
	char *buf = map_anon(n), *big;
	size_t i, j, mismatch = 0;
	int r;

	if (!tap_ok(buf != NULL, "sample: map %zu pages", n))
		return;
	coh_fill(buf, n, 111);
	r = migrate(getpid(), buf, n, P, &k);
	coh_fill(buf, n, 112);
	r = r ?: sample(buf, n, true, &rep);
	tap_ok(r == 0 && rep.v[COHMEM_A_NR_PAGES] == n && rep.v[COHMEM_A_NR_YOUNG] == n,
	       "sample: after writing every page all %zu are young (r=%d nr_pages %llu young %llu)",
	       n, r, (unsigned long long)rep.v[COHMEM_A_NR_PAGES],
	       (unsigned long long)rep.v[COHMEM_A_NR_YOUNG]);
	coh_reply_free(&rep);
	r = sample(buf, n, false, &rep);
	tap_ok(r == 0 && rep.v[COHMEM_A_NR_YOUNG] == 0,
	       "sample: CLEAR cleared them (young %llu)", (unsigned long long)rep.v[COHMEM_A_NR_YOUNG]);
	coh_reply_free(&rep);
	/*
	 * No TLB flush of our own here: SAMPLE's clear must flush, or a page
	 * whose translation is still cached would never look young again.
	 */
	for (j = 0; j < sizeof(touch) / sizeof(touch[0]); j++)
		sink += *(volatile uint64_t *)(buf + touch[j] * COH_PAGE_SIZE + 64);
	r = sample(buf, n, true, &rep);
	for (i = 0, j = 0; i < n; i++) {
		bool want = j < sizeof(touch) / sizeof(touch[0]) && touch[j] == i;

		j += want;
		mismatch += bit(&rep, i) != want;
	}
	tap_ok(r == 0 && mismatch == 0 && rep.v[COHMEM_A_NR_YOUNG] == j &&
	       rep.bitmap_len >= n / 8,
	       "sample: exactly the %zu pages read are young (mismatch %zu, young %llu, bitmap %zu bytes)",
	       j, mismatch, (unsigned long long)rep.v[COHMEM_A_NR_YOUNG], rep.bitmap_len);
	coh_reply_free(&rep);
	tap_ok(in_pool(getpid(), (uintptr_t)buf, n) == n && coh_check(buf, n, 112) == 0,
	       "sample: sampling leaves pages in the pool with data intact");
	/* one page more than the bound */
	big = mmap(NULL, (COHMEM_SAMPLE_MAX_PAGES + 1UL) * COH_PAGE_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	r = sample(big, COHMEM_SAMPLE_MAX_PAGES + 1UL, false, &rep);
	tap_ok(r == -EINVAL || (r == 0 && rep.v[COHMEM_A_NR_PAGES] <= COHMEM_SAMPLE_MAX_PAGES &&
				rep.bitmap_len <= COHMEM_SAMPLE_MAX_PAGES / 8),
	       "sample: more than COHMEM_SAMPLE_MAX_PAGES is refused or cut (r=%d nr_pages %llu)",
	       r, (unsigned long long)rep.v[COHMEM_A_NR_PAGES]);
	coh_reply_free(&rep);
	munmap(big, (COHMEM_SAMPLE_MAX_PAGES + 1UL) * COH_PAGE_SIZE);
	munmap(buf, n * COH_PAGE_SIZE);
	(void)sink;
}

static int sample_windows(const uint64_t (*w)[2], int nw, bool clear, struct coh_reply *rep)
{
	struct coh_req q = {
		.present = COH_BIT(COHMEM_A_PID) | (clear ? COH_BIT(COHMEM_A_CLEAR) : 0),
		.pid = getpid(), .clear = clear, .windows = w, .nr_windows = nw,
	};

	return coh_request(env.c, COHMEM_CMD_SAMPLE, false, &q, rep);
}

/* Bits of the concatenated bitmap that differ from exactly the set @want (sorted). */
static size_t bits_off(const struct coh_reply *rep, size_t nbits, const size_t *want, size_t nwant)
{
	size_t i, j = 0, off = 0;

	for (i = 0; i < nbits; i++) {
		bool w = j < nwant && want[j] == i;

		j += w;
		off += bit(rep, i) != w;
	}
	return off;
}

/* SAMPLE with several WINDOW nests: one call, per-window counts, one bitmap (6). */
static void test_sample_windows(void)
{
	const size_t n = 96;
	char *buf = map_anon(n);
	uint64_t w[4][2], one[COHMEM_SAMPLE_MAX_WINDOWS][2];
	static const size_t touched[] = { 2, 9, 26 };	/* pages 2, 17 and 90, as bits */
	static const uint64_t young_all[] = { 8, 4, 0, 16 };
	volatile uint64_t sink = 0;
	struct coh_counts k;
	struct coh_reply rep;
	size_t i, all[28];
	bool ok;
	int r;

	if (!tap_ok(buf != NULL, "sample windows: map %zu pages", n))
		return;
	/* the first half in the pool, a hole at pages [64, 80) */
	coh_fill(buf, n, 131);
	r = migrate(getpid(), buf, 48, P, &k);
	munmap(buf + 64 * COH_PAGE_SIZE, 16 * COH_PAGE_SIZE);
	coh_fill(buf, 64, 132);
	coh_fill(buf + 80 * COH_PAGE_SIZE, 16, 133);
	w[0][0] = (uintptr_t)buf;			w[0][1] = 8 * COH_PAGE_SIZE;
	w[1][0] = (uintptr_t)buf + 16 * COH_PAGE_SIZE;	w[1][1] = 4 * COH_PAGE_SIZE;
	w[2][0] = (uintptr_t)buf + 64 * COH_PAGE_SIZE;	w[2][1] = 4 * COH_PAGE_SIZE;
	w[3][0] = (uintptr_t)buf + 80 * COH_PAGE_SIZE;	w[3][1] = 16 * COH_PAGE_SIZE;
	for (i = 0; i < 12; i++)
		all[i] = i;
	for (i = 0; i < 16; i++)
		all[12 + i] = 16 + i;

	r = r ?: sample_windows(w, 4, true, &rep);
	ok = r == 0 && rep.nr_windows == 4 && rep.v[COHMEM_A_NR_PAGES] == 32 &&
	     rep.v[COHMEM_A_NR_YOUNG] == 28 && rep.bitmap_len == 4 &&
	     bits_off(&rep, 32, all, 28) == 0;
	for (i = 0; ok && i < 4; i++)
		ok = rep.windows[i].start == w[i][0] &&
		     rep.windows[i].nr_pages == w[i][1] / COH_PAGE_SIZE &&
		     rep.windows[i].nr_young == young_all[i] &&
		     rep.windows[i].no_mapping == (i == 2);
	tap_ok(ok, "sample windows: all written pages young, per window 8/4/0/16, the hole flagged "
	       "NO_MAPPING, one bitmap in window order (r=%d windows %d pages %llu young %llu)",
	       r, rep.nr_windows, (unsigned long long)rep.v[COHMEM_A_NR_PAGES],
	       (unsigned long long)rep.v[COHMEM_A_NR_YOUNG]);
	coh_reply_free(&rep);

	r = sample_windows(w, 4, false, &rep);
	tap_ok(r == 0 && rep.v[COHMEM_A_NR_YOUNG] == 0 && rep.nr_windows == 4 &&
	       bits_off(&rep, 32, NULL, 0) == 0,
	       "sample windows: CLEAR cleared every window (r=%d young %llu)", r,
	       (unsigned long long)rep.v[COHMEM_A_NR_YOUNG]);
	coh_reply_free(&rep);

	/* no TLB flush of our own: the one flush at the end of the request must do */
	sink += *(volatile uint64_t *)(buf + 2 * COH_PAGE_SIZE + 8);
	sink += *(volatile uint64_t *)(buf + 17 * COH_PAGE_SIZE + 8);
	sink += *(volatile uint64_t *)(buf + 90 * COH_PAGE_SIZE + 8);
	r = sample_windows(w, 4, true, &rep);
	tap_ok(r == 0 && rep.v[COHMEM_A_NR_YOUNG] == 3 && rep.nr_windows == 4 &&
	       rep.windows[0].nr_young == 1 && rep.windows[1].nr_young == 1 &&
	       rep.windows[3].nr_young == 1 && bits_off(&rep, 32, touched, 3) == 0,
	       "sample windows: exactly the pages read since are young, in pool and system RAM "
	       "(r=%d young %llu)", r, (unsigned long long)rep.v[COHMEM_A_NR_YOUNG]);
	coh_reply_free(&rep);

	/* the hole alone: the single form fails, the windowed form reports it */
	r = sample_windows(w + 2, 1, false, &rep);
	tap_ok(r == 0 && rep.nr_windows == 1 && rep.windows[0].no_mapping &&
	       rep.v[COHMEM_A_NR_YOUNG] == 0 && sample(buf + 64 * COH_PAGE_SIZE, 4, false, NULL) ==
	       -EFAULT, "sample windows: a window with no mapping is NO_MAPPING, not EFAULT "
	       "(START/LENGTH: EFAULT) (r=%d)", r);
	coh_reply_free(&rep);

	for (i = 0; i < COHMEM_SAMPLE_MAX_WINDOWS; i++) {
		one[i][0] = (uintptr_t)buf + i * COH_PAGE_SIZE;
		one[i][1] = COH_PAGE_SIZE;
	}
	r = sample_windows((const uint64_t (*)[2])one, COHMEM_SAMPLE_MAX_WINDOWS, false, &rep);
	tap_ok(r == 0 && rep.nr_windows == COHMEM_SAMPLE_MAX_WINDOWS &&
	       rep.v[COHMEM_A_NR_PAGES] == COHMEM_SAMPLE_MAX_WINDOWS &&
	       rep.windows[COHMEM_SAMPLE_MAX_WINDOWS - 1].start ==
	       (uintptr_t)buf + (COHMEM_SAMPLE_MAX_WINDOWS - 1) * COH_PAGE_SIZE &&
	       !rep.windows[COHMEM_SAMPLE_MAX_WINDOWS - 1].no_mapping,
	       "sample windows: COHMEM_SAMPLE_MAX_WINDOWS adjacent windows in one request "
	       "(r=%d, %d)",
	       r, rep.nr_windows);
	coh_reply_free(&rep);
	munmap(buf, 64 * COH_PAGE_SIZE);
	munmap(buf + 80 * COH_PAGE_SIZE, 16 * COH_PAGE_SIZE);
	(void)sink;
}

/* EVICT by PFN, any owner (5). */
static void test_evict(void)
{
	const size_t n = 256;
	uint64_t free0 = coh_env_free(&env), ev = 0, fail = 0;
	struct coh_counts k;
	struct coh_victim v;
	int r;

	r = coh_victim_start(&v, n, 121);
	if (r == 0)
		r = migrate(v.pid, (void *)v.addr, n, P, &k);
	if (!tap_ok(r == 0 && k.migrated == n, "evict: child's %zu pages in the pool", n))
		return;
	r = coh_evict(env.c, P, 100, &ev, &fail);
	tap_ok(r == 0 && ev == 100 && fail == 0 && coh_env_free(&env) == free0 - n + 100 &&
	       in_pool(v.pid, v.addr, n) == n - 100,
	       "evict: 100 evicted, free +100, 156 left in the pool (r=%d evicted %llu failed %llu)",
	       r, (unsigned long long)ev, (unsigned long long)fail);
	tap_ok(coh_victim_cmd(&v, VICTIM_CHECK, 121) == 0, "evict: owner's data intact");
	r = coh_evict(env.c, P, 100000, &ev, &fail);
	tap_ok(r == 0 && ev == n - 100 && fail == 0 && coh_env_free(&env) == free0 &&
	       in_pool(v.pid, v.addr, n) == 0 && present(v.pid, v.addr, n) == n,
	       "evict: asking for more evicts what is there (evicted %llu, want %zu)",
	       (unsigned long long)ev, n - 100);
	tap_ok(coh_victim_cmd(&v, VICTIM_CHECK, 121) == 0, "evict: owner's data still intact");
	coh_victim_stop(&v);
}

/* Pool full: partial migration, exact counts, nothing lost; watermarks (8). */
static void test_pool_full(void)
{
	struct coh_client *mon = NULL;
	struct coh_counts k, want;
	struct coh_reply rep;
	uint64_t free0 = coh_env_free(&env);
	struct coh_pool p;
	size_t n = free0 + 4096;
	bool low = false, high = false;
	char *buf = map_anon(n);
	int r, cmd;

	if (!tap_ok(buf != NULL && free0 != ~0ULL, "full: map %zu pages (pool free %llu)", n,
		    (unsigned long long)free0))
		return;
	r = coh_monitor_open(&mon);
	tap_ok(r == 0, "full: subscribe to the monitor group (r=%d)", r);
	coh_fill(buf, n, 131);
	r = migrate(getpid(), buf, n, P, &k);
	want = (struct coh_counts){ .migrated = free0, .no_space = 4096 };
	check_counts("full: MIGRATE beyond capacity is partial, SKIP_NO_SPACE exact", r, &k, &want);
	tap_ok(coh_env_free(&env) == 0 && in_pool(getpid(), (uintptr_t)buf, n) == free0,
	       "full: pool free is 0 and pagemap shows %llu pool pages",
	       (unsigned long long)free0);
	tap_ok(coh_check(buf, n, 131) == 0, "full: every byte intact");
	r = migrate(getpid(), buf, n, COHMEM_DEST_SYSTEM, &k);
	want = (struct coh_counts){ .migrated = free0, .already = 4096 };
	check_counts("full: MIGRATE everything back", r, &k, &want);
	tap_ok(coh_env_free(&env) == free0 && coh_check(buf, n, 131) == 0,
	       "full: free back to %llu, data intact", (unsigned long long)free0);
	coh_pool_get(env.c, P, &p);
	while (mon && (cmd = coh_monitor_next(mon, 2000, &rep)) >= 0) {
		if (cmd == COHMEM_CMD_WATERMARK_NTF && rep.v[COHMEM_A_POOL_ID] == P) {
			low |= rep.v[COHMEM_A_WMARK] == COHMEM_WMARK_LOW;
			high |= low && rep.v[COHMEM_A_WMARK] == COHMEM_WMARK_HIGH;
		}
		coh_reply_free(&rep);
		if (low && high)
			break;
	}
	if (p.low == 0 && p.high == 0)
		tap_skip("pool has no watermarks", "full: WATERMARK_NTF low then high");
	else
		tap_ok(low && high, "full: monitor got WATERMARK_NTF low then high (low %llu high %llu)",
		       (unsigned long long)p.low, (unsigned long long)p.high);
	coh_close(mon);
	munmap(buf, n * COH_PAGE_SIZE);
}

int main(void)
{
	uint64_t free_end;
	int r;

	r = coh_env_setup(&env, "t0", NULL);
	tap_init("cohmem-migrate", PLAN);
	if (!tap_ok(r == 0, "load cohmem with pool t0 and find it (r=%d)", r))
		return tap_finish();
	P = env.pool.id;
	tap_diag("pool %u '%s' phys %#llx+%#llx nid %d total %llu free %llu low %llu high %llu",
		 P, env.pool.name, (unsigned long long)env.pool.phys_start,
		 (unsigned long long)env.pool.phys_size, env.pool.nid,
		 (unsigned long long)env.pool.total, (unsigned long long)env.pool.free,
		 (unsigned long long)env.pool.low, (unsigned long long)env.pool.high);

	test_cross_process();
	test_cpu_access();
	test_fork_cow();
	test_fork_shared();
	test_longterm_pin();
	test_release();
	test_readonly();
	test_thp();
	test_partial();
	test_ineligible();
	test_residency();
	test_sample();
	test_sample_windows();
	test_evict();
	test_pool_full();

	free_end = coh_env_free(&env);
	tap_ok(free_end == env.pool.total, "all pages returned: free %llu == total %llu",
	       (unsigned long long)free_end, (unsigned long long)env.pool.total);
	coh_env_teardown(&env);
	r = coh_module_unload();
	tap_ok(r == 0, "unload (r=%d)", r);
	return tap_finish();
}
