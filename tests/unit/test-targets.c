/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon/policy-spec.c and daemon/targets.c: policy strings, target keys and
 * sets, cgroup2 mounts, Slurm job cgroups, which pids a target covers and who
 * may set its policy, on the fixture trees tests/fixtures/cgroup-* (see their
 * READMEs) and on trees made here.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy.h"
#include "targets.h"
#include "util.h"

#define GIB (UINT64_C(1) << 30)
#define MIB (UINT64_C(1) << 20)
#define JOBS "/system.slice/slurmstepd.scope"

static const char *fixtures(void)
{
	const char *f = getenv("FIXTURES");

	/* Running without the fixtures would test nothing: fail, do not skip. */
	if (!f)
		fail_msg("$FIXTURES is not set (run through make check)");
	return f;
}

static char *fixture_root(const char *name)
{
	char *p;

	assert_true(asprintf(&p, "%s/%s", fixtures(), name) > 0);
	return p;
}

/* ---------------------------------------------------------------- scratch trees */

static char *tree_new(void)
{
	char tmpl[] = "/tmp/coh-test-targets.XXXXXX";

	assert_non_null(mkdtemp(tmpl));
	return strdup(tmpl);
}

static void tree_mkdir(const char *root, const char *rel)
{
	_cleanup_free_ char *cmd = NULL;

	assert_true(asprintf(&cmd, "mkdir -p -- '%s/%s'", root, rel) > 0);
	assert_int_equal(system(cmd), 0);
}

