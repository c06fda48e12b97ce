/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The state directory: targets.json (the policies) and stats.json (the
 * counters), each replaced atomically, each set aside when it cannot be read
 * back. Nothing here logs: what was set aside and why goes to the caller.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "state.h"

#define STATE_VERSION 1
/* Far more than any real set of targets or devices; a larger file is not ours. */
#define STATE_FILE_MAX (16U * 1024U * 1024U)

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put)

/* ---------------------------------------------------------------- writing */

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += k;
		n -= (size_t) k;
	}
	return 0;
}

/* dir/name replaced by text: temporary file, fsync, rename, fsync of the directory. */
static int state_write_atomic(const char *dir, const char *name, const char *text)
{
	_cleanup_close_ int dfd = -EBADF, fd = -EBADF;
	char tmp[NAME_MAX + 1];
	int r;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;

	for (unsigned attempt = 0;; attempt++) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		snprintf(tmp, sizeof(tmp), ".%s.tmp-%ld-%09ld-%u", name, (long) getpid(),
			 (long) ts.tv_nsec, attempt);
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0)
			break;
		if (errno != EEXIST || attempt >= 16)
			return -errno;
	}

	r = write_all(fd, text, strlen(text));
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (r >= 0 && close(TAKE_FD(fd)) < 0)
		r = -errno;
	if (r >= 0 && renameat(dfd, tmp, dfd, name) < 0)
		r = -errno;
	if (r < 0) {
		(void) unlinkat(dfd, tmp, 0);
		return r;
	}
	/* The rename is done; losing it in a crash would only bring the old file back. */
	if (fsync(dfd) < 0)
		return -errno;
	return 0;
}

static json_object *json_u64(uint64_t v)
{
	return v > INT64_MAX ? json_object_new_uint64(v) : json_object_new_int64((int64_t) v);
}

/* Takes v over; true on failure so results can be or'ed. */
static bool json_add(json_object *o, const char *key, json_object *v)
{
	if (!v)
		return true;
	if (json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		return true;
	}
	return false;
}

static bool json_append(json_object *a, json_object *v)
{
	if (!v)
		return true;
	if (json_object_array_add(a, v) < 0) {
		json_object_put(v);
		return true;
	}
	return false;
}

static int state_write_json(const char *dir, const char *name, json_object *o)
{
	const char *text;
	_cleanup_free_ char *copy = NULL;

	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
					      JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text)
		return -ENOMEM;
	if (asprintf(&copy, "%s\n", text) < 0)
		return -ENOMEM;
	return state_write_atomic(dir, name, copy);
}

static json_object *target_to_json(const Target *t)
{
	_cleanup_(json_object_putp) json_object *o = json_object_new_object();
	char spec[128];
	bool fail = false;

	if (!o)
		return NULL;
	fail |= json_add(o, "kind", json_object_new_string(target_kind_to_string(t->key.kind)));
	switch (t->key.kind) {
	case TARGET_PID:
		fail |= json_add(o, "pid", json_object_new_int64(t->key.pid));
		fail |= json_add(o, "starttime", json_u64(t->key.starttime));
		break;
	case TARGET_CGROUP:
		fail |= json_add(o, "cgroup", json_object_new_string(t->key.cgroup));
		break;
	case TARGET_JOB:
		fail |= json_add(o, "job", json_u64(t->key.job));
		break;
	default:
		return NULL;
	}
	fail |= json_add(o, "owner", json_object_new_int64(t->owner));
	fail |= json_add(o, "policy", json_object_new_string(policy_spec_format(&t->policy, spec,
										   sizeof(spec))));
	fail |= json_add(o, "set_realtime_usec", json_u64(t->set_realtime_usec));
	return fail ? NULL : TAKE_PTR(o);
}

