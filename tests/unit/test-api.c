/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon/api: parameter validation of Migrate, GetResidency, SetPolicy,
 * ClearPolicy and Record, and the reply builders; cohctl record's trace
 * builder (cli/cohctl-record.c).
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "api.h"
#include "cohctl-record.h"
#include "stats.h"
#include "util.h"

#define PS UINT64_C(4096)

static json_object *parse(const char *text)
{
	json_object *o = json_tokener_parse(text);

	if (!o)
		fail_msg("bad test JSON: %s", text);
	return o;
}

/* A parser's verdict on case i: valid when want is NULL, else -EINVAL naming parameter want. */
static void check_param_result(size_t i, const char *json, int r, const ApiParamError *err,
			       const char *want)
{
	if (!want) {
		if (r != 0)
			fail_msg("case %zu (%s): rejected: %s: %s", i, json, err->parameter,
				 err->reason);
		return;
	}
	if (r != -EINVAL)
		fail_msg("case %zu (%s): accepted", i, json);
	if (!err->parameter || !streq(err->parameter, want))
		fail_msg("case %zu (%s): parameter %s, want %s", i, json, err->parameter ?: "(null)",
			 want);
	assert_non_null(err->reason);
	assert_true(strlen(err->reason) > 0);
}

static void test_parse_migrate(void **state)
{
	static const struct {
		const char *json;
		const char *parameter;   /* NULL: valid */
	} t[] = {
		{ "{\"pid\": 1, \"all\": true, \"to\": \"node1\"}", NULL },
		{ "{\"pid\": 1, \"all\": true, \"to\": \"system\", \"dry_run\": true}", NULL },
		{ "{\"pid\": 1, \"start\": 4096, \"end\": 8192, \"to\": \"hbm\"}", NULL },
		{ "{\"pid\": 1, \"start\": 0, \"end\": 72057594037923840, \"to\": \"hbm\"}", NULL },
		{ "{\"pid\": 1, \"start\": 4096, \"end\": 8192, \"all\": false, \"to\": \"hbm\"}", NULL },
		{ "{\"pid\": 1, \"start\": 4096, \"end\": 8192, \"all\": null, \"to\": \"hbm\"}", NULL },
		{ "{\"pid\": 2147483647, \"all\": true, \"to\": \"x\"}", NULL },
		/* pid */
		{ "{\"all\": true, \"to\": \"node1\"}", "pid" },
		{ "{\"pid\": 0, \"all\": true, \"to\": \"node1\"}", "pid" },
		{ "{\"pid\": -5, \"all\": true, \"to\": \"node1\"}", "pid" },
		{ "{\"pid\": 2147483648, \"all\": true, \"to\": \"node1\"}", "pid" },
		{ "{\"pid\": \"1\", \"all\": true, \"to\": \"node1\"}", "pid" },
		{ "{\"pid\": 1.5, \"all\": true, \"to\": \"node1\"}", "pid" },
		{ "{\"pid\": null, \"all\": true, \"to\": \"node1\"}", "pid" },
		/* to */
		{ "{\"pid\": 1, \"all\": true}", "to" },
		{ "{\"pid\": 1, \"all\": true, \"to\": \"\"}", "to" },
		{ "{\"pid\": 1, \"all\": true, \"to\": 5}", "to" },
		{ "{\"pid\": 1, \"all\": true, \"to\": \"a\\u0000b\"}", "to" },
		{ "{\"pid\": 1, \"all\": true, \"to\": "
		  "\"0123456789012345678901234567890123456789012345678901234567890123\"}", "to" },
		/* range or all: exactly one */
		{ "{\"pid\": 1, \"to\": \"node1\"}", "start" },
		{ "{\"pid\": 1, \"all\": false, \"to\": \"node1\"}", "start" },
		{ "{\"pid\": 1, \"all\": true, \"start\": 0, \"end\": 4096, \"to\": \"node1\"}", "all" },
		{ "{\"pid\": 1, \"all\": true, \"end\": 4096, \"to\": \"node1\"}", "all" },
		{ "{\"pid\": 1, \"end\": 4096, \"to\": \"node1\"}", "start" },
		{ "{\"pid\": 1, \"start\": 4096, \"to\": \"node1\"}", "end" },
		{ "{\"pid\": 1, \"all\": 1, \"to\": \"node1\"}", "all" },
		{ "{\"pid\": 1, \"all\": true, \"dry_run\": \"yes\", \"to\": \"node1\"}", "dry_run" },
		/* the range itself */
		{ "{\"pid\": 1, \"start\": 8192, \"end\": 4096, \"to\": \"node1\"}", "end" },
		{ "{\"pid\": 1, \"start\": 4096, \"end\": 4096, \"to\": \"node1\"}", "end" },
		{ "{\"pid\": 1, \"start\": 4097, \"end\": 8192, \"to\": \"node1\"}", "start" },
		{ "{\"pid\": 1, \"start\": 4096, \"end\": 8193, \"to\": \"node1\"}", "end" },
		{ "{\"pid\": 1, \"start\": -4096, \"end\": 8192, \"to\": \"node1\"}", "start" },
		{ "{\"pid\": 1, \"start\": \"0x1000\", \"end\": 8192, \"to\": \"node1\"}", "start" },
		{ "{\"pid\": 1, \"start\": 0, \"end\": 72057594037927936, \"to\": \"node1\"}", "end" },
		{ "{\"pid\": 1, \"start\": 0, \"end\": 9223372036854775807, \"to\": \"node1\"}", "end" },
		/* unknown */
		{ "{\"pid\": 1, \"all\": true, \"to\": \"node1\", \"force\": true}", "force" },
		{ "{\"pid\": 1, \"all\": true, \"to\": \"node1\", \"length\": 4096}", "length" },
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		json_object *p = parse(t[i].json);
		ApiParamError err = {};
		MigrateParams mp;
		int r = api_parse_migrate(p, PS, &mp, &err);

		check_param_result(i, t[i].json, r, &err, t[i].parameter);
		json_object_put(p);
	}
}