static void tree_write(const char *root, const char *rel, const char *text)
{
	_cleanup_free_ char *p = NULL, *dir = NULL;
	FILE *f;

	dir = strdup(rel);
	assert_non_null(dir);
	if (strrchr(dir, '/')) {
		*strrchr(dir, '/') = '\0';
		tree_mkdir(root, dir);
	}
	assert_true(asprintf(&p, "%s/%s", root, rel) > 0);
	f = fopen(p, "we");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void tree_free(char *root)
{
	_cleanup_free_ char *cmd = NULL;

	assert_true(asprintf(&cmd, "rm -rf -- '%s'", root) > 0);
	assert_int_equal(system(cmd), 0);
	free(root);
}

/* A /proc/PID/stat line with the given state and start time (52 fields, as Linux 6.1). */
static void tree_proc(const char *root, pid_t pid, const char *comm, char state, uid_t ruid,
		      uid_t euid, uint64_t starttime)
{
	char rel[64], text[1024];

	snprintf(rel, sizeof(rel), "proc/%d/stat", (int) pid);
	snprintf(text, sizeof(text),
		 "%d (%s) %c 1 %d %d 0 -1 4194560 120 0 0 0 3 1 0 0 20 0 1 0 %" PRIu64
		 " 8613888 512 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 1 1 1 1 1 1 "
		 "1 0\n", (int) pid, comm, state, (int) pid, (int) pid, starttime);
	tree_write(root, rel, text);
	snprintf(rel, sizeof(rel), "proc/%d/status", (int) pid);
	snprintf(text, sizeof(text),
		 "Name:\t%s\nState:\t%c (x)\nTgid:\t%d\nPid:\t%d\nUid:\t%u\t%u\t%u\t%u\n"
		 "VmSize:\t1 kB\n", comm, state, (int) pid, (int) pid, ruid, euid, euid, euid);
	tree_write(root, rel, text);
}

/* ---------------------------------------------------------------- policy strings */

#define SPEC(k, d, q, p) { .kind = POLICY_KIND_##k, .device = d, .quota = (q), .priority = (p) }
#define NOQ POLICY_QUOTA_NONE

static void test_spec_parse(void **state)
{
	static const struct {
		const char *text;
		PolicySpec spec;
		const char *canonical;
	} good[] = {
		{ "system", SPEC(SYSTEM, "", NOQ, 0), "system" },
		{ "bind:gpu0", SPEC(BIND, "gpu0", NOQ, 0), "bind:gpu0" },
		{ "hot:gpu0", SPEC(HOT, "gpu0", NOQ, 0), "hot:gpu0" },
		{ "hot:gpu0,quota=2G,priority=10", SPEC(HOT, "gpu0", 2 * GIB, 10),
		  "hot:gpu0,quota=2G,priority=10" },
		/* Options in any order; the canonical form puts quota first. */
		{ "hot:gpu0,priority=10,quota=2G", SPEC(HOT, "gpu0", 2 * GIB, 10),
		  "hot:gpu0,quota=2G,priority=10" },
		{ "bind:cxl.mem-1_a,quota=512M", SPEC(BIND, "cxl.mem-1_a", 512 * MIB, 0),
		  "bind:cxl.mem-1_a,quota=512M" },
		{ "bind:hbm,quota=1.5G", SPEC(BIND, "hbm", 1536 * MIB, 0), "bind:hbm,quota=1536M" },
		{ "bind:hbm,quota=1GiB", SPEC(BIND, "hbm", GIB, 0), "bind:hbm,quota=1G" },
		{ "bind:hbm,quota=4096", SPEC(BIND, "hbm", 4096, 0), "bind:hbm,quota=4K" },
		{ "bind:hbm,quota=1", SPEC(BIND, "hbm", 1, 0), "bind:hbm,quota=1" },
		{ "hot:x,priority=-1000", SPEC(HOT, "x", NOQ, -1000), "hot:x,priority=-1000" },
		{ "hot:x,priority=1000", SPEC(HOT, "x", NOQ, 1000), "hot:x,priority=1000" },
		/* priority 0 is the default and not written. */
		{ "hot:x,priority=0", SPEC(HOT, "x", NOQ, 0), "hot:x" },
		/* 63 characters: the longest device name conf accepts. */
		{ "bind:abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz01234567890",
		  SPEC(BIND, "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz01234567890", NOQ, 0),
		  "bind:abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz01234567890" },
	};
	static const struct {
		const char *text, *error;
	} bad[] = {
		{ "", "empty policy" },
		{ "System", "unknown policy kind" },
		{ "systemd", "unknown policy kind" },
		{ "cold:gpu0", "unknown policy kind" },
		{ " hot:gpu0", "unknown policy kind" },
		{ "hot", "missing device name" },
		{ "hot:", "missing device name" },
		{ "bind", "missing device name" },
		{ "bind:,quota=1G", "missing device name" },
		{ "hot:gpu 0", "invalid device name" },
		{ "hot:gpu0 ", "invalid device name" },
		{ "hot:gpu/0", "invalid device name" },
		{ "hot:gpu:0", "invalid device name" },
		{ "bind:abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz012345678901", "invalid device name" },
		{ "system,quota=1G", "quota does not apply to system" },
		{ "system,priority=1", "priority does not apply to system" },
		{ "hot:gpu0,", "empty option" },
		{ "hot:gpu0,,quota=1G", "empty option" },
		{ "hot:gpu0,quota=", "bad quota" },
		{ "hot:gpu0,quota=lots", "bad quota" },
		{ "hot:gpu0,quota=-1G", "bad quota" },
		{ "hot:gpu0,quota= 1G", "bad quota" },
		{ "hot:gpu0,quota=1G ", "bad quota" },
		{ "hot:gpu0,quota=1.5", "bad quota" },
		{ "hot:gpu0,quota=0", "quota must be more than 0" },
		{ "hot:gpu0,quota=16E", "quota too large" },
		{ "hot:gpu0,quota=18446744073709551615", "quota too large" },
		{ "hot:gpu0,quota=1G,quota=2G", "quota given twice" },
		{ "hot:gpu0,priority=1,priority=1", "priority given twice" },
		{ "hot:gpu0,priority=", "bad priority" },
		{ "hot:gpu0,priority=high", "bad priority" },
		{ "hot:gpu0,priority=+5", "bad priority" },
		{ "hot:gpu0,priority=1.5", "bad priority" },
		{ "hot:gpu0,priority=1001", "priority out of range" },
		{ "hot:gpu0,priority=-1001", "priority out of range" },
		{ "hot:gpu0,priority=99999999999", "priority out of range" },
		{ "hot:gpu0,Quota=1G", "unknown option" },
		{ "hot:gpu0,quota", "unknown option" },
		{ "hot:gpu0,rate=1G", "unknown option" },
		{ "hot:gpu0,quota=1Gxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
		  "option too long" },
	};

	for (size_t i = 0; i < ELEMENTSOF(good); i++) {
		PolicySpec p;
		const char *err = "unset";
		char buf[128];

		memset(&p, 0x5a, sizeof(p));
		if (policy_spec_parse(good[i].text, &p, &err) != 0)
			fail_msg("\"%s\": rejected: %s", good[i].text, err);
		assert_null(err);
		assert_int_equal(p.kind, good[i].spec.kind);
		assert_string_equal(p.device, good[i].spec.device);
		assert_int_equal(p.quota, good[i].spec.quota);
		assert_int_equal(p.priority, good[i].spec.priority);
		assert_string_equal(policy_spec_format(&p, buf, sizeof(buf)), good[i].canonical);
	}

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		PolicySpec p, poison;
		const char *err = NULL;

		memset(&p, 0x5a, sizeof(p));
		poison = p;
		if (policy_spec_parse(bad[i].text, &p, &err) != -EINVAL)
			fail_msg("\"%s\": accepted", bad[i].text);
		if (!err || !strstr(err, bad[i].error))
			fail_msg("\"%s\": error \"%s\", want \"%s\"", bad[i].text, err ?: "(null)",
				 bad[i].error);
		/* Nothing is half-written on failure. */
		assert_memory_equal(&p, &poison, sizeof(p));
		/* ret_error is optional. */
		assert_int_equal(policy_spec_parse(bad[i].text, &p, NULL), -EINVAL);
	}
	assert_int_equal(policy_spec_parse(NULL, &(PolicySpec) {}, NULL), -EINVAL);
}

/* The canonical string parses back to the same spec, and is its own canonical form. */
static void test_spec_round_trip(void **state)
{
	static const uint64_t quotas[] = {
		1, 4095, 4096, 1536 * MIB, 3 * GIB, (UINT64_C(1) << 60) * 15, UINT64_MAX - 1, NOQ,
	};
	static const int prios[] = { TARGET_PRIORITY_MIN, -1, 0, 7, TARGET_PRIORITY_MAX };
	static const char *const devs[] = { "gpu0", "a", "cxl.mem-1_a" };

	for (PolicyKind k = POLICY_KIND_BIND; k <= POLICY_KIND_HOT; k++)
		for (size_t d = 0; d < ELEMENTSOF(devs); d++)
			for (size_t q = 0; q < ELEMENTSOF(quotas); q++)
				for (size_t i = 0; i < ELEMENTSOF(prios); i++) {
					PolicySpec p = { .kind = k, .quota = quotas[q],
							 .priority = prios[i] }, back;
					char buf[128], again[128];
					const char *err;

					strcpy(p.device, devs[d]);
					policy_spec_format(&p, buf, sizeof(buf));
					if (policy_spec_parse(buf, &back, &err) < 0)
						fail_msg("\"%s\" does not parse: %s", buf, err);
					assert_int_equal(back.kind, p.kind);
					assert_string_equal(back.device, p.device);
					assert_int_equal(back.quota, p.quota);
					assert_int_equal(back.priority, p.priority);
					assert_string_equal(policy_spec_format(&back, again,
									       sizeof(again)), buf);
				}

	/* The longest canonical form fits the documented 128 bytes. */
	{
		PolicySpec p = { .kind = POLICY_KIND_HOT, .quota = UINT64_MAX - 1,
				 .priority = TARGET_PRIORITY_MIN };
		char buf[128];

		memset(p.device, 'x', POLICY_DEVICE_NAME_MAX);
		p.device[POLICY_DEVICE_NAME_MAX] = '\0';
		policy_spec_format(&p, buf, sizeof(buf));
		assert_true(strlen(buf) < sizeof(buf) - 1);
		assert_true(endswith(buf, ",priority=-1000"));
	}
}

