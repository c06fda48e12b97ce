/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon/state.c: targets.json and stats.json written atomically, read back,
 * and set aside (never fatal) when they are not what coherentd wrote.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "state.h"
#include "util.h"

#define GIB (UINT64_C(1) << 30)

static char *dir_new(void)
{
	char tmpl[] = "/tmp/coh-test-state.XXXXXX";

	assert_non_null(mkdtemp(tmpl));
	return strdup(tmpl);
}

static void dir_free(char *dir)
{
	_cleanup_free_ char *cmd = NULL;

	assert_true(asprintf(&cmd, "chmod -R u+w -- '%s'; rm -rf -- '%s'", dir, dir) > 0);
	assert_int_equal(system(cmd), 0);
	free(dir);
}

static void file_write(const char *dir, const char *name, const char *text, size_t size)
{
	_cleanup_free_ char *p = NULL;
	FILE *f;

	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	f = fopen(p, "we");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, size, f), size);
	assert_int_equal(fclose(f), 0);
}

static char *file_read(const char *dir, const char *name)
{
	_cleanup_free_ char *p = NULL;
	char *text = NULL;
	int r;

	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	r = read_file(p, 0, &text, NULL);
	return r < 0 ? NULL : text;
}

/* Names in dir, sorted, newline-separated ("" when empty). */
static char *dir_list(const char *dir)
{
	struct dirent **l;
	char *s = strdup("");
	int n;

	n = scandir(dir, &l, NULL, alphasort);
	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		if (l[i]->d_name[0] != '.' || (strcmp(l[i]->d_name, ".") && strcmp(l[i]->d_name, ".."))) {
			char *t;

			assert_true(asprintf(&t, "%s%s\n", s, l[i]->d_name) > 0);
			free(s);
			s = t;
		}
		free(l[i]);
	}
	free(l);
	return s;
}

static void put(TargetSet *s, const TargetKey *k, uid_t owner, const char *spec, uint64_t when)
{
	PolicySpec p;

	assert_int_equal(policy_spec_parse(spec, &p, NULL), 0);
	assert_int_equal(target_set_put(s, k, owner, &p, when, NULL), 0);
}

static void sample_set(TargetSet *s)
{
	target_set_init(s);
	put(s, &(TargetKey) { .kind = TARGET_PID, .pid = 1234, .starttime = 5678 }, 1000,
	    "hot:gpu0,quota=1G", UINT64_C(1764000000000000));
	put(s, &(TargetKey) { .kind = TARGET_CGROUP, .cgroup = (char *) "/a/b \"quoted\"\n" }, 0,
	    "bind:cxl.0,priority=-3", 1);
	put(s, &(TargetKey) { .kind = TARGET_JOB, .job = 42 }, 0, "system", 0);
	/* Values past INT64_MAX survive JSON. */
	put(s, &(TargetKey) { .kind = TARGET_JOB, .job = UINT64_MAX - 1 }, 4294967294U,
	    "hot:x,quota=16383P,priority=1000", UINT64_MAX - 1);
	put(s, &(TargetKey) { .kind = TARGET_PID, .pid = INT32_MAX, .starttime = UINT64_MAX - 1 }, 7,
	    "bind:y", 2);
}

static void assert_sets_equal(const TargetSet *a, const TargetSet *b)
{
	assert_int_equal(a->n_targets, b->n_targets);
	for (size_t i = 0; i < a->n_targets; i++) {
		const Target *x = &a->targets[i], *y = &b->targets[i];
		char sx[128], sy[128];

		assert_true(target_key_equal(&x->key, &y->key));
		assert_int_equal(x->owner, y->owner);
		assert_string_equal(policy_spec_format(&x->policy, sx, sizeof(sx)),
				    policy_spec_format(&y->policy, sy, sizeof(sy)));
		assert_int_equal(x->set_realtime_usec, y->set_realtime_usec);
	}
}

