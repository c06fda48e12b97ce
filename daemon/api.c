/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "interface.h"
#include "log.h"
#include "manager.h"
#include "mover.h"
#include "util.h"

/* Where process credentials are read: always the real procfs (auth.h). */
#define API_PROC "/proc"

const VarlinkServerInfo api_server_info = {
	.vendor = "coherentd",
	.product = "coherentd",
	.version = PACKAGE_VERSION,
	.url = NULL,   /* no project home page yet; served as "" */
};

const VarlinkInterface api_interfaces[] = {
	{ .name = "io.coherentd", .description = interface_io_coherentd },
	{}
};

/* json-c has no unsigned 64-bit integers; sizes stay far below INT64_MAX. */
static json_object *json_u64(uint64_t v)
{
	return json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t) v);
}

/* json_object_object_add() that fails cleanly when the value could not be allocated. */
static int add(json_object *o, const char *key, json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

json_object *api_device_to_json(const Device *d)
{
	json_object *o = json_object_new_object();
	int r = 0;

	if (!o)
		return NULL;
	r |= add(o, "name", json_object_new_string(d->name));
	r |= add(o, "kind", json_object_new_string(device_kind_to_string(d->kind)));
	r |= add(o, "node", json_object_new_int(d->node));
	if (d->tier >= 0)
		r |= add(o, "tier", json_object_new_int(d->tier));
	r |= add(o, "total_bytes", json_u64(d->total_bytes));
	r |= add(o, "free_bytes", json_u64(d->free_bytes));
	if (d->has_low_watermark)
		r |= add(o, "low_watermark_bytes", json_u64(d->low_watermark_bytes));
	if (d->has_high_watermark)
		r |= add(o, "high_watermark_bytes", json_u64(d->high_watermark_bytes));
	r |= add(o, "configured", json_object_new_boolean(d->configured));
	if (r != 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

json_object *api_list_devices_reply(const Device *devices, size_t n)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();

	if (!o || !a)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		json_object *d = api_device_to_json(&devices[i]);

		if (!d || json_object_array_add(a, d) < 0) {
			json_object_put(d);
			goto fail;
		}
	}
	if (add(o, "devices", a) < 0) {
		a = NULL;
		goto fail;
	}
	return o;
fail:
	json_object_put(a);
	json_object_put(o);
	return NULL;
}

json_object *api_get_status_reply(const Manager *m, unsigned n_connections, uint64_t now_usec)
{
	json_object *o = json_object_new_object(), *files = json_object_new_array();
	int r = 0;

	if (!o || !files)
		goto fail;
	for (char **i = m->conf ? m->conf->files : NULL; i && *i; i++) {
		json_object *s = json_object_new_string(*i);

		if (!s || json_object_array_add(files, s) < 0) {
			json_object_put(s);
			goto fail;
		}
	}

	r |= add(o, "version", json_object_new_string(PACKAGE_VERSION));
	r |= add(o, "pid", json_object_new_int((int) getpid()));
	r |= add(o, "uptime_usec", json_u64(now_usec > m->start_usec ? now_usec - m->start_usec : 0));
	r |= add(o, "root", json_object_new_string(m->root));
	r |= add(o, "config_files", files);
	files = NULL;
	r |= add(o, "n_devices", json_u64(m->n_devices));
	r |= add(o, "total_device_bytes", json_u64(manager_total_device_bytes(m)));
	r |= add(o, "free_device_bytes", json_u64(manager_free_device_bytes(m)));
	r |= add(o, "n_connections", json_object_new_int64(n_connections));
	if (r != 0)
		goto fail;
	return o;
fail:
	json_object_put(files);
	json_object_put(o);
	return NULL;
}

/* Methods without input: any parameter is one the caller should not have sent. */
static int reject_parameters(VarlinkConnection *c, json_object *parameters)
{
	json_object_object_foreach(parameters, key, val) {
		(void) val;
		return varlink_reply_invalid_parameter(c, key);
	}
	return 0;
}

/* Everybody may read status and devices; who asked is kept for the journal. */
static void log_caller(VarlinkConnection *c, const char *method)
{
	pid_t pid = 0;
	uid_t uid = 0;
	gid_t gid = 0;

	if (log_get_max_level() < LOG_DEBUG)
		return;
	if (varlink_connection_get_peer(c, &pid, &uid, &gid) >= 0)
		log_debug("%s called by pid %d uid %u.", method, (int) pid, (unsigned) uid);
}

static int method_get_status(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	Manager *m = userdata;
	json_object *reply;
	uint64_t now;
	int r;

	if (json_object_object_length(parameters) > 0)
		return reject_parameters(c, parameters);
	log_caller(c, "GetStatus");
	/* Free memory as it is now, not as at the last tick (a failure keeps the last list). */
	(void) manager_refresh_devices(m);

	r = sd_event_now(m->event, CLOCK_MONOTONIC, &now);
	if (r < 0)
		return r;
	reply = api_get_status_reply(m, varlink_server_n_connections(m->varlink), now);
	if (!reply)
		return -ENOMEM;
	return varlink_reply(c, reply);
}

static int method_list_devices(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	Manager *m = userdata;
	json_object *reply;

	if (json_object_object_length(parameters) > 0)
		return reject_parameters(c, parameters);
	log_caller(c, "ListDevices");
	(void) manager_refresh_devices(m);

	reply = api_list_devices_reply(m->devices, m->n_devices);
	if (!reply)
		return -ENOMEM;
	return varlink_reply(c, reply);
}

/* ------------------------------------------------------------------ parameters */

static int param_error(ApiParamError *err, const char *parameter, const char *reason)
{
	err->parameter = parameter;
	err->reason = reason;
	return -EINVAL;
}

/* Present and not null. */
static json_object *param_get(json_object *p, const char *key)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(p, key, &v))
		return NULL;
	return v;
}

static int param_pid(json_object *p, pid_t *ret, ApiParamError *err)
{
	json_object *v = param_get(p, "pid");
	int64_t pid;

	if (!v)
		return param_error(err, "pid", "missing");
	if (!json_object_is_type(v, json_type_int))
		return param_error(err, "pid", "must be an integer");
	pid = json_object_get_int64(v);
	if (pid <= 0 || pid > INT_MAX)
		return param_error(err, "pid", "must be a process id above 0");
	*ret = (pid_t) pid;
	return 0;
}

static int param_bool(json_object *p, const char *key, bool *ret, ApiParamError *err)
{
	json_object *v = param_get(p, key);

	*ret = false;
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return param_error(err, key, "must be a boolean");
	*ret = json_object_get_boolean(v);
	return 0;
}

/* 1 when present, 0 when absent or null. */
static int param_address(json_object *p, const char *key, uint64_t *ret, ApiParamError *err)
{
	json_object *v = param_get(p, key);
	int64_t a;

	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return param_error(err, key, "must be an integer");
	/* json-c saturates at INT64_MAX, far above any user address. */
	a = json_object_get_int64(v);
	if (a < 0)
		return param_error(err, key, "must not be negative");
	*ret = (uint64_t) a;
	return 1;
}

static int check_known(json_object *p, const char *const *known, ApiParamError *err)
{
	json_object_object_foreach(p, key, val) {
		bool found = false;

		(void) val;
		for (const char *const *k = known; *k; k++)
			if (streq(*k, key))
				found = true;
		if (!found)
			return param_error(err, key, "unknown parameter");
	}
	return 0;
}

