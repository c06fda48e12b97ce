/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz the state directory's files, which outlive the daemon that wrote them
 * (and anybody with root may edit): the bytes as targets.json (state_load())
 * and as stats.json (state_load_stats()), in a scratch directory.
 *
 * Invariants: loading never fails on content; a file is either accepted (and
 * stays) or set aside (renamed byte for byte, with a reason, nothing loaded).
 * What is accepted is saved and loaded back to the same targets or counters,
 * and saving that again writes the same bytes (the written form is a fixed
 * point). Policies read back parse, and ids are 1..n.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "state.h"
#include "util.h"

#define CHECK(x)                                                                       \
	do {                                                                           \
		if (!(x)) {                                                            \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x); \
			abort();                                                       \
		}                                                                      \
	} while (0)

static char *scratch;

static void cleanup_scratch(void)
{
	_cleanup_free_ char *cmd = NULL;

	if (scratch && asprintf(&cmd, "rm -rf -- '%s'", scratch) > 0)
		(void) !system(cmd);
}

static const char *scratch_dir(void)
{
	if (!scratch) {
		char tmpl[] = "/tmp/coh-fuzz-state.XXXXXX";

		CHECK(mkdtemp(tmpl));
		scratch = strdup(tmpl);
		CHECK(scratch);
		atexit(cleanup_scratch);
	}
	return scratch;
}

static char *path_in(const char *dir, const char *name)
{
	char *p;

	CHECK(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

static void write_bytes(const char *path, const uint8_t *data, size_t size)
{
	FILE *f = fopen(path, "we");

	CHECK(f);
	CHECK(fwrite(data, 1, size, f) == size);
	CHECK(fclose(f) == 0);
}

static char *read_all(const char *path, size_t *ret_size)
{
	char *text = NULL;

	CHECK(read_file(path, 32U * 1024U * 1024U, &text, ret_size) == 0);
	return text;
}

/* After a load: the file is still there (accepted) or renamed with its bytes (set aside). */
static bool check_outcome(const char *path, const uint8_t *data, size_t size, char *aside,
			  char *reason)
{
	_cleanup_free_ char *kept = NULL;
	size_t n;

	if (!aside) {
		CHECK(!reason);
		CHECK(access(path, F_OK) == 0);
		CHECK(unlink(path) == 0);
		return true;
	}
	CHECK(reason && reason[0]);
	CHECK(access(path, F_OK) < 0 && errno == ENOENT);
	CHECK(startswith(aside, path));
	kept = read_all(aside, &n);
	CHECK(n == size && memcmp(kept, data, size) == 0);
	CHECK(unlink(aside) == 0);
	free(aside);
	free(reason);
	return false;
}

static void fuzz_targets(const char *dir, const uint8_t *data, size_t size)
{
	_cleanup_free_ char *path = path_in(dir, STATE_FILE_NAME), *first = NULL, *second = NULL;
	char *aside = NULL, *reason = NULL;
	TargetSet s, back;

	write_bytes(path, data, size);
	target_set_init(&s);
	CHECK(state_load(dir, &s, &aside, &reason) == 0);
	if (!check_outcome(path, data, size, aside, reason)) {
		CHECK(s.n_targets == 0);
		return;
	}

	for (size_t i = 0; i < s.n_targets; i++) {
		const Target *t = &s.targets[i];
		char spec[128];
		PolicySpec p;

		CHECK(t->id == i + 1);
		CHECK(t->key.kind < _TARGET_KIND_MAX);
		CHECK(t->key.kind != TARGET_PID || t->key.pid > 0);
		CHECK(t->key.kind != TARGET_JOB || t->key.job > 0);
		CHECK(t->key.kind != TARGET_CGROUP || (t->key.cgroup && t->key.cgroup[0] == '/'));
		CHECK(t->owner != (uid_t) -1);
		CHECK(policy_spec_parse(policy_spec_format(&t->policy, spec, sizeof(spec)), &p, NULL) == 0);
		CHECK(p.kind == t->policy.kind && p.quota == t->policy.quota &&
		      p.priority == t->policy.priority && streq(p.device, t->policy.device));
		for (size_t j = 0; j < i; j++)
			CHECK(!target_key_equal(&s.targets[j].key, &t->key));
	}

	CHECK(state_save(dir, &s) == 0);
	first = read_all(path, NULL);
	target_set_init(&back);
	CHECK(state_load(dir, &back, &aside, &reason) == 0);
	CHECK(!aside && !reason);
	CHECK(back.n_targets == s.n_targets);
	for (size_t i = 0; i < s.n_targets; i++) {
		CHECK(target_key_equal(&s.targets[i].key, &back.targets[i].key));
		CHECK(s.targets[i].owner == back.targets[i].owner);
		CHECK(streq(s.targets[i].policy.device, back.targets[i].policy.device));
		CHECK(s.targets[i].policy.kind == back.targets[i].policy.kind);
		CHECK(s.targets[i].policy.quota == back.targets[i].policy.quota);
		CHECK(s.targets[i].policy.priority == back.targets[i].policy.priority);
		CHECK(s.targets[i].set_realtime_usec == back.targets[i].set_realtime_usec);
	}
	CHECK(state_save(dir, &back) == 0);
	second = read_all(path, NULL);
	CHECK(streq(first, second));
	CHECK(unlink(path) == 0);
	target_set_done(&s);
	target_set_done(&back);
}

static void fuzz_stats(const char *dir, const uint8_t *data, size_t size)
{
	_cleanup_free_ char *path = path_in(dir, STATE_STATS_FILE_NAME), *first = NULL, *second = NULL;
	char *aside = NULL, *reason = NULL;
	Stats s = {}, back = {};

	write_bytes(path, data, size);
	CHECK(state_load_stats(dir, &s, &aside, &reason) == 0);
	if (!check_outcome(path, data, size, aside, reason)) {
		CHECK(s.n_entries == 0);
		return;
	}
	for (size_t i = 0; i < s.n_entries; i++) {
		CHECK(s.entries[i].name && s.entries[i].name[0]);
		for (size_t j = 0; j < i; j++)
			CHECK(!streq(s.entries[i].name, s.entries[j].name));
	}

	CHECK(state_save_stats(dir, &s) == 0);
	first = read_all(path, NULL);
	CHECK(state_load_stats(dir, &back, &aside, &reason) == 0);
	CHECK(!aside && !reason);
	CHECK(back.n_entries == s.n_entries);
	for (size_t i = 0; i < s.n_entries; i++) {
		const StatsEntry *a = &s.entries[i], *b = &back.entries[i];

		CHECK(streq(a->name, b->name));
		CHECK(a->bytes_in == b->bytes_in && a->bytes_out == b->bytes_out);
		CHECK(a->migrations == b->migrations && a->failures == b->failures);
		CHECK(a->failed_pages == b->failed_pages);
		CHECK(a->promoted_bytes == b->promoted_bytes && a->demoted_bytes == b->demoted_bytes);
		CHECK(a->evicted_bytes == b->evicted_bytes);
	}
	CHECK(state_save_stats(dir, &back) == 0);
	second = read_all(path, NULL);
	CHECK(streq(first, second));
	CHECK(unlink(path) == 0);
	stats_done(&s);
	stats_done(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *dir = scratch_dir();

	/* Past the loader's limit everything is set aside alike; no need to write megabytes. */
	if (size > 256 * 1024)
		return 0;
	fuzz_targets(dir, data, size);
	fuzz_stats(dir, data, size);
	return 0;
}
