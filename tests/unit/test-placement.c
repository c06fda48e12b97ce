/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon/placement: the per-tick loop on the fake backend (as the numa
 * backend, and as the sampler of the "sample" tracker) under a fixture root
 * (sysfs nodes, /proc/PID/stat and maps): hot regions are promoted, a system
 * target is evicted, watermark pressure evicts the lower priority first, a
 * target whose process vanished is dropped and the state saved, the rate
 * limit holds, and a tick never starts while one runs.
 */

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend-fake.h"
#include "conf.h"
#include "manager.h"
#include "placement.h"
#include "state.h"
#include "util.h"

#define PG FAKE_PAGE_SIZE
#define GPU 1                         /* fake device index = NUMA node of gpu0 */
#define GPU_TOTAL_KB UINT64_C(1048576)
/* Only a broken loop makes a test wait this long; passing never depends on it. */
#define DEADLINE_SEC 120
#define BASE UINT64_C(0x10000000)
#define MAP_STRIDE UINT64_C(0x100000)  /* mappings 1 MiB apart: gaps between them */

static char *root, *state_dir;
static Manager *m;
static Backend *fake;

static void write_file(const char *rel, const char *text)
{
	char path[PATH_MAX], cmd[PATH_MAX + 32];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", path);
	assert_int_equal(system(cmd), 0);
	f = fopen(path, "we");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void set_gpu_free_kb(uint64_t free_kb)
{
	char text[256];

	snprintf(text, sizeof(text), "Node 1 MemTotal: %8" PRIu64 " kB\nNode 1 MemFree: %8" PRIu64
		 " kB\nNode 1 MemUsed: %8" PRIu64 " kB\n", GPU_TOTAL_KB, free_kb,
		 GPU_TOTAL_KB - free_kb);
	write_file("sys/devices/system/node/node1/meminfo", text);
}

static int setup_devices(Backend *b, void *userdata)
{
	/* Index 0 stands for node 0 (the CPU node, never a target), 1 for gpu0. */
	if (fake_add_device(b, "node0", 0, 1 << 20) != 0 || fake_add_device(b, "gpu0", 1, 1 << 18) != 1)
		return -EINVAL;
	return 0;
}

static int setup(void **state)
{
	char tmpl[] = "/tmp/coh-test-placement.XXXXXX", path[PATH_MAX];

	assert_non_null(mkdtemp(tmpl));
	root = strdup(tmpl);
	assert_non_null(root);
	snprintf(path, sizeof(path), "%s/state", root);
	state_dir = strdup(path);
	assert_non_null(state_dir);

	write_file("sys/devices/system/node/has_cpu", "0\n");
	write_file("sys/devices/system/node/has_memory", "0-1\n");
	write_file("sys/devices/system/node/node0/cpulist", "0-3\n");
	write_file("sys/devices/system/node/node0/meminfo",
		   "Node 0 MemTotal: 8388608 kB\nNode 0 MemFree: 4194304 kB\n"
		   "Node 0 MemUsed: 4194304 kB\n");
	write_file("sys/devices/system/node/node1/cpulist", "\n");
	set_gpu_free_kb(GPU_TOTAL_KB);
	backend_fake_set_setup(setup_devices, NULL);
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	m = manager_free(m);
	fake = NULL;
	backend_fake_set_setup(NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
	free(root);
	free(state_dir);
	return 0;
}

/*
 * The manager as coherentd would have it, with the fake as its numa backend
 * (and the tracker's sampler), or as its cohmem backend (pools).
 */
static void start_as(const char *conf_text, bool as_cohmem)
{
	ConfError *errors = NULL;
	size_t n_errors = 0;
	Conf *c = conf_new();

	assert_non_null(c);
	assert_int_equal(conf_parse_text(c, "test.conf", conf_text, &errors, &n_errors), 0);
	assert_int_equal(conf_validate(c, &errors, &n_errors), 0);
	for (size_t i = 0; i < n_errors; i++)
		print_error("%s:%u: %s\n", errors[i].file, errors[i].line, errors[i].message);
	assert_int_equal(n_errors, 0);

	assert_int_equal(manager_new(&m), 0);
	assert_int_equal(manager_set_root(m, root), 0);
	assert_int_equal(manager_set_state_dir(m, state_dir), 0);
	manager_set_conf(m, c);
	assert_int_equal(backend_ref_open(&backend_fake_ops, root,
					  as_cohmem ? &m->cohmem : &m->numa), 0);
	fake = (as_cohmem ? m->cohmem : m->numa)->backend;
	assert_int_equal(manager_refresh_devices(m), 0);
	assert_non_null(devices_find(m->devices, m->n_devices, "gpu0"));
	if (!as_cohmem)
		placement_set_sampler(m->placement, m->numa);
}

static void start(const char *conf_text)
{
	start_as(conf_text, false);
}

/* A process with n anonymous mappings of pages_each pages, all present at location. */
static void add_process(pid_t pid, size_t n, uint64_t pages_each, int location)
{
	char rel[64], stat[256], *maps = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&maps, &size);

	assert_non_null(f);
	assert_int_equal(fake_add_process(fake, pid), 0);
	for (size_t i = 0; i < n; i++) {
		uint64_t start = BASE + i * MAP_STRIDE, end = start + pages_each * PG;

		assert_int_equal(fake_add_mapping(fake, pid, start, end, BACKEND_MAP_ANON), 0);
		assert_int_equal(fake_set_pages(fake, pid, start, pages_each, location, 0), 0);
		fprintf(f, "%" PRIx64 "-%" PRIx64 " rw-p 00000000 00:00 0 \n", start, end);
	}
	assert_int_equal(fclose(f), 0);
	snprintf(rel, sizeof(rel), "proc/%d/maps", (int) pid);
	write_file(rel, maps);
	free(maps);
	/* Field 22, the start time, is 4242. */
	snprintf(stat, sizeof(stat), "%d (work) S 1 %d %d 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 "
		 "4242 0 0\n", (int) pid, (int) pid, (int) pid);
	snprintf(rel, sizeof(rel), "proc/%d/stat", (int) pid);
	write_file(rel, stat);
	snprintf(rel, sizeof(rel), "proc/%d/status", (int) pid);
	write_file(rel, "Name:\twork\nState:\tS (sleeping)\nUid:\t1000\t1000\t1000\t1000\n");
}

static void remove_process(pid_t pid)
{
	char cmd[PATH_MAX + 32];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s/proc/%d'", root, (int) pid);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(fake_remove_process(fake, pid), 0);
}

/* Accessed bits set on every page of mapping i, wherever the page is. */
static void touch(pid_t pid, size_t i, uint64_t pages)
{
	for (uint64_t k = 0; k < pages; k++) {
		uint64_t a = BASE + i * MAP_STRIDE + k * PG;
		int loc = fake_page_location(fake, pid, a);

		assert_true(loc >= FAKE_SYSTEM);
		assert_int_equal(fake_set_pages(fake, pid, a, 1, loc, FAKE_PAGE_YOUNG), 0);
	}
}

/* Pages of mapping i at location. */
static uint64_t pages_at(pid_t pid, size_t i, uint64_t pages, int location)
{
	uint64_t c = 0;

	for (uint64_t k = 0; k < pages; k++)
		c += fake_page_location(fake, pid, BASE + i * MAP_STRIDE + k * PG) == location;
	return c;
}

static uint64_t now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec;
}

