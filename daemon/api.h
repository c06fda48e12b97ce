/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The io.coherentd varlink interface (daemon/io.coherentd.varlink): the
 * method table and the JSON the methods answer with. Builders take plain
 * structs so unit tests check the replies without a socket.
 */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "devices.h"
#include "stats.h"
#include "varlink.h"

struct Manager;

extern const VarlinkServerInfo api_server_info;
extern const VarlinkInterface api_interfaces[];
extern const VarlinkMethod api_methods[];

/* A Device as in the IDL; NULL on allocation failure. */
json_object *api_device_to_json(const Device *d);
/* ListDevices reply parameters. */
json_object *api_list_devices_reply(const Device *devices, size_t n);
/* GetStatus reply parameters; now_usec is CLOCK_MONOTONIC. */
json_object *api_get_status_reply(const struct Manager *m, unsigned n_connections,
				  uint64_t now_usec);

/* Parameters of io.coherentd.Migrate, validated. */
typedef struct MigrateParams {
	pid_t pid;
	bool all;
	uint64_t start, end;      /* [start, end), page aligned, when !all */
	const char *to;           /* borrowed from the parameters object */
	bool dry_run;
} MigrateParams;

/* What is wrong with a parameter, for io.coherentd.InvalidParameter. */
typedef struct ApiParamError {
	const char *parameter;
	const char *reason;
} ApiParamError;

/*
 * Validate Migrate's parameters (pure). -EINVAL with *err filled in: unknown
 * or mistyped parameters, pid out of range, both or neither of a range and
 * all, end not above start, unaligned or out-of-range addresses, a bad device
 * name.
 */
int api_parse_migrate(json_object *parameters, uint64_t page_size, MigrateParams *ret,
		      ApiParamError *err);
/* GetResidency's parameters. */
int api_parse_residency(json_object *parameters, pid_t *ret_pid, bool *ret_verbose,
			ApiParamError *err);

/* A Migrate reply (progress when !finished). */
json_object *api_migrate_reply(pid_t pid, const char *to, bool dry_run, bool finished,
			       const MoveCounts *c, uint64_t page_size, uint64_t pages_total,
			       uint64_t elapsed_usec, bool target_exited);
/* GetStats reply: an entry for every device in devices, "system", and the others in stats. */
json_object *api_get_stats_reply(const Stats *stats, const Device *devices, size_t n_devices,
				 uint64_t uptime_usec);
