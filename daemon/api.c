/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "interface.h"
#include "log.h"
#include "manager.h"
#include "util.h"

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

const VarlinkMethod api_methods[] = {
	{ "io.coherentd.GetStatus", method_get_status },
	{ "io.coherentd.ListDevices", method_list_devices },
	{}
};
