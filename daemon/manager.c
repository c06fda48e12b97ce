/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "backend.h"
#include "log.h"
#include "manager.h"
#include "placement.h"
#include "util.h"

int manager_new(Manager **ret)
{
	_cleanup_(manager_freep) Manager *m = NULL;
	int r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;

	r = sd_event_default(&m->event);
	if (r < 0)
		return r;
	r = sd_event_now(m->event, CLOCK_MONOTONIC, &m->start_usec);
	if (r < 0)
		return r;

	r = mover_new(m->event, MOVER_WORKERS_MAX_DEFAULT, &m->mover);
	if (r < 0)
		return r;

	m->root = strdup("/");
	m->config_path = strdup(CONF_FILE_DEFAULT);
	m->socket_path = strdup(COHERENTD_SOCKET_PATH);
	m->state_dir = strdup(STATE_DIR_DEFAULT);
	if (!m->root || !m->config_path || !m->socket_path || !m->state_dir)
		return -ENOMEM;

	r = placement_new(m, &m->placement);
	if (r < 0)
		return r;

	*ret = TAKE_PTR(m);
	return 0;
}

Manager *manager_free(Manager *m)
{
	if (!m)
		return NULL;

	/* Jobs answer their callers (with an error) before the server goes. */
	m->mover = mover_free(m->mover);
	/* After the mover: its cancelled jobs still report to the placement. Saves the stats. */
	m->placement = placement_free(m->placement);
	varlink_server_free(m->varlink);
	if (m->socket_bound)
		(void) unlink(m->socket_path);

	sd_event_source_disable_unref(m->sigterm_source);
	sd_event_source_disable_unref(m->sigint_source);
	sd_event_source_disable_unref(m->sighup_source);
	sd_event_source_disable_unref(m->refresh_timer);
	sd_event_source_disable_unref(m->cohmem_monitor_source);
	backend_ref_unref(m->cohmem);
	backend_ref_unref(m->numa);
	stats_done(&m->stats);
	sd_event_unref(m->event);

	devices_free(m->devices, m->n_devices);
	conf_free(m->conf);
	free(m->root);
	free(m->config_path);
	free(m->socket_path);
	free(m->state_dir);
	free(m);
	return NULL;
}

static int replace_string(char **p, const char *s)
{
	char *c = strdup(s);

	if (!c)
		return -ENOMEM;
	free(*p);
	*p = c;
	return 0;
}