/* ---------------------------------------------------------------- keys and sets */

static void test_kind_strings(void **state)
{
	for (TargetKind k = 0; k < _TARGET_KIND_MAX; k++)
		assert_int_equal(target_kind_from_string(target_kind_to_string(k)), k);
	assert_string_equal(target_kind_to_string(TARGET_CGROUP), "cgroup");
	assert_null(target_kind_to_string(_TARGET_KIND_MAX));
	assert_int_equal(target_kind_from_string("Pid"), -EINVAL);
	assert_int_equal(target_kind_from_string(""), -EINVAL);
	assert_int_equal(target_kind_from_string(NULL), -EINVAL);
}

static void test_cgroup_normalize(void **state)
{
	static const struct {
		const char *in, *out;
	} t[] = {
		{ "/", "/" },
		{ "//", "/" },
		{ "a", "/a" },
		{ "/a/b", "/a/b" },
		{ "a/b/", "/a/b" },
		{ "/a//b", "/a/b" },
		{ "///system.slice//foo.service///", "/system.slice/foo.service" },
		{ "/a/.b/c..", "/a/.b/c.." },
		{ "/user.slice/user-1000.slice/user@1000.service", "/user.slice/user-1000.slice/user@1000.service" },
		{ "/with space", "/with space" },
		{ "", NULL },
		{ ".", NULL },
		{ "/a/./b", NULL },
		{ "/a/../b", NULL },
		{ "..", NULL },
		{ "/a/b/..", NULL },
	};
	char *r;

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		r = NULL;
		if (!t[i].out) {
			if (cgroup_path_normalize(t[i].in, &r) != -EINVAL)
				fail_msg("\"%s\" accepted as \"%s\"", t[i].in, r);
			continue;
		}
		assert_int_equal(cgroup_path_normalize(t[i].in, &r), 0);
		assert_string_equal(r, t[i].out);
		free(r);
	}
	assert_int_equal(cgroup_path_normalize(NULL, &r), -EINVAL);

	/* A component longer than NAME_MAX, a path longer than PATH_MAX. */
	{
		char name[NAME_MAX + 3], path[PATH_MAX + 2];

		memset(name, 'n', sizeof(name) - 1);
		name[0] = '/';
		name[NAME_MAX + 1] = '\0';
		assert_int_equal(cgroup_path_normalize(name, &r), 0);
		free(r);
		name[NAME_MAX + 1] = 'n';
		name[NAME_MAX + 2] = '\0';
		assert_int_equal(cgroup_path_normalize(name, &r), -EINVAL);

		for (size_t i = 0; i < sizeof(path) - 1; i++)
			path[i] = i % 8 == 0 ? '/' : 'p';
		path[sizeof(path) - 1] = '\0';
		assert_int_equal(cgroup_path_normalize(path, &r), -EINVAL);
	}
}

static void test_key_equal(void **state)
{
	TargetKey pid1 = { .kind = TARGET_PID, .pid = 10, .starttime = 100 };
	TargetKey pid1b = { .kind = TARGET_PID, .pid = 10, .starttime = 100, .job = 5 };
	TargetKey pid1r = { .kind = TARGET_PID, .pid = 10, .starttime = 101 };   /* recycled */
	TargetKey cg1 = { .kind = TARGET_CGROUP, .cgroup = (char *) "/a/b" };
	TargetKey cg1b = { .kind = TARGET_CGROUP, .cgroup = (char *) "/a/b" };
	TargetKey cg2 = { .kind = TARGET_CGROUP, .cgroup = (char *) "/a" };
	TargetKey job = { .kind = TARGET_JOB, .job = 10 };
	TargetKey copy;
	char buf[TARGET_KEY_STRING_MAX], tiny[6];

	assert_true(target_key_equal(&pid1, &pid1b));   /* fields of other kinds do not count */
	assert_false(target_key_equal(&pid1, &pid1r));
	assert_false(target_key_equal(&pid1, &job));    /* same number, other kind */
	assert_true(target_key_equal(&cg1, &cg1b));
	assert_false(target_key_equal(&cg1, &cg2));

	assert_int_equal(target_key_copy(&copy, &cg1), 0);
	assert_ptr_not_equal(copy.cgroup, cg1.cgroup);
	assert_true(target_key_equal(&copy, &cg1));
	target_key_done(&copy);
	assert_null(copy.cgroup);

	assert_string_equal(target_key_format(&pid1, buf, sizeof(buf)), "pid:10");
	assert_string_equal(target_key_format(&cg1, buf, sizeof(buf)), "cgroup:/a/b");
	assert_string_equal(target_key_format(&job, buf, sizeof(buf)), "job:10");
	assert_string_equal(target_key_format(&cg1, tiny, sizeof(tiny)), "cgrou");
}

