/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include <json-c/json.h>

#include "api.h"
#include "conf.h"
#include "devices.h"
#include "manager.h"
#include "util.h"

#define KIB UINT64_C(1024)
#define GIB (UINT64_C(1) << 30)

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

static void test_parse_meminfo(void **state)
{
	static const struct {
		const char *name, *text;
		int node, ret;
		uint64_t total, free;
	} t[] = {
		{ "minimal", "Node 1 MemTotal: 100 kB\nNode 1 MemFree: 40 kB\n", 1, 0, 100 * KIB, 40 * KIB },
		{ "real layout",
		  "Node 0 MemTotal:        6121248 kB\n"
		  "Node 0 MemFree:         5585260 kB\n"
		  "Node 0 MemUsed:          535988 kB\n"
		  "Node 0 HugePages_Total:     0\n"
		  "Node 0 HugePages_Free:      0\n", 0, 0, 6121248 * KIB, 5585260 * KIB },
		{ "free first, no newline at end", "Node 2 MemFree: 1 kB\nNode 2 MemTotal: 2 kB", 2, 0,
		  2 * KIB, 1 * KIB },
		{ "blank lines", "\nNode 0 MemTotal: 2 kB\n\nNode 0 MemFree: 1 kB\n\n", 0, 0, 2 * KIB, KIB },
		{ "empty", "", 0, -EBADMSG, 0, 0 },
		{ "no MemFree", "Node 0 MemTotal: 2 kB\n", 0, -EBADMSG, 0, 0 },
		{ "no MemTotal", "Node 0 MemFree: 2 kB\n", 0, -EBADMSG, 0, 0 },
		{ "other node", "Node 1 MemTotal: 2 kB\nNode 1 MemFree: 1 kB\n", 0, -EBADMSG, 0, 0 },
		{ "wrong unit", "Node 0 MemTotal: 2 MB\nNode 0 MemFree: 1 kB\n", 0, -EBADMSG, 0, 0 },
		{ "no unit", "Node 0 MemTotal: 2\nNode 0 MemFree: 1 kB\n", 0, -EBADMSG, 0, 0 },
		{ "trailing junk", "Node 0 MemTotal: 2 kB x\nNode 0 MemFree: 1 kB\n", 0, -EBADMSG, 0, 0 },
		{ "garbage", "hello\n", 0, -EBADMSG, 0, 0 },
		{ "free above total", "Node 0 MemTotal: 1 kB\nNode 0 MemFree: 2 kB\n", 0, -EBADMSG, 0, 0 },
		{ "overflow", "Node 0 MemTotal: 18014398509481984 kB\nNode 0 MemFree: 1 kB\n", 0,
		  -ERANGE, 0, 0 },
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		uint64_t total = 1, mfree = 1;
		int r = devices_parse_node_meminfo(t[i].text, t[i].node, &total, &mfree);

		if (r != t[i].ret)
			fail_msg("case \"%s\": %d, expected %d", t[i].name, r, t[i].ret);
		if (r == 0 && (total != t[i].total || mfree != t[i].free))
			fail_msg("case \"%s\": %" PRIu64 "/%" PRIu64, t[i].name, total, mfree);
	}
}

static void test_parse_tier_name(void **state)
{
	int t;

	assert_int_equal(devices_parse_tier_name("memory_tier4", &t), 0);
	assert_int_equal(t, 4);
	assert_int_equal(devices_parse_tier_name("memory_tier22", &t), 0);
	assert_int_equal(t, 22);
	assert_int_equal(devices_parse_tier_name("memory_tier", &t), -EINVAL);
	assert_int_equal(devices_parse_tier_name("memory_tier-1", &t), -EINVAL);
	assert_int_equal(devices_parse_tier_name("memory_tier4x", &t), -EINVAL);
	assert_int_equal(devices_parse_tier_name("power", &t), -EINVAL);
}

typedef struct ExpectedDevice {
	const char *name;
	int node, tier;
	uint64_t total, free;
	bool configured;
} ExpectedDevice;

