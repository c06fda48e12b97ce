/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Backends without a kernel: move counts and the move_pages(2) status
 * classification, range checks, the /proc/PID/maps parser, NLE_* conversion,
 * the scripted fake backend, and the numa backend's batching, retries and
 * accounting against a scripted move_pages(2) on a fixture root. The numa
 * backend on the host's own process runs too when the host allows
 * move_pages(2) (skipped, never passed, otherwise); the real kernels are in
 * tests/vm/daemon/backend-check.c.
 */

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <numa.h>
#include <netlink/errno.h>

#include "backend-fake.h"
#include "backend.h"
#include "util.h"

#define PG UINT64_C(4096)

/* ------------------------------------------------------------------ counts */

static void test_counts(void **state)
{
	MoveCounts a = { 1, 2, 3, 4, 5, 6, 7, 8, 9 }, b = { 10, 20, 30, 40, 50, 60, 70, 80, 90 };

	assert_int_equal(move_counts_total(&a), 45);
	assert_int_equal(move_counts_skipped(&a), 3 + 4 + 5 + 6 + 7 + 8);
	move_counts_add(&b, &a);
	assert_int_equal(b.migrated, 11);
	assert_int_equal(b.failed, 99);
	assert_int_equal(move_counts_total(&b), 495);
}

static void test_account_status(void **state)
{
	static const struct {
		int status, target;
		size_t field;
	} cases[] = {
		{ 1, 1, offsetof(MoveCounts, migrated) },
		{ 0, 0, offsetof(MoveCounts, migrated) },
		{ 0, 1, offsetof(MoveCounts, failed) },      /* still elsewhere */
		{ -ENOENT, 1, offsetof(MoveCounts, not_present) },
		{ -EFAULT, 1, offsetof(MoveCounts, not_present) },
		{ -EACCES, 1, offsetof(MoveCounts, shared) },
		{ -EBUSY, 1, offsetof(MoveCounts, pinned) },
		{ -ENOMEM, 1, offsetof(MoveCounts, no_space) },
		{ -EIO, 1, offsetof(MoveCounts, failed) },
		{ -EAGAIN, 1, offsetof(MoveCounts, failed) },
		{ -1, -1, offsetof(MoveCounts, failed) },    /* -EPERM is not a node */
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		MoveCounts c = {};

		move_counts_account_status(&c, cases[i].status, cases[i].target);
		assert_int_equal(move_counts_total(&c), 1);
		assert_int_equal(*(uint64_t *) ((char *) &c + cases[i].field), 1);
	}
}

static void test_check_range(void **state)
{
	assert_int_equal(backend_check_range(0, 0, PG), 0);
	assert_int_equal(backend_check_range(PG, PG, PG), 0);
	assert_int_equal(backend_check_range(1, PG, PG), -EINVAL);
	assert_int_equal(backend_check_range(PG, 1, PG), -EINVAL);
	assert_int_equal(backend_check_range(UINT64_MAX & ~(PG - 1), PG, PG), -EINVAL);
	assert_int_equal(backend_check_range(BACKEND_USER_ADDR_MAX, 0, PG), -EINVAL);
	assert_int_equal(backend_check_range(PG, 0, PG), -EINVAL);
	assert_int_equal(backend_check_range(BACKEND_USER_ADDR_MAX, PG, PG), -EINVAL);
	assert_int_equal(backend_check_range(BACKEND_USER_ADDR_MAX - PG, PG, PG), 0);
	assert_int_equal(backend_check_range(PG, UINT64_MAX & ~(PG - 1), PG), -EINVAL);
	assert_int_equal(backend_check_range(0, PG, 3000), -EINVAL);
	assert_int_equal(backend_check_range(0, PG, 0), -EINVAL);
}

static void test_errno_from_nl(void **state)
{
	assert_int_equal(backend_errno_from_nl(0), 0);
	assert_int_equal(backend_errno_from_nl(-NLE_NOMEM), -ENOMEM);
	assert_int_equal(backend_errno_from_nl(NLE_NOMEM), -ENOMEM);
	assert_int_equal(backend_errno_from_nl(-NLE_PERM), -EPERM);
	assert_int_equal(backend_errno_from_nl(-NLE_OBJ_NOTFOUND), -ENOENT);
	assert_int_equal(backend_errno_from_nl(-NLE_NODEV), -ENODEV);
	assert_int_equal(backend_errno_from_nl(-NLE_MSG_TRUNC), -EBADMSG);
	assert_int_equal(backend_errno_from_nl(-NLE_AGAIN), -EAGAIN);
	assert_int_equal(backend_errno_from_nl(-9999), -EIO);
	/* Every code gives a negative errno (or 0 for success). */
	for (int i = 1; i <= NLE_MAX + 5; i++)
		assert_true(backend_errno_from_nl(-i) < 0);
}

static void test_last_message(void **state)
{
	struct bitmask *m;

	/* libnuma's own warning lands in backend_last_message(), not on stderr. */
	backend_set_last_message(NULL);
	m = numa_parse_nodestring("no-such-nodes");
	assert_null(m);
	assert_non_null(backend_last_message());
	assert_non_null(strstr(backend_last_message(), "libnuma"));
	assert_non_null(strstr(backend_last_message(), "no-such-nodes"));

	backend_set_last_message(NULL);
	assert_null(backend_last_message());
	backend_set_last_message("libnuma: %s", "x");
	assert_string_equal(backend_last_message(), "libnuma: x");
	backend_set_last_message(NULL);
	assert_null(backend_last_message());
}

/* ------------------------------------------------------------------ maps */

static const char maps_real[] =
	"55e0c3a00000-55e0c3a02000 r--p 00000000 fd:01 1835023                    /usr/bin/cat\n"
	"55e0c3a02000-55e0c3a07000 r-xp 00002000 fd:01 1835023                    /usr/bin/cat\n"
	"55e0c3a0b000-55e0c3a0c000 rw-p 0000a000 fd:01 1835023                    /usr/bin/cat\n"
	"55e0c4e21000-55e0c4e42000 rw-p 00000000 00:00 0                          [heap]\n"
	"7f0a1c000000-7f0a1c021000 rw-p 00000000 00:00 0 \n"
	"7f0a1c021000-7f0a20000000 ---p 00000000 00:00 0 \n"
	"7f0a22000000-7f0a22400000 rw-s 00000000 00:01 4113                       /dev/zero (deleted)\n"
	"7f0a22400000-7f0a22401000 rw-s 00000000 00:05 12                         /SYSV00000000 (deleted)\n"
	"7f0a22401000-7f0a22402000 rw-p 00000000 00:00 0                          [anon:my name]\n"
	"7f0a22402000-7f0a22403000 rw-p 00000000 00:1a 77                         /tmp/with space/f\n"
	"7f0a22403000-7f0a22404000 rw-p 00000000 00:01 88                         /memfd:x (deleted)\n"
	"7ffd5c1e1000-7ffd5c202000 rw-p 00000000 00:00 0                          [stack]\n"
	"7ffd5c3d6000-7ffd5c3da000 r--p 00000000 00:00 0                          [vvar]\n"
	"7ffd5c3da000-7ffd5c3dc000 r-xp 00000000 00:00 0                          [vdso]\n"
	"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";