int manager_set_root(Manager *m, const char *root)
{
	char buf[PATH_MAX];
	struct stat st;

	/* Absolute, so GetStatus reports something unambiguous and cwd does not matter. */
	if (!realpath(root, buf))
		return -errno;
	if (stat(buf, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	return replace_string(&m->root, buf);
}

int manager_set_config_path(Manager *m, const char *path, bool must_exist)
{
	m->config_must_exist = must_exist;
	return replace_string(&m->config_path, path);
}

int manager_set_socket_path(Manager *m, const char *path)
{
	return replace_string(&m->socket_path, path);
}

int manager_set_state_dir(Manager *m, const char *path)
{
	return replace_string(&m->state_dir, path);
}

void manager_set_conf(Manager *m, Conf *conf)
{
	conf_free(m->conf);
	m->conf = conf;
	m->report_conf_problems = true;

	/* $COHERENTD_LOG_LEVEL, read by log_setup(), wins over the configuration. */
	if (!getenv("COHERENTD_LOG_LEVEL"))
		log_set_max_level(conf->log_level >= 0 ? conf->log_level : LOG_INFO);
}

int manager_load_conf(Manager *m, Conf **ret)
{
	ConfError *errors = NULL;
	size_t n_errors = 0;
	int r;

	r = conf_load(m->config_path, m->config_must_exist, ret, &errors, &n_errors);
	if (r == -EINVAL) {
		for (size_t i = 0; i < n_errors; i++)
			if (errors[i].line > 0)
				log_error("%s:%u: %s", errors[i].file, errors[i].line,
					  errors[i].message);
			else
				log_error("%s: %s", errors[i].file, errors[i].message);
		conf_errors_free(errors, n_errors);
		return -EINVAL;
	}
	if (r < 0)
		return log_error_errno(r, "Failed to load configuration %s: %m", m->config_path);
	return 0;
}

uint64_t manager_total_device_bytes(const Manager *m)
{
	uint64_t t = 0;

	for (size_t i = 0; i < m->n_devices; i++)
		t += m->devices[i].total_bytes;
	return t;
}

uint64_t manager_free_device_bytes(const Manager *m)
{
	uint64_t t = 0;

	for (size_t i = 0; i < m->n_devices; i++)
		t += m->devices[i].free_bytes;
	return t;
}

static void manager_notify_status(Manager *m)
{
	(void) sd_notifyf(false, "STATUS=Watching %zu device%s", m->n_devices,
			  m->n_devices == 1 ? "" : "s");
}

static void manager_drop_cohmem(Manager *m)
{
	m->cohmem_monitor_source = sd_event_source_disable_unref(m->cohmem_monitor_source);
	if (m->cohmem && m->cohmem->ops->monitor_close)
		m->cohmem->ops->monitor_close(m->cohmem->backend);
	m->cohmem = backend_ref_unref(m->cohmem);
}

static int on_cohmem_monitor(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static void on_cohmem_event(Backend *b, const BackendEvent *event, void *userdata)
{
	Manager *m = userdata;

	switch (event->type) {
	case BACKEND_EVENT_WATERMARK_LOW:
		log_info("cohmem pool %" PRIi64 ": free memory fell below the low watermark "
			 "(%" PRIu64 " bytes free).", event->id, event->free_bytes);
		break;
	case BACKEND_EVENT_WATERMARK_HIGH:
		log_info("cohmem pool %" PRIi64 ": free memory is above the high watermark again "
			 "(%" PRIu64 " bytes free).", event->id, event->free_bytes);
		break;
	case BACKEND_EVENT_UNLOAD:
		log_info("cohmem.ko is being unloaded, dropping its pools.");
		/* Jobs that still use it keep their reference; the next refresh sees it gone. */
		m->cohmem_monitor_source = sd_event_source_disable_unref(m->cohmem_monitor_source);
		break;
	}
}

static int on_cohmem_monitor(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Manager *m = userdata;
	int r;

	if (!m->cohmem)
		return 0;
	r = m->cohmem->ops->monitor_dispatch(m->cohmem->backend);
	if (r < 0) {
		log_debug_errno(r, "Failed to read cohmem events, stopping to watch them: %m");
		m->cohmem_monitor_source = sd_event_source_disable_unref(m->cohmem_monitor_source);
	}
	/* Free memory changed or the module goes: show it now, not at the next tick. */
	if (m->n_devices > 0 || r < 0)
		(void) manager_refresh_devices(m);
	return 0;
}

static void manager_watch_cohmem(Manager *m)
{
	int fd, r;

	if (!m->cohmem || !m->event || m->cohmem_monitor_source ||
	    !m->cohmem->ops->monitor_open || !m->cohmem->ops->monitor_dispatch)
		return;
	r = m->cohmem->ops->monitor_open(m->cohmem->backend, on_cohmem_event, m, &fd);
	if (r >= 0)
		r = sd_event_add_io(m->event, &m->cohmem_monitor_source, fd, EPOLLIN,
				    on_cohmem_monitor, m);
	if (r < 0) {
		log_debug_errno(r, "Failed to watch cohmem events, ignoring: %m");
		return;
	}
	(void) sd_event_source_set_description(m->cohmem_monitor_source, "cohmem-monitor");
}

/* Probe cohmem.ko when it is not open; quietly, it may simply not be loaded. */
static void manager_probe_cohmem(Manager *m)
{
	int r;

	if (m->cohmem)
		return;
	r = backend_ref_open(&backend_cohmem_ops, m->root, &m->cohmem);
	if (r == -ENODEV || r == -ENOENT || r == -EPROTONOSUPPORT || r == -EAFNOSUPPORT) {
		m->cohmem_failed = false;
		return;
	}
	if (r < 0) {
		if (!m->cohmem_failed)
			log_warning_errno(r, "Failed to open the cohmem backend, ignoring: %m%s%s",
					  backend_last_message() ? " — " : "",
					  backend_last_message() ?: "");
		m->cohmem_failed = true;
		return;
	}
	m->cohmem_failed = false;
	log_info("cohmem.ko is loaded: its pools are devices now.");
	manager_watch_cohmem(m);
}

/* The pools of cohmem.ko as devices, after the NUMA ones. */
static void manager_add_cohmem_devices(Manager *m, Device **devices, size_t *n)
{
	BackendDevice *pools = NULL;
	size_t n_pools = 0;
	int r;

	manager_probe_cohmem(m);
	if (!m->cohmem)
		return;

	r = m->cohmem->ops->list_devices(m->cohmem->backend, &pools, &n_pools);
	if (r < 0) {
		if (r == -ENODEV || r == -ENOENT)
			log_info("cohmem.ko was unloaded: its pools are gone.");
		else
			log_warning_errno(r, "Failed to list cohmem pools, dropping the backend: %m");
		manager_drop_cohmem(m);
		return;
	}

	for (size_t i = 0; i < n_pools; i++) {
		const BackendDevice *p = &pools[i];
		Device d = {
			.name = (char *) p->name,
			.kind = DEVICE_KIND_COHMEM,
			.id = p->id,
			.node = p->node,
			.tier = -1,
			.total_bytes = p->total_bytes,
			.free_bytes = p->free_bytes,
			.has_low_watermark = p->low_watermark_bytes > 0,
			.low_watermark_bytes = p->low_watermark_bytes,
			.has_high_watermark = p->high_watermark_bytes > 0,
			.high_watermark_bytes = p->high_watermark_bytes,
		};

		if (devices_find(*devices, *n, p->name)) {
			if (m->report_conf_problems)
				log_warning("cohmem pool %s has the name of another device, ignoring it.",
					    p->name);
			continue;
		}
		if (devices_append(devices, n, &d) < 0) {
			log_oom();
			break;
		}
	}
	free(pools);
}

int manager_open_backends(Manager *m)
{
	int r;

	if (!m->numa) {
		r = backend_ref_open(&backend_numa_ops, m->root, &m->numa);
		if (r == -ENODEV || r == -ENOENT)
			log_info("No NUMA under %s: NUMA devices cannot be migrated to.", m->root);
		else if (r < 0)
			log_warning_errno(r, "Failed to open the numa backend, ignoring: %m");
	}
	manager_probe_cohmem(m);
	return 0;
}

static unsigned manager_n_devices_of_kind(const Manager *m, DeviceKind k)
{
	unsigned n = 0;

	for (size_t i = 0; i < m->n_devices; i++)
		n += m->devices[i].kind == k;
	return n;
}

int manager_resolve_target(Manager *m, const char *to, MigrateRequest *req)
{
	const Device *d;

	req->n_steps = 0;
	if (streq(to, "system")) {
		/* Pools first: what leaves them may land on a device node numa then moves. */
		if (m->cohmem)
			req->steps[req->n_steps++] = (MigrateStep) {
				.backend = backend_ref_ref(m->cohmem),
				.target = { .system = true, .id = -1 },
				.snapshot = true,
			};
		if (m->numa)
			req->steps[req->n_steps++] = (MigrateStep) {
				.backend = backend_ref_ref(m->numa),
				.target = { .system = true, .id = -1 },
				.snapshot = true,
			};
		return req->n_steps > 0 ? 0 : -ENODEV;
	}

	d = devices_find(m->devices, m->n_devices, to);
	if (!d)
		return -ENODEV;
	if (d->kind == DEVICE_KIND_COHMEM ? !m->cohmem : !m->numa)
		return -ENODEV;
	req->steps[0] = (MigrateStep) {
		.backend = backend_ref_ref(d->kind == DEVICE_KIND_COHMEM ? m->cohmem : m->numa),
		.target = { .system = false, .id = d->kind == DEVICE_KIND_COHMEM ? d->id : d->node },
		/* Pages may come off another device of the same backend: measure that. */
		.snapshot = manager_n_devices_of_kind(m, d->kind) > 1,
	};
	req->n_steps = 1;
	/*
	 * cohmem takes pages from wherever they are in RAM, device nodes
	 * included; move_pages(2) cannot see pool pages, so the other way round
	 * nothing comes off a pool.
	 */
	if (d->kind == DEVICE_KIND_COHMEM && m->numa &&
	    manager_n_devices_of_kind(m, DEVICE_KIND_NUMA) > 0)
		req->observers[req->n_observers++] = (MigrateObserver) {
			.backend = backend_ref_ref(m->numa),
		};
	return 0;
}

const char *manager_residency_device_name(const Manager *m, const BackendRef *b,
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

void manager_account_migration(Manager *m, const MigrateRequest *req, const char *to, int r,
			       const MigrateResult *res)
{
	uint64_t in = res->counts.migrated * res->page_size, out_other = 0;
	bool failed = r < 0 || res->counts.failed > 0 || res->counts.no_space > 0;
	StatsEntry *t;

	if (req->dry_run)
		return;
	t = stats_get(&m->stats, to);
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
	for (size_t i = 0; i < req->n_steps + req->n_observers; i++) {
		bool step = i < req->n_steps;
		size_t o = step ? 0 : i - req->n_steps;
		const MigrateSnapshot *snap = step ? &res->snapshots[i] : &res->observed[o];
		const BackendRef *b = step ? req->steps[i].backend : req->observers[o].backend;

		if (!snap->have_after)
			continue;
		for (size_t k = 0; k < snap->n_before; k++) {
			const ResidencyEntry *e = &snap->before[k];
			const char *name = manager_residency_device_name(m, b, e);
			uint64_t after = 0;

			if (!name || streq(name, to))
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
	if (!streq(to, "system") && in > out_other)
		stats_add_out(m, "system", in - out_other);
	placement_stats_changed(m->placement);
}

int manager_refresh_devices(Manager *m)
{
	_cleanup_strv_free_ char **missing = NULL;
	Device *devices = NULL;
	size_t n = 0, old_n = m->n_devices;
	int r;

	r = devices_discover(m->root, m->conf, &devices, &n, &missing);
	if (r < 0) {
		/* A transient sysfs problem must not flood the journal every tick. */
		if (!m->refresh_failed)
			log_warning_errno(r, "Failed to read NUMA nodes under %s, keeping the "
					  "previous device list: %m", m->root);
		m->refresh_failed = true;
		return r;
	}
	if (m->refresh_failed)
		log_info("Reading NUMA nodes under %s works again.", m->root);
	m->refresh_failed = false;

	if (m->report_conf_problems) {
		m->report_conf_problems = false;
		for (char **i = missing; i && *i; i++) {
			const ConfDevice *cd = conf_find_device(m->conf, *i);
			log_warning("%s:%u: [Device %s] names node %d, which does not exist, ignoring.",
				    cd->file, cd->line, cd->name, cd->node);
		}
		for (size_t i = 0; i < n; i++)
			if (devices[i].has_low_watermark && devices[i].has_high_watermark &&
			    devices[i].low_watermark_bytes > devices[i].high_watermark_bytes)
				log_warning("Device %s: low watermark (%" PRIu64 " bytes) is above the "
					    "high watermark (%" PRIu64 " bytes).", devices[i].name,
					    devices[i].low_watermark_bytes,
					    devices[i].high_watermark_bytes);
		for (size_t i = 0; i < n; i++)
			log_debug("Device %s: node %d, tier %d, %" PRIu64 " of %" PRIu64
				  " bytes free.", devices[i].name, devices[i].node, devices[i].tier,
				  devices[i].free_bytes, devices[i].total_bytes);
	}

	manager_add_cohmem_devices(m, &devices, &n);

	devices_free(m->devices, m->n_devices);
	m->devices = devices;
	m->n_devices = n;
	if (n != old_n)
		manager_notify_status(m);
	return 0;
}

static int on_refresh_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Manager *m = userdata;
	int r;

	(void) manager_refresh_devices(m);
	(void) placement_tick(m->placement);

	r = sd_event_source_set_time_relative(s, m->conf->tick_usec);
	if (r < 0)
		return log_error_errno(r, "Failed to re-arm the device refresh timer: %m");
	r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	if (r < 0)
		return log_error_errno(r, "Failed to re-enable the device refresh timer: %m");
	return 0;
}

int manager_reload(Manager *m)
{
	Conf *conf = NULL;
	int r;

	(void) sd_notify(false, "RELOADING=1\nSTATUS=Reloading configuration...");

	r = manager_load_conf(m, &conf);
	if (r < 0) {
		log_error("Configuration %s has errors, keeping the previous configuration.",
			  m->config_path);
		(void) sd_notify(false, "READY=1");
		manager_notify_status(m);
		return r;
	}
	manager_set_conf(m, conf);
	(void) manager_refresh_devices(m);

	if (m->refresh_timer) {
		r = sd_event_source_set_time_relative(m->refresh_timer, m->conf->tick_usec);
		if (r < 0)
			log_warning_errno(r, "Failed to reschedule the device refresh timer, "
					  "ignoring: %m");
	}
	log_info("Configuration reloaded: %zu configured device%s, %zu device%s found.",
		 m->conf->n_devices, m->conf->n_devices == 1 ? "" : "s", m->n_devices,
		 m->n_devices == 1 ? "" : "s");
	(void) sd_notify(false, "READY=1");
	manager_notify_status(m);
	return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	(void) manager_reload(userdata);
	return 0;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	Manager *m = userdata;

	log_debug("Received %s, exiting.", strsignal((int) si->ssi_signo));
	(void) sd_notify(false, "STOPPING=1\nSTATUS=Shutting down...");
	return sd_event_exit(m->event, 0);
}

/* 1 when something accepts connections on path, 0 otherwise. */
static int socket_is_alive(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -EBADF;

	if (strlen(path) >= sizeof(sa.sun_path))
		return 0;   /* listen_address() reports the bad path */
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	return connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0;
}

static int manager_listen(Manager *m, const int *fds, size_t n_fds)
{
	_cleanup_free_ char *dir = NULL;
	char *slash;
	int r;

	r = varlink_server_new(m->event, &api_server_info, api_interfaces, api_methods, m,
			       &m->varlink);
	if (r < 0)
		return log_error_errno(r, "Failed to create the varlink server: %m");

	if (n_fds > 0) {
		for (size_t i = 0; i < n_fds; i++) {
			r = varlink_server_listen_fd(m->varlink, fds[i]);
			if (r < 0)
				return log_error_errno(r, "Failed to listen on passed socket %d: %m",
						       fds[i]);
		}
		log_debug("Listening on %zu socket%s passed by the service manager.", n_fds,
			  n_fds == 1 ? "" : "s");
		return 0;
	}

	/* Started by hand: create the directory of the socket (/run/coherentd) if needed. */
	dir = strdup(m->socket_path);
	if (!dir)
		return log_oom();
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return log_error_errno(errno, "Failed to create directory %s: %m", dir);
	}

	/* listen_address() replaces a stale socket; a live one belongs to another daemon. */
	r = socket_is_alive(m->socket_path);
	if (r > 0)
		return log_error_errno(EADDRINUSE, "Failed to listen on %s: another process is "
				       "listening there already", m->socket_path);

	r = varlink_server_listen_address(m->varlink, m->socket_path);
	if (r == -EEXIST)
		return log_error_errno(r, "Failed to listen on %s: the path exists and is not a "
				       "socket", m->socket_path);
	if (r < 0)
		return log_error_errno(r, "Failed to listen on %s: %m", m->socket_path);
	m->socket_bound = true;
	log_debug("Listening on %s.", m->socket_path);
	return 0;
}

int manager_start(Manager *m, const int *fds, size_t n_fds)
{
	sigset_t mask;
	int r;

	/* sd-event's signal sources need the signals blocked. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return log_error_errno(errno, "Failed to block signals: %m");

	r = sd_event_add_signal(m->event, &m->sigterm_source, SIGTERM, on_exit_signal, m);
	if (r >= 0)
		r = sd_event_add_signal(m->event, &m->sigint_source, SIGINT, on_exit_signal, m);
	if (r >= 0)
		r = sd_event_add_signal(m->event, &m->sighup_source, SIGHUP, on_sighup, m);
	if (r < 0)
		return log_error_errno(r, "Failed to install signal handlers: %m");

	/* With WatchdogSec= in the unit sd-event pings the watchdog from the loop itself. */
	r = sd_event_set_watchdog(m->event, true);
	if (r < 0)
		return log_error_errno(r, "Failed to enable the watchdog: %m");

	(void) manager_open_backends(m);

	r = manager_refresh_devices(m);
	if (r < 0)
		/* Fatal at startup: a wrong --root should not look like an empty machine. */
		return log_error_errno(r, "Failed to discover devices under %s: %m", m->root);

	r = sd_event_add_time_relative(m->event, &m->refresh_timer, CLOCK_MONOTONIC,
				       m->conf->tick_usec, 0, on_refresh_timer, m);
	if (r < 0)
		return log_error_errno(r, "Failed to add the device refresh timer: %m");
	(void) sd_event_source_set_description(m->refresh_timer, "refresh-devices");

	/* Policies set before a restart apply again; a bad file is set aside, not fatal. */
	(void) placement_load_state(m->placement);

	r = manager_listen(m, fds, n_fds);
	if (r < 0)
		return r;

	log_info("coherentd " PACKAGE_VERSION " started: %zu device%s under %s.",
		 m->n_devices, m->n_devices == 1 ? "" : "s", m->root);
	return 0;
}