static void test_set(void **state)
{
	TargetSet s;
	TargetKey a = { .kind = TARGET_PID, .pid = 10, .starttime = 100 };
	TargetKey b = { .kind = TARGET_CGROUP, .cgroup = (char *) "/x" };
	TargetKey c = { .kind = TARGET_JOB, .job = 42 };
	PolicySpec hot = SPEC(HOT, "gpu0", GIB, 5), sys = SPEC(SYSTEM, "", NOQ, 0);
	uint64_t id, ida, idb;
	Target *t;

	target_set_init(&s);
	assert_int_equal(target_set_put(&s, &a, 1000, &hot, 111, &ida), 0);
	assert_int_equal(target_set_put(&s, &b, 0, &sys, 222, &idb), 0);
	assert_int_equal(ida, 1);
	assert_int_equal(idb, 2);
	assert_int_equal(s.n_targets, 2);

	/* The key is copied. */
	t = target_set_find(&s, &b);
	assert_non_null(t);
	assert_ptr_not_equal(t->key.cgroup, b.cgroup);
	assert_int_equal(t->owner, 0);
	assert_int_equal(t->set_realtime_usec, 222);

	/* Replacing keeps the id and the place, takes the new owner, policy and time. */
	assert_int_equal(target_set_put(&s, &b, 1000, &hot, 333, &id), 0);
	assert_int_equal(id, idb);
	assert_int_equal(s.n_targets, 2);
	t = target_set_find_id(&s, idb);
	assert_ptr_equal(t, &s.targets[1]);
	assert_int_equal(t->owner, 1000);
	assert_int_equal(t->policy.kind, POLICY_KIND_HOT);
	assert_int_equal(t->set_realtime_usec, 333);

	/* Removing; ids are not reused. */
	assert_int_equal(target_set_remove(&s, &a), 0);
	assert_int_equal(target_set_remove(&s, &a), -ENOENT);
	assert_null(target_set_find_id(&s, ida));
	assert_int_equal(s.n_targets, 1);
	assert_int_equal(target_set_put(&s, &a, 1000, &hot, 444, &id), 0);
	assert_int_equal(id, 3);
	assert_int_equal(target_set_put(&s, &c, 0, &hot, 555, NULL), 0);
	assert_int_equal(s.n_targets, 3);
	assert_int_equal(target_set_remove_id(&s, idb), 0);
	assert_int_equal(target_set_remove_id(&s, idb), -ENOENT);
	assert_int_equal(target_set_remove_id(&s, 99), -ENOENT);
	assert_null(target_set_find(&s, &b));
	/* The rest keep their order. */
	assert_int_equal(s.n_targets, 2);
	assert_int_equal(s.targets[0].id, 3);
	assert_int_equal(s.targets[1].id, 4);
	assert_true(target_key_equal(&s.targets[1].key, &c));

	target_set_done(&s);
	assert_int_equal(s.n_targets, 0);
	assert_null(s.targets);
	assert_int_equal(target_set_remove(&s, &c), -ENOENT);
	target_set_done(&s);
}

/* ---------------------------------------------------------------- mountinfo, procfs */

