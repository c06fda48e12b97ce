/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The daemon's state and its sd-event loop: signals (SIGTERM/SIGINT exit,
 * SIGHUP reloads the configuration), the device refresh timer, the varlink
 * server and sd_notify. Everything the API reports is read from here.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "backend.h"
#include "conf.h"
#include "devices.h"
#include "mover.h"
#include "stats.h"
#include "varlink.h"

struct Placement;

/* Where targets.json and stats.json live when neither --state-dir= nor $STATE_DIRECTORY say. */
#define STATE_DIR_DEFAULT LOCALSTATEDIR "/lib/coherentd"

typedef struct Manager {
	sd_event *event;

	char *root;               /* absolute path of the sysfs/procfs root, "/" normally */
	char *config_path;
	bool config_must_exist;   /* false for the built-in default path */
	char *socket_path;        /* where we bind when not socket-activated */
	char *state_dir;          /* persistent state (state.h) */
	bool socket_bound;        /* we created socket_path: unlink it on exit */

	Conf *conf;

	Device *devices;
	size_t n_devices;
	bool refresh_failed;      /* last refresh failed; log only transitions */
	bool report_conf_problems;/* log missing configured devices on the next refresh */

	VarlinkServer *varlink;

	/*
	 * Backends: numa whenever NUMA sysfs exists, cohmem while cohmem.ko is
	 * loaded (probed again on every refresh). Jobs hold their own references.
	 */
	BackendRef *numa, *cohmem;
	sd_event_source *cohmem_monitor_source;
	bool cohmem_failed;       /* last probe failed for a reason other than -ENODEV */
	Mover *mover;
	Stats stats;
	struct Placement *placement; /* policies and the per-tick loop (placement.h) */

	sd_event_source *sigterm_source, *sigint_source, *sighup_source;
	sd_event_source *refresh_timer;

	uint64_t start_usec;      /* CLOCK_MONOTONIC */
} Manager;

int manager_new(Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free)

/* Settings from the command line; copies the strings. */
int manager_set_root(Manager *m, const char *root);
int manager_set_config_path(Manager *m, const char *path, bool must_exist);
int manager_set_socket_path(Manager *m, const char *path);
int manager_set_state_dir(Manager *m, const char *path);

/* Take over a parsed configuration (applies LogLevel=). */
void manager_set_conf(Manager *m, Conf *conf);

/*
 * Load the configuration from config_path, logging each problem as
 * "FILE:LINE: message". -EINVAL when the configuration has errors.
 */
int manager_load_conf(Manager *m, Conf **ret);

/* Re-read the devices; on failure the previous list is kept. */
int manager_refresh_devices(Manager *m);

/* SIGHUP: load the configuration again; a bad one is reported and the old one kept. */
int manager_reload(Manager *m);

/*
 * Discover devices, listen on fds (socket activation; n_fds 0: bind
 * socket_path), install signal handlers and the refresh timer, enable the
 * watchdog. Then run sd_event_loop() and send READY=1.
 */
int manager_start(Manager *m, const int *fds, size_t n_fds);

/*
 * Fill in the steps of a migration to `to` (a device name or "system"), each
 * with a backend reference. -ENODEV when there is no such device (or no
 * backend behind it).
 */
int manager_resolve_target(Manager *m, const char *to, MigrateRequest *req);

/* The device name a residency entry of backend b stands for; NULL for system RAM. */
const char *manager_residency_device_name(const Manager *m, const BackendRef *b,
					  const ResidencyEntry *e);

/*
 * Count a finished (possibly partial) migration of req to `to` (a device name
 * or "system") in m->stats: bytes in, bytes off the other devices from the
 * residency snapshots, migrations, failures. r is what migrate_run() returned.
 * Shared by the Migrate method and the placement loop.
 */
void manager_account_migration(Manager *m, const MigrateRequest *req, const char *to, int r,
			       const MigrateResult *res);

/* Open the numa backend and probe cohmem; absent kernel sides are not errors. */
int manager_open_backends(Manager *m);

uint64_t manager_total_device_bytes(const Manager *m);
uint64_t manager_free_device_bytes(const Manager *m);