static void test_round_trip(void **state)
{
	char *dir = dir_new();
	_cleanup_free_ char *sub = NULL, *list = NULL, *text = NULL;
	char *aside = (char *) "x", *reason = (char *) "x";
	TargetSet s, back;
	struct stat st;

	sample_set(&s);
	assert_true(asprintf(&sub, "%s/coherentd", dir) > 0);

	/* The directory is made, 0700; the file is 0600. */
	assert_int_equal(state_save(sub, &s), 0);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	list = dir_list(sub);
	assert_string_equal(list, "targets.json\n");    /* no temporary file left behind */
	{
		_cleanup_free_ char *p = NULL;

		assert_true(asprintf(&p, "%s/targets.json", sub) > 0);
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0600);
	}

	target_set_init(&back);
	assert_int_equal(state_load(sub, &back, &aside, &reason), 0);
	assert_null(aside);
	assert_null(reason);
	assert_sets_equal(&s, &back);
	/* Ids are new, from 1. */
	for (size_t i = 0; i < back.n_targets; i++)
		assert_int_equal(back.targets[i].id, i + 1);
	assert_int_equal(back.next_id, back.n_targets + 1);

	/* Loading into a set that is not empty is refused. */
	assert_int_equal(state_load(sub, &back, NULL, NULL), -EBUSY);
	target_set_done(&back);

	/* The format is the documented one. */
	text = file_read(sub, "targets.json");
	assert_non_null(text);
	{
		json_object *o = json_tokener_parse(text), *v, *t0;

		assert_non_null(o);
		assert_true(json_object_object_get_ex(o, "version", &v));
		assert_int_equal(json_object_get_int(v), 1);
		assert_true(json_object_object_get_ex(o, "targets", &v));
		assert_int_equal(json_object_array_length(v), 5);
		t0 = json_object_array_get_idx(v, 0);
		assert_true(json_object_object_get_ex(t0, "kind", &v));
		assert_string_equal(json_object_get_string(v), "pid");
		assert_true(json_object_object_get_ex(t0, "pid", &v));
		assert_int_equal(json_object_get_int(v), 1234);
		assert_true(json_object_object_get_ex(t0, "starttime", &v));
		assert_int_equal(json_object_get_int(v), 5678);
		assert_true(json_object_object_get_ex(t0, "owner", &v));
		assert_int_equal(json_object_get_int(v), 1000);
		assert_true(json_object_object_get_ex(t0, "policy", &v));
		assert_string_equal(json_object_get_string(v), "hot:gpu0,quota=1G");
		assert_true(json_object_object_get_ex(t0, "set_realtime_usec", &v));
		assert_int_equal(json_object_get_int64(v), INT64_C(1764000000000000));
		json_object_put(o);
	}

	/* Saving again replaces the file; an empty set is an empty list. */
	target_set_done(&s);
	assert_int_equal(state_save(sub, &s), 0);
	target_set_init(&back);
	assert_int_equal(state_load(sub, &back, &aside, &reason), 0);
	assert_int_equal(back.n_targets, 0);
	assert_null(aside);

	/* No file: nothing loaded, nothing set aside. */
	{
		_cleanup_free_ char *none = NULL;

		assert_true(asprintf(&none, "%s/none", dir) > 0);
		assert_int_equal(state_load(none, &back, &aside, &reason), 0);
		assert_int_equal(back.n_targets, 0);
		assert_null(aside);
		assert_null(reason);
	}

	dir_free(dir);
}