int api_parse_migrate(json_object *parameters, uint64_t page_size, MigrateParams *ret,
		      ApiParamError *err)
{
	static const char *const known[] = { "pid", "start", "end", "all", "to", "dry_run", NULL };
	MigrateParams mp = {};
	json_object *v;
	int has_start, has_end, r;

	r = check_known(parameters, known, err);
	if (r < 0)
		return r;
	r = param_pid(parameters, &mp.pid, err);
	if (r < 0)
		return r;

	v = param_get(parameters, "to");
	if (!v)
		return param_error(err, "to", "missing: a device name or \"system\"");
	if (!json_object_is_type(v, json_type_string))
		return param_error(err, "to", "must be a string");
	mp.to = json_object_get_string(v);
	if (isempty(mp.to) || strlen(mp.to) != (size_t) json_object_get_string_len(v) ||
	    strlen(mp.to) > CONF_DEVICE_NAME_MAX)
		return param_error(err, "to", "not a device name");

	r = param_bool(parameters, "all", &mp.all, err);
	if (r < 0)
		return r;
	r = param_bool(parameters, "dry_run", &mp.dry_run, err);
	if (r < 0)
		return r;
	has_start = param_address(parameters, "start", &mp.start, err);
	if (has_start < 0)
		return has_start;
	has_end = param_address(parameters, "end", &mp.end, err);
	if (has_end < 0)
		return has_end;

	if (mp.all) {
		if (has_start || has_end)
			return param_error(err, "all", "give either start and end, or all, not both");
		*ret = mp;
		return 0;
	}
	if (!has_start && !has_end)
		return param_error(err, "start", "missing: give start and end, or all=true");
	if (!has_start)
		return param_error(err, "start", "missing: end needs a start");
	if (!has_end)
		return param_error(err, "end", "missing: start needs an end");
	if (mp.start % page_size)
		return param_error(err, "start", "not a multiple of the page size");
	if (mp.end % page_size)
		return param_error(err, "end", "not a multiple of the page size");
	if (mp.end <= mp.start)
		return param_error(err, "end", "must be above start");
	if (mp.end > BACKEND_USER_ADDR_MAX)
		return param_error(err, "end", "above the highest user address");
	*ret = mp;
	return 0;
}

int api_parse_residency(json_object *parameters, pid_t *ret_pid, bool *ret_verbose,
			ApiParamError *err)
{
	static const char *const known[] = { "pid", "verbose", NULL };
	int r;

	r = check_known(parameters, known, err);
	if (r < 0)
		return r;
	r = param_pid(parameters, ret_pid, err);
	if (r < 0)
		return r;
	return param_bool(parameters, "verbose", ret_verbose, err);
}

static int param_positive(json_object *p, const char *key, const char *name, int64_t max,
			  int64_t *ret, ApiParamError *err)
{
	json_object *v = param_get(p, key);
	int64_t x;

	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return param_error(err, name, "must be an integer");
	/* json-c saturates at INT64_MAX: such a value cannot be told from a real one. */
	x = json_object_get_int64(v);
	if (x <= 0 || x > max || x == INT64_MAX)
		return param_error(err, name, "out of range");
	*ret = x;
	return 1;
}

int api_parse_target_ref(json_object *ref, TargetKey *ret, ApiParamError *err)
{
	static const char *const known[] = { "pid", "cgroup", "job", NULL };
	TargetKey key = {};
	json_object *v;
	int64_t x = 0;
	int n = 0, r;

	if (!ref)
		return param_error(err, "target", "missing: give one of pid, cgroup and job");
	if (!json_object_is_type(ref, json_type_object))
		return param_error(err, "target", "must be an object with one of pid, cgroup and job");
	json_object_object_foreach(ref, k, val) {
		bool found = false;

		(void) val;
		for (const char *const *i = known; *i; i++)
			if (streq(*i, k))
				found = true;
		if (!found)
			return param_error(err, "target", "unknown field: give one of pid, cgroup and job");
	}

	r = param_positive(ref, "pid", "target.pid", INT_MAX, &x, err);
	if (r < 0)
		return r;
	if (r > 0) {
		key.kind = TARGET_PID;
		key.pid = (pid_t) x;
		n++;
	}
	r = param_positive(ref, "job", "target.job", INT64_MAX, &x, err);
	if (r < 0)
		return r;
	if (r > 0) {
		key.kind = TARGET_JOB;
		key.job = (uint64_t) x;
		n++;
	}
	v = param_get(ref, "cgroup");
	if (v) {
		const char *path;

		if (!json_object_is_type(v, json_type_string))
			return param_error(err, "target.cgroup", "must be a string");
		path = json_object_get_string(v);
		if (strlen(path) != (size_t) json_object_get_string_len(v))
			return param_error(err, "target.cgroup", "contains a NUL byte");
		n++;
		if (n > 1)
			return param_error(err, "target", "give only one of pid, cgroup and job");
		key.kind = TARGET_CGROUP;
		r = cgroup_path_normalize(path, &key.cgroup);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return param_error(err, "target.cgroup",
					   "not a cgroup path (empty, \".\" or \"..\" components, "
					   "or too long)");
	}
	if (n == 0)
		return param_error(err, "target", "missing: give one of pid, cgroup and job");
	if (n > 1)
		return param_error(err, "target", "give only one of pid, cgroup and job");
	*ret = key;
	return 0;
}

int api_parse_set_policy(json_object *parameters, SetPolicyParams *ret, ApiParamError *err)
{
	static const char *const known[] = { "target", "policy", NULL };
	SetPolicyParams sp = {};
	const char *s, *why = NULL;
	json_object *v;
	int r;

	r = check_known(parameters, known, err);
	if (r < 0)
		return r;
	v = param_get(parameters, "policy");
	if (!v)
		return param_error(err, "policy", "missing: e.g. \"hot:gpu0,quota=2G\"");
	if (!json_object_is_type(v, json_type_string))
		return param_error(err, "policy", "must be a string");
	s = json_object_get_string(v);
	if (strlen(s) != (size_t) json_object_get_string_len(v))
		return param_error(err, "policy", "contains a NUL byte");
	r = policy_spec_parse(s, &sp.policy, &why);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return param_error(err, "policy", why ?: "not a policy");

	r = api_parse_target_ref(param_get(parameters, "target"), &sp.target, err);
	if (r < 0)
		return r;
	*ret = sp;
	return 0;
}

int api_parse_clear_policy(json_object *parameters, TargetKey *ret, ApiParamError *err)
{
	static const char *const known[] = { "target", NULL };
	int r;

	r = check_known(parameters, known, err);
	if (r < 0)
		return r;
	return api_parse_target_ref(param_get(parameters, "target"), ret, err);
}

int api_parse_record(json_object *parameters, pid_t *ret_pid, uint64_t *ret_duration_usec,
		     ApiParamError *err)
{
	static const char *const known[] = { "pid", "duration_usec", NULL };
	int64_t d = 0;
	pid_t pid;
	int r;

	r = check_known(parameters, known, err);
	if (r < 0)
		return r;
	r = param_pid(parameters, &pid, err);
	if (r < 0)
		return r;
	r = param_positive(parameters, "duration_usec", "duration_usec",
			   (int64_t) API_RECORD_DURATION_MAX_USEC, &d, err);
	if (r < 0)
		return param_error(err, "duration_usec", "must be an integer from 1 to 86400000000 "
				   "(a day)");
	if (r == 0)
		return param_error(err, "duration_usec", "missing");
	*ret_pid = pid;
	*ret_duration_usec = (uint64_t) d;
	return 0;
}