static void wait_idle(void)
{
	uint64_t deadline = now_sec() + DEADLINE_SEC;

	while (placement_is_ticking(m->placement)) {
		assert_true(sd_event_run(m->event, 100 * USEC_PER_MSEC) >= 0);
		assert_true(now_sec() < deadline);
	}
	/* A tick scheduled by a policy change, which finds the loop free now. */
	while (sd_event_run(m->event, 0) > 0)
		while (placement_is_ticking(m->placement)) {
			assert_true(sd_event_run(m->event, 100 * USEC_PER_MSEC) >= 0);
			assert_true(now_sec() < deadline);
		}
}

static void run_tick(void)
{
	assert_int_equal(placement_tick(m->placement), 0);
	wait_idle();
}

static uint64_t set_policy_pid(pid_t pid, const char *spec)
{
	TargetKey key = { .kind = TARGET_PID, .pid = pid, .starttime = 4242 };
	PolicySpec ps;
	const char *why = NULL;
	uint64_t id = 0;

	assert_int_equal(policy_spec_parse(spec, &ps, &why), 0);
	assert_int_equal(placement_set_policy(m->placement, &key, 1000, &ps, &id), 0);
	return id;
}

static PlacementTargetStatus status_of(uint64_t id)
{
	PlacementTargetStatus st;

	assert_int_equal(placement_target_status(m->placement, id, &st), 0);
	free(st.cgroup);
	return st;
}