static void test_cgroup2_mount(void **state)
{
	static const struct {
		const char *fixture, *mount;
		int r;
	} t[] = {
		{ "cgroup-v2", "/sys/fs/cgroup", 0 },
		{ "cgroup-hybrid", "/sys/fs/cgroup/unified", 0 },
		{ "cgroup-v1", NULL, -ENOENT },
		{ "one-node", NULL, -ENOENT },        /* no proc/self/mountinfo at all */
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		_cleanup_free_ char *root = fixture_root(t[i].fixture), *m = NULL;

		assert_int_equal(cgroup2_find_mount(root, &m), t[i].r);
		if (t[i].mount)
			assert_string_equal(m, t[i].mount);
	}

	/* Escaped mount points; malformed lines and lookalikes are passed over. */
	{
		char *root = tree_new();
		_cleanup_free_ char *m = NULL;

		tree_write(root, "proc/self/mountinfo",
			   "garbage\n"
			   "\n"
			   "40 31 0:37 / /no/separator cgroup2 cgroup2 rw\n"
			   "41 31 0:38 / relative rw - cgroup2 cgroup2 rw\n"
			   "42 31 0:39 / /sys/fs/cgroup2-like rw - cgroup2x cgroup2 rw\n"
			   "43 31 0:40 / /run/my\\040cgroup\\134x rw,relatime shared:5 master:1 - cgroup2 none rw\n"
			   "44 31 0:41 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
		assert_int_equal(cgroup2_find_mount(root, &m), 0);
		assert_string_equal(m, "/run/my cgroup\\x");
		tree_free(root);
	}
}

static void test_pid_read(void **state)
{
	_cleanup_free_ char *root = fixture_root("cgroup-v2");
	char *tree;
	uint64_t st;
	uid_t uid;

	assert_int_equal(pid_read_starttime(root, 921, &st), 0);
	assert_int_equal(st, 20105);
	/* comm with spaces and parentheses. */
	assert_int_equal(pid_read_starttime(root, 1201, &st), 0);
	assert_int_equal(st, 41001);
	assert_int_equal(pid_read_uid(root, 1201, &uid), 0);
	assert_int_equal(uid, 1000);
	assert_int_equal(pid_read_uid(root, 1100, &uid), 0);
	assert_int_equal(uid, 0);
	assert_int_equal(pid_read_starttime(root, 4242, &st), -ESRCH);
	assert_int_equal(pid_read_uid(root, 4242, &uid), -ESRCH);
	assert_int_equal(pid_read_starttime(root, 0, &st), -ESRCH);
	assert_int_equal(pid_read_starttime(root, -1, &st), -ESRCH);

	/* This process, on the real /proc. */
	assert_int_equal(pid_read_starttime("/", getpid(), &st), 0);
	assert_true(st > 0);
	assert_int_equal(pid_read_uid(NULL, getpid(), &uid), 0);
	assert_int_equal(uid, getuid());

	tree = tree_new();
	tree_write(tree, "proc/5/stat", "5 (short) S 1 5 5\n");
	tree_write(tree, "proc/6/stat", "6 no-parens S 1 5 5 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 7 0\n");
	tree_write(tree, "proc/7/stat", "7 (x) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 x7 0\n");
	tree_write(tree, "proc/8/stat", "8 (x) S 1 8 8 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 99999999999999999999 0\n");
	tree_write(tree, "proc/9/stat", "9 (x) S 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 0 0 0 0 77");
	tree_write(tree, "proc/9/status", "State:\tS\nTgid:\t9\n");
	assert_int_equal(pid_read_starttime(tree, 5, &st), -EBADMSG);
	assert_int_equal(pid_read_starttime(tree, 6, &st), -EBADMSG);
	assert_int_equal(pid_read_starttime(tree, 7, &st), -EBADMSG);
	assert_int_equal(pid_read_starttime(tree, 8, &st), -EBADMSG);
	assert_int_equal(pid_read_starttime(tree, 9, &st), 0);     /* no newline at the end */
	assert_int_equal(st, 77);
	assert_int_equal(pid_read_uid(tree, 9, &uid), -EBADMSG);
	tree_free(tree);
}

/* ---------------------------------------------------------------- Slurm jobs */

static void test_find_job(void **state)
{
	static const struct {
		uint64_t job;
		const char *cgroup;
	} t[] = {
		{ 42, JOBS "/job_42" },
		{ 420, JOBS "/job_420" },
		{ 7, JOBS "/job_7" },
		{ 4, NULL },            /* a prefix of 42 and 420 */
		{ 43, NULL },           /* job_043 is not Slurm's */
		{ 97, "/deep/a/b/c/d/job_97" },
		{ 99, NULL },           /* deeper than the scan goes */
		{ 5, NULL },
	};
	_cleanup_free_ char *root = fixture_root("cgroup-v2"), *hybrid = fixture_root("cgroup-hybrid");

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		_cleanup_free_ char *cg = NULL;
		int r = cgroup_find_job(root, "/sys/fs/cgroup", t[i].job, &cg);

		if (!t[i].cgroup) {
			if (r != -ENOENT)
				fail_msg("job %" PRIu64 ": %d %s", t[i].job, r, cg ?: "");
			continue;
		}
		if (r != 0)
			fail_msg("job %" PRIu64 ": %d", t[i].job, r);
		assert_string_equal(cg, t[i].cgroup);
	}

	/* A mount that is not there, none at all. */
	{
		char *cg = NULL;

		assert_int_equal(cgroup_find_job(root, "/sys/fs/nothing", 42, &cg), -ENOENT);
		assert_int_equal(cgroup_find_job(hybrid, "/sys/fs/cgroup/unified", 42, &cg), -ENOENT);
		assert_int_equal(cgroup_find_job(root, NULL, 42, &cg), -EINVAL);
		assert_null(cg);
	}

	/* The layout of multiple slurmd on one host (NodeName in the scope's name). */
	{
		char *tree = tree_new();
		_cleanup_free_ char *cg = NULL;

		tree_write(tree, "cg/system.slice/node1_slurmstepd.scope/job_12/step_0/user/task_0/cgroup.procs", "");
		assert_int_equal(cgroup_find_job(tree, "/cg", 12, &cg), 0);
		assert_string_equal(cg, "/system.slice/node1_slurmstepd.scope/job_12");
		tree_free(tree);
	}
}

/* ---------------------------------------------------------------- resolving */

#define PIDS(...) ((const pid_t[]) { __VA_ARGS__ }), ELEMENTSOF(((const pid_t[]) { __VA_ARGS__ }))
#define NO_PIDS NULL, 0

static void check_resolve(const char *root, const char *mount, const TargetKey *key, int want_r,
			  const pid_t *want, size_t n_want, const char *want_cgroup)
{
	_cleanup_free_ pid_t *pids = NULL;
	_cleanup_free_ char *cg = NULL;
	size_t n = 0;
	char name[TARGET_KEY_STRING_MAX];
	int r;

	r = target_resolve_pids(root, mount, key, &pids, &n, &cg);
	target_key_format(key, name, sizeof(name));
	if (r != want_r)
		fail_msg("%s: got %d, want %d", name, r, want_r);
	if (r < 0)
		return;
	if (n != n_want)
		fail_msg("%s: %zu pids, want %zu", name, n, n_want);
	for (size_t i = 0; i < n; i++)
		if (pids[i] != want[i])
			fail_msg("%s: pid %zu is %d, want %d", name, i, (int) pids[i], (int) want[i]);
	if (want_cgroup)
		assert_string_equal(cg, want_cgroup);
	else
		assert_null(cg);
}