/* ------------------------------------------------------------------ errors */

static int reply_invalid(VarlinkConnection *c, const ApiParamError *err)
{
	json_object *p = json_object_new_object();

	if (!p || add(p, "parameter", json_object_new_string(err->parameter)) < 0 ||
	    add(p, "reason", json_object_new_string(err->reason)) < 0) {
		json_object_put(p);
		return -ENOMEM;
	}
	return varlink_reply_error(c, "io.coherentd.InvalidParameter", p);
}

static int reply_pid_error(VarlinkConnection *c, const char *error, pid_t pid, const char *reason)
{
	json_object *p = json_object_new_object();

	if (!p || add(p, "pid", json_object_new_int((int) pid)) < 0 ||
	    (reason && add(p, "reason", json_object_new_string(reason)) < 0)) {
		json_object_put(p);
		return -ENOMEM;
	}
	return varlink_reply_error(c, error, p);
}

static int reply_no_such_device(VarlinkConnection *c, const char *name)
{
	json_object *p = json_object_new_object();

	if (!p || add(p, "name", json_object_new_string(name)) < 0) {
		json_object_put(p);
		return -ENOMEM;
	}
	return varlink_reply_error(c, "io.coherentd.NoSuchDevice", p);
}

static int reply_failed(VarlinkConnection *c, int error, const char *message)
{
	json_object *p = json_object_new_object();
	char buf[320];

	if (isempty(message))
		message = strerror(error < 0 ? -error : error);
	(void) snprintf(buf, sizeof(buf), "%s", message);
	if (!p || add(p, "errno", json_object_new_int(error < 0 ? -error : error)) < 0 ||
	    add(p, "message", json_object_new_string(buf)) < 0) {
		json_object_put(p);
		return -ENOMEM;
	}
	return varlink_reply_error(c, "io.coherentd.MigrationFailed", p);
}

/*
 * Authorize the caller for pid and reply with the error when it may not act
 * on it. 1 with *ret_pidfd: go on; 0: an error was sent.
 */
static int authorize(VarlinkConnection *c, const char *method, pid_t pid, int *ret_pidfd)
{
	AuthProcStatus st = {};
	uid_t uid;
	int r;

	r = varlink_connection_get_peer(c, NULL, &uid, NULL);
	if (r < 0) {
		log_warning("Denied %s of PID %d: the caller's credentials are unknown.", method,
			    (int) pid);
		r = varlink_reply_error(c, "io.coherentd.PermissionDenied", NULL);
		return r < 0 ? r : 0;
	}

	r = auth_check_process(API_PROC, pid, uid, ret_pidfd, &st);
	switch (r) {
	case 0:
		return 1;
	case -ESRCH:
		r = reply_pid_error(c, "io.coherentd.NoSuchProcess", pid, NULL);
		break;
	case -EPERM:
		log_warning("Denied %s of PID %d for uid %u (process owned by uid %u).", method,
			    (int) pid, (unsigned) uid, (unsigned) st.ruid);
		r = varlink_reply_error(c, "io.coherentd.PermissionDenied", NULL);
		break;
	case -EINVAL: {
		ApiParamError e = { "pid", "a thread id, not a process id" };

		r = reply_invalid(c, &e);
		break;
	}
	case -EOWNERDEAD:
		r = reply_pid_error(c, "io.coherentd.ProcessNotMigratable", pid, "zombie");
		break;
	case -EMEDIUMTYPE:
		r = reply_pid_error(c, "io.coherentd.ProcessNotMigratable", pid, "kernel thread");
		break;
	default:
		log_warning_errno(r, "Failed to check PID %d for %s: %m", (int) pid, method);
		r = reply_failed(c, r, NULL);
		break;
	}
	return r < 0 ? r : 0;
}

/* ------------------------------------------------------------------ Migrate */