static void test_maps_parse_real(void **state)
{
	static const struct {
		BackendMapKind kind;
		const char *path;
	} want[] = {
		{ BACKEND_MAP_FILE, "/usr/bin/cat" },
		{ BACKEND_MAP_FILE, "/usr/bin/cat" },
		{ BACKEND_MAP_FILE, "/usr/bin/cat" },
		{ BACKEND_MAP_ANON, "[heap]" },
		{ BACKEND_MAP_ANON, NULL },
		{ BACKEND_MAP_ANON, NULL },
		{ BACKEND_MAP_SHARED, "/dev/zero (deleted)" },
		{ BACKEND_MAP_SHARED, "/SYSV00000000 (deleted)" },
		{ BACKEND_MAP_ANON, "[anon:my name]" },
		{ BACKEND_MAP_FILE, "/tmp/with space/f" },
		{ BACKEND_MAP_FILE, "/memfd:x (deleted)" },
		{ BACKEND_MAP_ANON, "[stack]" },
		{ BACKEND_MAP_SPECIAL, "[vvar]" },
		{ BACKEND_MAP_SPECIAL, "[vdso]" },
		{ BACKEND_MAP_SPECIAL, "[vsyscall]" },
	};
	BackendMapping *m = NULL;
	size_t n = 0;

	assert_int_equal(backend_maps_parse(maps_real, strlen(maps_real), &m, &n), 0);
	assert_int_equal(n, ELEMENTSOF(want));
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(m[i].kind, want[i].kind);
		if (want[i].path)
			assert_string_equal(m[i].path, want[i].path);
		else
			assert_null(m[i].path);
	}
	assert_int_equal(m[0].start, UINT64_C(0x55e0c3a00000));
	assert_int_equal(m[0].end, UINT64_C(0x55e0c3a02000));
	assert_string_equal(m[1].perms, "r-xp");
	assert_int_equal(m[1].offset, 0x2000);
	assert_int_equal(m[0].inode, 1835023);
	assert_int_equal(m[14].start, UINT64_C(0xffffffffff600000));
	assert_string_equal(backend_map_kind_to_string(m[6].kind), "shared");
	assert_null(backend_map_kind_to_string(_BACKEND_MAP_KIND_MAX));
	backend_mappings_free(m, n);

	/* No trailing newline, and empty input. */
	assert_int_equal(backend_maps_parse("1000-2000 rw-p 00000000 00:00 0", 31, &m, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(m[0].kind, BACKEND_MAP_ANON);
	backend_mappings_free(m, n);
	assert_int_equal(backend_maps_parse("", 0, &m, &n), 0);
	assert_int_equal(n, 0);
	backend_mappings_free(m, n);
}

static void test_maps_parse_bad(void **state)
{
	static const char *const bad[] = {
		"\n",
		"1000-2000 rw-p 00000000 00:00 0\n\n",
		"1000-2000 rw-p 00000000 00:00\n",               /* no inode */
		"1000-2000 rw-p 00000000 0000 0\n",              /* no ':' */
		"1000-2000 rw-p 00000000 00:00 x\n",
		"1000-2000 rw-p 00000000 00:00 0x\n",            /* junk after the inode */
		"1000-2000 rwxq 00000000 00:00 0\n",
		"1000-2000 rw-p- 00000000 00:00 0\n",
		"1000-2000 RW-P 00000000 00:00 0\n",
		"1000 2000 rw-p 00000000 00:00 0\n",
		"1000-2000rw-p 00000000 00:00 0\n",
		"1000-2001 rw-p 00000000 00:00 0\n",             /* unaligned */
		"2000-1000 rw-p 00000000 00:00 0\n",             /* reversed */
		"1000-1000 rw-p 00000000 00:00 0\n",             /* empty */
		"1000-2000 rw-p 00000000 00:00 0\n1000-3000 rw-p 00000000 00:00 0\n",  /* overlap */
		"3000-4000 rw-p 00000000 00:00 0\n1000-2000 rw-p 00000000 00:00 0\n",  /* order */
		"11000000000000000-11000000000001000 rw-p 00000000 00:00 0\n", /* 17 digits */
		"ABC000-ABD000 rw-p 00000000 00:00 0\n",         /* upper case */
		"-2000 rw-p 00000000 00:00 0\n",
		"1000-2000 rw-p 00000000 00:00 99999999999999999999999\n",
		"1000-2000",
	};
	BackendMapping *m = (BackendMapping *) 0x1;
	size_t n = 77;

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		int r = backend_maps_parse(bad[i], strlen(bad[i]), &m, &n);

		if (r != -EBADMSG)
			fail_msg("case %zu \"%s\": r=%d", i, bad[i], r);
	}
	/* A NUL byte inside. */
	assert_int_equal(backend_maps_parse("1000-2000 rw-p 0\0000000 00:00 0\n", 32, &m, &n),
			 -EBADMSG);
	/* Nothing was handed out. */
	assert_ptr_equal(m, (BackendMapping *) 0x1);
	assert_int_equal(n, 77);
}

static void test_numa_maps_parse(void **state)
{
	static const char text[] =
		"55e0c3a00000 default file=/usr/bin/cat mapped=2 N0=2 kernelpagesize_kB=4\n"
		"55e0c4e21000 default heap anon=3 dirty=3 N0=1 N1=2 kernelpagesize_kB=4\n"
		"7f0a1c000000 prefer (many):0-1 anon=512 dirty=512 N1=512 kernelpagesize_kB=4\n"
		"7f0a1c021000 default\n"
		"7f0a22000000 bind=static:1 file=/tmp/a\\040N7=9 mapped=1 N1=1 kernelpagesize_kB=4\n"
		"7f0a40000000 default file=/mnt/huge/x huge dirty=2 N0=2 kernelpagesize_kB=2048\n"
		"7ffd5c1e1000 default stack anon=1 dirty=1 N0=1 kernelpagesize_kB=4";
	static const char *const bad[] = {
		"\n",
		"1000\n",                           /* no policy */
		"1000  default\n",
		"1000 default \n",
		"1001 default\n",
		"2000 default\n1000 default\n",
		"1000 default\n1000 default\n",
		"1000 default N0=1 N0=2\n",
		"1000 default N0=x\n",
		"1000 default N1024=1\n",
		"1000 default N0=99999999999999999999\n",
		"1000 default kernelpagesize_kB=0\n",
		"1000 default kernelpagesize_kB=4k\n",
		"x000 default\n",
	};
	BackendNumaMapsEntry *e = NULL;
	size_t n = 0;

	assert_int_equal(backend_numa_maps_parse(text, strlen(text), &e, &n), 0);
	assert_int_equal(n, 7);
	assert_int_equal(e[0].start, UINT64_C(0x55e0c3a00000));
	assert_int_equal(e[0].n_nodes, 1);
	assert_int_equal(e[0].nodes[0].pages, 2);
	assert_int_equal(e[1].n_nodes, 2);
	assert_int_equal(e[1].nodes[1].node, 1);
	assert_int_equal(e[1].nodes[1].pages, 2);
	assert_int_equal(e[2].nodes[0].pages, 512);
	assert_int_equal(e[3].n_nodes, 0);
	assert_int_equal(e[3].page_kb, 0);
	/* An escaped space in a path cannot forge a node count. */
	assert_int_equal(e[4].n_nodes, 1);
	assert_int_equal(e[4].nodes[0].node, 1);
	assert_int_equal(e[5].page_kb, 2048);
	backend_numa_maps_free(e, n);

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		int r = backend_numa_maps_parse(bad[i], strlen(bad[i]), &e, &n);

		if (r != -EBADMSG)
			fail_msg("case %zu \"%s\": r=%d", i, bad[i], r);
	}
	assert_int_equal(backend_numa_maps_parse("1000 d\0", 7, &e, &n), -EBADMSG);
}