static void test_parse_migrate_values(void **state)
{
	json_object *p = parse("{\"pid\": 77, \"start\": 4096, \"end\": 12288, \"to\": \"hbm\", "
			       "\"dry_run\": true}");
	ApiParamError err = {};
	MigrateParams mp;

	assert_int_equal(api_parse_migrate(p, PS, &mp, &err), 0);
	assert_int_equal(mp.pid, 77);
	assert_false(mp.all);
	assert_int_equal(mp.start, 4096);
	assert_int_equal(mp.end, 12288);
	assert_string_equal(mp.to, "hbm");
	assert_true(mp.dry_run);
	json_object_put(p);

	/* Alignment follows the page size given. */
	p = parse("{\"pid\": 1, \"start\": 65536, \"end\": 69632, \"to\": \"hbm\"}");
	assert_int_equal(api_parse_migrate(p, 65536, &mp, &err), -EINVAL);
	assert_string_equal(err.parameter, "end");
	json_object_put(p);
}

static void test_parse_residency(void **state)
{
	ApiParamError err = {};
	json_object *p;
	bool verbose;
	pid_t pid;

	p = parse("{\"pid\": 5, \"verbose\": true}");
	assert_int_equal(api_parse_residency(p, &pid, &verbose, &err), 0);
	assert_int_equal(pid, 5);
	assert_true(verbose);
	json_object_put(p);

	p = parse("{\"pid\": 5}");
	assert_int_equal(api_parse_residency(p, &pid, &verbose, &err), 0);
	assert_false(verbose);
	json_object_put(p);

	p = parse("{\"pid\": 0}");
	assert_int_equal(api_parse_residency(p, &pid, &verbose, &err), -EINVAL);
	assert_string_equal(err.parameter, "pid");
	json_object_put(p);

	p = parse("{\"pid\": 5, \"verbose\": 1}");
	assert_int_equal(api_parse_residency(p, &pid, &verbose, &err), -EINVAL);
	assert_string_equal(err.parameter, "verbose");
	json_object_put(p);

	p = parse("{\"pid\": 5, \"all\": true}");
	assert_int_equal(api_parse_residency(p, &pid, &verbose, &err), -EINVAL);
	assert_string_equal(err.parameter, "all");
	json_object_put(p);
}

static int64_t get_int(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		fail_msg("field %s missing or not an int", key);
	return json_object_get_int64(v);
}