static json_object *counts_to_json(const MoveCounts *c)
{
	json_object *o = json_object_new_object();
	int r = 0;

	if (!o)
		return NULL;
	r |= add(o, "migrated", json_u64(c->migrated));
	r |= add(o, "already", json_u64(c->already));
	r |= add(o, "not_present", json_u64(c->not_present));
	r |= add(o, "file", json_u64(c->file));
	r |= add(o, "shared", json_u64(c->shared));
	r |= add(o, "pinned", json_u64(c->pinned));
	r |= add(o, "unmovable", json_u64(c->unmovable));
	r |= add(o, "no_space", json_u64(c->no_space));
	r |= add(o, "failed", json_u64(c->failed));
	if (r != 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

json_object *api_migrate_reply(pid_t pid, const char *to, bool dry_run, bool finished,
			       const MoveCounts *c, uint64_t page_size, uint64_t pages_total,
			       uint64_t elapsed_usec, bool target_exited)
{
	json_object *o = json_object_new_object();
	int r = 0;

	if (!o)
		return NULL;
	r |= add(o, "pid", json_object_new_int((int) pid));
	r |= add(o, "to", json_object_new_string(to));
	r |= add(o, "dry_run", json_object_new_boolean(dry_run));
	r |= add(o, "finished", json_object_new_boolean(finished));
	r |= add(o, "page_size", json_u64(page_size));
	r |= add(o, "pages", json_u64(move_counts_total(c)));
	r |= add(o, "pages_total", json_u64(pages_total));
	r |= add(o, "counts", counts_to_json(c));
	r |= add(o, "bytes_migrated", json_u64(c->migrated * page_size));
	r |= add(o, "elapsed_usec", json_u64(elapsed_usec));
	r |= add(o, "target_exited", json_object_new_boolean(target_exited));
	if (r != 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

typedef struct MigrateCall {
	Manager *manager;
	VarlinkConnection *connection;
	uid_t uid;
	bool more;
	char *to;
	MigrateRequest req;
	MigrateResult result;
	int r;
	uint64_t page_size;
} MigrateCall;

static void migrate_call_free(MigrateCall *mc)
{
	varlink_connection_unref(mc->connection);
	migrate_request_done(&mc->req);
	migrate_result_done(&mc->result);
	free(mc->to);
	free(mc);
}

static int migrate_work(MoverJob *j, void *userdata)
{
	MigrateCall *mc = userdata;

	return migrate_run(&mc->req, j, &mc->result);
}

static void migrate_progress(MoverJob *j, const MoveCounts *so_far, uint64_t pages_total,
			     void *userdata)
{
	MigrateCall *mc = userdata;
	json_object *p;

	if (!mc->more)
		return;
	p = api_migrate_reply(mc->req.pid, mc->to, mc->req.dry_run, false, so_far, mc->page_size,
			      pages_total, 0, false);
	if (p)
		(void) varlink_reply_continues(mc->connection, p);
}

static void migrate_done(MoverJob *j, int r, void *userdata)
{
	MigrateCall *mc = userdata;
	Manager *m = mc->manager;
	const MigrateResult *res = &mc->result;
	VarlinkConnection *c = mc->connection;
	json_object *p;
	char b[FORMAT_SIZE_MAX];

	mc->r = r;
	manager_account_migration(m, &mc->req, mc->to, mc->r, &mc->result);

	switch (r) {
	case 0:
		if (!mc->req.dry_run)
			log_info("Migrated %" PRIu64 " of %" PRIu64 " pages (%s) of PID %d to %s for "
				 "uid %u in %" PRIu64 " ms%s.", res->counts.migrated,
				 move_counts_total(&res->counts),
				 format_size(b, sizeof(b), res->counts.migrated * res->page_size),
				 (int) mc->req.pid, mc->to, (unsigned) mc->uid,
				 res->elapsed_usec / USEC_PER_MSEC,
				 res->target_exited ? ", the process exited part way" : "");
		p = api_migrate_reply(mc->req.pid, mc->to, mc->req.dry_run, true, &res->counts,
				      res->page_size, move_counts_total(&res->counts),
				      res->elapsed_usec, res->target_exited);
		if (p)
			(void) varlink_reply(c, p);
		else
			(void) varlink_reply_error(c, "io.coherentd.MigrationFailed", NULL);
		break;
	case -ESRCH:
		(void) reply_pid_error(c, "io.coherentd.NoSuchProcess", mc->req.pid, NULL);
		break;
	case -EFAULT:
		p = json_object_new_object();
		if (p) {
			(void) add(p, "pid", json_object_new_int((int) mc->req.pid));
			(void) add(p, "start", json_u64(mc->req.start));
			(void) add(p, "end", json_u64(mc->req.start + mc->req.length));
		}
		(void) varlink_reply_error(c, "io.coherentd.NothingMapped", p);
		break;
	case -ENODEV:
		(void) reply_no_such_device(c, mc->to);
		break;
	case -EINVAL: {
		ApiParamError e = { "start", "range refused by the backend" };

		(void) reply_invalid(c, &e);
		break;
	}
	default:
		log_warning_errno(r, "Migration of PID %d to %s failed: %m%s%s", (int) mc->req.pid,
				  mc->to, res->message[0] ? " — " : "", res->message);
		(void) reply_failed(c, r, res->message);
		break;
	}
	migrate_call_free(mc);
}

static int method_migrate(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	Manager *m = userdata;
	MigrateParams mp;
	ApiParamError err = {};
	MigrateCall *mc;
	long ps = sysconf(_SC_PAGESIZE);
	uint64_t page_size = ps > 0 ? (uint64_t) ps : 4096;
	int pidfd = -EBADF, r;

	r = api_parse_migrate(parameters, page_size, &mp, &err);
	if (r < 0)
		return reply_invalid(c, &err);

	if (!streq(mp.to, "system") && !devices_find(m->devices, m->n_devices, mp.to))
		return reply_no_such_device(c, mp.to);

	r = authorize(c, "migrate", mp.pid, &pidfd);
	if (r <= 0)
		return r;

	mc = calloc(1, sizeof(*mc));
	if (!mc) {
		safe_close(pidfd);
		return -ENOMEM;
	}
	mc->manager = m;
	mc->page_size = page_size;
	mc->more = varlink_connection_wants_more(c);
	(void) varlink_connection_get_peer(c, NULL, &mc->uid, NULL);
	mc->req.pid = mp.pid;
	mc->req.pidfd = pidfd;
	mc->req.start = mp.all ? 0 : mp.start;
	mc->req.length = mp.all ? 0 : mp.end - mp.start;
	mc->req.dry_run = mp.dry_run;
	mc->to = strdup(mp.to);
	mc->req.root = strdup(m->root);
	if (!mc->to || !mc->req.root) {
		migrate_call_free(mc);
		return -ENOMEM;
	}

	r = manager_resolve_target(m, mp.to, &mc->req);
	if (r < 0) {
		migrate_call_free(mc);
		return reply_no_such_device(c, mp.to);
	}

	mc->connection = varlink_connection_ref(c);
	r = mover_submit(m->mover, mp.pid, true, migrate_work, migrate_progress, migrate_done, mc,
			 NULL);
	if (r < 0) {
		migrate_call_free(mc);
		return r;
	}
	log_debug("Migrate of PID %d to %s queued (%u running, %u waiting).", (int) mp.pid, mp.to,
		  mover_n_running(m->mover), mover_n_queued(m->mover));
	return 0;
}

/* ------------------------------------------------------------------ GetResidency */

typedef struct ResidencySet {
	ResidencyEntry *e[2];     /* per backend: numa, cohmem */
	size_t n[2];
} ResidencySet;

typedef struct ResidencyCall {
	Manager *manager;
	VarlinkConnection *connection;
	pid_t pid;
	int pidfd;
	bool verbose;
	char *root;
	BackendRef *backends[2];  /* numa, cohmem; either may be NULL */

	ResidencySet total;
	BackendMapping *maps;
	size_t n_maps;
	ResidencySet *per_map;
} ResidencyCall;

static void residency_set_done(ResidencySet *s)
{
	for (size_t i = 0; i < 2; i++)
		free(s->e[i]);
}

static void residency_call_free(ResidencyCall *rc)
{
	varlink_connection_unref(rc->connection);
	safe_close(rc->pidfd);
	for (size_t i = 0; i < 2; i++)
		backend_ref_unref(rc->backends[i]);
	residency_set_done(&rc->total);
	for (size_t i = 0; rc->per_map && i < rc->n_maps; i++)
		residency_set_done(&rc->per_map[i]);
	free(rc->per_map);
	backend_mappings_free(rc->maps, rc->n_maps);
	free(rc->root);
	free(rc);
}

static int residency_query(ResidencyCall *rc, uint64_t start, uint64_t length, ResidencySet *s)
{
	for (size_t i = 0; i < 2; i++) {
		BackendRef *b = rc->backends[i];
		int r;

		if (!b)
			continue;
		r = b->ops->residency(b->backend, rc->pid, start, length, &s->e[i], &s->n[i]);
		if (r == -EFAULT && length > 0)
			continue;   /* a mapping that went away meanwhile: nothing there */
		if (r < 0)
			return r;
	}
	return 0;
}

static int residency_work(MoverJob *j, void *userdata)
{
	ResidencyCall *rc = userdata;
	int r;

	r = residency_query(rc, 0, 0, &rc->total);
	if (r < 0 || !rc->verbose)
		goto finish;

	r = backend_maps_read(rc->root, rc->pid, &rc->maps, &rc->n_maps);
	if (r < 0)
		goto finish;
	rc->per_map = calloc(rc->n_maps ?: 1, sizeof(ResidencySet));
	if (!rc->per_map) {
		r = -ENOMEM;
		goto finish;
	}
	for (size_t i = 0; i < rc->n_maps; i++) {
		const BackendMapping *map = &rc->maps[i];

		if (map->end > BACKEND_USER_ADDR_MAX)
			continue;   /* [vsyscall] */
		r = residency_query(rc, map->start, map->end - map->start, &rc->per_map[i]);
		if (r < 0)
			goto finish;
	}
finish:
	if (r >= 0 && auth_pidfd_alive(rc->pidfd) < 0)
		r = -ESRCH;   /* the pid may have been reused meanwhile: what was read is not its */
	return r;
}

typedef struct NamedBytes {
	const char *name, *kind;
	uint64_t bytes;
} NamedBytes;

/* Sum a residency set by device name: numa nodes, cohmem pools, system RAM. */
static int residency_named(const Manager *m, const ResidencyCall *rc, const ResidencySet *s,
			   NamedBytes **ret, size_t *ret_n)
{
	NamedBytes *nb = NULL;
	size_t n = 0;

	for (size_t i = 0; i < 2; i++) {
		const BackendRef *b = rc->backends[i];

		for (size_t k = 0; k < s->n[i]; k++) {
			const ResidencyEntry *e = &s->e[i][k];
			const char *name = manager_residency_device_name(m, b, e), *kind;
			size_t l;

			/* numa counts system RAM per node; cohmem's system entry only without it. */
			if (e->system && i == 1 && rc->backends[0])
				continue;
			if (e->bytes == 0)
				continue;
			kind = !name ? "system" : i == 1 ? "cohmem" : "numa";
			if (!name)
				name = "system";
			for (l = 0; l < n; l++)
				if (streq(nb[l].name, name))
					break;
			if (l == n) {
				NamedBytes *x = realloc(nb, (n + 1) * sizeof(*nb));

				if (!x) {
					free(nb);
					return -ENOMEM;
				}
				nb = x;
				nb[n++] = (NamedBytes) { .name = name, .kind = kind };
			}
			nb[l].bytes += e->bytes;
		}
	}
	*ret = nb;
	*ret_n = n;
	return 0;
}

static json_object *residency_to_json(const Manager *m, const ResidencyCall *rc,
				      const ResidencySet *s, uint64_t *ret_total)
{
	_cleanup_free_ NamedBytes *nb = NULL;
	json_object *a = json_object_new_array();
	uint64_t total = 0;
	size_t n = 0;

	if (!a || residency_named(m, rc, s, &nb, &n) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_new_object();

		if (!o || json_object_array_add(a, o) < 0) {
			json_object_put(o);
			goto fail;
		}
		if (add(o, "device", json_object_new_string(nb[i].name)) < 0 ||
		    add(o, "kind", json_object_new_string(nb[i].kind)) < 0 ||
		    add(o, "bytes", json_u64(nb[i].bytes)) < 0)
			goto fail;
		total += nb[i].bytes;
	}
	if (ret_total)
		*ret_total = total;
	return a;
fail:
	json_object_put(a);
	return NULL;
}

static json_object *residency_reply(const Manager *m, const ResidencyCall *rc)
{
	json_object *o = json_object_new_object(), *maps = NULL;
	long ps = sysconf(_SC_PAGESIZE);
	uint64_t total = 0;
	int r = 0;

	if (!o)
		return NULL;
	r |= add(o, "pid", json_object_new_int((int) rc->pid));
	r |= add(o, "page_size", json_u64(ps > 0 ? (uint64_t) ps : 4096));
	r |= add(o, "residency", residency_to_json(m, rc, &rc->total, &total));
	r |= add(o, "total_bytes", json_u64(total));
	if (rc->verbose) {
		maps = json_object_new_array();
		r |= maps ? 0 : -ENOMEM;
		for (size_t i = 0; maps && i < rc->n_maps; i++) {
			const BackendMapping *map = &rc->maps[i];
			json_object *mo;

			/* [vsyscall] lies above the user address range and beyond IDL's int. */
			if (map->end > BACKEND_USER_ADDR_MAX)
				continue;
			mo = json_object_new_object();
			if (!mo || json_object_array_add(maps, mo) < 0) {
				json_object_put(mo);
				r = -ENOMEM;
				break;
			}
			r |= add(mo, "start", json_u64(map->start));
			r |= add(mo, "end", json_u64(map->end));
			r |= add(mo, "perms", json_object_new_string(map->perms));
			r |= add(mo, "kind", json_object_new_string(backend_map_kind_to_string(map->kind)));
			if (map->path)
				r |= add(mo, "path", json_object_new_string(map->path));
			r |= add(mo, "residency", residency_to_json(m, rc, &rc->per_map[i], NULL));
		}
		r |= add(o, "mappings", maps);
	}
	if (r != 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static void residency_done(MoverJob *j, int r, void *userdata)
{
	ResidencyCall *rc = userdata;
	VarlinkConnection *c = rc->connection;
	json_object *p;

	if (r == -ESRCH)
		(void) reply_pid_error(c, "io.coherentd.NoSuchProcess", rc->pid, NULL);
	else if (r < 0) {
		log_warning_errno(r, "Failed to read the residency of PID %d: %m", (int) rc->pid);
		(void) reply_failed(c, r, backend_last_message());
	} else {
		p = residency_reply(rc->manager, rc);
		if (p)
			(void) varlink_reply(c, p);
		else
			(void) reply_failed(c, -ENOMEM, NULL);
	}
	residency_call_free(rc);
}

static int method_get_residency(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	Manager *m = userdata;
	ApiParamError err = {};
	ResidencyCall *rc;
	pid_t pid;
	bool verbose;
	int pidfd = -EBADF, r;

	r = api_parse_residency(parameters, &pid, &verbose, &err);
	if (r < 0)
		return reply_invalid(c, &err);
	r = authorize(c, "residency query", pid, &pidfd);
	if (r <= 0)
		return r;

	rc = calloc(1, sizeof(*rc));
	if (!rc) {
		safe_close(pidfd);
		return -ENOMEM;
	}
	rc->manager = m;
	rc->pid = pid;
	rc->pidfd = pidfd;
	rc->verbose = verbose;
	rc->backends[0] = backend_ref_ref(m->numa);
	rc->backends[1] = backend_ref_ref(m->cohmem);
	rc->root = strdup(m->root);
	if (!rc->root) {
		residency_call_free(rc);
		return -ENOMEM;
	}
	if (!rc->backends[0] && !rc->backends[1]) {
		residency_call_free(rc);
		return reply_failed(c, -ENODEV, "no backend: neither NUMA nor cohmem.ko is available");
	}
	rc->connection = varlink_connection_ref(c);
	r = mover_submit(m->mover, pid, false, residency_work, NULL, residency_done, rc, NULL);
	if (r < 0) {
		residency_call_free(rc);
		return r;
	}
	return 0;
}

/* ------------------------------------------------------------------ GetStats */

static json_object *stats_entry_to_json(const char *name, const StatsEntry *s)
{
	static const StatsEntry zero = {};
	json_object *o = json_object_new_object();
	int r = 0;

	if (!o)
		return NULL;
	if (!s)
		s = &zero;
	r |= add(o, "name", json_object_new_string(name));
	r |= add(o, "bytes_in", json_u64(s->bytes_in));
	r |= add(o, "bytes_out", json_u64(s->bytes_out));
	r |= add(o, "migrations", json_u64(s->migrations));
	r |= add(o, "failures", json_u64(s->failures));
	r |= add(o, "failed_pages", json_u64(s->failed_pages));
	r |= add(o, "promoted_bytes", json_u64(s->promoted_bytes));
	r |= add(o, "demoted_bytes", json_u64(s->demoted_bytes));
	r |= add(o, "evicted_bytes", json_u64(s->evicted_bytes));
	if (r != 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static int array_add(json_object *a, json_object *o)
{
	if (!o)
		return -ENOMEM;
	if (json_object_array_add(a, o) < 0) {
		json_object_put(o);
		return -ENOMEM;
	}
	return 0;
}

json_object *api_get_stats_reply(const Stats *stats, const Device *devices, size_t n_devices,
				 uint64_t uptime_usec)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();
	int r = 0;

	if (!o || !a)
		goto fail;
	/* Current devices in ListDevices order, system RAM, then devices that went away. */
	for (size_t i = 0; i < n_devices; i++)
		r |= array_add(a, stats_entry_to_json(devices[i].name,
						      stats_find(stats, devices[i].name)));
	r |= array_add(a, stats_entry_to_json("system", stats_find(stats, "system")));
	for (size_t i = 0; i < stats->n_entries; i++) {
		const StatsEntry *s = &stats->entries[i];

		if (streq(s->name, "system") || devices_find(devices, n_devices, s->name))
			continue;
		r |= array_add(a, stats_entry_to_json(s->name, s));
	}
	if (r != 0)
		goto fail;
	r |= add(o, "uptime_usec", json_u64(uptime_usec));
	r |= add(o, "devices", a);
	a = NULL;
	if (r != 0)
		goto fail;
	return o;
fail:
	json_object_put(a);
	json_object_put(o);
	return NULL;
}

static int method_get_stats(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	Manager *m = userdata;
	json_object *reply;
	uint64_t now;
	int r;

	if (json_object_object_length(parameters) > 0)
		return reject_parameters(c, parameters);
	log_caller(c, "GetStats");

	r = sd_event_now(m->event, CLOCK_MONOTONIC, &now);
	if (r < 0)
		return r;
	reply = api_get_stats_reply(&m->stats, m->devices, m->n_devices,
				    now > m->start_usec ? now - m->start_usec : 0);
	if (!reply)
		return -ENOMEM;
	return varlink_reply(c, reply);
}

/* ------------------------------------------------------------------ policies */

static json_object *json_string_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

json_object *api_policy_entry(const Target *t, const PlacementTargetStatus *st)
{
	static const PlacementTargetStatus none = { .tracker = "none" };
	json_object *o = json_object_new_object();
	char tbuf[PATH_MAX + 16], pbuf[128];
	int r = 0;

	if (!o)
		return NULL;
	if (!st)
		st = &none;
	r |= add(o, "id", json_u64(t->id));
	r |= add(o, "target", json_object_new_string(target_key_format(&t->key, tbuf, sizeof(tbuf))));
	r |= add(o, "kind", json_object_new_string(target_kind_to_string(t->key.kind)));
	switch (t->key.kind) {
	case TARGET_PID:
		r |= add(o, "pid", json_object_new_int((int) t->key.pid));
		break;
	case TARGET_CGROUP:
		r |= add(o, "cgroup", json_object_new_string(t->key.cgroup));
		break;
	case TARGET_JOB:
		r |= add(o, "job", json_u64(t->key.job));
		if (st->cgroup)
			r |= add(o, "job_cgroup", json_string_or_null(st->cgroup));
		break;
	default:
		break;
	}
	r |= add(o, "owner", json_u64(t->owner));
	r |= add(o, "policy", json_object_new_string(policy_spec_format(&t->policy, pbuf, sizeof(pbuf))));
	r |= add(o, "set_realtime_usec", json_u64(t->set_realtime_usec));
	r |= add(o, "n_pids", json_u64(st->n_pids));
	r |= add(o, "tracker", json_object_new_string(st->tracker ?: "none"));
	r |= add(o, "tracked_bytes", json_u64(st->tracked_bytes));
	r |= add(o, "device_bytes", json_u64(st->device_bytes));
	r |= add(o, "hot_bytes", json_u64(st->hot_bytes));
	r |= add(o, "promoted_bytes", json_u64(st->promoted_bytes));
	r |= add(o, "demoted_bytes", json_u64(st->demoted_bytes));
	r |= add(o, "evicted_bytes", json_u64(st->evicted_bytes));
	r |= add(o, "ticks", json_u64(st->ticks));
	if (r != 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

json_object *api_record_reply(uint64_t tick, const TrackerRegion *regions, size_t n, bool finished,
			      bool target_exited)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();
	int r = 0;

	if (!o || !a)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_new_object();

		if (array_add(a, e) < 0)
			goto fail;
		r |= add(e, "start", json_u64(regions[i].start));
		r |= add(e, "length", json_u64(regions[i].length));
		r |= add(e, "heat", json_u64(MIN(regions[i].heat, (uint64_t) TRACKER_HEAT_MAX)));
	}
	r |= add(o, "tick", json_u64(tick));
	r |= add(o, "regions", a);
	a = NULL;
	r |= add(o, "finished", json_object_new_boolean(finished));
	if (finished)
		r |= add(o, "target_exited", json_object_new_boolean(target_exited));
	if (r != 0)
		goto fail;
	return o;
fail:
	json_object_put(a);
	json_object_put(o);
	return NULL;
}

static int reply_target_error(VarlinkConnection *c, const char *error, const char *field,
			      const char *value)
{
	json_object *p = json_object_new_object();

	if (!p || add(p, field, json_object_new_string(value)) < 0) {
		json_object_put(p);
		return -ENOMEM;
	}
	return varlink_reply_error(c, error, p);
}

static int reply_no_such_target(VarlinkConnection *c, const TargetKey *key)
{
	char buf[PATH_MAX + 16];

	return reply_target_error(c, "io.coherentd.NoSuchTarget", "target",
				  target_key_format(key, buf, sizeof(buf)));
}

/* A failure on the daemon's side (state file, tracker): errno and a message. */
static int reply_policy_failed(VarlinkConnection *c, int error, const char *message)
{
	json_object *p = json_object_new_object();
	char buf[320];

	if (isempty(message))
		message = strerror(error < 0 ? -error : error);
	(void) snprintf(buf, sizeof(buf), "%s", message);
	if (!p || add(p, "errno", json_object_new_int(error < 0 ? -error : error)) < 0 ||
	    add(p, "message", json_object_new_string(buf)) < 0) {
		json_object_put(p);
		return -ENOMEM;
	}
	return varlink_reply_error(c, "io.coherentd.PolicyFailed", p);
}

/* 1 with *ret_uid, or 0 after a PermissionDenied for a caller whose credentials are unknown. */
static int caller_uid(VarlinkConnection *c, const char *what, uid_t *ret_uid)
{
	int r;

	r = varlink_connection_get_peer(c, NULL, ret_uid, NULL);
	if (r >= 0)
		return 1;
	log_warning("Denied %s: the caller's credentials are unknown.", what);
	r = varlink_reply_error(c, "io.coherentd.PermissionDenied", NULL);
	return r < 0 ? r : 0;
}

/*
 * A pid target: authorize the caller (auth.h, as Migrate) and fill in the
 * process's start time. 1: go on; 0: an error was sent.
 */
static int resolve_pid_target(VarlinkConnection *c, Manager *m, const char *what, TargetKey *key)
{
	_cleanup_close_ int pidfd = -EBADF;
	int r;

	r = authorize(c, what, key->pid, &pidfd);
	if (r <= 0)
		return r;
	r = pid_read_starttime(m->root, key->pid, &key->starttime);
	/* Read after the pidfd pinned the process: a recycled pid fails the liveness check. */
	if (r == -ESRCH || (r >= 0 && auth_pidfd_alive(pidfd) < 0))
		r = reply_pid_error(c, "io.coherentd.NoSuchProcess", key->pid, NULL);
	else if (r < 0) {
		log_warning_errno(r, "Failed to read the start time of PID %d: %m", (int) key->pid);
		r = reply_policy_failed(c, r, NULL);
	} else
		return 1;
	return r < 0 ? r : 0;
}

static void log_policy_denied(const char *what, const TargetKey *key, uid_t uid)
{
	char buf[PATH_MAX + 16];

	log_warning("Denied %s of %s for uid %u (not the owner).", what,
		    target_key_format(key, buf, sizeof(buf)), (unsigned) uid);
}

/*
 * A cgroup or job target: it must exist (a job's cgroup need not for root,
 * who sets policies from Slurm's prolog before the job's cgroup is made), and
 * the caller must own it (target_check_owner()). 1: go on; 0: an error was sent.
 */
static int check_group_target(VarlinkConnection *c, Manager *m, const char *what,
			      const TargetKey *key, uid_t uid)
{
	_cleanup_free_ char *mount = NULL, *cgroup = NULL;
	_cleanup_free_ pid_t *pids = NULL;
	size_t n_pids = 0;
	int r;

	r = cgroup2_find_mount(m->root, &mount);
	if (r < 0 && r != -ENOENT) {
		log_warning_errno(r, "Failed to find the cgroup2 mount for %s: %m", what);
		r = reply_policy_failed(c, r, "cannot find the cgroup2 mount");
		return r < 0 ? r : 0;
	}
	if (key->kind == TARGET_CGROUP)
		r = mount ? target_resolve_pids(m->root, mount, key, &pids, &n_pids, NULL) : -ENOENT;
	else
		r = mount ? cgroup_find_job(m->root, mount, key->job, &cgroup) : -ENOENT;
	if (r == -ENOENT || r == -ESRCH) {
		if (key->kind == TARGET_CGROUP)
			r = reply_target_error(c, "io.coherentd.NoSuchCgroup", "cgroup", key->cgroup);
		else if (uid == 0)
			return 1;   /* the prolog: the job's cgroup comes later */
		else
			r = reply_no_such_target(c, key);
		return r < 0 ? r : 0;
	}
	if (r < 0) {
		log_warning_errno(r, "Failed to look up the cgroup of a target for %s: %m", what);
		r = reply_policy_failed(c, r, NULL);
		return r < 0 ? r : 0;
	}
	if (uid == 0)
		return 1;

	r = target_check_owner(m->root, mount, key, uid);
	switch (r) {
	case 0:
		return 1;
	case -EPERM:
		log_policy_denied(what, key, uid);
		r = varlink_reply_error(c, "io.coherentd.PermissionDenied", NULL);
		break;
	case -ENOENT:
	case -ESRCH:
		if (key->kind == TARGET_CGROUP)
			r = reply_target_error(c, "io.coherentd.NoSuchCgroup", "cgroup", key->cgroup);
		else
			r = reply_no_such_target(c, key);
		break;
	default:
		log_warning_errno(r, "Failed to check the owner of a target for %s: %m", what);
		r = reply_policy_failed(c, r, NULL);
		break;
	}
	return r < 0 ? r : 0;
}

static int method_set_policy(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	Manager *m = userdata;
	SetPolicyParams sp = {};
	ApiParamError err = {};
	char tbuf[PATH_MAX + 16], pbuf[128];
	json_object *reply;
	uint64_t id = 0;
	uid_t uid;
	int r;

	r = api_parse_set_policy(parameters, &sp, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return reply_invalid(c, &err);

	if (sp.policy.kind != POLICY_KIND_SYSTEM &&
	    !devices_find(m->devices, m->n_devices, sp.policy.device)) {
		r = reply_no_such_device(c, sp.policy.device);
		goto finish;
	}
	r = caller_uid(c, "policy set", &uid);
	if (r <= 0)
		goto finish;
	if (sp.target.kind == TARGET_PID)
		r = resolve_pid_target(c, m, "policy set", &sp.target);
	else
		r = check_group_target(c, m, "policy set", &sp.target, uid);
	if (r <= 0)
		goto finish;

	target_key_format(&sp.target, tbuf, sizeof(tbuf));
	policy_spec_format(&sp.policy, pbuf, sizeof(pbuf));
	r = placement_set_policy(m->placement, &sp.target, uid, &sp.policy, &id);
	switch (r) {
	case 0:
		break;
	case -ENODEV:
		r = reply_no_such_device(c, sp.policy.device);
		goto finish;
	case -EOPNOTSUPP:
		r = reply_target_error(c, "io.coherentd.TrackerUnavailable", "reason",
				       "a hot: policy needs an access tracker (DAMON or cohmem's "
				       "SAMPLE) and none is available");
		goto finish;
	case -ESRCH:
		r = reply_pid_error(c, "io.coherentd.NoSuchProcess", sp.target.pid, NULL);
		goto finish;
	case -ENOENT:
		r = reply_no_such_target(c, &sp.target);
		goto finish;
	default:
		log_warning_errno(r, "Failed to set policy %s for %s: %m", pbuf, tbuf);
		r = reply_policy_failed(c, r, NULL);
		goto finish;
	}
	log_info("Policy %s set for %s by uid %u (id %" PRIu64 ").", pbuf, tbuf, (unsigned) uid, id);

	reply = json_object_new_object();
	if (!reply || add(reply, "id", json_u64(id)) < 0 ||
	    add(reply, "target", json_object_new_string(tbuf)) < 0 ||
	    add(reply, "policy", json_object_new_string(pbuf)) < 0) {
		json_object_put(reply);
		r = -ENOMEM;
		goto finish;
	}
	r = varlink_reply(c, reply);
finish:
	target_key_done(&sp.target);
	return r;
}

/* The target with key; for a pid that has exited (start time unknown), the one with its pid. */
static const Target *find_target(const TargetSet *s, const TargetKey *key, bool pid_gone)
{
	if (!pid_gone)
		return target_set_find(s, key);
	for (size_t i = 0; i < s->n_targets; i++)
		if (s->targets[i].key.kind == TARGET_PID && s->targets[i].key.pid == key->pid)
			return &s->targets[i];
	return NULL;
}

static int method_clear_policy(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	Manager *m = userdata;
	ApiParamError err = {};
	TargetKey key = {}, found = {};
	const Target *t;
	char tbuf[PATH_MAX + 16];
	bool pid_gone = false;
	uid_t uid;
	int r;

	r = api_parse_clear_policy(parameters, &key, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return reply_invalid(c, &err);

	r = caller_uid(c, "policy clear", &uid);
	if (r <= 0)
		goto finish;
	if (key.kind == TARGET_PID) {
		r = pid_read_starttime(m->root, key.pid, &key.starttime);
		if (r == -ESRCH)
			pid_gone = true;
		else if (r < 0) {
			log_warning_errno(r, "Failed to read the start time of PID %d: %m", (int) key.pid);
			r = reply_policy_failed(c, r, NULL);
			goto finish;
		}
	}

	t = find_target(placement_targets(m->placement), &key, pid_gone);
	if (!t) {
		r = reply_no_such_target(c, &key);
		goto finish;
	}
	r = target_key_copy(&found, &t->key);
	if (r < 0)
		goto finish;

	/* Who set the policy may clear it, and so may who may set one on the target now. */
	if (uid != 0 && t->owner != uid) {
		if (pid_gone) {
			log_policy_denied("policy clear", &found, uid);
			r = varlink_reply_error(c, "io.coherentd.PermissionDenied", NULL);
			goto finish;
		}
		if (found.kind == TARGET_PID)
			r = resolve_pid_target(c, m, "policy clear", &key);
		else
			r = check_group_target(c, m, "policy clear", &found, uid);
		if (r <= 0)
			goto finish;
	}

	target_key_format(&found, tbuf, sizeof(tbuf));
	r = placement_clear_policy(m->placement, &found);
	if (r == -ENOENT) {
		r = reply_no_such_target(c, &found);
		goto finish;
	}
	if (r < 0) {
		log_warning_errno(r, "Failed to clear the policy of %s: %m", tbuf);
		r = reply_policy_failed(c, r, NULL);
		goto finish;
	}
	log_info("Policy of %s cleared by uid %u.", tbuf, (unsigned) uid);
	r = varlink_reply(c, NULL);
finish:
	target_key_done(&key);
	target_key_done(&found);
	return r;
}

static int method_list_policies(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	Manager *m = userdata;
	const TargetSet *s;
	json_object *reply, *a;

	if (json_object_object_length(parameters) > 0)
		return reject_parameters(c, parameters);
	log_caller(c, "ListPolicies");

	reply = json_object_new_object();
	a = json_object_new_array();
	if (!reply || !a)
		goto fail;
	s = placement_targets(m->placement);
	for (size_t i = 0; s && i < s->n_targets; i++) {
		PlacementTargetStatus st = {};
		bool have = placement_target_status(m->placement, s->targets[i].id, &st) >= 0;

		if (array_add(a, api_policy_entry(&s->targets[i], have ? &st : NULL)) < 0) {
			free(st.cgroup);
			goto fail;
		}
		free(st.cgroup);
	}
	if (add(reply, "policies", a) < 0) {
		a = NULL;
		goto fail;
	}
	return varlink_reply(c, reply);
fail:
	json_object_put(a);
	json_object_put(reply);
	return -ENOMEM;
}

/* ------------------------------------------------------------------ Record */

typedef struct RecordCall {
	Manager *manager;
	VarlinkConnection *connection;
	pid_t pid;
	uid_t uid;
	PlacementRecorder *recorder;
	sd_event_source *timer, *defer;
	uint64_t last_tick, n_ticks, n_dropped;
	bool starting, target_exited, peer_gone, finishing;
} RecordCall;

static void record_call_free(RecordCall *rc)
{
	if (rc->recorder)
		placement_record_stop(rc->recorder);
	sd_event_source_disable_unref(rc->timer);
	sd_event_source_disable_unref(rc->defer);
	varlink_connection_unref(rc->connection);
	free(rc);
}

/* The final reply (unless the caller left), then everything goes. Not from within the recorder. */
static void record_finish(RecordCall *rc)
{
	json_object *p;

	if (rc->recorder) {
		placement_record_stop(rc->recorder);
		rc->recorder = NULL;
	}
	if (rc->peer_gone)
		log_info("Recording of PID %d for uid %u stopped after %" PRIu64 " ticks: the caller "
			 "disconnected.", (int) rc->pid, (unsigned) rc->uid, rc->n_ticks);
	else {
		log_info("Recorded %" PRIu64 " ticks of PID %d for uid %u%s.", rc->n_ticks,
			 (int) rc->pid, (unsigned) rc->uid,
			 rc->target_exited ? ", until the process exited" : "");
		p = api_record_reply(rc->last_tick, NULL, 0, true, rc->target_exited);
		if (p)
			(void) varlink_reply(rc->connection, p);
		else
			(void) reply_policy_failed(rc->connection, -ENOMEM, NULL);
	}
	record_call_free(rc);
}

static int record_defer_handler(sd_event_source *s, void *userdata)
{
	record_finish(userdata);
	return 0;
}

static int record_timer_handler(sd_event_source *s, uint64_t usec, void *userdata)
{
	RecordCall *rc = userdata;

	/* Unless a deferred finish is already on its way. */
	if (!rc->defer)
		record_finish(rc);
	return 0;
}

/* Finish from the event loop: the recorder's callback must not stop its own recorder. */
static void record_finish_later(RecordCall *rc)
{
	int r;

	if (rc->finishing)
		return;
	rc->finishing = true;
	r = sd_event_add_defer(rc->manager->event, &rc->defer, record_defer_handler, rc);
	if (r < 0)
		/* The duration timer finishes it instead. */
		log_warning_errno(r, "Failed to schedule the end of a recording: %m");
}

static void record_tick(PlacementRecorder *recorder, uint64_t tick, const TrackerRegion *regions,
			size_t n, void *userdata)
{
	RecordCall *rc = userdata;
	json_object *p;
	int r;

	if (rc->finishing)
		return;
	if (!regions) {
		rc->target_exited = true;
		if (!rc->starting)
			record_finish_later(rc);
		return;
	}
	/* Several replies for a tick whose regions would not fit in one message. */
	for (size_t off = 0; off == 0 || off < n; off += API_RECORD_REGIONS_PER_REPLY) {
		p = api_record_reply(tick, regions + off, MIN(n - off, API_RECORD_REGIONS_PER_REPLY),
				     false, false);
		if (!p) {
			log_oom();
			rc->n_dropped++;
			return;
		}
		r = varlink_reply_continues(rc->connection, p);
		if (r == -ENOTCONN) {
			rc->peer_gone = true;
			record_finish_later(rc);
			return;
		}
		if (r < 0) {
			/* The caller does not read fast enough: the tick is lost to it. */
			log_debug_errno(r, "Dropped tick %" PRIu64 " of the recording of PID %d: %m",
					tick, (int) rc->pid);
			rc->n_dropped++;
			return;
		}
	}
	rc->last_tick = tick;
	rc->n_ticks++;
}

static int method_record(VarlinkConnection *c, json_object *parameters, void *userdata)
{
	Manager *m = userdata;
	ApiParamError err = {};
	_cleanup_close_ int pidfd = -EBADF;
	uint64_t duration;
	RecordCall *rc;
	pid_t pid;
	int r;

	r = api_parse_record(parameters, &pid, &duration, &err);
	if (r < 0)
		return reply_invalid(c, &err);
	if (!varlink_connection_wants_more(c))
		/* One reply per tick: without more there would be nothing to record into. */
		return varlink_reply_error(c, VARLINK_ERROR_EXPECTED_MORE, NULL);
	r = authorize(c, "record", pid, &pidfd);
	if (r <= 0)
		return r;

	rc = calloc(1, sizeof(*rc));
	if (!rc)
		return -ENOMEM;
	rc->manager = m;
	rc->pid = pid;
	(void) varlink_connection_get_peer(c, NULL, &rc->uid, NULL);
	rc->connection = varlink_connection_ref(c);

	r = sd_event_add_time_relative(m->event, &rc->timer, CLOCK_MONOTONIC, duration, 0,
				       record_timer_handler, rc);
	if (r < 0)
		goto fail;
	rc->starting = true;
	r = placement_record_start(m->placement, pid, record_tick, rc, &rc->recorder);
	rc->starting = false;
	switch (r) {
	case 0:
		break;
	case -ESRCH:
		r = reply_pid_error(c, "io.coherentd.NoSuchProcess", pid, NULL);
		goto fail_replied;
	default:
		log_warning_errno(r, "Failed to start recording PID %d: %m", (int) pid);
		r = reply_policy_failed(c, r, backend_last_message());
		goto fail_replied;
	}
	log_info("Recording PID %d for uid %u for %" PRIu64 " ms.", (int) pid, (unsigned) rc->uid,
		 duration / USEC_PER_MSEC);
	if (rc->target_exited)
		record_finish_later(rc);
	return 0;

fail:
	record_call_free(rc);
	return r;
fail_replied:
	rc->recorder = NULL;
	record_call_free(rc);
	return r;
}

const VarlinkMethod api_methods[] = {
	{ "io.coherentd.GetStatus", method_get_status },
	{ "io.coherentd.ListDevices", method_list_devices },
	{ "io.coherentd.Migrate", method_migrate },
	{ "io.coherentd.GetResidency", method_get_residency },
	{ "io.coherentd.GetStats", method_get_stats },
	{ "io.coherentd.SetPolicy", method_set_policy },
	{ "io.coherentd.ClearPolicy", method_clear_policy },
	{ "io.coherentd.ListPolicies", method_list_policies },
	{ "io.coherentd.Record", method_record },
	{}
};