static void test_resolve_fixture(void **state)
{
	_cleanup_free_ char *root = fixture_root("cgroup-v2"), *hybrid = fixture_root("cgroup-hybrid");
	const char *m = "/sys/fs/cgroup";
	TargetKey k;

	/* pid: alive with its start time; recycled, zombie, gone. */
	k = (TargetKey) { .kind = TARGET_PID, .pid = 921, .starttime = 20105 };
	check_resolve(root, NULL, &k, 0, PIDS(921), NULL);
	k.starttime = 20104;
	check_resolve(root, NULL, &k, -ESRCH, NO_PIDS, NULL);
	k = (TargetKey) { .kind = TARGET_PID, .pid = 1500, .starttime = 50000 };
	check_resolve(root, NULL, &k, -ESRCH, NO_PIDS, NULL);
	k = (TargetKey) { .kind = TARGET_PID, .pid = 4242, .starttime = 1 };
	check_resolve(root, NULL, &k, -ESRCH, NO_PIDS, NULL);

	/* cgroup: itself and every descendant, sorted. */
	k = (TargetKey) { .kind = TARGET_CGROUP, .cgroup = (char *) JOBS "/job_42" };
	check_resolve(root, m, &k, 0, PIDS(900, 901, 910, 911, 920, 921, 922), NULL);
	k.cgroup = (char *) JOBS "/job_42/step_0/user";
	check_resolve(root, m, &k, 0, PIDS(921, 922), NULL);
	k.cgroup = (char *) "/user.slice";
	check_resolve(root, m, &k, 0, PIDS(1100, 1101, 1150, 1200, 1201), NULL);
	k.cgroup = (char *) "/system.slice/idle.service";
	check_resolve(root, m, &k, 0, NO_PIDS, NULL);
	k.cgroup = (char *) "/system.slice/gone.service";
	check_resolve(root, m, &k, -ENOENT, NO_PIDS, NULL);
	k.cgroup = (char *) "/system.slice/idle.service/cgroup.procs";   /* a file, not a cgroup */
	check_resolve(root, m, &k, -ENOENT, NO_PIDS, NULL);
	check_resolve(root, NULL, &k, -EINVAL, NO_PIDS, NULL);
	k.cgroup = (char *) "/system.slice/foo.service";
	check_resolve(hybrid, "/sys/fs/cgroup/unified", &k, 0, PIDS(300, 301), NULL);

	/* job: its cgroup found by scanning; none yet is no pids, not an error. */
	k = (TargetKey) { .kind = TARGET_JOB, .job = 42 };
	check_resolve(root, m, &k, 0, PIDS(900, 901, 910, 911, 920, 921, 922), JOBS "/job_42");
	k.job = 420;
	check_resolve(root, m, &k, 0, PIDS(950, 951), JOBS "/job_420");
	k.job = 5;
	check_resolve(root, m, &k, 0, NO_PIDS, NULL);
	/* No cgroup2 mount: no slurmstepd of job 5 in the fixture either. */
	check_resolve(root, NULL, &k, 0, NO_PIDS, NULL);
}

/* A process with a parent, a uid and a command line (NUL-separated args as one string). */
static void tree_proc_tree(const char *root, pid_t pid, pid_t ppid, char state, uid_t uid,
			   const char *cmdline, size_t cmdline_size)
{
	char rel[64], text[1024];
	FILE *f;

	tree_proc(root, pid, "x", state, uid, uid, 100 + pid);
	snprintf(rel, sizeof(rel), "proc/%d/stat", (int) pid);
	snprintf(text, sizeof(text),
		 "%d (x) %c %d %d %d 0 -1 4194560 120 0 0 0 3 1 0 0 20 0 1 0 %d"
		 " 8613888 512 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 1 1 1 1 1 1 "
		 "1 0\n", (int) pid, state, (int) ppid, (int) pid, (int) pid, 100 + (int) pid);
	tree_write(root, rel, text);
	snprintf(text, sizeof(text), "%s/proc/%d/cmdline", root, (int) pid);
	assert_non_null(f = fopen(text, "we"));
	assert_int_equal(fwrite(cmdline, 1, cmdline_size, f), cmdline_size);
	assert_int_equal(fclose(f), 0);
}

#define CMDLINE(s) s, sizeof(s) - 1

/*
 * Nodes without job cgroups (proctrack/linuxproc): the job is every descendant
 * of its root-owned slurmstepd processes, found by their title.
 */