static void test_migrate_reply(void **state)
{
	MoveCounts c = { .migrated = 10, .already = 2, .not_present = 3, .file = 4, .shared = 5,
			 .pinned = 6, .unmovable = 7, .no_space = 8, .failed = 9 };
	json_object *o = api_migrate_reply(42, "hbm", false, true, &c, PS, 54, 1234, true), *v, *k;

	assert_non_null(o);
	assert_int_equal(get_int(o, "pid"), 42);
	assert_int_equal(get_int(o, "pages"), 54);
	assert_int_equal(get_int(o, "pages_total"), 54);
	assert_int_equal(get_int(o, "bytes_migrated"), 10 * PS);
	assert_int_equal(get_int(o, "elapsed_usec"), 1234);
	assert_true(json_object_object_get_ex(o, "target_exited", &v));
	assert_true(json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(o, "finished", &v));
	assert_true(json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(o, "counts", &k));
	assert_int_equal(get_int(k, "migrated"), 10);
	assert_int_equal(get_int(k, "already"), 2);
	assert_int_equal(get_int(k, "not_present"), 3);
	assert_int_equal(get_int(k, "file"), 4);
	assert_int_equal(get_int(k, "shared"), 5);
	assert_int_equal(get_int(k, "pinned"), 6);
	assert_int_equal(get_int(k, "unmovable"), 7);
	assert_int_equal(get_int(k, "no_space"), 8);
	assert_int_equal(get_int(k, "failed"), 9);
	assert_int_equal(json_object_object_length(k), 9);
	json_object_put(o);
}

static void test_stats_reply(void **state)
{
	Device devices[] = {
		{ .name = (char *) "hbm", .kind = DEVICE_KIND_NUMA, .node = 1 },
		{ .name = (char *) "pool0", .kind = DEVICE_KIND_COHMEM, .node = 1 },
	};
	Stats s = {};
	json_object *o, *a, *e;
	StatsEntry *x;

	x = stats_get(&s, "pool0");
	assert_non_null(x);
	x->bytes_in = 4096;
	x->migrations = 1;
	x->promoted_bytes = 4096;
	x->evicted_bytes = 3;
	assert_ptr_equal(stats_get(&s, "pool0"), x);
	x = stats_get(&s, "gone");
	x->bytes_out = 8192;
	stats_get(&s, "system")->bytes_in = 100;
	assert_null(stats_find(&s, "hbm"));

	o = api_get_stats_reply(&s, devices, ELEMENTSOF(devices), 5000000);
	assert_non_null(o);
	assert_int_equal(get_int(o, "uptime_usec"), 5000000);
	assert_true(json_object_object_get_ex(o, "devices", &a));
	/* Devices in order (zeros for unused ones), system, then devices that went away. */
	assert_int_equal(json_object_array_length(a), 4);
	e = json_object_array_get_idx(a, 0);
	assert_string_equal(json_object_get_string(json_object_object_get(e, "name")), "hbm");
	assert_int_equal(get_int(e, "bytes_in"), 0);
	e = json_object_array_get_idx(a, 1);
	assert_string_equal(json_object_get_string(json_object_object_get(e, "name")), "pool0");
	assert_int_equal(get_int(e, "bytes_in"), 4096);
	assert_int_equal(get_int(e, "migrations"), 1);
	assert_int_equal(get_int(e, "promoted_bytes"), 4096);
	assert_int_equal(get_int(e, "demoted_bytes"), 0);
	assert_int_equal(get_int(e, "evicted_bytes"), 3);
	e = json_object_array_get_idx(a, 2);
	assert_string_equal(json_object_get_string(json_object_object_get(e, "name")), "system");
	assert_int_equal(get_int(e, "bytes_in"), 100);
	e = json_object_array_get_idx(a, 3);
	assert_string_equal(json_object_get_string(json_object_object_get(e, "name")), "gone");
	assert_int_equal(get_int(e, "bytes_out"), 8192);
	assert_int_equal(get_int(e, "failures"), 0);
	assert_int_equal(get_int(e, "failed_pages"), 0);
	json_object_put(o);
	stats_done(&s);
}

