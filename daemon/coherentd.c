/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * coherentd main: logging, arguments, configuration, socket activation,
 * manager, READY=1, event loop. Everything else lives in the manager.
 */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "conf.h"
#include "log.h"
#include "manager.h"
#include "util.h"

static const char *arg_config = NULL;
static const char *arg_root = "/";
static const char *arg_socket = COHERENTD_SOCKET_PATH;
static const char *arg_state_dir = NULL;
static bool arg_test_config = false;

static void help(void)
{
	printf("Usage: %s [OPTIONS...]\n\n"
	       "Place process memory on coherent device memory.\n\n"
	       "  -h --help            Show this help\n"
	       "     --version         Show the package version\n"
	       "  -c --config=FILE     Configuration file (default: %s);\n"
	       "                       drop-ins are read from FILE.d/*.conf\n"
	       "  -r --root=DIR        Read sysfs and procfs below DIR (default: /)\n"
	       "  -s --socket=PATH     Varlink socket when not socket-activated\n"
	       "                       (default: %s)\n"
	       "     --state-dir=DIR   Where policies and statistics persist (default:\n"
	       "                       $STATE_DIRECTORY, else %s)\n"
	       "     --test-config     Print the effective configuration and exit\n",
	       program_invocation_short_name, CONF_FILE_DEFAULT, COHERENTD_SOCKET_PATH,
	       STATE_DIR_DEFAULT);
}

/* 1: continue, 0: exit successfully, <0: exit with failure. */
static int parse_argv(int argc, char *argv[])
{
	enum {
		ARG_VERSION = 0x100,
		ARG_TEST_CONFIG,
		ARG_STATE_DIR,
	};
	static const struct option options[] = {
		{ "help",        no_argument,       NULL, 'h' },
		{ "version",     no_argument,       NULL, ARG_VERSION },
		{ "config",      required_argument, NULL, 'c' },
		{ "root",        required_argument, NULL, 'r' },
		{ "socket",      required_argument, NULL, 's' },
		{ "test-config", no_argument,       NULL, ARG_TEST_CONFIG },
		{ "state-dir",   required_argument, NULL, ARG_STATE_DIR },
		{}
	};
	int c;

	while ((c = getopt_long(argc, argv, "hc:r:s:", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			help();
			return 0;
		case ARG_VERSION:
			printf("coherentd %s\n", PACKAGE_VERSION);
			return 0;
		case 'c':
			if (isempty(optarg))
				return log_error_errno(EINVAL, "--config= needs a file name.");
			arg_config = optarg;
			break;
		case 'r':
			if (isempty(optarg))
				return log_error_errno(EINVAL, "--root= needs a directory.");
			arg_root = optarg;
			break;
		case 's':
			if (isempty(optarg))
				return log_error_errno(EINVAL, "--socket= needs a path.");
			arg_socket = optarg;
			break;
		case ARG_TEST_CONFIG:
			arg_test_config = true;
			break;
		case ARG_STATE_DIR:
			if (isempty(optarg) || optarg[0] != '/')
				return log_error_errno(EINVAL, "--state-dir= needs an absolute path.");
			arg_state_dir = optarg;
			break;
		case '?':
			return -EINVAL;
		default:
			return log_error_errno(EINVAL, "Unhandled option %c.", c);
		}

	if (optind < argc)
		return log_error_errno(EINVAL, "%s takes no arguments, got \"%s\".",
				       program_invocation_short_name, argv[optind]);
	return 1;
}

/* --state-dir=, else systemd's StateDirectory= (the first of a ':' list), else the default. */
static int set_state_dir(Manager *m)
{
	_cleanup_free_ char *env = NULL;
	const char *e = getenv("STATE_DIRECTORY");
	int r;

	if (arg_state_dir)
		r = manager_set_state_dir(m, arg_state_dir);
	else if (!isempty(e)) {
		env = strndup(e, strcspn(e, ":"));
		if (!env)
			return log_oom();
		if (env[0] != '/')
			return log_error_errno(EINVAL, "$STATE_DIRECTORY=%s is not an absolute path.",
					       e);
		r = manager_set_state_dir(m, env);
	} else
		return 0;   /* manager_new() set the default */
	if (r < 0)
		return log_oom();
	return 0;
}

static int run(int argc, char *argv[])
{
	_cleanup_(manager_freep) Manager *m = NULL;
	Conf *conf = NULL;
	_cleanup_free_ int *fds = NULL;
	int r, n_fds;

	log_setup();

	r = parse_argv(argc, argv);
	if (r <= 0)
		return r;

	r = manager_new(&m);
	if (r < 0)
		return log_error_errno(r, "Failed to create the manager: %m");

	/* An explicitly named file must exist; the built-in default may be absent. */
	r = manager_set_config_path(m, arg_config ?: CONF_FILE_DEFAULT, !!arg_config);
	if (r < 0)
		return log_oom();

	r = manager_load_conf(m, &conf);
	if (r < 0)
		return r;
	manager_set_conf(m, conf);

	if (arg_test_config) {
		r = conf_dump(m->conf, stdout);
		if (r < 0)
			return log_error_errno(r, "Failed to write the configuration: %m");
		return 0;
	}

	r = manager_set_root(m, arg_root);
	if (r < 0)
		return log_error_errno(r, "Invalid --root=%s: %m", arg_root);
	r = manager_set_socket_path(m, arg_socket);
	if (r < 0)
		return log_oom();
	r = set_state_dir(m);
	if (r < 0)
		return r;

	n_fds = sd_listen_fds(true);
	if (n_fds < 0)
		return log_error_errno(n_fds, "Failed to read the sockets passed by the service "
				       "manager: %m");
	if (n_fds > 0) {
		fds = calloc((size_t) n_fds, sizeof(int));
		if (!fds)
			return log_oom();
		for (int i = 0; i < n_fds; i++)
			fds[i] = SD_LISTEN_FDS_START + i;
	}

	r = manager_start(m, fds, (size_t) n_fds);
	if (r < 0)
		return r;

	(void) sd_notifyf(false, "READY=1\nSTATUS=Watching %zu device%s", m->n_devices,
			  m->n_devices == 1 ? "" : "s");

	r = sd_event_loop(m->event);
	if (r < 0)
		return log_error_errno(r, "Event loop failed: %m");
	log_info("coherentd stopped.");
	return r;
}

int main(int argc, char *argv[])
{
	int r = run(argc, argv);

	return r < 0 ? EXIT_FAILURE : r;
}