#define CONF_BASE                                                                       \
	"[Daemon]\nTickSec=1s\n"                                                         \
	"[Policy]\nTracker=sample\n"                                                     \
	"[Device gpu0]\nNode=1\n"

/* ------------------------------------------------------------------ tests */

static void test_hot_promoted(void **state)
{
	const pid_t pid = 1000;
	PlacementTargetStatus st;
	Stats saved = {};
	const StatsEntry *e;
	uint64_t id;
	unsigned ticks = 0;

	start(CONF_BASE);
	/* Mapping 0 is hot, mapping 1 is never touched. */
	add_process(pid, 2, 64, FAKE_SYSTEM);
	id = set_policy_pid(pid, "hot:gpu0");
	wait_idle();

	while (pages_at(pid, 0, 64, GPU) < 64 && ticks++ < 10) {
		touch(pid, 0, 64);
		run_tick();
	}
	assert_int_equal(pages_at(pid, 0, 64, GPU), 64);
	assert_int_equal(pages_at(pid, 1, 64, FAKE_SYSTEM), 64);

	st = status_of(id);
	assert_int_equal(st.n_pids, 1);
	assert_string_equal(st.tracker, "sample");
	assert_int_equal(st.promoted_bytes, 64 * PG);
	assert_int_equal(st.demoted_bytes, 0);
	assert_int_equal(st.evicted_bytes, 0);
	assert_int_equal(st.tracked_bytes, 128 * PG);
	assert_true(st.ticks >= 2);

	e = stats_find(&m->stats, "gpu0");
	assert_non_null(e);
	assert_int_equal(e->promoted_bytes, 64 * PG);
	assert_int_equal(e->bytes_in, 64 * PG);

	/* The counters went to stats.json at the end of the tick. */
	assert_int_equal(state_load_stats(state_dir, &saved, NULL, NULL), 0);
	e = stats_find(&saved, "gpu0");
	assert_non_null(e);
	assert_int_equal(e->bytes_in, 64 * PG);
	stats_done(&saved);

	/* Another hot tick moves nothing more: it is all there. */
	touch(pid, 0, 64);
	run_tick();
	assert_int_equal(status_of(id).promoted_bytes, 64 * PG);
	assert_int_equal(status_of(id).device_bytes, 64 * PG);
}

static void test_system_evicted(void **state)
{
	const pid_t pid = 1001;
	uint64_t id;

	start(CONF_BASE);
	/* Put there before the daemon knew: found by the first-sight residency query. */
	add_process(pid, 2, 32, GPU);
	id = set_policy_pid(pid, "system");
	wait_idle();
	run_tick();

	assert_int_equal(pages_at(pid, 0, 32, FAKE_SYSTEM), 32);
	assert_int_equal(pages_at(pid, 1, 32, FAKE_SYSTEM), 32);
	assert_int_equal(status_of(id).evicted_bytes, 64 * PG);
	assert_int_equal(status_of(id).promoted_bytes, 0);
	assert_non_null(stats_find(&m->stats, "gpu0"));
	assert_int_equal(stats_find(&m->stats, "gpu0")->evicted_bytes, 64 * PG);
	assert_int_equal(stats_find(&m->stats, "gpu0")->bytes_out, 64 * PG);
}