static char *make_root(void)
{
	char *root = strdup("/tmp/test-backend.XXXXXX");

	assert_non_null(root);
	assert_non_null(mkdtemp(root));
	return root;
}

static void write_file(const char *root, const char *rel, const char *text)
{
	char path[512], dir[512], *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	snprintf(dir, sizeof(dir), "%s", path);
	for (slash = dir + strlen(root) + 1; (slash = strchr(slash, '/')); slash++) {
		*slash = '\0';
		(void) mkdir(dir, 0755);
		*slash = '/';
	}
	f = fopen(path, "we");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void remove_root(char *root)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
	free(root);
}

static void test_maps_read(void **state)
{
	char *root = make_root();
	BackendMapping *m = NULL;
	size_t n = 0;

	write_file(root, "proc/123/maps", maps_real);
	assert_int_equal(backend_maps_read(root, 123, &m, &n), 0);
	assert_int_equal(n, 15);
	backend_mappings_free(m, n);
	assert_int_equal(backend_maps_read(root, 124, &m, &n), -ESRCH);
	assert_int_equal(backend_maps_read(root, 0, &m, &n), -ESRCH);
	write_file(root, "proc/125/maps", "garbage\n");
	assert_int_equal(backend_maps_read(root, 125, &m, &n), -EBADMSG);
	/* Our own, from the real /proc: there is at least a stack and the heap or anon memory. */
	assert_int_equal(backend_maps_read(NULL, getpid(), &m, &n), 0);
	assert_true(n > 3);
	backend_mappings_free(m, n);
	remove_root(root);
}

/* ------------------------------------------------------------------ fake */

#define FPID 4242
#define A0 UINT64_C(0x100000)

/* Devices "hbm" (100 pages) and "small" (4 pages); one process with:
 *   [A0, A0+64p)            anonymous, pages 0..31 present in system RAM
 *   hole of 16 pages
 *   [A0+80p, A0+88p)        file
 *   [A0+88p, A0+96p)        shared
 *   [A0+96p, A0+100p)       special */
static Backend *fake_setup(void)
{
	Backend *b = NULL;

	assert_int_equal(backend_fake_ops.open(&b, NULL), 0);
	assert_int_equal(fake_add_device(b, "hbm", 1, 100), 0);
	assert_int_equal(fake_add_device(b, "small", -1, 4), 1);
	assert_int_equal(fake_add_process(b, FPID), 0);
	assert_int_equal(fake_add_process(b, FPID), -EEXIST);
	assert_int_equal(fake_add_mapping(b, FPID, A0, A0 + 64 * PG, BACKEND_MAP_ANON), 0);
	assert_int_equal(fake_add_mapping(b, FPID, A0 + 96 * PG, A0 + 100 * PG, BACKEND_MAP_SPECIAL), 0);
	assert_int_equal(fake_add_mapping(b, FPID, A0 + 80 * PG, A0 + 88 * PG, BACKEND_MAP_FILE), 0);
	assert_int_equal(fake_add_mapping(b, FPID, A0 + 88 * PG, A0 + 96 * PG, BACKEND_MAP_SHARED), 0);
	assert_int_equal(fake_add_mapping(b, FPID, A0 + PG, A0 + 2 * PG, BACKEND_MAP_ANON), -EEXIST);
	assert_int_equal(fake_add_mapping(b, FPID, A0 + 200 * PG, A0 + 200 * PG, BACKEND_MAP_ANON), -EINVAL);
	assert_int_equal(fake_set_pages(b, FPID, A0, 32, FAKE_SYSTEM, 0), 0);
	return b;
}