/* { "version": 1, key: [] }: the document and its (borrowed) array. */
static int state_document_new(const char *key, json_object **ret_doc, json_object **ret_array)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();

	if (!o || !a || json_add(o, "version", json_object_new_int(STATE_VERSION))) {
		json_object_put(o);
		json_object_put(a);
		return -ENOMEM;
	}
	if (json_add(o, key, a)) {
		json_object_put(o);
		return -ENOMEM;
	}
	*ret_doc = o;
	*ret_array = a;
	return 0;
}

int state_save(const char *dir, const TargetSet *s)
{
	_cleanup_(json_object_putp) json_object *o = NULL;
	json_object *a;
	int r;

	r = state_document_new("targets", &o, &a);
	if (r < 0)
		return r;
	for (size_t i = 0; i < s->n_targets; i++) {
		if ((unsigned) s->targets[i].key.kind >= _TARGET_KIND_MAX ||
		    (s->targets[i].key.kind == TARGET_CGROUP && !s->targets[i].key.cgroup))
			return -EINVAL;
		if (json_append(a, target_to_json(&s->targets[i])))
			return -ENOMEM;
	}
	return state_write_json(dir, STATE_FILE_NAME, o);
}

/* The counters of a StatsEntry as stats.json names them. */
static const struct {
	const char *name;
	size_t offset;
} stats_counters[] = {
	{ "bytes_in", offsetof(StatsEntry, bytes_in) },
	{ "bytes_out", offsetof(StatsEntry, bytes_out) },
	{ "migrations", offsetof(StatsEntry, migrations) },
	{ "failures", offsetof(StatsEntry, failures) },
	{ "failed_pages", offsetof(StatsEntry, failed_pages) },
	{ "promoted_bytes", offsetof(StatsEntry, promoted_bytes) },
	{ "demoted_bytes", offsetof(StatsEntry, demoted_bytes) },
	{ "evicted_bytes", offsetof(StatsEntry, evicted_bytes) },
};

static uint64_t *stats_counter(StatsEntry *e, size_t i)
{
	return (uint64_t *) ((char *) e + stats_counters[i].offset);
}

static json_object *stats_entry_to_json(const StatsEntry *e)
{
	_cleanup_(json_object_putp) json_object *o = json_object_new_object();
	bool fail = false;

	if (!o)
		return NULL;
	fail |= json_add(o, "name", json_object_new_string(e->name));
	for (size_t i = 0; i < ELEMENTSOF(stats_counters); i++)
		fail |= json_add(o, stats_counters[i].name,
				 json_u64(*stats_counter((StatsEntry *) e, i)));
	return fail ? NULL : TAKE_PTR(o);
}

int state_save_stats(const char *dir, const Stats *s)
{
	_cleanup_(json_object_putp) json_object *o = NULL;
	json_object *a;
	int r;

	r = state_document_new("devices", &o, &a);
	if (r < 0)
		return r;
	for (size_t i = 0; i < s->n_entries; i++)
		if (json_append(a, stats_entry_to_json(&s->entries[i])))
			return -ENOMEM;
	return state_write_json(dir, STATE_STATS_FILE_NAME, o);
}

/* ---------------------------------------------------------------- reading */

/* What is wrong with a file, as the caller reports it. -ENOMEM only when even that fails. */
typedef struct StateProblem {
	char *reason;
	int error;
} StateProblem;

_printf_(2, 3)
static int problem(StateProblem *p, const char *fmt, ...)
{
	va_list ap;

	if (p->reason)
		return -EBADMSG;
	va_start(ap, fmt);
	if (vasprintf(&p->reason, fmt, ap) < 0) {
		p->reason = NULL;
		p->error = -ENOMEM;
	}
	va_end(ap);
	return -EBADMSG;
}