/* Loading dir/name, which holds text, sets it aside with a reason containing want. */
static void check_set_aside(const char *dir, const char *name, const char *text, size_t size,
			    const char *want, bool stats)
{
	_cleanup_free_ char *aside = NULL, *reason = NULL, *kept = NULL, *path = NULL;
	TargetSet s;
	Stats st = {};
	struct stat sb;
	int r;

	file_write(dir, name, text, size);
	target_set_init(&s);
	if (stats)
		r = state_load_stats(dir, &st, &aside, &reason);
	else
		r = state_load(dir, &s, &aside, &reason);
	if (r != 0)
		fail_msg("%s: load failed: %d", want, r);
	if (!aside)
		fail_msg("not set aside, want \"%s\": %.*s", want, (int) MIN(size, 200), text);
	assert_non_null(reason);
	if (!strstr(reason, want))
		fail_msg("reason \"%s\", want \"%s\"", reason, want);
	/* Nothing half-loaded. */
	assert_int_equal(s.n_targets, 0);
	assert_int_equal(st.n_entries, 0);

	/* Renamed, byte for byte, next to where it was. */
	assert_true(asprintf(&path, "%s/%s.corrupt-", dir, name) > 0);
	assert_true(startswith(aside, path));
	assert_int_equal(stat(aside, &sb), 0);
	assert_int_equal((size_t) sb.st_size, size);
	assert_int_equal(read_file(aside, size + 1, &kept, NULL), 0);
	assert_memory_equal(kept, text, size);
	free(path);
	assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
	assert_int_equal(stat(path, &sb), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(unlink(aside), 0);
}

#define T(x) "{ \"version\": 1, \"targets\": [ " x " ] }"
#define GOOD_PID "{ \"kind\": \"pid\", \"pid\": 12, \"starttime\": 5, \"owner\": 0, " \
		 "\"policy\": \"system\", \"set_realtime_usec\": 0 }"

static void test_set_aside(void **state)
{
	static const struct {
		const char *text, *reason;
	} t[] = {
		{ "", "truncated" },
		{ "{ \"version\": 1, \"targets\": [ { \"kind\": \"pid\", \"pid\": 1", "truncated" },
		{ "garbage", "not valid JSON" },
		{ "\x7f" "ELF\x02\x01\x01", "not valid JSON" },
		{ "{ \"version\": 1, \"targets\": [] } {}", "not valid JSON" },
		{ "{ \"version\": 1, \"targets\": [] } x", "not valid JSON" },
		{ "{ \"version\": 1, \"targets\": [], }", "not valid JSON" },     /* strict */
		{ "null", "not a JSON object" },
		{ "[]", "not a JSON object" },
		{ "{}", "\"version\" is missing" },
		{ "{ \"version\": 2, \"targets\": [] }", "version 2 is not supported" },
		{ "{ \"version\": 0, \"targets\": [] }", "version 0 is not supported" },
		{ "{ \"version\": \"1\", \"targets\": [] }", "\"version\" is not an integer" },
		{ "{ \"version\": 1.0, \"targets\": [] }", "\"version\" is not an integer" },
		{ "{ \"version\": 1 }", "\"targets\" is missing" },
		{ "{ \"version\": 1, \"targets\": {} }", "\"targets\" is not an array" },
		{ T("1"), "target 0 is not a JSON object" },
		{ T(GOOD_PID ", 1"), "target 1 is not a JSON object" },
		{ T("{}"), "target 0: \"kind\" is missing" },
		{ T("{ \"kind\": 1 }"), "target 0: \"kind\" is not a string" },
		{ T("{ \"kind\": \"process\" }"), "target 0: unknown kind \"process\"" },
		{ T("{ \"kind\": \"pid\", \"starttime\": 5, \"owner\": 0, \"policy\": \"system\", "
		    "\"set_realtime_usec\": 0 }"), "target 0: \"pid\" is missing" },
		{ T("{ \"kind\": \"pid\", \"pid\": 0, \"starttime\": 5, \"owner\": 0, \"policy\": "
		    "\"system\", \"set_realtime_usec\": 0 }"), "target 0: \"pid\" is 0" },
		{ T("{ \"kind\": \"pid\", \"pid\": -12, \"starttime\": 5, \"owner\": 0, \"policy\": "
		    "\"system\", \"set_realtime_usec\": 0 }"), "target 0: \"pid\" is negative" },
		{ T("{ \"kind\": \"pid\", \"pid\": 2147483648, \"starttime\": 5, \"owner\": 0, "
		    "\"policy\": \"system\", \"set_realtime_usec\": 0 }"), "\"pid\" is out of range" },
		{ T("{ \"kind\": \"pid\", \"pid\": 12.5, \"starttime\": 5, \"owner\": 0, \"policy\": "
		    "\"system\", \"set_realtime_usec\": 0 }"), "\"pid\" is not an integer" },
		{ T("{ \"kind\": \"pid\", \"pid\": \"12\", \"starttime\": 5, \"owner\": 0, \"policy\": "
		    "\"system\", \"set_realtime_usec\": 0 }"), "\"pid\" is not an integer" },
		{ T("{ \"kind\": \"pid\", \"pid\": 12, \"owner\": 0, \"policy\": \"system\", "
		    "\"set_realtime_usec\": 0 }"), "\"starttime\" is missing" },
		{ T("{ \"kind\": \"pid\", \"pid\": 12, \"starttime\": 18446744073709551616, \"owner\": 0, "
		    "\"policy\": \"system\", \"set_realtime_usec\": 0 }"), "\"starttime\" is out of range" },
		{ T("{ \"kind\": \"pid\", \"pid\": 12, \"starttime\": 18446744073709551615, \"owner\": 0, "
		    "\"policy\": \"system\", \"set_realtime_usec\": 0 }"), "\"starttime\" is out of range" },
		{ T("{ \"kind\": \"job\", \"job\": 1e3, \"owner\": 0, \"policy\": \"system\", "
		    "\"set_realtime_usec\": 0 }"), "\"job\" is not an integer" },
		{ T("{ \"kind\": \"cgroup\", \"cgroup\": \"/a/../b\", \"owner\": 0, \"policy\": "
		    "\"system\", \"set_realtime_usec\": 0 }"), "\"cgroup\" is not a valid cgroup path" },
		{ T("{ \"kind\": \"cgroup\", \"cgroup\": null, \"owner\": 0, \"policy\": "
		    "\"system\", \"set_realtime_usec\": 0 }"), "\"cgroup\" is not a string" },
		{ T("{ \"kind\": \"job\", \"job\": 0, \"owner\": 0, \"policy\": \"system\", "
		    "\"set_realtime_usec\": 0 }"), "\"job\" is 0" },
		{ T("{ \"kind\": \"job\", \"job\": 1, \"owner\": -1, \"policy\": \"system\", "
		    "\"set_realtime_usec\": 0 }"), "\"owner\" is negative" },
		{ T("{ \"kind\": \"job\", \"job\": 1, \"owner\": 4294967295, \"policy\": \"system\", "
		    "\"set_realtime_usec\": 0 }"), "\"owner\" is out of range" },
		{ T("{ \"kind\": \"job\", \"job\": 1, \"owner\": 0, \"set_realtime_usec\": 0 }"),
		  "\"policy\" is missing" },
		{ T("{ \"kind\": \"job\", \"job\": 1, \"owner\": 0, \"policy\": \"hot\", "
		    "\"set_realtime_usec\": 0 }"), "bad policy \"hot\": missing device name" },
		{ T("{ \"kind\": \"job\", \"job\": 1, \"owner\": 0, \"policy\": \"system\" }"),
		  "\"set_realtime_usec\" is missing" },
		{ T("{ \"kind\": \"job\", \"job\": 1, \"owner\": 0, \"policy\": \"system\", "
		    "\"set_realtime_usec\": true }"), "\"set_realtime_usec\" is not an integer" },
		{ T(GOOD_PID ", " GOOD_PID), "target 1: pid:12 is there twice" },
		{ T("{ \"kind\": \"cgroup\", \"cgroup\": \"/a\", \"owner\": 0, \"policy\": \"system\", "
		    "\"set_realtime_usec\": 0 }, { \"kind\": \"cgroup\", \"cgroup\": \"a//\", \"owner\": 1, "
		    "\"policy\": \"hot:g\", \"set_realtime_usec\": 0 }"), "target 1: cgroup:/a is there twice" },
		{ "{ \"version\": 1, \"targets\": [ \"\xff\" ] }", "not valid JSON" },   /* not UTF-8 */
	};
	char *dir = dir_new();

	for (size_t i = 0; i < ELEMENTSOF(t); i++)
		check_set_aside(dir, "targets.json", t[i].text, strlen(t[i].text), t[i].reason, false);

	/* A NUL byte: not the end of the file. */
	{
		static const char nul[] = "{ \"version\": 1, \"targets\": [] }\0garbage";

		check_set_aside(dir, "targets.json", nul, sizeof(nul) - 1, "NUL byte", false);
	}

	/* A valid file cut anywhere is set aside, never half-loaded. */
	{
		TargetSet s;
		_cleanup_free_ char *full = NULL;
		size_t n;

		sample_set(&s);
		assert_int_equal(state_save(dir, &s), 0);
		target_set_done(&s);
		full = file_read(dir, "targets.json");
		assert_non_null(full);
		n = strlen(full);
		/* The end is whitespace; before the last '}' every cut is incomplete. */
		for (size_t cut = 0; cut < n && full[cut] != '\0'; cut += 7) {
			if (cut >= (size_t) (strrchr(full, '}') - full))
				break;
			check_set_aside(dir, "targets.json", full, cut, cut == 0 ? "truncated" : "",
					false);
		}
	}

	/* A bigger file than any coherentd writes. */
	{
		size_t n = 16U * 1024U * 1024U + 1;
		char *big = malloc(n);

		assert_non_null(big);
		memset(big, ' ', n);
		check_set_aside(dir, "targets.json", big, n, "file larger than", false);
		free(big);
	}

	/* Unknown keys are tolerated (the same version may grow fields). */
	{
		static const char text[] = "{ \"version\": 1, \"comment\": \"x\", \"targets\": [ "
			"{ \"kind\": \"job\", \"job\": 9, \"owner\": 5, \"policy\": \"hot:g,priority=2\", "
			"\"set_realtime_usec\": 3, \"note\": [] } ] }";
		_cleanup_free_ char *aside = NULL, *reason = NULL;
		TargetSet s;

		file_write(dir, "targets.json", text, strlen(text));
		target_set_init(&s);
		assert_int_equal(state_load(dir, &s, &aside, &reason), 0);
		assert_null(aside);
		assert_int_equal(s.n_targets, 1);
		assert_int_equal(s.targets[0].key.job, 9);
		assert_int_equal(s.targets[0].owner, 5);
		assert_int_equal(s.targets[0].policy.priority, 2);
		assert_int_equal(s.targets[0].set_realtime_usec, 3);
		target_set_done(&s);
	}

	/* Two bad files in a row: the first one set aside is not overwritten. */
	{
		_cleanup_free_ char *a1 = NULL, *a2 = NULL, *r1 = NULL, *r2 = NULL, *k1 = NULL;
		TargetSet s;

		target_set_init(&s);
		file_write(dir, "targets.json", "one", 3);
		assert_int_equal(state_load(dir, &s, &a1, &r1), 0);
		file_write(dir, "targets.json", "two", 3);
		assert_int_equal(state_load(dir, &s, &a2, &r2), 0);
		assert_non_null(a1);
		assert_non_null(a2);
		assert_string_not_equal(a1, a2);
		assert_int_equal(read_file(a1, 0, &k1, NULL), 0);
		assert_string_equal(k1, "one");
		/* ret_set_aside and ret_reason are optional. */
		file_write(dir, "targets.json", "three", 5);
		assert_int_equal(state_load(dir, &s, NULL, NULL), 0);
		assert_int_equal(s.n_targets, 0);
	}

	dir_free(dir);
}

#define CHECK(x)                                        \
	do {                                            \
		if (!(x))                               \
			return __LINE__;                \
	} while (0)

/*
 * Runs as the owner of dir, not root (whom permissions do not stop), without
 * cmocka (possibly in a child): 0, or the line of the check that failed.
 */
static int unwritable_checks(const char *dir, const char *before)
{
	_cleanup_free_ char *after = NULL, *again = NULL, *aside = NULL, *reason = NULL;
	TargetSet s, back;
	int r;

	sample_set(&s);
	CHECK(chmod(dir, 0500) == 0);
	r = state_save(dir, &s);
	target_set_done(&s);
	CHECK(r == -EACCES);
	after = file_read(dir, "targets.json");
	CHECK(after && streq(after, before));

	/* Loading the intact file works read-only. */
	target_set_init(&back);
	CHECK(state_load(dir, &back, &aside, &reason) == 0);
	CHECK(back.n_targets == 1 && !aside && !reason);
	target_set_done(&back);

	/* A corrupt one that cannot be renamed is an I/O error, and stays where it is. */
	CHECK(chmod(dir, 0700) == 0);
	file_write(dir, "targets.json", "junk", 4);
	CHECK(chmod(dir, 0500) == 0);
	r = state_load(dir, &back, &aside, &reason);
	CHECK(r == -EACCES);
	CHECK(!aside && !reason && back.n_targets == 0);
	again = file_read(dir, "targets.json");
	CHECK(again && streq(again, "junk"));
	CHECK(chmod(dir, 0700) == 0);
	return 0;
}

static void test_write_errors(void **state)
{
	char *dir = dir_new();
	_cleanup_free_ char *before = NULL, *after = NULL, *list = NULL, *nowhere = NULL;
	TargetSet s, one;
	struct rlimit old, small = { .rlim_cur = 64 };
	void (*old_handler)(int);
	int line;

	target_set_init(&one);
	put(&one, &(TargetKey) { .kind = TARGET_JOB, .job = 1 }, 0, "system", 0);
	assert_int_equal(state_save(dir, &one), 0);
	target_set_done(&one);
	before = file_read(dir, "targets.json");
	sample_set(&s);

	/* A write that fails halfway (file size limit: a full disk as far as we can tell). */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small.rlim_max = old.rlim_max;
	old_handler = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	assert_int_equal(state_save(dir, &s), -EFBIG);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_handler);
	after = file_read(dir, "targets.json");
	assert_string_equal(after, before);
	list = dir_list(dir);
	assert_string_equal(list, "targets.json\n");   /* the temporary file is gone */

	/* A parent that is not there. */
	assert_true(asprintf(&nowhere, "%s/no/such", dir) > 0);
	assert_int_equal(state_save(nowhere, &s), -ENOENT);
	target_set_done(&s);

	/* A directory coherentd cannot write to; as root, checked as nobody in a child. */
	if (geteuid() != 0)
		line = unwritable_checks(dir, before);
	else {
		_cleanup_free_ char *cmd = NULL;
		pid_t pid;
		int status;

		assert_true(asprintf(&cmd, "chown -R 65534:65534 -- '%s'", dir) > 0);
		assert_int_equal(system(cmd), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
			    setresuid(65534, 65534, 65534) < 0)
				_exit(255);
			line = unwritable_checks(dir, before);
			if (line != 0)
				fprintf(stderr, "as uid 65534: check at line %d failed\n", line);
			_exit(line != 0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		line = WEXITSTATUS(status);
	}
	if (line != 0)
		fail_msg("unwritable directory: check at line %d failed", line);

	dir_free(dir);
}

static void test_read_errors(void **state)
{
	char *dir = dir_new();
	_cleanup_free_ char *p = NULL;
	TargetSet s;

	/* targets.json that is a directory: not content, an I/O error; left alone. */
	assert_true(asprintf(&p, "%s/targets.json", dir) > 0);
	assert_int_equal(mkdir(p, 0700), 0);
	target_set_init(&s);
	assert_int_equal(state_load(dir, &s, NULL, NULL), -EISDIR);
	assert_int_equal(access(p, F_OK), 0);
	dir_free(dir);
}

/* ---------------------------------------------------------------- stats.json */

static void test_stats(void **state)
{
	char *dir = dir_new();
	_cleanup_free_ char *aside = NULL, *reason = NULL;
	Stats s = {}, back = {};
	StatsEntry *e;

	e = stats_get(&s, "system");
	assert_non_null(e);
	*e = (StatsEntry) { .name = e->name, .bytes_in = 1, .bytes_out = 2, .migrations = 3,
			    .failures = 4, .failed_pages = 5, .promoted_bytes = 6,
			    .demoted_bytes = 7, .evicted_bytes = 8 };
	e = stats_get(&s, "gpu0");
	assert_non_null(e);
	e->bytes_in = UINT64_MAX - 1;
	e->migrations = (uint64_t) INT64_MAX + 1;
	assert_non_null(stats_get(&s, "cxl.mem-1_a"));

	assert_int_equal(state_save_stats(dir, &s), 0);
	assert_int_equal(state_load_stats(dir, &back, &aside, &reason), 0);
	assert_null(aside);
	assert_null(reason);
	assert_int_equal(back.n_entries, 3);
	for (size_t i = 0; i < s.n_entries; i++) {
		const StatsEntry *a = &s.entries[i], *b = &back.entries[i];

		assert_string_equal(a->name, b->name);  /* in order of first use */
		assert_int_equal(a->bytes_in, b->bytes_in);
		assert_int_equal(a->bytes_out, b->bytes_out);
		assert_int_equal(a->migrations, b->migrations);
		assert_int_equal(a->failures, b->failures);
		assert_int_equal(a->failed_pages, b->failed_pages);
		assert_int_equal(a->promoted_bytes, b->promoted_bytes);
		assert_int_equal(a->demoted_bytes, b->demoted_bytes);
		assert_int_equal(a->evicted_bytes, b->evicted_bytes);
	}
	assert_int_equal(state_load_stats(dir, &back, NULL, NULL), -EBUSY);
	stats_done(&back);

	/* A counter missing from the file (an older coherentd did not have it) is 0. */
	{
		static const char text[] = "{ \"version\": 1, \"devices\": [ "
			"{ \"name\": \"gpu0\", \"bytes_in\": 7 } ] }";

		file_write(dir, "stats.json", text, strlen(text));
		assert_int_equal(state_load_stats(dir, &back, &aside, &reason), 0);
		assert_null(aside);
		assert_int_equal(back.n_entries, 1);
		assert_int_equal(stats_find(&back, "gpu0")->bytes_in, 7);
		assert_int_equal(stats_find(&back, "gpu0")->failures, 0);
		stats_done(&back);
	}

	/* Bad ones are set aside like targets.json. */
	{
		static const struct {
			const char *text, *reason;
		} t[] = {
			{ "{ \"version\": 1, \"devices\": [ { \"name\": \"gpu0\", \"bytes_in\": 7 }", "truncated" },
			{ "{ \"version\": 2, \"devices\": [] }", "version 2 is not supported" },
			{ "{ \"version\": 1, \"targets\": [] }", "\"devices\" is missing" },
			{ "{ \"version\": 1, \"devices\": [ 3 ] }", "device 0 is not a JSON object" },
			{ "{ \"version\": 1, \"devices\": [ {} ] }", "device 0: \"name\" is missing" },
			{ "{ \"version\": 1, \"devices\": [ { \"name\": \"\" } ] }", "device 0: invalid name" },
			{ "{ \"version\": 1, \"devices\": [ { \"name\": \"a/b\" } ] }", "device 0: invalid name" },
			{ "{ \"version\": 1, \"devices\": [ { \"name\": \"a\" }, { \"name\": \"a\" } ] }",
			  "device 1: \"a\" is there twice" },
			{ "{ \"version\": 1, \"devices\": [ { \"name\": \"a\", \"failures\": -1 } ] }",
			  "device 0: \"failures\" is negative" },
			{ "{ \"version\": 1, \"devices\": [ { \"name\": \"a\", \"bytes_out\": \"1\" } ] }",
			  "device 0: \"bytes_out\" is not an integer" },
		};

		for (size_t i = 0; i < ELEMENTSOF(t); i++)
			check_set_aside(dir, "stats.json", t[i].text, strlen(t[i].text), t[i].reason, true);
	}

	stats_done(&s);
	dir_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_set_aside),
		cmocka_unit_test(test_write_errors),
		cmocka_unit_test(test_read_errors),
		cmocka_unit_test(test_stats),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