static void check_devices(const char *fixture, const Conf *conf, const ExpectedDevice *exp,
			  size_t n_exp)
{
	_cleanup_free_ char *root = fixture_root(fixture);
	Device *d = NULL;
	size_t n = 0;

	assert_int_equal(devices_discover(root, conf, &d, &n, NULL), 0);
	if (n != n_exp)
		fail_msg("%s: %zu devices, expected %zu", fixture, n, n_exp);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(d[i].name, exp[i].name);
		assert_int_equal(d[i].kind, DEVICE_KIND_NUMA);
		assert_int_equal(d[i].node, exp[i].node);
		assert_int_equal(d[i].tier, exp[i].tier);
		assert_int_equal(d[i].total_bytes, exp[i].total);
		assert_int_equal(d[i].free_bytes, exp[i].free);
		assert_int_equal(d[i].configured, exp[i].configured);
	}
	devices_free(d, n);
}

static void test_parse_zoneinfo_pcp(void **state)
{
	/* 6.1's layout, trimmed: two zones of node 0, one of node 1, two CPUs. */
	static const char real[] =
		"Node 0, zone      DMA\n"
		"  per-node stats\n"
		"      nr_inactive_anon 12\n"
		"  pages free     3968\n"
		"        protection: (0, 951, 951, 951, 951)\n"
		"  pagesets\n"
		"    cpu: 0\n"
		"              count: 0\n"
		"              high:  13\n"
		"              batch: 1\n"
		"  vm stats threshold: 4\n"
		"Node 0, zone    DMA32\n"
		"  pagesets\n"
		"    cpu: 0\n"
		"              count: 100\n"
		"              high:  378\n"
		"    cpu: 1\n"
		"              count: 23\n"
		"Node 1, zone   Normal\n"
		"  pagesets\n"
		"    cpu: 0\n"
		"              count: 4000\n"
		"    cpu: 1\n"
		"              count: 1024\n"
		"  node_unreclaimable:  0\n"
		"Node 1, zone  Movable\n"
		"  pages free     0\n";
	static const struct {
		const char *name, *text;
		int ret;
		uint64_t node0, node1;
	} t[] = {
		{ "real layout", real, 0, 123, 5024 },
		{ "empty", "", 0, 0, 0 },
		{ "node beyond the array is skipped", "Node 9, zone Normal\n count: 5\n", 0, 0, 0 },
		{ "no newline at end", "Node 1, zone Normal\n count: 7", 0, 0, 7 },
		{ "count before any zone", "  count: 5\nNode 0, zone DMA\n", -EBADMSG, 0, 0 },
		{ "count not a number", "Node 0, zone DMA\n count: x\n", -EBADMSG, 0, 0 },
		{ "negative count", "Node 0, zone DMA\n count: -1\n", -EBADMSG, 0, 0 },
		{ "count with junk", "Node 0, zone DMA\n count: 12k\n", -EBADMSG, 0, 0 },
		{ "overflow", "Node 0, zone DMA\n count: 18446744073709551615\n count: 1\n",
		  -ERANGE, 0, 0 },
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		uint64_t pages[4] = {};
		int r = devices_parse_zoneinfo_pcp(t[i].text, pages, ELEMENTSOF(pages));

		if (r != t[i].ret)
			fail_msg("%s: returned %d, expected %d", t[i].name, r, t[i].ret);
		if (r == 0 && (pages[0] != t[i].node0 || pages[1] != t[i].node1))
			fail_msg("%s: %" PRIu64 "/%" PRIu64 " pages", t[i].name, pages[0], pages[1]);
	}
}

static void test_fixture_nodes(void **state)
{
	static const struct {
		const char *fixture;
		size_t n_nodes;
		int memonly[10];     /* 1 = CPU-less with memory */
		int tiers[10];
	} t[] = {
		{ "one-node", 1, { 0 }, { 4 } },
		{ "grace-hopper", 2, { 0, 1 }, { 4, 4 } },
		{ "cxl-tier", 2, { 0, 1 }, { 4, 22 } },
		{ "eight-memonly", 10, { 0, 0, 1, 1, 1, 1, 1, 1, 1, 1 }, { 4, 4, 5, 5, 5, 5, 5, 5, 5, 5 } },
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		_cleanup_free_ char *root = fixture_root(t[i].fixture);
		_cleanup_free_ NodeInfo *nodes = NULL;
		size_t n = 0;

		assert_int_equal(devices_read_nodes(root, &nodes, &n), 0);
		assert_int_equal(n, t[i].n_nodes);
		for (size_t j = 0; j < n; j++) {
			assert_int_equal(nodes[j].id, (int) j);
			assert_true(nodes[j].has_memory);
			assert_int_equal(!nodes[j].has_cpu, t[i].memonly[j]);
			assert_int_equal(nodes[j].tier, t[i].tiers[j]);
			assert_true(nodes[j].free_bytes <= nodes[j].total_bytes);
		}
	}
}