static void test_pressure_lowest_priority_first(void **state)
{
	const pid_t high = 1002, low = 1003;
	uint64_t id_high, id_low;

	/* 4 KiB below the low watermark; reaching high takes 65 pages. */
	start(CONF_BASE "LowWatermark=104857600\nHighWatermark=105119744\n");
	set_gpu_free_kb(104857600 / 1024 - 4);
	add_process(high, 2, 64, GPU);
	add_process(low, 2, 64, GPU);
	id_high = set_policy_pid(high, "bind:gpu0,priority=10");
	id_low = set_policy_pid(low, "bind:gpu0");
	/* One tick (the one the policy changes scheduled): meminfo does not follow the moves. */
	wait_idle();

	assert_int_equal(pages_at(high, 0, 64, GPU) + pages_at(high, 1, 64, GPU), 128);
	assert_true(pages_at(low, 0, 64, FAKE_SYSTEM) + pages_at(low, 1, 64, FAKE_SYSTEM) >= 65);
	assert_int_equal(status_of(id_high).evicted_bytes, 0);
	assert_true(status_of(id_low).evicted_bytes >= 65 * PG);
}

static void test_vanished_dropped(void **state)
{
	const pid_t gone = 1004, stays = 1005;
	TargetSet loaded;

	start(CONF_BASE);
	add_process(gone, 1, 16, FAKE_SYSTEM);
	add_process(stays, 1, 16, FAKE_SYSTEM);
	(void) set_policy_pid(gone, "bind:gpu0");
	(void) set_policy_pid(stays, "system");
	wait_idle();
	assert_int_equal(placement_targets(m->placement)->n_targets, 2);

	target_set_init(&loaded);
	assert_int_equal(state_load(state_dir, &loaded, NULL, NULL), 0);
	assert_int_equal(loaded.n_targets, 2);
	target_set_done(&loaded);

	remove_process(gone);
	run_tick();
	assert_int_equal(placement_targets(m->placement)->n_targets, 1);
	assert_int_equal(placement_targets(m->placement)->targets[0].key.pid, stays);

	target_set_init(&loaded);
	assert_int_equal(state_load(state_dir, &loaded, NULL, NULL), 0);
	assert_int_equal(loaded.n_targets, 1);
	assert_int_equal(loaded.targets[0].key.pid, stays);
	target_set_done(&loaded);
}

static void test_rate_limit(void **state)
{
	const pid_t pid = 1006;
	uint64_t on_gpu = 0, id;

	/* 1 MiB per 1 s tick: 256 pages; 16 mappings of 64 pages want to go. */
	start(CONF_BASE "[Policy]\nRateLimitMiB=1\n");
	add_process(pid, 16, 64, FAKE_SYSTEM);
	id = set_policy_pid(pid, "bind:gpu0");
	/* The tick the policy change scheduled, then two more. */
	wait_idle();
	for (size_t i = 0; i < 16; i++)
		on_gpu += pages_at(pid, i, 64, GPU);
	assert_true(on_gpu > 0);
	assert_true(on_gpu <= 256);

	for (unsigned tick = 2; tick <= 3; tick++) {
		uint64_t now = 0;

		run_tick();
		for (size_t i = 0; i < 16; i++)
			now += pages_at(pid, i, 64, GPU);
		assert_true(now > on_gpu);
		assert_true(now - on_gpu <= 256);
		on_gpu = now;
	}
	assert_int_equal(status_of(id).promoted_bytes, on_gpu * PG);
}

static void test_one_tick_at_a_time(void **state)
{
	const pid_t pid = 1007;
	unsigned samples = 0;
	bool checked = false;
	uint64_t id, deadline;

	start(CONF_BASE);
	add_process(pid, 4, 64, FAKE_SYSTEM);
	/* Slow moves: the tick is still running while they do. */
	fake_set_batch(fake, 8, 2000);
	id = set_policy_pid(pid, "bind:gpu0");
	assert_int_equal(placement_tick(m->placement), 0);
	assert_true(placement_is_ticking(m->placement));
	assert_int_equal(placement_tick(m->placement), 0);

	deadline = now_sec() + DEADLINE_SEC;
	while (placement_is_ticking(m->placement)) {
		assert_true(sd_event_run(m->event, 10 * USEC_PER_MSEC) >= 0);
		assert_true(now_sec() < deadline);
		if (!checked && fake_calls(fake, FAKE_OP_MOVE) > 0 &&
		    placement_is_ticking(m->placement)) {
			samples = fake_calls(fake, FAKE_OP_SAMPLE_WINDOWS);
			assert_int_equal(placement_tick(m->placement), 0);
			checked = true;
		}
	}
	assert_true(checked);
	/* Neither the calls during the tick nor the scheduled one ran the tracker again. */
	wait_idle();
	assert_int_equal(fake_calls(fake, FAKE_OP_SAMPLE_WINDOWS), samples);
	assert_int_equal(status_of(id).ticks, 1);
	assert_int_equal(pages_at(pid, 0, 64, GPU) + pages_at(pid, 1, 64, GPU) +
			 pages_at(pid, 2, 64, GPU) + pages_at(pid, 3, 64, GPU), 256);
}