static int json_parse_document(const char *text, size_t size, json_object **ret, StateProblem *p)
{
	struct json_tokener *tok;
	json_object *o;
	enum json_tokener_error e;
	size_t end;

	if (memchr(text, '\0', size))
		return problem(p, "file contains a NUL byte");
	if (size >= INT32_MAX)
		return problem(p, "file too large");

	tok = json_tokener_new();
	if (!tok) {
		p->error = -ENOMEM;
		return -ENOMEM;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	/* With its NUL: the end of the file ends a trailing number or literal too. */
	o = json_tokener_parse_ex(tok, text, (int) size + 1);
	e = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);

	if (!o && e == json_tokener_success)
		return problem(p, "not a JSON object");
	if (!o && (e == json_tokener_error_parse_eof || e == json_tokener_continue))
		return problem(p, "not valid JSON: the file ends early (truncated)");
	if (!o || e != json_tokener_success)
		return problem(p, "not valid JSON: %s at byte %zu", json_tokener_error_desc(e), end);
	end += strspn(text + end, " \t\r\n");
	if (end != size) {
		json_object_put(o);
		return problem(p, "not valid JSON: garbage after the document at byte %zu", end);
	}
	*ret = o;
	return 0;
}

/* A non-negative JSON integer up to max, and below UINT64_MAX. */
static int json_get_u64(json_object *o, const char *key, uint64_t max, uint64_t *ret,
			const char *what, size_t index, StateProblem *p)
{
	json_object *v;
	uint64_t u;

	if (!json_object_object_get_ex(o, key, &v))
		return problem(p, "%s %zu: \"%s\" is missing", what, index, key);
	if (!json_object_is_type(v, json_type_int))
		return problem(p, "%s %zu: \"%s\" is not an integer", what, index, key);
	if (json_object_get_int64(v) < 0)
		return problem(p, "%s %zu: \"%s\" is negative", what, index, key);
	u = json_object_get_uint64(v);
	/* json-c saturates numbers past 2^64-1 at UINT64_MAX: it cannot be told from them. */
	if (u > max || u == UINT64_MAX)
		return problem(p, "%s %zu: \"%s\" is out of range", what, index, key);
	*ret = u;
	return 0;
}

static int json_get_string(json_object *o, const char *key, const char **ret, const char *what,
			   size_t index, StateProblem *p)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return problem(p, "%s %zu: \"%s\" is missing", what, index, key);
	if (!json_object_is_type(v, json_type_string))
		return problem(p, "%s %zu: \"%s\" is not a string", what, index, key);
	*ret = json_object_get_string(v);
	return 0;
}

/* The document's version and its array under key. */
static int state_check_document(json_object *doc, const char *key, json_object **ret_array,
				StateProblem *p)
{
	json_object *v;

	if (!json_object_is_type(doc, json_type_object))
		return problem(p, "not a JSON object");
	if (!json_object_object_get_ex(doc, "version", &v))
		return problem(p, "\"version\" is missing");
	if (!json_object_is_type(v, json_type_int))
		return problem(p, "\"version\" is not an integer");
	if (json_object_get_int64(v) != STATE_VERSION)
		return problem(p, "version %" PRId64 " is not supported (expected %d)",
			       json_object_get_int64(v), STATE_VERSION);
	if (!json_object_object_get_ex(doc, key, &v))
		return problem(p, "\"%s\" is missing", key);
	if (!json_object_is_type(v, json_type_array))
		return problem(p, "\"%s\" is not an array", key);
	*ret_array = v;
	return 0;
}