static void test_discover_fixtures(void **state)
{
	static const ExpectedDevice gh[] = {
		{ "node1", 1, 4, 96 * GIB, 90 * GIB, false },
	};
	static const ExpectedDevice cxl[] = {
		{ "node1", 1, 22, 128 * GIB, 127 * GIB, false },
	};
	ExpectedDevice eight[8];

	check_devices("one-node", NULL, NULL, 0);
	check_devices("grace-hopper", NULL, gh, ELEMENTSOF(gh));
	check_devices("cxl-tier", NULL, cxl, ELEMENTSOF(cxl));

	for (int i = 0; i < 8; i++) {
		static char names[8][16];

		snprintf(names[i], sizeof(names[i]), "node%d", i + 2);
		eight[i] = (ExpectedDevice) {
			.name = names[i], .node = i + 2, .tier = 5, .total = 16 * GIB,
			.free = (uint64_t) (16 - i) * GIB - 1024 * KIB,
		};
	}
	check_devices("eight-memonly", NULL, eight, 8);
}

static Conf *conf_from_text(const char *text)
{
	Conf *c = conf_new();
	ConfError *errors = NULL;
	size_t n_errors = 0;

	assert_non_null(c);
	assert_int_equal(conf_parse_text(c, "t.conf", text, &errors, &n_errors), 0);
	assert_int_equal(conf_validate(c, &errors, &n_errors), 0);
	assert_int_equal(n_errors, 0);
	return c;
}

static void test_discover_configured(void **state)
{
	_cleanup_(conf_freep) Conf *c = NULL;
	_cleanup_free_ char *root = fixture_root("eight-memonly");
	_cleanup_strv_free_ char **missing = NULL;
	Device *d = NULL;
	size_t n = 0;

	/*
	 * hbm names node 3 with watermarks; cpu0 names a node with CPUs (allowed:
	 * the administrator's choice); ghost names a node that does not exist;
	 * node2 is a configured name for node 9, so auto-named node 2 must differ.
	 */
	c = conf_from_text("[Device hbm]\nNode=3\nLowWatermark=10%\nHighWatermark=4G\n"
			   "[Device cpu0]\nNode=0\n"
			   "[Device ghost]\nNode=42\n"
			   "[Device node2]\nNode=9\n");
	assert_int_equal(devices_discover(root, c, &d, &n, &missing), 0);

	assert_int_equal(strv_length(missing), 1);
	assert_string_equal(missing[0], "ghost");

	assert_int_equal(n, 3 + 6);
	assert_string_equal(d[0].name, "hbm");
	assert_int_equal(d[0].node, 3);
	assert_true(d[0].configured);
	assert_true(d[0].has_low_watermark);
	assert_int_equal(d[0].low_watermark_bytes, 16 * GIB / 10);
	assert_true(d[0].has_high_watermark);
	assert_int_equal(d[0].high_watermark_bytes, 4 * GIB);

	assert_string_equal(d[1].name, "cpu0");
	assert_int_equal(d[1].node, 0);
	assert_int_equal(d[1].total_bytes, 256 * GIB);
	assert_false(d[1].has_low_watermark);

	assert_string_equal(d[2].name, "node2");
	assert_int_equal(d[2].node, 9);

	/* The rest are discovered: nodes 2, 4-8 (3 and 9 are taken by configuration). */
	assert_string_equal(d[3].name, "node2-auto");
	assert_int_equal(d[3].node, 2);
	assert_false(d[3].configured);
	for (int i = 4; i < 9; i++) {
		char name[16];

		snprintf(name, sizeof(name), "node%d", i);
		assert_string_equal(d[i].name, name);
		assert_int_equal(d[i].node, i);
		assert_false(d[i].configured);
	}
	devices_free(d, n);
}

