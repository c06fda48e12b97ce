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

/* The device name a residency entry of backend b stands for; NULL for system RAM. */
static const char *residency_device_name(const Manager *m, const BackendRef *b,
					 const ResidencyEntry *e)
{
	DeviceKind k = b == m->cohmem ? DEVICE_KIND_COHMEM : DEVICE_KIND_NUMA;

	if (e->system)
		return NULL;
	for (size_t i = 0; i < m->n_devices; i++) {
		const Device *d = &m->devices[i];

		if (d->kind == k && (k == DEVICE_KIND_COHMEM ? d->id : d->node) == e->id)
			return d->name;
	}
	return NULL;
}

static void stats_add_out(Manager *m, const char *name, uint64_t bytes)
{
	StatsEntry *s = stats_get(&m->stats, name);

	if (s)
		s->bytes_out += bytes;
}

/* Counters for a finished (possibly partial) migration. */
static void migrate_account(Manager *m, const MigrateCall *mc)
{
	const MigrateResult *res = &mc->result;
	uint64_t in = res->counts.migrated * res->page_size, out_other = 0;
	bool failed = mc->r < 0 || res->counts.failed > 0 || res->counts.no_space > 0;
	StatsEntry *t;

	if (mc->req.dry_run)
		return;
	t = stats_get(&m->stats, mc->to);
	if (!t) {
		log_oom();
		return;
	}
	t->bytes_in += in;
	t->failed_pages += res->counts.failed + res->counts.no_space;
	if (in > 0)
		t->migrations++;
	if (failed)
		t->failures++;

	/* Bytes off other devices: residency before minus after, per device. */
	for (size_t i = 0; i < mc->req.n_steps + mc->req.n_observers; i++) {
		bool step = i < mc->req.n_steps;
		size_t o = step ? 0 : i - mc->req.n_steps;
		const MigrateSnapshot *snap = step ? &res->snapshots[i] : &res->observed[o];
		const BackendRef *b = step ? mc->req.steps[i].backend : mc->req.observers[o].backend;

		if (!snap->have_after)
			continue;
		for (size_t k = 0; k < snap->n_before; k++) {
			const ResidencyEntry *e = &snap->before[k];
			const char *name = residency_device_name(m, b, e);
			uint64_t after = 0;

			if (!name || streq(name, mc->to))
				continue;
			for (size_t l = 0; l < snap->n_after; l++)
				if (snap->after[l].system == e->system && snap->after[l].id == e->id)
					after += snap->after[l].bytes;
			if (e->bytes > after) {
				stats_add_out(m, name, e->bytes - after);
				out_other += e->bytes - after;
				if (stats_get(&m->stats, name))
					stats_get(&m->stats, name)->migrations++;
			}
		}
	}
	/* The rest came out of system RAM. */
	if (!streq(mc->to, "system") && in > out_other)
		stats_add_out(m, "system", in - out_other);
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
	migrate_account(m, mc);

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
			const char *name = residency_device_name(m, b, e), *kind;
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

const VarlinkMethod api_methods[] = {
	{ "io.coherentd.GetStatus", method_get_status },
	{ "io.coherentd.ListDevices", method_list_devices },
	{ "io.coherentd.Migrate", method_migrate },
	{ "io.coherentd.GetResidency", method_get_residency },
	{ "io.coherentd.GetStats", method_get_stats },
	{}
};