static int target_from_json(json_object *o, size_t i, TargetSet *s, StateProblem *p)
{
	TargetKey key = {};
	_cleanup_free_ char *cgroup = NULL;
	const char *kind, *spec, *str, *err;
	PolicySpec policy;
	uint64_t v, owner, when;
	char name[TARGET_KEY_STRING_MAX];
	int k, r;

	if (!json_object_is_type(o, json_type_object))
		return problem(p, "target %zu is not a JSON object", i);
	r = json_get_string(o, "kind", &kind, "target", i, p);
	if (r < 0)
		return r;
	k = target_kind_from_string(kind);
	if (k < 0)
		return problem(p, "target %zu: unknown kind \"%s\"", i, kind);
	key.kind = (TargetKind) k;

	switch (key.kind) {
	case TARGET_PID:
		r = json_get_u64(o, "pid", INT32_MAX, &v, "target", i, p);
		if (r < 0)
			return r;
		if (v == 0)
			return problem(p, "target %zu: \"pid\" is 0", i);
		key.pid = (pid_t) v;
		r = json_get_u64(o, "starttime", UINT64_MAX, &key.starttime, "target", i, p);
		if (r < 0)
			return r;
		break;
	case TARGET_CGROUP:
		r = json_get_string(o, "cgroup", &str, "target", i, p);
		if (r < 0)
			return r;
		r = cgroup_path_normalize(str, &cgroup);
		if (r == -ENOMEM) {
			p->error = r;
			return r;
		}
		if (r < 0)
			return problem(p, "target %zu: \"cgroup\" is not a valid cgroup path", i);
		key.cgroup = cgroup;
		break;
	case TARGET_JOB:
		r = json_get_u64(o, "job", UINT64_MAX, &key.job, "target", i, p);
		if (r < 0)
			return r;
		if (key.job == 0)
			return problem(p, "target %zu: \"job\" is 0", i);
		break;
	default:
		return problem(p, "target %zu: unknown kind", i);
	}

	r = json_get_u64(o, "owner", UINT32_MAX - 1, &owner, "target", i, p);
	if (r < 0)
		return r;
	r = json_get_string(o, "policy", &spec, "target", i, p);
	if (r < 0)
		return r;
	if (policy_spec_parse(spec, &policy, &err) < 0)
		return problem(p, "target %zu: bad policy \"%s\": %s", i, spec, err);
	r = json_get_u64(o, "set_realtime_usec", UINT64_MAX, &when, "target", i, p);
	if (r < 0)
		return r;

	if (target_set_find(s, &key))
		return problem(p, "target %zu: %s is there twice", i,
			       target_key_format(&key, name, sizeof(name)));
	r = target_set_put(s, &key, (uid_t) owner, &policy, when, NULL);
	if (r < 0)
		p->error = r;
	return r;
}

static int targets_from_json(json_object *doc, TargetSet *s, StateProblem *p)
{
	json_object *a;
	int r;

	r = state_check_document(doc, "targets", &a, p);
	if (r < 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		r = target_from_json(json_object_array_get_idx(a, i), i, s, p);
		if (r < 0)
			return r;
	}
	return 0;
}

/* As conf.c's [Device NAME] (which "system" also satisfies). */
static bool stats_name_is_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > POLICY_DEVICE_NAME_MAX)
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

static int stats_from_json(json_object *doc, Stats *s, StateProblem *p)
{
	json_object *a;
	int r;

	r = state_check_document(doc, "devices", &a, p);
	if (r < 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *o = json_object_array_get_idx(a, i);
		uint64_t v[ELEMENTSOF(stats_counters)] = {};
		const char *name;
		StatsEntry *e;

		if (!json_object_is_type(o, json_type_object))
			return problem(p, "device %zu is not a JSON object", i);
		r = json_get_string(o, "name", &name, "device", i, p);
		if (r < 0)
			return r;
		if (!stats_name_is_valid(name))
			return problem(p, "device %zu: invalid name", i);
		if (stats_find(s, name))
			return problem(p, "device %zu: \"%s\" is there twice", i, name);
		for (size_t c = 0; c < ELEMENTSOF(stats_counters); c++) {
			/* A counter a newer coherentd added is missing from an older file: 0. */
			if (!json_object_object_get_ex(o, stats_counters[c].name, NULL))
				continue;
			r = json_get_u64(o, stats_counters[c].name, UINT64_MAX, &v[c], "device", i, p);
			if (r < 0)
				return r;
		}
		e = stats_get(s, name);
		if (!e) {
			p->error = -ENOMEM;
			return -ENOMEM;
		}
		for (size_t c = 0; c < ELEMENTSOF(stats_counters); c++)
			*stats_counter(e, c) = v[c];
	}
	return 0;
}