static void test_parse_set_policy(void **state)
{
	static const struct {
		const char *json;
		const char *parameter;   /* NULL: valid */
	} t[] = {
		{ "{\"target\": {\"pid\": 1}, \"policy\": \"system\"}", NULL },
		{ "{\"target\": {\"pid\": 2147483647}, \"policy\": \"hot:gpu0,quota=2G,priority=10\"}", NULL },
		{ "{\"target\": {\"cgroup\": \"/a/b\"}, \"policy\": \"bind:node1\"}", NULL },
		{ "{\"target\": {\"cgroup\": \"a//b/\"}, \"policy\": \"bind:node1\"}", NULL },
		{ "{\"target\": {\"job\": 42}, \"policy\": \"hot:hbm\"}", NULL },
		{ "{\"target\": {\"job\": 42, \"pid\": null}, \"policy\": \"hot:hbm\"}", NULL },
		/* policy */
		{ "{\"target\": {\"pid\": 1}}", "policy" },
		{ "{\"target\": {\"pid\": 1}, \"policy\": \"\"}", "policy" },
		{ "{\"target\": {\"pid\": 1}, \"policy\": \"hot\"}", "policy" },
		{ "{\"target\": {\"pid\": 1}, \"policy\": \"cold:gpu0\"}", "policy" },
		{ "{\"target\": {\"pid\": 1}, \"policy\": \"system,quota=1G\"}", "policy" },
		{ "{\"target\": {\"pid\": 1}, \"policy\": \"hot:gpu0,priority=5000\"}", "policy" },
		{ "{\"target\": {\"pid\": 1}, \"policy\": 5}", "policy" },
		{ "{\"target\": {\"pid\": 1}, \"policy\": null}", "policy" },
		{ "{\"target\": {\"pid\": 1}, \"policy\": \"hot:a\\u0000b\"}", "policy" },
		/* target */
		{ "{\"policy\": \"system\"}", "target" },
		{ "{\"target\": null, \"policy\": \"system\"}", "target" },
		{ "{\"target\": 5, \"policy\": \"system\"}", "target" },
		{ "{\"target\": {}, \"policy\": \"system\"}", "target" },
		{ "{\"target\": {\"pid\": null}, \"policy\": \"system\"}", "target" },
		{ "{\"target\": {\"pid\": 1, \"job\": 2}, \"policy\": \"system\"}", "target" },
		{ "{\"target\": {\"pid\": 1, \"cgroup\": \"/a\"}, \"policy\": \"system\"}", "target" },
		{ "{\"target\": {\"cgroup\": \"/a\", \"job\": 3}, \"policy\": \"system\"}", "target" },
		{ "{\"target\": {\"uid\": 1}, \"policy\": \"system\"}", "target" },
		{ "{\"target\": {\"pid\": 0}, \"policy\": \"system\"}", "target.pid" },
		{ "{\"target\": {\"pid\": -1}, \"policy\": \"system\"}", "target.pid" },
		{ "{\"target\": {\"pid\": 2147483648}, \"policy\": \"system\"}", "target.pid" },
		{ "{\"target\": {\"pid\": \"1\"}, \"policy\": \"system\"}", "target.pid" },
		{ "{\"target\": {\"job\": 0}, \"policy\": \"system\"}", "target.job" },
		{ "{\"target\": {\"job\": 1.5}, \"policy\": \"system\"}", "target.job" },
		{ "{\"target\": {\"job\": 9223372036854775807}, \"policy\": \"system\"}", "target.job" },
		{ "{\"target\": {\"job\": 99999999999999999999}, \"policy\": \"system\"}", "target.job" },
		{ "{\"target\": {\"cgroup\": \"\"}, \"policy\": \"system\"}", "target.cgroup" },
		{ "{\"target\": {\"cgroup\": \"/a/../b\"}, \"policy\": \"system\"}", "target.cgroup" },
		{ "{\"target\": {\"cgroup\": \"/a/./b\"}, \"policy\": \"system\"}", "target.cgroup" },
		{ "{\"target\": {\"cgroup\": 7}, \"policy\": \"system\"}", "target.cgroup" },
		{ "{\"target\": {\"cgroup\": \"/a\\u0000b\"}, \"policy\": \"system\"}", "target.cgroup" },
		/* unknown */
		{ "{\"target\": {\"pid\": 1}, \"policy\": \"system\", \"force\": true}", "force" },
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		json_object *p = parse(t[i].json);
		ApiParamError err = {};
		SetPolicyParams sp = {};
		int r = api_parse_set_policy(p, &sp, &err);

		check_param_result(i, t[i].json, r, &err, t[i].parameter);
		if (r == 0)
			target_key_done(&sp.target);
		json_object_put(p);
	}
}