/* A small sysfs tree in a temporary directory, for the broken and fallback cases. */
static void put(const char *root, const char *path, const char *text)
{
	_cleanup_free_ char *p = NULL, *cmd = NULL;
	FILE *f;

	p = path_join_root(root, path);
	assert_non_null(p);
	assert_true(asprintf(&cmd, "mkdir -p \"$(dirname '%s')\"", p) > 0);
	assert_int_equal(system(cmd), 0);
	f = fopen(p, "we");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void rm_rf(const char *dir)
{
	_cleanup_free_ char *cmd = NULL;

	assert_true(asprintf(&cmd, "rm -rf -- '%s'", dir) > 0);
	assert_int_equal(system(cmd), 0);
}

#define NODE "/sys/devices/system/node"

static void test_discover_fallbacks(void **state)
{
	char root[] = "/tmp/test-devices-XXXXXX";
	Device *d = NULL;
	size_t n = 0;

	assert_non_null(mkdtemp(root));

	/* No has_cpu/has_memory and no memory tiers: cpulist and MemTotal decide. */
	put(root, NODE "/node0/cpulist", "0-3\n");
	put(root, NODE "/node0/meminfo", "Node 0 MemTotal: 4096 kB\nNode 0 MemFree: 1024 kB\n");
	put(root, NODE "/node1/cpulist", "\n");
	put(root, NODE "/node1/meminfo", "Node 1 MemTotal: 2048 kB\nNode 1 MemFree: 2048 kB\n");
	put(root, NODE "/node2/cpulist", "\n");
	put(root, NODE "/node2/meminfo", "Node 2 MemTotal: 0 kB\nNode 2 MemFree: 0 kB\n");
	put(root, NODE "/possible", "0-2\n");

	assert_int_equal(devices_discover(root, NULL, &d, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_string_equal(d[0].name, "node1");
	assert_int_equal(d[0].tier, -1);
	assert_int_equal(d[0].total_bytes, 2048 * KIB);
	assert_int_equal(d[0].free_bytes, 2048 * KIB);
	devices_free(d, n);

	/* Free pages in per-CPU lists count as free, up to the node's size; a bad zoneinfo is ignored. */
	put(root, NODE "/node1/meminfo", "Node 1 MemTotal: 2048 kB\nNode 1 MemFree: 1024 kB\n");
	put(root, "/proc/zoneinfo", "Node 1, zone Normal\n pagesets\n  cpu: 0\n   count: 2\n");
	assert_int_equal(devices_discover(root, NULL, &d, &n, NULL), 0);
	assert_int_equal(d[0].free_bytes, 1024 * KIB + 2 * (uint64_t) sysconf(_SC_PAGESIZE));
	devices_free(d, n);
	put(root, "/proc/zoneinfo", "Node 1, zone Normal\n count: 100000000\n");
	assert_int_equal(devices_discover(root, NULL, &d, &n, NULL), 0);
	assert_int_equal(d[0].free_bytes, 2048 * KIB);
	devices_free(d, n);
	put(root, "/proc/zoneinfo", "count: 2\n");
	assert_int_equal(devices_discover(root, NULL, &d, &n, NULL), 0);
	assert_int_equal(d[0].free_bytes, 1024 * KIB);
	devices_free(d, n);
	put(root, NODE "/node1/meminfo", "Node 1 MemTotal: 2048 kB\nNode 1 MemFree: 2048 kB\n");

	/* has_memory wins over MemTotal, has_cpu over cpulist. */
	put(root, NODE "/has_memory", "0,2\n");
	put(root, NODE "/has_cpu", "0-1\n");
	assert_int_equal(devices_discover(root, NULL, &d, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_string_equal(d[0].name, "node2");
	devices_free(d, n);

	/* Broken inputs fail with a precise error instead of a wrong device list. */
	put(root, NODE "/has_cpu", "0-x\n");
	assert_int_equal(devices_discover(root, NULL, &d, &n, NULL), -EBADMSG);
	put(root, NODE "/has_cpu", "0\n");
	put(root, NODE "/node1/meminfo", "Node 1 MemTotal: 2048 kB\n");
	assert_int_equal(devices_discover(root, NULL, &d, &n, NULL), -EBADMSG);
	put(root, NODE "/node1/meminfo", "Node 1 MemTotal: 2048 kB\nNode 1 MemFree: 2048 kB\n");
	put(root, "/sys/devices/virtual/memory_tiering/memory_tier4/nodelist", "0-1\n");
	put(root, "/sys/devices/virtual/memory_tiering/memory_tier9/nodelist", "2048\n");
	assert_int_equal(devices_discover(root, NULL, &d, &n, NULL), -ERANGE);
	put(root, "/sys/devices/virtual/memory_tiering/memory_tier9/nodelist", "2\n");
	assert_int_equal(devices_discover(root, NULL, &d, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(d[0].tier, 9);
	devices_free(d, n);

	rm_rf(root);

	/* No NUMA sysfs at all. */
	assert_int_equal(devices_discover("/nonexistent-root", NULL, &d, &n, NULL), -ENOENT);
}

static void test_device_json(void **state)
{
	Device devs[2] = {
		{ .name = (char *) "gpu0", .kind = DEVICE_KIND_NUMA, .node = 1, .tier = 4,
		  .total_bytes = 96 * GIB, .free_bytes = 90 * GIB, .has_low_watermark = true,
		  .low_watermark_bytes = GIB, .configured = true },
		{ .name = (char *) "node2", .kind = DEVICE_KIND_NUMA, .node = 2, .tier = -1,
		  .total_bytes = 1, .free_bytes = 0 },
	};
	json_object *o = api_list_devices_reply(devs, 2);

	assert_non_null(o);
	/* Optional fields are absent, not null, when unknown (the IDL's ?int). */
	assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
		"{\"devices\":["
		"{\"name\":\"gpu0\",\"kind\":\"numa\",\"node\":1,\"tier\":4,"
		"\"total_bytes\":103079215104,\"free_bytes\":96636764160,"
		"\"low_watermark_bytes\":1073741824,\"configured\":true},"
		"{\"name\":\"node2\",\"kind\":\"numa\",\"node\":2,"
		"\"total_bytes\":1,\"free_bytes\":0,\"configured\":false}]}");
	json_object_put(o);

	o = api_list_devices_reply(NULL, 0);
	assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
			    "{\"devices\":[]}");
	json_object_put(o);
}

static void test_status_json(void **state)
{
	Device devs[2] = {
		{ .name = (char *) "a", .total_bytes = 100, .free_bytes = 40 },
		{ .name = (char *) "b", .total_bytes = 50, .free_bytes = 10 },
	};
	char *files[] = { (char *) "/etc/coherentd/coherentd.conf", NULL };
	Conf conf = { .files = files };
	Manager m = {
		.root = (char *) "/r", .conf = &conf, .devices = devs, .n_devices = 2,
		.start_usec = 1000,
	};
	json_object *o = api_get_status_reply(&m, 3, 5000), *v;
	char expected[512];

	assert_non_null(o);
	/* The pid is ours; everything else comes from the manager. */
	assert_true(json_object_object_get_ex(o, "pid", &v));
	assert_int_equal(json_object_get_int(v), getpid());
	json_object_object_del(o, "pid");
	snprintf(expected, sizeof(expected),
		 "{\"version\":\"%s\",\"uptime_usec\":4000,\"root\":\"\\/r\","
		 "\"config_files\":[\"\\/etc\\/coherentd\\/coherentd.conf\"],\"n_devices\":2,"
		 "\"total_device_bytes\":150,\"free_device_bytes\":50,\"n_connections\":3}",
		 PACKAGE_VERSION);
	assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), expected);
	json_object_put(o);

	/* A clock that has not moved past the start reports 0, not a huge number. */
	o = api_get_status_reply(&m, 0, 10);
	assert_true(json_object_object_get_ex(o, "uptime_usec", &v));
	assert_int_equal(json_object_get_int64(v), 0);
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_meminfo),
		cmocka_unit_test(test_parse_tier_name),
		cmocka_unit_test(test_parse_zoneinfo_pcp),
		cmocka_unit_test(test_fixture_nodes),
		cmocka_unit_test(test_discover_fixtures),
		cmocka_unit_test(test_discover_configured),
		cmocka_unit_test(test_discover_fallbacks),
		cmocka_unit_test(test_device_json),
		cmocka_unit_test(test_status_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