/* dir/name → dir/name.corrupt-<realtime usec>; *ret the new path. */
static int state_set_aside(const char *dir, const char *name, char **ret)
{
	_cleanup_close_ int dfd = -EBADF;
	struct timespec ts;
	uint64_t usec;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	clock_gettime(CLOCK_REALTIME, &ts);
	usec = (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;

	for (unsigned attempt = 0;; attempt++, usec++) {
		_cleanup_free_ char *aside = NULL;

		if (asprintf(&aside, "%s.corrupt-%" PRIu64, name, usec) < 0)
			return -ENOMEM;
		/* Never over an older corrupt file: it may be the one somebody is looking at. */
		if (renameat2(dfd, name, dfd, aside, RENAME_NOREPLACE) < 0) {
			if (errno == EEXIST && attempt < 16)
				continue;
			return -errno;
		}
		(void) fsync(dfd);
		*ret = path_join_root(dir, aside);
		return *ret ? 0 : -ENOMEM;
	}
}

typedef int (*StateParseFn)(json_object *doc, void *userdata, StateProblem *p);

/*
 * Read dir/name and hand the document to fn. A file fn (or the JSON parser)
 * finds a problem with is set aside. 0 also when there is no file.
 */
static int state_load_file(const char *dir, const char *name, StateParseFn fn, void *userdata,
			   char **ret_set_aside, char **ret_reason)
{
	_cleanup_free_ char *path = NULL, *text = NULL, *aside = NULL;
	_cleanup_(json_object_putp) json_object *doc = NULL;
	StateProblem p = {};
	size_t size;
	int r;

	if (ret_set_aside)
		*ret_set_aside = NULL;
	if (ret_reason)
		*ret_reason = NULL;

	path = path_join_root(dir, name);
	if (!path)
		return -ENOMEM;
	r = read_file(path, STATE_FILE_MAX, &text, &size);
	if (r == -ENOENT)
		return 0;
	if (r == -EFBIG)
		(void) problem(&p, "file larger than %u bytes", STATE_FILE_MAX);
	else if (r < 0)
		return r;
	else {
		r = json_parse_document(text, size, &doc, &p);
		if (r >= 0)
			r = fn(doc, userdata, &p);
	}
	if (p.error < 0) {
		free(p.reason);
		return p.error;
	}
	if (!p.reason)
		return 0;

	r = state_set_aside(dir, name, &aside);
	if (r < 0) {
		free(p.reason);
		return r;
	}
	if (ret_set_aside)
		*ret_set_aside = TAKE_PTR(aside);
	if (ret_reason)
		*ret_reason = p.reason;
	else
		free(p.reason);
	return 0;
}

static int targets_parse(json_object *doc, void *userdata, StateProblem *p)
{
	TargetSet *s = userdata, loaded;
	int r;

	target_set_init(&loaded);
	r = targets_from_json(doc, &loaded, p);
	if (r < 0) {
		target_set_done(&loaded);
		return r;
	}
	target_set_done(s);
	*s = loaded;
	return 0;
}

int state_load(const char *dir, TargetSet *s, char **ret_set_aside, char **ret_reason)
{
	if (s->n_targets > 0)
		return -EBUSY;
	return state_load_file(dir, STATE_FILE_NAME, targets_parse, s, ret_set_aside, ret_reason);
}

static int stats_parse(json_object *doc, void *userdata, StateProblem *p)
{
	Stats *s = userdata, loaded = {};
	int r;

	r = stats_from_json(doc, &loaded, p);
	if (r < 0) {
		stats_done(&loaded);
		return r;
	}
	stats_done(s);
	*s = loaded;
	return 0;
}

int state_load_stats(const char *dir, Stats *s, char **ret_set_aside, char **ret_reason)
{
	if (s->n_entries > 0)
		return -EBUSY;
	return state_load_file(dir, STATE_STATS_FILE_NAME, stats_parse, s, ret_set_aside, ret_reason);
}