static void test_parse_set_policy_values(void **state)
{
	ApiParamError err = {};
	SetPolicyParams sp = {};
	TargetKey key = {};
	char buf[128];
	json_object *p;

	p = parse("{\"target\": {\"cgroup\": \"system.slice//foo.service/\"}, "
		  "\"policy\": \"hot:gpu0,priority=-3,quota=512M\"}");
	assert_int_equal(api_parse_set_policy(p, &sp, &err), 0);
	assert_int_equal(sp.target.kind, TARGET_CGROUP);
	assert_string_equal(sp.target.cgroup, "/system.slice/foo.service");
	assert_int_equal(sp.policy.kind, POLICY_KIND_HOT);
	assert_string_equal(sp.policy.device, "gpu0");
	assert_int_equal(sp.policy.quota, 512 << 20);
	assert_int_equal(sp.policy.priority, -3);
	assert_string_equal(policy_spec_format(&sp.policy, buf, sizeof(buf)),
			    "hot:gpu0,quota=512M,priority=-3");
	target_key_done(&sp.target);
	json_object_put(p);

	p = parse("{\"target\": {\"pid\": 77}, \"policy\": \"system\"}");
	assert_int_equal(api_parse_set_policy(p, &sp, &err), 0);
	assert_int_equal(sp.target.kind, TARGET_PID);
	assert_int_equal(sp.target.pid, 77);
	assert_int_equal(sp.target.starttime, 0);
	assert_int_equal(sp.policy.kind, POLICY_KIND_SYSTEM);
	json_object_put(p);

	/* ClearPolicy: only a target. */
	p = parse("{\"target\": {\"job\": 4242}}");
	assert_int_equal(api_parse_clear_policy(p, &key, &err), 0);
	assert_int_equal(key.kind, TARGET_JOB);
	assert_int_equal(key.job, 4242);
	json_object_put(p);
	p = parse("{\"target\": {\"job\": 4242}, \"policy\": \"system\"}");
	assert_int_equal(api_parse_clear_policy(p, &key, &err), -EINVAL);
	assert_string_equal(err.parameter, "policy");
	json_object_put(p);
	p = parse("{}");
	assert_int_equal(api_parse_clear_policy(p, &key, &err), -EINVAL);
	assert_string_equal(err.parameter, "target");
	json_object_put(p);
}

static void test_parse_record(void **state)
{
	ApiParamError err = {};
	uint64_t d;
	json_object *p;
	pid_t pid;

	p = parse("{\"pid\": 9, \"duration_usec\": 5000000}");
	assert_int_equal(api_parse_record(p, &pid, &d, &err), 0);
	assert_int_equal(pid, 9);
	assert_int_equal(d, 5000000);
	json_object_put(p);

	p = parse("{\"pid\": 9, \"duration_usec\": 86400000000}");
	assert_int_equal(api_parse_record(p, &pid, &d, &err), 0);
	assert_int_equal(d, API_RECORD_DURATION_MAX_USEC);
	json_object_put(p);

	static const struct {
		const char *json, *parameter;
	} bad[] = {
		{ "{\"duration_usec\": 1}", "pid" },
		{ "{\"pid\": 0, \"duration_usec\": 1}", "pid" },
		{ "{\"pid\": 9}", "duration_usec" },
		{ "{\"pid\": 9, \"duration_usec\": 0}", "duration_usec" },
		{ "{\"pid\": 9, \"duration_usec\": -5}", "duration_usec" },
		{ "{\"pid\": 9, \"duration_usec\": 86400000001}", "duration_usec" },
		{ "{\"pid\": 9, \"duration_usec\": \"5s\"}", "duration_usec" },
		{ "{\"pid\": 9, \"duration_usec\": 1, \"ticks\": 3}", "ticks" },
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		p = parse(bad[i].json);
		err = (ApiParamError) {};
		check_param_result(i, bad[i].json, api_parse_record(p, &pid, &d, &err), &err,
				   bad[i].parameter);
		json_object_put(p);
	}
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		fail_msg("field %s missing or not a string", key);
	return json_object_get_string(v);
}

