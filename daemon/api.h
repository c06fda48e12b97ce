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
#include "placement.h"
#include "stats.h"
#include "targets.h"
#include "tracker.h"
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

/* ---- policies and recording ---- */

/* Longest Record call: a day of ticks. */
#define API_RECORD_DURATION_MAX_USEC (24 * USEC_PER_HOUR)
/*
 * Regions per Record reply: a tick with more comes in several replies with the
 * same tick number, each well below VARLINK_MESSAGE_MAX (a region is at most
 * ~70 bytes of JSON).
 */
#define API_RECORD_REGIONS_PER_REPLY 8192

/*
 * A TargetRef (SetPolicy's and ClearPolicy's "target"), validated: an object
 * with exactly one of pid (1..INT_MAX), cgroup (a path, normalized with
 * cgroup_path_normalize()) and job (1..2^63-1); null counts as absent.
 * ret->starttime stays 0: the caller reads it from the process.
 * ret->cgroup is malloc'd (target_key_done()). Errors name "target",
 * "target.pid", "target.cgroup" or "target.job".
 */
int api_parse_target_ref(json_object *ref, TargetKey *ret, ApiParamError *err);

typedef struct SetPolicyParams {
	TargetKey target;       /* target_key_done() */
	PolicySpec policy;
} SetPolicyParams;

/* SetPolicy's parameters: a target and a policy string (policy_spec_parse()). */
int api_parse_set_policy(json_object *parameters, SetPolicyParams *ret, ApiParamError *err);
/* ClearPolicy's parameters: the target (target_key_done() on success). */
int api_parse_clear_policy(json_object *parameters, TargetKey *ret, ApiParamError *err);
/* Record's parameters: pid, and duration_usec in [1, API_RECORD_DURATION_MAX_USEC]. */
int api_parse_record(json_object *parameters, pid_t *ret_pid, uint64_t *ret_duration_usec,
		     ApiParamError *err);

/*
 * A PolicyEntry of ListPolicies: the target with its policy, and what the
 * placement says about it (st NULL: nothing known yet, zeros and tracker "none").
 */
json_object *api_policy_entry(const Target *t, const PlacementTargetStatus *st);
/* A Record reply: one tick's regions, or the final one (finished, no regions). */
json_object *api_record_reply(uint64_t tick, const TrackerRegion *regions, size_t n, bool finished,
			      bool target_exited);