static void test_resolve_slurmstepd(void **state)
{
	char *tree = tree_new();
	TargetKey k = { .kind = TARGET_JOB, .job = 42 };

	tree_write(tree, "proc/self/mountinfo", "");
	tree_proc_tree(tree, 1, 0, 'S', 0, CMDLINE("init\0"));
	tree_proc_tree(tree, 100, 1, 'S', 0, CMDLINE("/usr/sbin/slurmd\0-D\0"));
	/* job 42: the extern and the step 0 stepd; a task forked a child with a lower pid. */
	tree_proc_tree(tree, 200, 1, 'S', 0, CMDLINE("slurmstepd: [42.extern]\0\0\0\0"));
	tree_proc_tree(tree, 201, 200, 'S', 0, CMDLINE("sleep\0100000000\0"));
	tree_proc_tree(tree, 300, 1, 'S', 0, CMDLINE("slurmstepd: [42.0]      "));
	tree_proc_tree(tree, 310, 300, 'R', 1000, CMDLINE("./app\0"));
	tree_proc_tree(tree, 150, 310, 'S', 1000, CMDLINE("./helper\0"));
	tree_proc_tree(tree, 151, 150, 'Z', 1000, CMDLINE(""));
	/* job 420's stepd and its task: not job 42's. */
	tree_proc_tree(tree, 400, 1, 'S', 0, CMDLINE("slurmstepd: [420.0]\0"));
	tree_proc_tree(tree, 410, 400, 'S', 1000, CMDLINE("./other\0"));
	/* A user's process claiming to be job 42's stepd: its children are not the job's. */
	tree_proc_tree(tree, 500, 1, 'S', 1000, CMDLINE("slurmstepd: [42.0]\0"));
	tree_proc_tree(tree, 510, 500, 'S', 1000, CMDLINE("./forged\0"));

	check_resolve(tree, NULL, &k, 0, PIDS(150, 201, 310), NULL);
	/* A cgroup2 mount without job_42 below it falls back the same way. */
	tree_mkdir(tree, "cg");
	check_resolve(tree, "/cg", &k, 0, PIDS(150, 201, 310), NULL);
	k.job = 420;
	check_resolve(tree, NULL, &k, 0, PIDS(410), NULL);
	k.job = 4;
	check_resolve(tree, NULL, &k, 0, NO_PIDS, NULL);

	/* Owner: every task of the job runs as the user; slurmstepd (root) does not count. */
	k.job = 420;
	assert_int_equal(target_check_owner(tree, NULL, &k, 1000), 0);
	assert_int_equal(target_check_owner(tree, NULL, &k, 1001), -EPERM);
	k.job = 4;
	assert_int_equal(target_check_owner(tree, NULL, &k, 1000), -ENOENT);
	/* Job 42's extern step runs root's sleep: not all of it is the user's. */
	k.job = 42;
	assert_int_equal(target_check_owner(tree, NULL, &k, 1000), -EPERM);
	assert_int_equal(target_check_owner(tree, NULL, &k, 0), 0);
	tree_free(tree);
}

static void test_resolve_tree(void **state)
{
	char *tree = tree_new();
	TargetKey k = { .kind = TARGET_CGROUP, .cgroup = (char *) "/t" };
	char path[PATH_MAX];

	/* A pid listed twice (moved while we read), unsorted input. */
	tree_write(tree, "cg/t/cgroup.procs", "30\n10\n");
	tree_write(tree, "cg/t/a/cgroup.procs", "20\n10\n");
	tree_write(tree, "cg/t/a/b/cgroup.procs", "5");
	tree_write(tree, "cg/t/.hidden/cgroup.procs", "99\n");
	check_resolve(tree, "/cg", &k, 0, PIDS(5, 10, 20, 30), NULL);

	/* A cgroup without cgroup.procs below the target (removed meanwhile) is empty... */
	tree_mkdir(tree, "cg/t/a/gone");
	check_resolve(tree, "/cg", &k, 0, PIDS(5, 10, 20, 30), NULL);
	/* ...at the target itself it is an error. */
	k.cgroup = (char *) "/t/a/gone";
	check_resolve(tree, "/cg", &k, -ENOENT, NO_PIDS, NULL);

	/* Junk in cgroup.procs is not silently skipped. */
	k.cgroup = (char *) "/t";
	tree_write(tree, "cg/t/a/b/cgroup.procs", "5\nfive\n");
	check_resolve(tree, "/cg", &k, -EBADMSG, NO_PIDS, NULL);
	tree_write(tree, "cg/t/a/b/cgroup.procs", "0\n");
	check_resolve(tree, "/cg", &k, -EBADMSG, NO_PIDS, NULL);
	tree_write(tree, "cg/t/a/b/cgroup.procs", "-3\n");
	check_resolve(tree, "/cg", &k, -EBADMSG, NO_PIDS, NULL);
	tree_write(tree, "cg/t/a/b/cgroup.procs", "");
	check_resolve(tree, "/cg", &k, 0, PIDS(10, 20, 30), NULL);

	/* Nesting past 64 levels is refused rather than followed. */
	snprintf(path, sizeof(path), "cg/deep");
	for (int i = 0; i < 65; i++)
		strcat(path, "/d");
	strcat(path, "/cgroup.procs");
	tree_write(tree, path, "1\n");
	tree_write(tree, "cg/deep/cgroup.procs", "");
	k.cgroup = (char *) "/deep";
	check_resolve(tree, "/cg", &k, -ELOOP, NO_PIDS, NULL);

	tree_free(tree);
}

/* ---------------------------------------------------------------- ownership */

static uid_t dir_owner(const char *root, const char *rel)
{
	_cleanup_free_ char *p = NULL;
	struct stat st;

	assert_true(asprintf(&p, "%s/%s", root, rel) > 0);
	assert_int_equal(stat(p, &st), 0);
	return st.st_uid;
}