/*
 * A node whose device memory is a cohmem pool (the fake as cohmem, no numa
 * backend): residency at first sight comes from RESIDENCY, heat from SAMPLE
 * of the manager's cohmem backend (Tracker=auto without DAMON: sample), moves
 * go through the pool.
 */
static void test_cohmem_pool(void **state)
{
	const pid_t pid = 1009;
	uint64_t id;
	unsigned ticks = 0;

	start_as("[Daemon]\nTickSec=1s\n[Policy]\nColdDemoteTicks=2\n", true);
	assert_int_equal(devices_find(m->devices, m->n_devices, "gpu0")->kind, DEVICE_KIND_COHMEM);

	/* Mapping 0 hot in RAM, mapping 1 cold in the pool already. */
	add_process(pid, 2, 32, FAKE_SYSTEM);
	assert_int_equal(fake_set_pages(fake, pid, BASE + MAP_STRIDE, 32, GPU, 0), 0);
	id = set_policy_pid(pid, "hot:gpu0");
	wait_idle();
	while ((pages_at(pid, 0, 32, GPU) < 32 || pages_at(pid, 1, 32, FAKE_SYSTEM) < 32) &&
	       ticks++ < 10) {
		touch(pid, 0, 32);
		run_tick();
	}
	assert_int_equal(pages_at(pid, 0, 32, GPU), 32);
	assert_int_equal(pages_at(pid, 1, 32, FAKE_SYSTEM), 32);
	assert_int_equal(status_of(id).promoted_bytes, 32 * PG);
	assert_int_equal(status_of(id).demoted_bytes, 32 * PG);
	assert_int_equal(stats_find(&m->stats, "gpu0")->demoted_bytes, 32 * PG);
}

static void test_set_policy_errors(void **state)
{
	TargetKey key = { .kind = TARGET_PID, .pid = 1008, .starttime = 4242 };
	PolicySpec ps;

	start("[Policy]\nTracker=none\n[Device gpu0]\nNode=1\n");
	add_process(1008, 1, 4, FAKE_SYSTEM);

	assert_int_equal(policy_spec_parse("bind:nosuch", &ps, NULL), 0);
	assert_int_equal(placement_set_policy(m->placement, &key, 0, &ps, NULL), -ENODEV);
	/* hot: needs a tracker; none is configured. */
	assert_int_equal(policy_spec_parse("hot:gpu0", &ps, NULL), 0);
	assert_int_equal(placement_set_policy(m->placement, &key, 0, &ps, NULL), -EOPNOTSUPP);
	assert_int_equal(placement_targets(m->placement)->n_targets, 0);
	assert_int_equal(placement_clear_policy(m->placement, &key), -ENOENT);

	/* bind works without heat; clearing it removes it from the state file too. */
	assert_int_equal(policy_spec_parse("bind:gpu0", &ps, NULL), 0);
	assert_int_equal(placement_set_policy(m->placement, &key, 0, &ps, NULL), 0);
	wait_idle();
	assert_int_equal(pages_at(1008, 0, 4, GPU), 4);
	assert_int_equal(placement_clear_policy(m->placement, &key), 0);
	assert_int_equal(placement_targets(m->placement)->n_targets, 0);
	{
		TargetSet loaded;

		target_set_init(&loaded);
		assert_int_equal(state_load(state_dir, &loaded, NULL, NULL), 0);
		assert_int_equal(loaded.n_targets, 0);
		target_set_done(&loaded);
	}
	/* Regions that were placed stay where they are. */
	wait_idle();
	assert_int_equal(pages_at(1008, 0, 4, GPU), 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hot_promoted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_system_evicted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pressure_lowest_priority_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vanished_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_tick_at_a_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cohmem_pool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_policy_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