static void test_policy_entry(void **state)
{
	Target t = {
		.id = 7,
		.key = { .kind = TARGET_JOB, .job = 42 },
		.owner = 1000,
		.policy = { .kind = POLICY_KIND_HOT, .device = "gpu0", .quota = 2ULL << 30,
			    .priority = 10 },
		.set_realtime_usec = 1764000000000000ULL,
	};
	PlacementTargetStatus st = {
		.n_pids = 3, .n_regions = 12, .tracker = "damon", .tracked_bytes = 1 << 30,
		.device_bytes = 1 << 20, .hot_bytes = 2 << 20, .promoted_bytes = 4096,
		.demoted_bytes = 8192, .evicted_bytes = 12288, .ticks = 5,
		.cgroup = (char *) "/system.slice/slurmstepd.scope/job_42",
	};
	json_object *o, *v;

	o = api_policy_entry(&t, &st);
	assert_non_null(o);
	assert_int_equal(get_int(o, "id"), 7);
	assert_string_equal(get_str(o, "target"), "job:42");
	assert_string_equal(get_str(o, "kind"), "job");
	assert_int_equal(get_int(o, "job"), 42);
	assert_false(json_object_object_get_ex(o, "pid", &v));
	assert_false(json_object_object_get_ex(o, "cgroup", &v));
	assert_string_equal(get_str(o, "job_cgroup"), "/system.slice/slurmstepd.scope/job_42");
	assert_int_equal(get_int(o, "owner"), 1000);
	assert_string_equal(get_str(o, "policy"), "hot:gpu0,quota=2G,priority=10");
	assert_int_equal(get_int(o, "set_realtime_usec"), 1764000000000000LL);
	assert_int_equal(get_int(o, "n_pids"), 3);
	assert_string_equal(get_str(o, "tracker"), "damon");
	assert_int_equal(get_int(o, "tracked_bytes"), 1 << 30);
	assert_int_equal(get_int(o, "device_bytes"), 1 << 20);
	assert_int_equal(get_int(o, "hot_bytes"), 2 << 20);
	assert_int_equal(get_int(o, "promoted_bytes"), 4096);
	assert_int_equal(get_int(o, "demoted_bytes"), 8192);
	assert_int_equal(get_int(o, "evicted_bytes"), 12288);
	assert_int_equal(get_int(o, "ticks"), 5);
	json_object_put(o);

	/* A pid target the placement knows nothing about yet. */
	t.key = (TargetKey) { .kind = TARGET_PID, .pid = 1234, .starttime = 99 };
	t.policy = (PolicySpec) { .kind = POLICY_KIND_SYSTEM, .quota = POLICY_QUOTA_NONE };
	o = api_policy_entry(&t, NULL);
	assert_non_null(o);
	assert_string_equal(get_str(o, "target"), "pid:1234");
	assert_string_equal(get_str(o, "kind"), "pid");
	assert_int_equal(get_int(o, "pid"), 1234);
	assert_false(json_object_object_get_ex(o, "job", &v));
	assert_false(json_object_object_get_ex(o, "job_cgroup", &v));
	assert_string_equal(get_str(o, "policy"), "system");
	assert_string_equal(get_str(o, "tracker"), "none");
	assert_int_equal(get_int(o, "n_pids"), 0);
	assert_int_equal(get_int(o, "ticks"), 0);
	json_object_put(o);

	t.key = (TargetKey) { .kind = TARGET_CGROUP, .cgroup = (char *) "/a/b" };
	o = api_policy_entry(&t, NULL);
	assert_non_null(o);
	assert_string_equal(get_str(o, "target"), "cgroup:/a/b");
	assert_string_equal(get_str(o, "cgroup"), "/a/b");
	json_object_put(o);
}

static void test_record_reply(void **state)
{
	TrackerRegion regions[] = {
		{ .start = 0x10000, .length = 0x4000, .heat = 250 },
		{ .start = 0x20000, .length = 0x1000, .heat = 5000 },   /* clamped */
	};
	json_object *o, *a, *v;

	o = api_record_reply(17, regions, ELEMENTSOF(regions), false, false);
	assert_non_null(o);
	assert_int_equal(get_int(o, "tick"), 17);
	assert_true(json_object_object_get_ex(o, "finished", &v));
	assert_false(json_object_get_boolean(v));
	assert_false(json_object_object_get_ex(o, "target_exited", &v));
	assert_true(json_object_object_get_ex(o, "regions", &a));
	assert_int_equal(json_object_array_length(a), 2);
	assert_int_equal(get_int(json_object_array_get_idx(a, 0), "start"), 0x10000);
	assert_int_equal(get_int(json_object_array_get_idx(a, 0), "length"), 0x4000);
	assert_int_equal(get_int(json_object_array_get_idx(a, 0), "heat"), 250);
	assert_int_equal(get_int(json_object_array_get_idx(a, 1), "heat"), 1000);
	json_object_put(o);

	o = api_record_reply(20, NULL, 0, true, true);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "finished", &v));
	assert_true(json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(o, "target_exited", &v));
	assert_true(json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(o, "regions", &a));
	assert_int_equal(json_object_array_length(a), 0);
	json_object_put(o);
}

