/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daemon/api: parameter validation of Migrate and GetResidency, and the reply builders. */

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

		if (t[i].parameter == NULL && r != 0)
			fail_msg("case %zu (%s): rejected: %s: %s", i, t[i].json, err.parameter,
				 err.reason);
		if (t[i].parameter) {
			if (r != -EINVAL)
				fail_msg("case %zu (%s): accepted", i, t[i].json);
			if (!err.parameter || !streq(err.parameter, t[i].parameter))
				fail_msg("case %zu (%s): parameter %s, want %s", i, t[i].json,
					 err.parameter ?: "(null)", t[i].parameter);
			assert_non_null(err.reason);
			assert_true(strlen(err.reason) > 0);
		}
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_migrate),
		cmocka_unit_test(test_parse_migrate_values),
		cmocka_unit_test(test_parse_residency),
		cmocka_unit_test(test_migrate_reply),
		cmocka_unit_test(test_stats_reply),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