static void test_fake_devices(void **state)
{
	Backend *b = fake_setup();
	BackendDevice *d = NULL;
	size_t n = 0;

	assert_int_equal(backend_fake_ops.list_devices(b, &d, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(d[0].name, "hbm");
	assert_int_equal(d[0].node, 1);
	assert_int_equal(d[0].total_bytes, 100 * PG);
	assert_int_equal(d[0].free_bytes, 100 * PG);
	assert_int_equal(d[1].id, 1);
	free(d);
	fake_fail_next(b, FAKE_OP_LIST_DEVICES, -EIO);
	assert_int_equal(backend_fake_ops.list_devices(b, &d, &n), -EIO);
	assert_int_equal(backend_fake_ops.list_devices(b, &d, &n), 0);
	free(d);
	assert_int_equal(fake_calls(b, FAKE_OP_LIST_DEVICES), 3);
	backend_fake_ops.close(b);
}

static void test_fake_move(void **state)
{
	Backend *b = fake_setup();
	BackendTarget hbm = { .id = 0 }, small = { .id = 1 }, sys = { .system = true };
	ResidencyEntry *e = NULL;
	BackendDevice *d = NULL;
	MoveCounts c;
	size_t n = 0;

	/* The anonymous mapping plus 4 pages of the hole. */
	assert_int_equal(backend_fake_ops.move(b, FPID, A0, 68 * PG, &hbm, NULL, NULL, &c), 0);
	assert_int_equal(c.migrated, 32);
	assert_int_equal(c.not_present, 36);
	assert_int_equal(move_counts_total(&c), 68);
	assert_int_equal(fake_page_location(b, FPID, A0), 0);
	assert_int_equal(fake_page_location(b, FPID, A0 + 40 * PG), -ENOENT);

	/* Again: already there. */
	assert_int_equal(backend_fake_ops.move(b, FPID, A0, 32 * PG, &hbm, NULL, NULL, &c), 0);
	assert_int_equal(c.already, 32);
	assert_int_equal(c.migrated, 0);

	/* Whole process: every mapping, no holes; kinds by mapping. */
	assert_int_equal(backend_fake_ops.move(b, FPID, 0, 0, &sys, NULL, NULL, &c), 0);
	assert_int_equal(c.migrated, 32);
	assert_int_equal(c.not_present, 32);
	assert_int_equal(c.file, 8);
	assert_int_equal(c.shared, 8);
	assert_int_equal(c.unmovable, 4);
	assert_int_equal(move_counts_total(&c), 64 + 8 + 8 + 4);

	/* A small device fills up: no_space for the rest, nothing lost. */
	assert_int_equal(backend_fake_ops.move(b, FPID, A0, 32 * PG, &small, NULL, NULL, &c), 0);
	assert_int_equal(c.migrated, 4);
	assert_int_equal(c.no_space, 28);
	assert_int_equal(backend_fake_ops.list_devices(b, &d, &n), 0);
	assert_int_equal(d[1].free_bytes, 0);
	free(d);

	/* Residency: 4 pages on small, 28 in system RAM. */
	assert_int_equal(backend_fake_ops.residency(b, FPID, 0, 0, &e, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(e[0].id, 1);
	assert_false(e[0].system);
	assert_int_equal(e[0].bytes, 4 * PG);
	assert_true(e[1].system);
	assert_int_equal(e[1].bytes, 28 * PG);
	free(e);

	/* Page flags. */
	assert_int_equal(fake_set_pages(b, FPID, A0 + 40 * PG, 1, FAKE_SYSTEM, FAKE_PAGE_PINNED), 0);
	assert_int_equal(fake_set_pages(b, FPID, A0 + 41 * PG, 1, FAKE_SYSTEM, FAKE_PAGE_SHARED), 0);
	assert_int_equal(fake_set_pages(b, FPID, A0 + 42 * PG, 1, FAKE_SYSTEM, FAKE_PAGE_UNMOVABLE), 0);
	assert_int_equal(fake_set_pages(b, FPID, A0 + 43 * PG, 1, FAKE_SYSTEM, FAKE_PAGE_FAIL), 0);
	assert_int_equal(backend_fake_ops.move(b, FPID, A0 + 40 * PG, 4 * PG, &hbm, NULL, NULL, &c), 0);
	assert_int_equal(c.pinned, 1);
	assert_int_equal(c.shared, 1);
	assert_int_equal(c.unmovable, 1);
	assert_int_equal(c.failed, 1);
	assert_int_equal(c.migrated, 0);
	backend_fake_ops.close(b);
}

static void test_fake_errors(void **state)
{
	Backend *b = fake_setup();
	BackendTarget hbm = { .id = 0 };
	ResidencyEntry *e = NULL;
	MoveCounts c;
	size_t n;

	assert_int_equal(backend_fake_ops.move(b, FPID, A0 + 1, PG, &hbm, NULL, NULL, &c), -EINVAL);
	assert_int_equal(backend_fake_ops.move(b, FPID, A0, PG, &(BackendTarget) { .id = 2 }, NULL,
					       NULL, &c), -ENODEV);
	assert_int_equal(backend_fake_ops.move(b, 1, A0, PG, &hbm, NULL, NULL, &c), -ESRCH);
	assert_int_equal(backend_fake_ops.move(b, FPID, 0x1000, PG, &hbm, NULL, NULL, &c), -EFAULT);
	assert_int_equal(backend_fake_ops.residency(b, FPID, 0x1000, PG, &e, &n), -EFAULT);
	/* No mappings: a kernel thread or zombie. */
	assert_int_equal(fake_add_process(b, 2), 0);
	assert_int_equal(backend_fake_ops.move(b, 2, 0, 0, &hbm, NULL, NULL, &c), -ESRCH);
	assert_int_equal(backend_fake_ops.residency(b, 2, 0, 0, &e, &n), -ESRCH);
	fake_fail_next(b, FAKE_OP_MOVE, -EPERM);
	assert_int_equal(backend_fake_ops.move(b, FPID, A0, PG, &hbm, NULL, NULL, &c), -EPERM);
	assert_int_equal(backend_fake_ops.move(b, FPID, A0, PG, &hbm, NULL, NULL, &c), 0);
	assert_int_equal(c.migrated, 1);
	assert_int_equal(fake_calls(b, FAKE_OP_MOVE), 7);
	backend_fake_ops.close(b);
}

typedef struct Prog {
	unsigned calls;
	uint64_t last;
	unsigned cancel_at;
} Prog;

static int on_progress(const MoveCounts *so_far, uint64_t total, void *userdata)
{
	Prog *p = userdata;

	assert_true(move_counts_total(so_far) >= p->last);
	assert_true(move_counts_total(so_far) <= total);
	p->last = move_counts_total(so_far);
	if (++p->calls == p->cancel_at)
		return -ECANCELED;
	return 0;
}

static void test_fake_progress_exit(void **state)
{
	Backend *b = fake_setup();
	BackendTarget hbm = { .id = 0 };
	Prog p = {};
	MoveCounts c;

	fake_set_batch(b, 8, 0);
	assert_int_equal(backend_fake_ops.move(b, FPID, A0, 64 * PG, &hbm, on_progress, &p, &c), 0);
	assert_int_equal(p.calls, 8);
	assert_int_equal(p.last, 64);

	/* Cancelled at the second report: exactly 16 pages done. */
	assert_int_equal(fake_set_pages(b, FPID, A0, 32, FAKE_SYSTEM, 0), 0);
	p = (Prog) { .cancel_at = 2 };
	assert_int_equal(backend_fake_ops.move(b, FPID, A0, 64 * PG, &hbm, on_progress, &p, &c),
			 -ECANCELED);
	assert_int_equal(move_counts_total(&c), 16);
	assert_int_equal(c.migrated, 16);
	assert_int_equal(fake_page_location(b, FPID, A0 + 15 * PG), 0);
	assert_int_equal(fake_page_location(b, FPID, A0 + 16 * PG), FAKE_SYSTEM);

	/* The process exits after 10 more pages: partial and exact. */
	assert_int_equal(fake_exit_after(b, FPID, 10), 0);
	assert_int_equal(backend_fake_ops.move(b, FPID, A0, 64 * PG, &hbm, NULL, NULL, &c),
			 BACKEND_MOVE_EXITED);
	assert_int_equal(c.migrated, 10);
	assert_int_equal(c.already, 16);
	assert_int_equal(move_counts_total(&c), 26);
	assert_int_equal(backend_fake_ops.move(b, FPID, A0, 64 * PG, &hbm, NULL, NULL, &c), -ESRCH);
	assert_int_equal(move_counts_total(&c), 0);
	backend_fake_ops.close(b);
}

static void test_fake_sample_evict(void **state)
{
	Backend *b = fake_setup();
	BackendTarget hbm = { .id = 0 };
	uint8_t bm[8];
	uint64_t young = 0, ev = 0;
	MoveCounts c;

	assert_int_equal(fake_set_pages(b, FPID, A0 + 3 * PG, 2, FAKE_SYSTEM, FAKE_PAGE_YOUNG), 0);
	assert_int_equal(backend_fake_ops.sample(b, FPID, A0, 64 * PG, true, bm, sizeof(bm), &young), 0);
	assert_int_equal(young, 2);
	assert_int_equal(bm[0], 0x18);
	assert_int_equal(backend_fake_ops.sample(b, FPID, A0, 64 * PG, false, bm, sizeof(bm), &young), 0);
	assert_int_equal(young, 0);
	assert_int_equal(backend_fake_ops.sample(b, FPID, A0, 64 * PG, false, bm, 7, &young), -ENOBUFS);
	assert_int_equal(backend_fake_ops.sample(b, FPID, A0, 0, false, bm, 8, &young), -EINVAL);

	assert_int_equal(backend_fake_ops.move(b, FPID, A0, 32 * PG, &hbm, NULL, NULL, &c), 0);
	assert_int_equal(backend_fake_ops.evict(b, 0, 10, &ev), 0);
	assert_int_equal(ev, 10);
	assert_int_equal(backend_fake_ops.evict(b, 0, 100, &ev), 0);
	assert_int_equal(ev, 22);
	assert_int_equal(backend_fake_ops.evict(b, 5, 1, &ev), -ENODEV);
	assert_int_equal(backend_fake_ops.evict(b, 0, 0, &ev), -EINVAL);
	backend_fake_ops.close(b);
}

/* sample_windows(): windows of one call, young per window, unmapped ones; what is refused. */
static void test_fake_sample_windows(void **state)
{
	Backend *b = fake_setup();
	BackendSampleWindow w[BACKEND_SAMPLE_WINDOWS_MAX + 1];

	assert_int_equal(fake_set_pages(b, FPID, A0 + 3 * PG, 2, FAKE_SYSTEM, FAKE_PAGE_YOUNG), 0);
	assert_int_equal(fake_set_pages(b, FPID, A0 + 10 * PG, 1, FAKE_SYSTEM, FAKE_PAGE_YOUNG), 0);
	w[0] = (BackendSampleWindow) { .start = A0, .length = 4 * PG };
	w[1] = (BackendSampleWindow) { .start = A0 + 8 * PG, .length = 8 * PG };
	w[2] = (BackendSampleWindow) { .start = A0 + 64 * PG, .length = 16 * PG, .young = 7 };
	w[3] = (BackendSampleWindow) { .start = A0 + 80 * PG, .length = PG };
	assert_int_equal(backend_fake_ops.sample_windows(b, FPID, w, 4, true), 0);
	assert_int_equal(w[0].young, 1);    /* page 4 is outside the window */
	assert_false(w[0].unmapped);
	assert_int_equal(w[1].young, 1);
	assert_false(w[1].unmapped);
	assert_int_equal(w[2].young, 0);    /* the gap between the mappings */
	assert_true(w[2].unmapped);
	assert_int_equal(w[3].young, 0);
	assert_false(w[3].unmapped);
	/* cleared: only page 4, outside every window, is still young */
	w[0].length = 8 * PG;
	assert_int_equal(backend_fake_ops.sample_windows(b, FPID, w, 2, false), 0);
	assert_int_equal(w[0].young, 1);
	assert_int_equal(w[1].young, 0);
	assert_int_equal(fake_calls(b, FAKE_OP_SAMPLE_WINDOWS), 2);
	assert_int_equal(fake_calls(b, FAKE_OP_SAMPLE), 0);

	/* overlapping, out of order, unaligned, empty, none, too many, too many pages */
	w[1].start = A0 + 7 * PG;
	assert_int_equal(backend_fake_ops.sample_windows(b, FPID, w, 2, false), -EINVAL);
	w[1].start = A0 + 8 * PG;
	assert_int_equal(backend_fake_ops.sample_windows(b, FPID, w, 2, false), 0);
	assert_int_equal(backend_fake_ops.sample_windows(b, FPID, w + 1, 2, false), 0);
	w[3] = w[0];
	assert_int_equal(backend_fake_ops.sample_windows(b, FPID, w + 1, 3, false), -EINVAL);
	w[3] = (BackendSampleWindow) { .start = A0 + 80 * PG + 1, .length = PG };
	assert_int_equal(backend_fake_ops.sample_windows(b, FPID, w + 1, 3, false), -EINVAL);
	w[3] = (BackendSampleWindow) { .start = A0 + 80 * PG, .length = 0 };
	assert_int_equal(backend_fake_ops.sample_windows(b, FPID, w + 1, 3, false), -EINVAL);
	assert_int_equal(backend_fake_ops.sample_windows(b, FPID, w, 0, false), -EINVAL);
	for (size_t i = 0; i <= BACKEND_SAMPLE_WINDOWS_MAX; i++)
		w[i] = (BackendSampleWindow) { .start = A0 + i * PG, .length = PG };
	assert_int_equal(backend_fake_ops.sample_windows(b, FPID, w, BACKEND_SAMPLE_WINDOWS_MAX,
							 false), 0);
	assert_int_equal(backend_fake_ops.sample_windows(b, FPID, w,
							 BACKEND_SAMPLE_WINDOWS_MAX + 1, false),
			 -EINVAL);
	w[0] = (BackendSampleWindow) { .start = A0, .length = BACKEND_SAMPLE_PAGES_MAX * PG };
	assert_int_equal(backend_check_sample_windows(w, 1, PG), 0);
	w[1] = (BackendSampleWindow) { .start = w[0].start + w[0].length, .length = PG };
	assert_int_equal(backend_check_sample_windows(w, 2, PG), -EINVAL);
	/* errors of the whole call */
	w[0] = (BackendSampleWindow) { .start = A0, .length = PG };
	assert_int_equal(backend_fake_ops.sample_windows(b, FPID + 1, w, 1, false), -ESRCH);
	fake_fail_next(b, FAKE_OP_SAMPLE_WINDOWS, -EIO);
	assert_int_equal(backend_fake_ops.sample_windows(b, FPID, w, 1, false), -EIO);
	backend_fake_ops.close(b);
}

static int events_got;
static BackendEvent last_event;

static void on_event(Backend *b, const BackendEvent *ev, void *userdata)
{
	events_got++;
	last_event = *ev;
}

static int setup_absent(Backend *b, void *userdata)
{
	return -ENODEV;
}

static int setup_one(Backend *b, void *userdata)
{
	return fake_add_device(b, userdata, -1, 1) < 0 ? -ENOMEM : 0;
}

static void test_fake_monitor_setup(void **state)
{
	Backend *b = fake_setup();
	BackendEvent ev = { BACKEND_EVENT_WATERMARK_LOW, 0, 123 * PG };
	BackendDevice *d = NULL;
	size_t n = 0;
	int fd = -1;

	assert_int_equal(fake_emit_event(b, &ev), -EBADF);
	assert_int_equal(backend_fake_ops.monitor_open(b, on_event, NULL, &fd), 0);
	assert_true(fd >= 0);
	assert_int_equal(backend_fake_ops.monitor_open(b, on_event, NULL, &fd), -EBUSY);
	assert_int_equal(fake_emit_event(b, &ev), 0);
	ev.type = BACKEND_EVENT_UNLOAD;
	assert_int_equal(fake_emit_event(b, &ev), 0);
	assert_int_equal(backend_fake_ops.monitor_dispatch(b), 0);
	assert_int_equal(events_got, 2);
	assert_int_equal(last_event.type, BACKEND_EVENT_UNLOAD);
	backend_fake_ops.monitor_close(b);
	backend_fake_ops.close(b);

	backend_fake_set_setup(setup_absent, NULL);
	b = NULL;
	assert_int_equal(backend_fake_ops.open(&b, NULL), -ENODEV);
	assert_null(b);
	backend_fake_set_setup(setup_one, (void *) "scripted");
	assert_int_equal(backend_fake_ops.open(&b, NULL), 0);
	assert_int_equal(backend_fake_ops.list_devices(b, &d, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(d[0].name, "scripted");
	free(d);
	backend_fake_ops.close(b);
	backend_fake_set_setup(NULL, NULL);
}

/* ------------------------------------------------------------------ numa, scripted kernel */

/*
 * A scripted move_pages(2): a page table of NK pages from KBASE, each on a node
 * or absent (-1), with per-page quirks. Nodes: 0 and 2 have CPUs, 1 and 3
 * are memory-only; node 3 is nearest to node 2.
 */
#define KPID 777
#define KBASE UINT64_C(0x200000)
#define NK 40000
static int knode[NK];
static int kquirk[NK];           /* a status to report instead of moving */
static unsigned kcalls_query, kcalls_move;
static int kabort_after = -1;    /* the move call stops after this many pages, returns > 0 */
static bool kthp_tail_busy;      /* every odd page reports -EBUSY but is moved */
static int kenomem_after = -1;   /* target full after this many more pages moved */
static bool kgone;
/* migrate_pages(2) script: its return (pages not moved); exit after the n-th call. */
static long kmigrate_ret;
static int kzombie_after = -1;   /* after this call: a zombie (empty numa_maps) */
static int kgone_on = -1;        /* this call finds the process gone (ESRCH) */
static bool kreaped;             /* kzombie_after: /proc/777/numa_maps vanishes instead */

static long kmove_pages(int pid, unsigned long count, void **pages, const int *nodes, int *status,
			int flags)
{

	if (pid != KPID || kgone) {
		errno = ESRCH;
		return -1;
	}
	if (!nodes)
		kcalls_query++;
	else
		kcalls_move++;
	for (unsigned long i = 0; i < count; i++) {
		uint64_t a = (uint64_t) (uintptr_t) pages[i];
		size_t k = (size_t) ((a - KBASE) / PG);

		if (a < KBASE || k >= NK) {
			status[i] = -EFAULT;
			continue;
		}
		if (!nodes) {
			status[i] = knode[k] < 0 ? -ENOENT : knode[k];
			continue;
		}
		if (kabort_after >= 0 && (int) i >= kabort_after) {
			/* The kernel stops; the status of the rest is left unwritten. */
			kabort_after = -1;
			return (long) (count - i);
		}
		if (knode[k] < 0) {
			status[i] = -ENOENT;
			continue;
		}
		if (kquirk[k]) {
			status[i] = kquirk[k];
			continue;
		}
		if (kenomem_after == 0) {
			errno = ENOMEM;
			return -1;
		}
		if (kenomem_after > 0)
			kenomem_after--;
		knode[k] = nodes[i];
		status[i] = (kthp_tail_busy && (k & 1)) ? -EBUSY : nodes[i];
	}
	return 0;
}

/* numa_maps of the scripted process, from knode; the file mapping has 3 pages on kfile_node. */
static char *kroot;
static int kfile_node;
static unsigned kcalls_migrate;

static void write_numa_maps(void)
{
	uint64_t per[4] = {};
	char text[512], *p = text;

	for (size_t i = 0; i < NK; i++)
		if (knode[i] >= 0)
			per[knode[i]]++;
	p += sprintf(p, "%" PRIx64 " default anon=%d", KBASE, NK);
	for (int n = 0; n < 4; n++)
		if (per[n])
			p += sprintf(p, " N%d=%" PRIu64, n, per[n]);
	p += sprintf(p, " kernelpagesize_kB=4\n");
	p += sprintf(p, "%" PRIx64 " default file=/lib/x\\040y.so mapped=3 N%d=3 kernelpagesize_kB=4\n",
		     KBASE + (NK + 2) * PG, kfile_node);
	write_file(kroot, "proc/777/numa_maps", text);
}

/* migrate_pages(2): every page on a node of from goes to the lowest node of to. */
static long kmigrate_pages(int pid, unsigned long maxnode, const unsigned long *from,
			   const unsigned long *to)
{
	int dest = -1;

	if (pid != KPID || kgone) {
		errno = ESRCH;
		return -1;
	}
	kcalls_migrate++;
	if ((int) kcalls_migrate == kgone_on) {
		kgone = true;
		errno = ESRCH;
		return -1;
	}
	for (int n = 0; n < 64 && dest < 0; n++)
		if (to[0] & (1UL << n))
			dest = n;
	assert_true(dest >= 0);
	for (size_t i = 0; i < NK; i++)
		if (knode[i] >= 0 && (from[0] & (1UL << knode[i])) && kquirk[i] == 0)
			knode[i] = dest;
	if (from[0] & (1UL << kfile_node))
		kfile_node = dest;
	write_numa_maps();
	if ((int) kcalls_migrate == kzombie_after) {
		/* Killed: no address space, numa_maps reads empty, move_pages(2) fails. */
		char path[600];

		kgone = true;
		snprintf(path, sizeof(path), "%s/proc/777/numa_maps", kroot);
		if (kreaped)
			assert_int_equal(unlink(path), 0);
		else
			write_file(kroot, "proc/777/numa_maps", "");
	}
	return kmigrate_ret;
}

static char *numa_root(void)
{
	char *root = make_root();
	char maps[512];

	write_file(root, "sys/devices/system/node/has_cpu", "0,2\n");
	write_file(root, "sys/devices/system/node/has_memory", "0-3\n");
	for (int i = 0; i < 4; i++) {
		char p[128], t[256];

		snprintf(p, sizeof(p), "sys/devices/system/node/node%d/meminfo", i);
		snprintf(t, sizeof(t), "Node %d MemTotal: 1048576 kB\nNode %d MemFree: 524288 kB\n", i, i);
		write_file(root, p, t);
		snprintf(p, sizeof(p), "sys/devices/system/node/node%d/distance", i);
		write_file(root, p, i == 0 ? "10 20 20 30\n" : i == 1 ? "20 10 30 40\n" :
				    i == 2 ? "20 30 10 20\n" : "30 40 20 10\n");
	}
	/* anonymous [KBASE, +NK pages), a file mapping of 8 pages after a 2-page hole */
	snprintf(maps, sizeof(maps),
		 "%" PRIx64 "-%" PRIx64 " rw-p 00000000 00:00 0\n"
		 "%" PRIx64 "-%" PRIx64 " r--p 00000000 fd:01 99 /lib/x.so\n",
		 KBASE, KBASE + NK * PG, KBASE + (NK + 2) * PG, KBASE + (NK + 10) * PG);
	write_file(root, "proc/777/maps", maps);
	return root;
}

static void kreset(int node)
{
	for (size_t i = 0; i < NK; i++) {
		knode[i] = node;
		kquirk[i] = 0;
	}
	kcalls_query = kcalls_move = kcalls_migrate = 0;
	kabort_after = kenomem_after = -1;
	kthp_tail_busy = kgone = false;
	kmigrate_ret = 0;
	kzombie_after = kgone_on = -1;
	kreaped = false;
	kfile_node = 0;
	write_numa_maps();
}

static void test_numa_scripted(void **state)
{
	char *root = numa_root();
	BackendTarget to1 = { .id = 1 }, sys = { .system = true };
	BackendDevice *d = NULL;
	Backend *b = NULL;
	MoveCounts c;
	size_t n = 0;

	backend_numa_move_pages_hook = kmove_pages;
	backend_numa_migrate_pages_hook = kmigrate_pages;
	kroot = root;
	assert_int_equal(backend_numa_ops.open(&b, root), 0);
	assert_int_equal(backend_numa_ops.list_devices(b, &d, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(d[0].name, "node1");
	assert_string_equal(d[1].name, "node3");
	assert_int_equal(d[1].total_bytes, UINT64_C(1) << 30);
	free(d);

	/* Everything to node 1: 3 batches of query + move, all migrated. */
	kreset(0);
	knode[5] = -1;
	kquirk[6] = -EACCES;
	kquirk[7] = -EBUSY;    /* a real pin: stays where it is */
	knode[8] = 1;
	assert_int_equal(backend_numa_ops.move(b, KPID, KBASE, NK * PG, &to1, NULL, NULL, &c), 0);
	assert_int_equal(c.migrated, NK - 4);
	assert_int_equal(c.not_present, 1);
	assert_int_equal(c.shared, 1);
	assert_int_equal(c.pinned, 1);
	assert_int_equal(c.already, 1);
	assert_int_equal(move_counts_total(&c), NK);
	assert_int_equal(knode[NK - 1], 1);
	/* 3 batches; the pinned page is asked again MOVE_RETRIES times. */
	assert_int_equal(kcalls_move, 3 + 2);

	/* To system: node-1 pages go to node 0 (nearest CPU node), node-3 pages to node 2. */
	for (size_t i = 0; i < NK; i++)
		kquirk[i] = 0;
	knode[100] = 3;
	knode[101] = 2;
	assert_int_equal(backend_numa_ops.move(b, KPID, KBASE, NK * PG, &sys, NULL, NULL, &c), 0);
	assert_int_equal(knode[0], 0);
	assert_int_equal(knode[100], 2);
	assert_int_equal(knode[101], 2);
	/* Pages 6 and 7 stayed on node 0 (shared, pinned), 101 is on node 2; 5 is absent. */
	assert_int_equal(c.already, 3);
	assert_int_equal(c.not_present, 1);
	assert_int_equal(c.migrated, NK - 4);

	/* The kernel aborts a call part way: the rest is resolved and moved again. */
	kreset(0);
	kabort_after = 100;
	assert_int_equal(backend_numa_ops.move(b, KPID, KBASE, 1000 * PG, &to1, NULL, NULL, &c), 0);
	assert_int_equal(c.migrated, 1000);
	assert_int_equal(move_counts_total(&c), 1000);

	/* THP tails reported -EBUSY but moved with the head: migrated, not pinned. */
	kreset(0);
	kthp_tail_busy = true;
	assert_int_equal(backend_numa_ops.move(b, KPID, KBASE, 512 * PG, &to1, NULL, NULL, &c), 0);
	assert_int_equal(c.migrated, 512);
	assert_int_equal(c.pinned, 0);

	/* Target full: what fits moved, the rest no_space. */
	kreset(0);
	kenomem_after = 300;
	assert_int_equal(backend_numa_ops.move(b, KPID, KBASE, 1000 * PG, &to1, NULL, NULL, &c), 0);
	assert_int_equal(c.migrated, 300);
	assert_int_equal(c.no_space, 700);

	/*
	 * Whole process: one migrate_pages(2), counted from numa_maps; the file
	 * mapping's 3 page-cache pages move too (as with migratepages), its other
	 * 5 pages count as file. No move_pages(2) calls when nothing is left behind.
	 */
	kreset(0);
	knode[5] = -1;
	knode[9] = 1;
	write_numa_maps();
	assert_int_equal(backend_numa_ops.move(b, KPID, 0, 0, &to1, NULL, NULL, &c), 0);
	assert_int_equal(kcalls_migrate, 1);
	assert_int_equal(kcalls_move + kcalls_query, 0);
	assert_int_equal(c.migrated, NK - 2 + 3);
	assert_int_equal(c.already, 1);
	assert_int_equal(c.not_present, 1);
	assert_int_equal(c.file, 5);
	assert_int_equal(move_counts_total(&c), NK + 8);
	assert_int_equal(knode[NK - 1], 1);

	/* A shared page is left behind by migrate_pages(2): move_pages(2) says why. */
	kreset(0);
	kquirk[6] = -EACCES;
	knode[9] = 1;
	write_numa_maps();
	assert_int_equal(backend_numa_ops.move(b, KPID, 0, 0, &to1, NULL, NULL, &c), 0);
	assert_true(kcalls_move > 0);
	assert_int_equal(c.migrated, NK - 2 + 3);
	assert_int_equal(c.already, 1);
	assert_int_equal(c.shared, 1);
	assert_int_equal(c.file, 5);
	assert_int_equal(move_counts_total(&c), NK + 8);

	/*
	 * Killed during the move: migrate_pages(2) ran (and says 2 pages did not
	 * move), then numa_maps is empty (a zombie). Exited part way, with what
	 * the before snapshot and the kernel vouch for: the page already on node
	 * 1, the 2 failed ones; nothing claimed as migrated, the file mapping not
	 * counted. Not -ESRCH with zero counts.
	 */
	kreset(0);
	knode[5] = -1;
	knode[9] = 1;
	write_numa_maps();
	kmigrate_ret = 2;
	kzombie_after = 1;
	assert_int_equal(backend_numa_ops.move(b, KPID, 0, 0, &to1, NULL, NULL, &c),
			 BACKEND_MOVE_EXITED);
	assert_int_equal(kcalls_migrate, 1);
	assert_int_equal(c.migrated, 0);
	assert_int_equal(c.already, 1);
	assert_int_equal(c.failed, 2);
	assert_int_equal(move_counts_total(&c), 3);
	assert_non_null(backend_last_message());
	assert_non_null(strstr(backend_last_message(), "up to"));

	/* Reaped meanwhile: /proc/777 has no numa_maps any more. Same. */
	kreset(0);
	knode[9] = 1;
	write_numa_maps();
	kzombie_after = 1;
	kreaped = true;
	assert_int_equal(backend_numa_ops.move(b, KPID, 0, 0, &to1, NULL, NULL, &c),
			 BACKEND_MOVE_EXITED);
	assert_int_equal(c.migrated, 0);
	assert_int_equal(c.already, 1);
	assert_int_equal(c.failed, 0);
	assert_int_equal(move_counts_total(&c), 1);

	/* Whole process to system, killed between the two calls: exited, not -ESRCH. */
	kreset(1);
	knode[0] = 3;
	knode[1] = 0;
	write_numa_maps();
	kgone_on = 2;
	assert_int_equal(backend_numa_ops.move(b, KPID, 0, 0, &sys, NULL, NULL, &c),
			 BACKEND_MOVE_EXITED);
	assert_int_equal(c.migrated, 0);
	assert_int_equal(c.already, 1);
	assert_int_equal(move_counts_total(&c), 1);
	/* Gone at the first call: nothing was done, -ESRCH. */
	kreset(1);
	knode[0] = 3;
	write_numa_maps();
	kgone_on = 1;
	assert_int_equal(backend_numa_ops.move(b, KPID, 0, 0, &sys, NULL, NULL, &c), -ESRCH);

	/* Whole process to system: node 1 → 0 and node 3 → 2, one call per source node. */
	kreset(1);
	knode[0] = 3;
	knode[1] = 0;
	write_numa_maps();
	assert_int_equal(backend_numa_ops.move(b, KPID, 0, 0, &sys, NULL, NULL, &c), 0);
	assert_int_equal(kcalls_migrate, 2);
	assert_int_equal(knode[0], 2);
	assert_int_equal(knode[2], 0);
	assert_int_equal(c.already, 1);
	assert_int_equal(c.migrated, NK - 1);
	assert_int_equal(c.file, 8);    /* its pages were on node 0 already: not moved */
	kreset(1);

	/* A range over the hole and into the file mapping. */
	assert_int_equal(backend_numa_ops.move(b, KPID, KBASE + (NK - 1) * PG, 5 * PG, &sys, NULL,
					       NULL, &c), 0);
	assert_int_equal(c.migrated, 1);
	assert_int_equal(c.not_present, 2);
	assert_int_equal(c.file, 2);

	/* Residency: per node, system = has CPUs; a range by query, the whole process by numa_maps. */
	{
		ResidencyEntry *e = NULL;

		knode[0] = 3;
		knode[1] = -1;
		kcalls_query = 0;
		assert_int_equal(backend_numa_ops.residency(b, KPID, KBASE, NK * PG, &e, &n), 0);
		assert_true(kcalls_query > 0);
		assert_int_equal(n, 3);
		assert_int_equal(e[0].id, 0);
		assert_true(e[0].system);
		assert_int_equal(e[0].bytes, PG);
		assert_int_equal(e[1].id, 1);
		assert_false(e[1].system);
		assert_int_equal(e[1].bytes, (NK - 3) * PG);
		assert_int_equal(e[2].id, 3);
		assert_int_equal(e[2].bytes, PG);
		free(e);

		/* Whole process: the file mapping's 3 pages (on node 0) count too. */
		write_numa_maps();
		kcalls_query = 0;
		assert_int_equal(backend_numa_ops.residency(b, KPID, 0, 0, &e, &n), 0);
		assert_int_equal(kcalls_query, 0);
		assert_int_equal(n, 3);
		assert_int_equal(e[0].bytes, 4 * PG);
		assert_int_equal(e[1].bytes, (NK - 3) * PG);
		assert_int_equal(e[2].bytes, PG);
		free(e);
	}

	/* The process disappears: before anything, -ESRCH. */
	kgone = true;
	assert_int_equal(backend_numa_ops.move(b, KPID, KBASE, PG, &to1, NULL, NULL, &c), -ESRCH);
	/* Targets. */
	kgone = false;
	assert_int_equal(backend_numa_ops.move(b, KPID, KBASE, PG, &(BackendTarget) { .id = 4 }, NULL,
					       NULL, &c), -ENODEV);
	assert_int_equal(backend_numa_ops.move(b, KPID, KBASE, PG, &(BackendTarget) { .id = -1 }, NULL,
					       NULL, &c), -ENODEV);
	assert_int_equal(backend_numa_ops.move(b, KPID, 0x1000, PG, &to1, NULL, NULL, &c), -EFAULT);
	assert_int_equal(backend_numa_ops.move(b, 778, KBASE, PG, &to1, NULL, NULL, &c), -ESRCH);

	backend_numa_ops.close(b);
	backend_numa_move_pages_hook = NULL;
	backend_numa_migrate_pages_hook = NULL;
	remove_root(root);
}

/* The pagemap pre-pass: frames mapped to nodes by memory blocks (4 pages each here). */
#define KBLOCK 4
static void write_pagemap(bool hide_frames)
{
	char path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/proc/777/pagemap", kroot);
	f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fseeko(f, (off_t) (KBASE / PG * 8), SEEK_SET), 0);
	for (size_t i = 0; i < NK; i++) {
		/* node n: blocks 10n..10n+9, frames 40n..40n+39 */
		uint64_t e = 0, pfn = (uint64_t) knode[i] * 10 * KBLOCK + 1 + i % (9 * KBLOCK);

		if (knode[i] >= 0)
			e = (UINT64_C(1) << 63) | (hide_frames ? 0 : pfn);
		if (kquirk[i] == -EFAULT)
			e = (UINT64_C(1) << 63) | 1000;    /* no block: device memory, absent */
		assert_int_equal(fwrite(&e, sizeof(e), 1, f), 1);
	}
	assert_int_equal(fclose(f), 0);
}

static void test_numa_pagemap(void **state)
{
	char *root = numa_root();
	BackendTarget to1 = { .id = 1 }, sys = { .system = true };
	Backend *b = NULL;
	MoveCounts c;

	write_file(root, "sys/devices/system/memory/block_size_bytes", "4000\n");
	for (int n = 0; n < 4; n++)
		for (int k = 0; k < 10; k++) {
			char rel[128];

			snprintf(rel, sizeof(rel), "sys/devices/system/node/node%d/memory%d", n, n * 10 + k);
			write_file(root, rel, "");
		}
	backend_numa_move_pages_hook = kmove_pages;
	backend_numa_migrate_pages_hook = kmigrate_pages;
	kroot = root;
	assert_int_equal(backend_numa_ops.open(&b, root), 0);

	/* Where pages are comes from pagemap: no query at all when everything moves. */
	kreset(0);
	knode[3] = -1;
	knode[4] = 1;
	write_pagemap(false);
	assert_int_equal(backend_numa_ops.move(b, KPID, KBASE, NK * PG, &to1, NULL, NULL, &c), 0);
	assert_int_equal(kcalls_query, 0);
	assert_int_equal(c.migrated, NK - 2);
	assert_int_equal(c.already, 1);
	assert_int_equal(c.not_present, 1);
	assert_int_equal(knode[NK - 1], 1);

	/* Back to system: node 1 → 0; a frame outside every block counts as absent. */
	kquirk[10] = -EFAULT;
	write_pagemap(false);
	kcalls_query = 0;
	assert_int_equal(backend_numa_ops.move(b, KPID, KBASE, NK * PG, &sys, NULL, NULL, &c), 0);
	assert_int_equal(kcalls_query, 0);
	assert_int_equal(c.migrated, NK - 2);
	assert_int_equal(c.not_present, 2);
	assert_int_equal(knode[10], 1);    /* not touched */

	/* Hidden frames (not CAP_SYS_ADMIN): the query takes over, same counts. */
	kreset(0);
	knode[3] = -1;
	write_pagemap(true);
	assert_int_equal(backend_numa_ops.move(b, KPID, KBASE, NK * PG, &to1, NULL, NULL, &c), 0);
	assert_true(kcalls_query > 0);
	assert_int_equal(c.migrated, NK - 1);
	assert_int_equal(c.not_present, 1);

	backend_numa_ops.close(b);
	backend_numa_move_pages_hook = NULL;
	backend_numa_migrate_pages_hook = NULL;
	remove_root(root);
}

static void test_numa_open(void **state)
{
	Backend *b = NULL;

	assert_int_equal(backend_numa_ops.open(&b, "/nonexistent-root"), -ENODEV);
}

/* The real move_pages(2) on our own buffer, when the host allows it. */
static void test_numa_self(void **state)
{
	const size_t np = 64;
	BackendTarget to0 = { .id = 0 };
	ResidencyEntry *e = NULL;
	Backend *b = NULL;
	MoveCounts c;
	size_t n = 0;
	char *buf;
	int r;

	backend_numa_move_pages_hook = NULL;
	backend_numa_migrate_pages_hook = NULL;
	r = backend_numa_ops.open(&b, "/");
	if (r == -ENODEV)
		skip();
	assert_int_equal(r, 0);
	buf = mmap(NULL, np * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(buf != MAP_FAILED);
	memset(buf, 1, np * PG / 2);
	r = backend_numa_ops.move(b, getpid(), (uintptr_t) buf, np * PG, &to0, NULL, NULL, &c);
	if (r == -EPERM || r == -ENOSYS || r == -ENODEV) {
		/* seccomp in a container, no NUMA node 0 with memory: cannot run here */
		backend_numa_ops.close(b);
		munmap(buf, np * PG);
		skip();
	}
	assert_int_equal(r, 0);
	assert_int_equal(move_counts_total(&c), np);
	assert_int_equal(c.migrated + c.already, np / 2);
	assert_int_equal(c.not_present, np / 2);
	assert_int_equal(backend_numa_ops.residency(b, getpid(), (uintptr_t) buf, np * PG, &e, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(e[0].id, 0);
	assert_int_equal(e[0].bytes, np * PG / 2);
	free(e);
	munmap(buf, np * PG);
	backend_numa_ops.close(b);
}

static void test_cohmem_absent(void **state)
{
	Backend *b = NULL;
	struct stat st;

	/* Only meaningful where cohmem.ko is not loaded (never on the build host). */
	if (stat("/sys/module/cohmem", &st) == 0)
		skip();
	assert_int_equal(backend_cohmem_ops.open(&b, "/"), -ENODEV);
	assert_null(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_account_status),
		cmocka_unit_test(test_check_range),
		cmocka_unit_test(test_errno_from_nl),
		cmocka_unit_test(test_last_message),
		cmocka_unit_test(test_maps_parse_real),
		cmocka_unit_test(test_maps_parse_bad),
		cmocka_unit_test(test_maps_read),
		cmocka_unit_test(test_numa_maps_parse),
		cmocka_unit_test(test_fake_devices),
		cmocka_unit_test(test_fake_move),
		cmocka_unit_test(test_fake_errors),
		cmocka_unit_test(test_fake_progress_exit),
		cmocka_unit_test(test_fake_sample_evict),
		cmocka_unit_test(test_fake_sample_windows),
		cmocka_unit_test(test_fake_monitor_setup),
		cmocka_unit_test(test_numa_scripted),
		cmocka_unit_test(test_numa_pagemap),
		cmocka_unit_test(test_numa_open),
		cmocka_unit_test(test_numa_self),
		cmocka_unit_test(test_cohmem_absent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