static void test_record_estimate(void **state)
{
	assert_int_equal(record_estimate_pages(0, 100 * PS, PS), 0);
	assert_int_equal(record_estimate_pages(1000, 100 * PS, PS), 100);
	assert_int_equal(record_estimate_pages(500, 100 * PS, PS), 50);
	assert_int_equal(record_estimate_pages(125, 4 * PS, PS), 1);    /* 0.5 rounds up */
	assert_int_equal(record_estimate_pages(124, 4 * PS, PS), 1);    /* 0.496: at least 1 */
	assert_int_equal(record_estimate_pages(1, PS, PS), 1);
	assert_int_equal(record_estimate_pages(333, 3 * PS, PS), 1);
	assert_int_equal(record_estimate_pages(1000, PS + 1, PS), 2);   /* partial page counts */
}

/* The trace's accesses of region id in the tick with trace tick number tick (0: none). */
static uint64_t trace_count(const Trace *t, uint64_t tick, uint32_t id)
{
	for (size_t k = 0; k < t->n_ticks; k++) {
		if (t->ticks[k].tick != tick)
			continue;
		for (size_t a = t->ticks[k].first; a < t->ticks[k].first + t->ticks[k].n; a++)
			if (t->accesses[a].region == id)
				return t->accesses[a].count;
	}
	return 0;
}

static void test_record_trace(void **state)
{
	/*
	 * Tick 10: [0, 8p) heat 500 and [16p, 20p) heat 1000.
	 * Tick 11: split at 2p: [0, 2p) heat 1000, [2p, 8p) heat 0; [16p, 20p) gone.
	 * Tick 13: merged: [0, 8p) heat 250 ... plus [8p, 12p) heat 0 (a gap in 10 and 11).
	 * Refinement: [0,2p) [2p,8p) [8p,12p) [16p,20p); [12p,16p) is never covered.
	 */
	RecordedRegion t10[] = { { 16 * PS, 4 * PS, 1000 }, { 0, 8 * PS, 500 } };  /* unsorted */
	RecordedRegion t11[] = { { 0, 2 * PS, 1000 }, { 2 * PS, 6 * PS, 0 } };
	RecordedRegion t13[] = { { 0, 8 * PS, 250 }, { 8 * PS, 4 * PS, 0 } };
	RecordedTick ticks[] = {
		{ 10, t10, ELEMENTSOF(t10) },
		{ 11, t11, ELEMENTSOF(t11) },
		{ 13, t13, ELEMENTSOF(t13) },
	};
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	unsigned line = 0;
	Trace *t = NULL, *back = NULL;
	FILE *f;

	assert_int_equal(record_build_trace(ticks, ELEMENTSOF(ticks), PS, &t), 0);
	assert_int_equal(t->n_regions, 4);
	assert_int_equal(t->regions[0].start, 0);
	assert_int_equal(t->regions[0].length, 2 * PS);
	assert_int_equal(t->regions[1].start, 2 * PS);
	assert_int_equal(t->regions[1].length, 6 * PS);
	assert_int_equal(t->regions[2].start, 8 * PS);
	assert_int_equal(t->regions[2].length, 4 * PS);
	assert_int_equal(t->regions[3].start, 16 * PS);
	assert_int_equal(t->regions[3].length, 4 * PS);

	/* Ticks relative to the first. */
	assert_int_equal(t->n_ticks, 3);
	assert_int_equal(t->ticks[0].tick, 0);
	assert_int_equal(t->ticks[1].tick, 1);
	assert_int_equal(t->ticks[2].tick, 3);

	/* Tick 0: 4 pages of [0, 8p) spread 1 + 3 by length; 4 pages of [16p, 20p). */
	assert_int_equal(trace_count(t, 0, 0), 1);
	assert_int_equal(trace_count(t, 0, 1), 3);
	assert_int_equal(trace_count(t, 0, 2), 0);
	assert_int_equal(trace_count(t, 0, 3), 4);
	/* Tick 1: 2 pages on [0, 2p), nothing elsewhere. */
	assert_int_equal(trace_count(t, 1, 0), 2);
	assert_int_equal(trace_count(t, 1, 1), 0);
	assert_int_equal(trace_count(t, 1, 3), 0);
	assert_int_equal(t->ticks[1].n, 1);
	/* Tick 3: 2 pages of [0, 8p): cumulative rounding gives 1 (0.5 up) and 1. */
	assert_int_equal(trace_count(t, 3, 0) + trace_count(t, 3, 1), 2);
	assert_int_equal(trace_count(t, 3, 0), 1);
	assert_int_equal(trace_total_accesses(t), 1 + 3 + 4 + 2 + 2);

	/* What cohctl simulate reads back is the same trace. */
	f = open_memstream(&text, &len);
	assert_non_null(f);
	assert_int_equal(trace_write(t, f), 0);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(trace_parse(text, len, &back, &line), 0);
	assert_int_equal(back->n_regions, t->n_regions);
	assert_int_equal(back->n_ticks, t->n_ticks);
	assert_int_equal(trace_total_accesses(back), trace_total_accesses(t));
	trace_free(back);
	trace_free(t);
}