static void test_check_owner_fixture(void **state)
{
	static const struct {
		TargetKind kind;
		pid_t pid;
		uint64_t starttime;
		const char *cgroup;
		uint64_t job;
		uid_t uid;
		int r;
	} t[] = {
		{ TARGET_PID, 921, 20105, NULL, 0, 1000, 0 },
		{ TARGET_PID, 921, 20105, NULL, 0, 1001, -EPERM },
		{ TARGET_PID, 921, 20105, NULL, 0, 0, 0 },
		{ TARGET_PID, 921, 1, NULL, 0, 1000, -ESRCH },             /* recycled */
		{ TARGET_PID, 4242, 1, NULL, 0, 1000, -ESRCH },
		{ TARGET_PID, 1100, 40000, NULL, 0, 1000, -EPERM },        /* root's */
		/* Every process is theirs... */
		{ TARGET_CGROUP, 0, 0, "/user.slice/user-1000.slice/user@1000.service", 0, 1000, 0 },
		{ TARGET_CGROUP, 0, 0, "/user.slice/user-1000.slice/user@1000.service", 0, 1001, -EPERM },
		/* ...or not: root's sshd in the session. */
		{ TARGET_CGROUP, 0, 0, "/user.slice/user-1000.slice/session-3.scope", 0, 1000, -EPERM },
		/* Nothing in it to prove ownership by. */
		{ TARGET_CGROUP, 0, 0, "/system.slice/idle.service", 0, 1000, -EPERM },
		{ TARGET_CGROUP, 0, 0, "/system.slice/gone.service", 0, 1000, -ENOENT },
		{ TARGET_CGROUP, 0, 0, "/system.slice/gone.service", 0, 0, 0 },
		/* A job's tasks are the user's; slurmstepd (root) does not count. */
		{ TARGET_JOB, 0, 0, NULL, 42, 1000, 0 },
		{ TARGET_JOB, 0, 0, NULL, 42, 1001, -EPERM },
		{ TARGET_JOB, 0, 0, NULL, 420, 1001, 0 },
		{ TARGET_JOB, 0, 0, NULL, 420, 1000, -EPERM },
		{ TARGET_JOB, 0, 0, NULL, 7, 1000, -EPERM },                /* only slurmstepd */
		{ TARGET_JOB, 0, 0, NULL, 5, 1000, -ENOENT },
		{ TARGET_JOB, 0, 0, NULL, 5, 0, 0 },                        /* root: prolog */
		/* A cgroup target for the same job: slurmstepd counts there. */
		{ TARGET_CGROUP, 0, 0, JOBS "/job_42", 0, 1000, -EPERM },
		{ TARGET_CGROUP, 0, 0, JOBS "/job_42/step_0/user", 0, 1000, 0 },
	};
	_cleanup_free_ char *root = fixture_root("cgroup-v2");

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		TargetKey k = { .kind = t[i].kind, .pid = t[i].pid, .starttime = t[i].starttime,
				.cgroup = (char *) t[i].cgroup, .job = t[i].job };
		int want = t[i].r, r;

		/* The fixture's directories belong to whoever checked it out: that one may. */
		if (t[i].cgroup && want == -EPERM) {
			_cleanup_free_ char *rel = NULL;

			assert_true(asprintf(&rel, "sys/fs/cgroup%s", t[i].cgroup) > 0);
			if (dir_owner(root, rel) == t[i].uid)
				want = 0;
		}
		r = target_check_owner(root, "/sys/fs/cgroup", &k, t[i].uid);
		if (r != want)
			fail_msg("case %zu: got %d, want %d", i, r, want);
	}
}

static void test_check_owner_tree(void **state)
{
	char *tree = tree_new();
	_cleanup_free_ char *dir = NULL;
	TargetKey k = { .kind = TARGET_CGROUP, .cgroup = (char *) "/mine" };
	TargetKey setuid_key = { .kind = TARGET_PID, .pid = 60, .starttime = 6000 };
	TargetKey job = { .kind = TARGET_JOB, .job = 8 };
	uid_t owner = geteuid() == 0 ? 4242 : getuid();

	tree_proc(tree, 1, "systemd", 'S', 0, 0, 3);
	tree_proc(tree, 60, "passwd", 'S', owner, 0, 6000);    /* setuid root */
	tree_proc(tree, 61, "gups", 'R', owner, owner, 6100);
	tree_write(tree, "cg/mine/cgroup.procs", "1\n");
	assert_true(asprintf(&dir, "%s/cg/mine", tree) > 0);
	if (geteuid() == 0)
		assert_int_equal(chown(dir, owner, (gid_t) -1), 0);
	assert_int_equal(dir_owner(tree, "cg/mine"), owner);

	/* The directory is theirs (a delegated subtree): root's processes in it do not matter. */
	assert_int_equal(target_check_owner(tree, "/cg", &k, owner), 0);
	assert_int_equal(target_check_owner(tree, "/cg", &k, owner + 1), -EPERM);

	/* Real and effective uid both: a setuid program is not its caller's. */
	assert_int_equal(target_check_owner(tree, "/cg", &setuid_key, owner), -EPERM);

	/* A job whose step holds a process that vanished meanwhile: it does not count. */
	tree_write(tree, "cg/slurm/job_8/cgroup.procs", "");
	tree_write(tree, "cg/slurm/job_8/step_0/cgroup.procs", "");
	tree_write(tree, "cg/slurm/job_8/step_0/user/cgroup.procs", "");
	tree_write(tree, "cg/slurm/job_8/step_0/slurm_processes/cgroup.procs", "1\n");
	tree_write(tree, "cg/slurm/job_8/step_0/user/task_0/cgroup.procs", "61\n4444\n");
	assert_int_equal(target_check_owner(tree, "/cg", &job, owner), 0);
	/* A task running setuid root in the job makes it not (only) theirs. */
	tree_write(tree, "cg/slurm/job_8/step_0/user/task_1/cgroup.procs", "60\n");
	assert_int_equal(target_check_owner(tree, "/cg", &job, owner), -EPERM);

	tree_free(tree);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_parse),
		cmocka_unit_test(test_spec_round_trip),
		cmocka_unit_test(test_kind_strings),
		cmocka_unit_test(test_cgroup_normalize),
		cmocka_unit_test(test_key_equal),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_cgroup2_mount),
		cmocka_unit_test(test_pid_read),
		cmocka_unit_test(test_find_job),
		cmocka_unit_test(test_resolve_fixture),
		cmocka_unit_test(test_resolve_tree),
		cmocka_unit_test(test_resolve_slurmstepd),
		cmocka_unit_test(test_check_owner_fixture),
		cmocka_unit_test(test_check_owner_tree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