static void test_record_trace_spread(void **state)
{
	/* 1000 pages at full heat over many pieces: the counts add up exactly, by length. */
	RecordedRegion whole[] = { { 0, 1000 * PS, 1000 } };
	RecordedRegion parts[] = { { 0, 1 * PS, 0 }, { 1 * PS, 333 * PS, 0 }, { 334 * PS, 666 * PS, 0 } };
	RecordedTick ticks[] = { { 5, whole, 1 }, { 6, parts, 3 } };
	Trace *t = NULL;

	assert_int_equal(record_build_trace(ticks, ELEMENTSOF(ticks), PS, &t), 0);
	assert_int_equal(t->n_regions, 3);
	assert_int_equal(trace_count(t, 0, 0), 1);
	assert_int_equal(trace_count(t, 0, 1), 333);
	assert_int_equal(trace_count(t, 0, 2), 666);
	assert_int_equal(t->ticks[1].n, 0);
	trace_free(t);
}

static void test_record_trace_errors(void **state)
{
	RecordedRegion overlap[] = { { 0, 2 * PS, 10 }, { PS, 2 * PS, 10 } };
	RecordedRegion empty_len[] = { { 0, 0, 10 } };
	RecordedRegion hot[] = { { 0, PS, 1001 } };
	RecordedRegion ok[] = { { 0, PS, 10 } };
	RecordedRegion wrap[] = { { UINT64_MAX - PS + 1, 2 * PS, 1 } };
	RecordedTick t1[] = { { 1, overlap, 2 } };
	RecordedTick t2[] = { { 1, empty_len, 1 } };
	RecordedTick t3[] = { { 1, hot, 1 } };
	RecordedTick t4[] = { { 2, ok, 1 }, { 2, ok, 1 } };
	RecordedTick t5[] = { { 1, NULL, 0 }, { 2, NULL, 0 } };
	RecordedTick t6[] = { { 0, ok, 1 }, { TRACE_TICK_MAX + 1, ok, 1 } };
	RecordedTick t7[] = { { 1, wrap, 1 } };
	Trace *t = NULL;

	assert_int_equal(record_build_trace(t1, 1, PS, &t), -EINVAL);
	assert_int_equal(record_build_trace(t2, 1, PS, &t), -EINVAL);
	assert_int_equal(record_build_trace(t3, 1, PS, &t), -EINVAL);
	assert_int_equal(record_build_trace(t4, 2, PS, &t), -EINVAL);
	assert_int_equal(record_build_trace(t5, 2, PS, &t), -ENODATA);
	assert_int_equal(record_build_trace(t5, 0, PS, &t), -ENODATA);
	assert_int_equal(record_build_trace(t6, 2, PS, &t), -E2BIG);
	assert_int_equal(record_build_trace(t7, 1, PS, &t), -EINVAL);
	assert_null(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_migrate),
		cmocka_unit_test(test_parse_migrate_values),
		cmocka_unit_test(test_parse_residency),
		cmocka_unit_test(test_migrate_reply),
		cmocka_unit_test(test_stats_reply),
		cmocka_unit_test(test_parse_set_policy),
		cmocka_unit_test(test_parse_set_policy_values),
		cmocka_unit_test(test_parse_record),
		cmocka_unit_test(test_policy_entry),
		cmocka_unit_test(test_record_reply),
		cmocka_unit_test(test_record_estimate),
		cmocka_unit_test(test_record_trace),
		cmocka_unit_test(test_record_trace_spread),
		cmocka_unit_test(test_record_trace_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
