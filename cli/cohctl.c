/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cohctl: inspect and steer coherentd over its Varlink socket.
 *
 * One verb table (as systemctl and oomctl have): each verb gets the arguments after
 * the options and returns a process exit code. The exit codes are part of the
 * interface and documented in cohctl(8).
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <json-c/json.h>

#include "log.h"
#include "macro.h"
#include "util.h"
#include "varlink.h"

/* Exit codes, see cohctl(8). */
enum {
	COHCTL_EXIT_SUCCESS     = 0,
	COHCTL_EXIT_FAILURE     = 1,   /* error reply, malformed reply, local failure */
	COHCTL_EXIT_USAGE       = 2,   /* bad command line */
	COHCTL_EXIT_UNAVAILABLE = EX_UNAVAILABLE, /* 69: daemon not reachable or not answering */
};

#define COHCTL_DEFAULT_SOCKET COHERENTD_SOCKET_PATH  /* util.h, shared with the daemon */
#define COHCTL_DEFAULT_TIMEOUT_USEC (25 * USEC_PER_SEC)

typedef enum JsonMode {
	JSON_OFF,
	JSON_PRETTY,
	JSON_SHORT,
} JsonMode;

static const char *arg_socket = NULL;
static JsonMode arg_json = JSON_OFF;
static bool arg_legend = true;
static uint64_t arg_timeout_usec = COHCTL_DEFAULT_TIMEOUT_USEC;

/* ------------------------------------------------------------------ output helpers */

/*
 * Human-readable size: binary units, one decimal, truncated rather than rounded so a
 * device is never shown fuller than it is: 103079215104 → "96.0G", 512 → "512B".
 */
static char *format_bytes(char *buf, size_t l, uint64_t t)
{
	static const struct {
		const char *suffix;
		uint64_t factor;
	} table[] = {
		{ "E", UINT64_C(1) << 60 },
		{ "P", UINT64_C(1) << 50 },
		{ "T", UINT64_C(1) << 40 },
		{ "G", UINT64_C(1) << 30 },
		{ "M", UINT64_C(1) << 20 },
		{ "K", UINT64_C(1) << 10 },
	};

	for (size_t i = 0; i < ELEMENTSOF(table); i++)
		if (t >= table[i].factor) {
			/* Tenths: t * 10 may overflow, (t % factor) * 10 < 10 * 2^60 does not. */
			snprintf(buf, l, "%" PRIu64 ".%" PRIu64 "%s", t / table[i].factor,
				 (t % table[i].factor) * 10 / table[i].factor, table[i].suffix);
			return buf;
		}
	snprintf(buf, l, "%" PRIu64 "B", t);
	return buf;
}

/* "2d 3h", "5min 3s", "42s", "1h": the two largest units, like uptime(1) is read. */
static char *format_uptime(char *buf, size_t l, uint64_t usec)
{
	static const struct {
		const char *suffix;
		uint64_t usec;
	} table[] = {
		{ "d", USEC_PER_DAY },
		{ "h", USEC_PER_HOUR },
		{ "min", USEC_PER_MINUTE },
		{ "s", USEC_PER_SEC },
	};
	size_t n = 0, used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ELEMENTSOF(table) && used < 2; i++) {
		uint64_t v = usec / table[i].usec;

		if (v == 0 && used == 0)
			continue;  /* leading zero units are not shown */
		usec -= v * table[i].usec;
		used++;
		if (v > 0 && n < l)
			n += snprintf(buf + n, l - n, "%s%" PRIu64 "%s", n > 0 ? " " : "", v,
				      table[i].suffix);
	}
	if (n == 0)
		snprintf(buf, l, "0s");
	return buf;
}

/* ------------------------------------------------------------------ reply access */

/*
 * Typed field access for replies. A missing or mistyped field is a protocol error:
 * the daemon and cohctl disagree about io.coherentd, and saying so beats printing 0.
 */
static int reply_malformed(const char *method, const char *field)
{
	log_error("Malformed reply to %s from coherentd: field '%s' missing or of the wrong type.",
		  method, field);
	return -EBADMSG;
}

static int get_string(json_object *o, const char *method, const char *field, const char **ret)
{
	json_object *v;

	if (!json_object_object_get_ex(o, field, &v) || !json_object_is_type(v, json_type_string))
		return reply_malformed(method, field);
	*ret = json_object_get_string(v);
	return 0;
}

static int get_int(json_object *o, const char *method, const char *field, int64_t *ret)
{
	json_object *v;

	if (!json_object_object_get_ex(o, field, &v) || !json_object_is_type(v, json_type_int))
		return reply_malformed(method, field);
	*ret = json_object_get_int64(v);
	return 0;
}

/* Non-negative integer that may be absent or null (a "?int" in the IDL). 0 when absent. */
static int get_optional_uint(json_object *o, const char *method, const char *field, uint64_t *ret)
{
	json_object *v;

	if (!json_object_object_get_ex(o, field, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
		return reply_malformed(method, field);
	*ret = json_object_get_uint64(v);
	return 1;
}

static int get_uint(json_object *o, const char *method, const char *field, uint64_t *ret)
{
	int r = get_optional_uint(o, method, field, ret);

	if (r == 0)
		return reply_malformed(method, field);
	return r < 0 ? r : 0;
}

static int get_bool(json_object *o, const char *method, const char *field, bool *ret)
{
	json_object *v;

	if (!json_object_object_get_ex(o, field, &v) || !json_object_is_type(v, json_type_boolean))
		return reply_malformed(method, field);
	*ret = json_object_get_boolean(v);
	return 0;
}

/* ------------------------------------------------------------------ talking to the daemon */

static const char *socket_path(void)
{
	return arg_socket ?: COHCTL_DEFAULT_SOCKET;
}

/*
 * Call method and return its reply parameters, or print why not and return the exit
 * code: COHCTL_EXIT_UNAVAILABLE when the daemon cannot be reached or does not answer,
 * COHCTL_EXIT_FAILURE for an error reply or a broken reply.
 */
static int call(const char *method, json_object *parameters, json_object **ret)
{
	VarlinkClient *client = NULL;
	json_object *reply = NULL;
	char *error = NULL;
	int r;

	r = varlink_client_connect(socket_path(), &client);
	if (r == -ENOENT || r == -ECONNREFUSED || r == -ENOTDIR) {
		log_error("coherentd is not running (%s at %s).",
			  r == -ECONNREFUSED ? "nothing listens on the socket" : "no socket",
			  socket_path());
		return COHCTL_EXIT_UNAVAILABLE;
	}
	if (r < 0) {
		log_error_errno(r, "Failed to connect to coherentd at %s: %m", socket_path());
		return r == -EACCES || r == -EPERM ? COHCTL_EXIT_FAILURE : COHCTL_EXIT_UNAVAILABLE;
	}

	r = varlink_client_call(client, method, parameters, arg_timeout_usec, &reply, &error);
	varlink_client_free(client);
	if (r == -ETIMEDOUT) {
		log_error("coherentd did not answer %s within the timeout (socket %s).", method,
			  socket_path());
		return COHCTL_EXIT_UNAVAILABLE;
	}
	if (r == -ECONNRESET || r == -EPIPE) {
		/* Also what a connection refused by the daemon's connection limit looks like. */
		log_error("coherentd closed the connection before answering %s (socket %s).", method,
			  socket_path());
		return COHCTL_EXIT_UNAVAILABLE;
	}
	if (r < 0) {
		log_error_errno(r, "Failed to call %s: %m", method);
		return COHCTL_EXIT_FAILURE;
	}

	if (error) {
		const char *p = json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN |
								      JSON_C_TO_STRING_NOSLASHESCAPE);

		/* The varlink error name and its parameters, verbatim: the name is the message. */
		log_error("%s failed: %s %s", method, error, p ?: "{}");
		free(error);
		json_object_put(reply);
		return COHCTL_EXIT_FAILURE;
	}

	*ret = reply;
	return COHCTL_EXIT_SUCCESS;
}

static int print_json(json_object *o)
{
	int flags = JSON_C_TO_STRING_NOSLASHESCAPE;
	const char *s;

	flags |= arg_json == JSON_SHORT ? JSON_C_TO_STRING_PLAIN
					: JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED;
	s = json_object_to_json_string_ext(o, flags);
	if (!s) {
		log_oom();
		return COHCTL_EXIT_FAILURE;
	}
	puts(s);
	return COHCTL_EXIT_SUCCESS;
}

/* ------------------------------------------------------------------ verbs */

static int verb_status(int argc, char **argv)
{
	static const char *method = "io.coherentd.GetStatus";
	const char *version, *root;
	int64_t pid, n_devices, n_connections;
	uint64_t uptime, total, free_bytes;
	json_object *reply = NULL, *files;
	char b1[32], b2[32];
	int r, ret = COHCTL_EXIT_FAILURE;

	r = call(method, NULL, &reply);
	if (r != COHCTL_EXIT_SUCCESS)
		return r;

	if (arg_json != JSON_OFF) {
		ret = print_json(reply);
		goto finish;
	}

	if (get_string(reply, method, "version", &version) < 0 ||
	    get_int(reply, method, "pid", &pid) < 0 ||
	    get_uint(reply, method, "uptime_usec", &uptime) < 0 ||
	    get_string(reply, method, "root", &root) < 0 ||
	    get_int(reply, method, "n_devices", &n_devices) < 0 ||
	    get_uint(reply, method, "total_device_bytes", &total) < 0 ||
	    get_uint(reply, method, "free_device_bytes", &free_bytes) < 0 ||
	    get_int(reply, method, "n_connections", &n_connections) < 0)
		goto finish;
	if (!json_object_object_get_ex(reply, "config_files", &files) ||
	    !json_object_is_type(files, json_type_array)) {
		reply_malformed(method, "config_files");
		goto finish;
	}

	printf("    Version: %s\n", version);
	printf("        PID: %" PRIi64 "\n", pid);
	printf("     Uptime: %s\n", format_uptime(b1, sizeof(b1), uptime));
	printf("       Root: %s\n", root);
	if (json_object_array_length(files) == 0)
		printf("     Config: (none)\n");
	for (size_t i = 0; i < json_object_array_length(files); i++) {
		json_object *f = json_object_array_get_idx(files, i);

		if (!json_object_is_type(f, json_type_string)) {
			reply_malformed(method, "config_files");
			goto finish;
		}
		printf("%s%s\n", i == 0 ? "     Config: " : "             ", json_object_get_string(f));
	}
	printf("    Devices: %" PRIi64 "\n", n_devices);
	if (n_devices > 0) {
		printf("     Memory: %s total, %s free", format_bytes(b1, sizeof(b1), total),
		       format_bytes(b2, sizeof(b2), free_bytes));
		if (total > 0)
			printf(" (%.1f%%)", 100.0 * (double) free_bytes / (double) total);
		printf("\n");
	}
	printf("Connections: %" PRIi64 "\n", n_connections);
	ret = COHCTL_EXIT_SUCCESS;

finish:
	json_object_put(reply);
	return ret;
}

enum {
	COL_NAME, COL_KIND, COL_NODE, COL_TIER, COL_TOTAL, COL_FREE, COL_LOW, COL_HIGH, COL_CONFIGURED,
	_COL_MAX,
};

static const struct {
	const char *title;
	bool right;  /* numbers align right */
} device_columns[_COL_MAX] = {
	[COL_NAME] = { "NAME", false },
	[COL_KIND] = { "KIND", false },
	[COL_NODE] = { "NODE", true },
	[COL_TIER] = { "TIER", true },
	[COL_TOTAL] = { "TOTAL", true },
	[COL_FREE] = { "FREE", true },
	[COL_LOW] = { "LOW", true },
	[COL_HIGH] = { "HIGH", true },
	[COL_CONFIGURED] = { "CONFIGURED", false },
};

#define CELL_MAX 64

static void print_row(char cells[_COL_MAX][CELL_MAX], const size_t *width)
{
	for (size_t i = 0; i < _COL_MAX; i++) {
		bool last = i == _COL_MAX - 1;

		if (device_columns[i].right)
			printf("%*s", (int) width[i], cells[i]);
		else if (last)
			printf("%s", cells[i]);
		else
			printf("%-*s", (int) width[i], cells[i]);
		printf(last ? "\n" : " ");
	}
}

static int verb_devices(int argc, char **argv)
{
	static const char *method = "io.coherentd.ListDevices";
	json_object *reply = NULL, *devices;
	char (*cells)[_COL_MAX][CELL_MAX] = NULL;
	size_t n, width[_COL_MAX] = {};
	int ret = COHCTL_EXIT_FAILURE, r;

	r = call(method, NULL, &reply);
	if (r != COHCTL_EXIT_SUCCESS)
		return r;

	if (arg_json != JSON_OFF) {
		ret = print_json(reply);
		goto finish;
	}

	if (!json_object_object_get_ex(reply, "devices", &devices) ||
	    !json_object_is_type(devices, json_type_array)) {
		reply_malformed(method, "devices");
		goto finish;
	}
	n = json_object_array_length(devices);

	/* Row 0 is the header. */
	cells = calloc(n + 1, sizeof(*cells));
	if (!cells) {
		log_oom();
		goto finish;
	}
	for (size_t i = 0; i < _COL_MAX; i++)
		snprintf(cells[0][i], CELL_MAX, "%s", device_columns[i].title);

	for (size_t i = 0; i < n; i++) {
		json_object *d = json_object_array_get_idx(devices, i);
		char (*row)[CELL_MAX] = cells[i + 1];
		const char *name, *kind;
		uint64_t total, free_bytes, v;
		int64_t node;
		bool configured;

		if (!json_object_is_type(d, json_type_object)) {
			reply_malformed(method, "devices");
			goto finish;
		}
		if (get_string(d, method, "name", &name) < 0 ||
		    get_string(d, method, "kind", &kind) < 0 ||
		    get_int(d, method, "node", &node) < 0 ||
		    get_uint(d, method, "total_bytes", &total) < 0 ||
		    get_uint(d, method, "free_bytes", &free_bytes) < 0 ||
		    get_bool(d, method, "configured", &configured) < 0)
			goto finish;

		snprintf(row[COL_NAME], CELL_MAX, "%s", name);
		snprintf(row[COL_KIND], CELL_MAX, "%s", kind);
		if (node >= 0)
			snprintf(row[COL_NODE], CELL_MAX, "%" PRIi64, node);
		else
			snprintf(row[COL_NODE], CELL_MAX, "-");

		r = get_optional_uint(d, method, "tier", &v);
		if (r < 0)
			goto finish;
		if (r > 0)
			snprintf(row[COL_TIER], CELL_MAX, "%" PRIu64, v);
		else
			snprintf(row[COL_TIER], CELL_MAX, "-");

		format_bytes(row[COL_TOTAL], CELL_MAX, total);
		format_bytes(row[COL_FREE], CELL_MAX, free_bytes);

		r = get_optional_uint(d, method, "low_watermark_bytes", &v);
		if (r < 0)
			goto finish;
		if (r > 0)
			format_bytes(row[COL_LOW], CELL_MAX, v);
		else
			snprintf(row[COL_LOW], CELL_MAX, "-");
		r = get_optional_uint(d, method, "high_watermark_bytes", &v);
		if (r < 0)
			goto finish;
		if (r > 0)
			format_bytes(row[COL_HIGH], CELL_MAX, v);
		else
			snprintf(row[COL_HIGH], CELL_MAX, "-");

		snprintf(row[COL_CONFIGURED], CELL_MAX, "%s", configured ? "yes" : "no");
	}

	for (size_t i = arg_legend ? 0 : 1; i <= n; i++)
		for (size_t j = 0; j < _COL_MAX; j++)
			width[j] = MAX(width[j], strlen(cells[i][j]));

	for (size_t i = arg_legend ? 0 : 1; i <= n; i++)
		print_row(cells[i], width);

	if (arg_legend) {
		if (n == 0)
			printf("\nNo devices found.\n");
		else
			printf("\n%zu device%s listed.\n", n, n == 1 ? "" : "s");
	}
	ret = COHCTL_EXIT_SUCCESS;

finish:
	free(cells);
	json_object_put(reply);
	return ret;
}

static int help(void)
{
	printf("%s [OPTIONS...] COMMAND\n"
	       "\n"
	       "Inspect and steer coherentd, the coherent device memory placement daemon.\n"
	       "\n"
	       "Commands:\n"
	       "  status                 Show daemon status (default)\n"
	       "  devices                List device memory targets\n"
	       "  help                   Show this help\n"
	       "\n"
	       "Options:\n"
	       "  -h --help              Show this help\n"
	       "     --version           Show package version\n"
	       "  -j                     Same as --json=pretty\n"
	       "     --json=MODE         Print the reply as JSON: pretty (default) or short\n"
	       "     --no-legend         Do not print the column headers and footer\n"
	       "     --socket=PATH       Daemon socket (default: $COHCTL_SOCKET or\n"
	       "                         " COHCTL_DEFAULT_SOCKET ")\n"
	       "     --timeout=DURATION  Give up on a daemon that does not answer (default 25s,\n"
	       "                         \"infinity\" to wait forever)\n"
	       "\n"
	       "Exit status: 0 success, 1 failure or error reply, 2 usage error,\n"
	       "69 coherentd not running or not answering. See cohctl(8).\n",
	       program_invocation_short_name);
	return COHCTL_EXIT_SUCCESS;
}

static int verb_help(int argc, char **argv)
{
	return help();
}

typedef struct Verb {
	const char *name;
	unsigned min_args, max_args;  /* counting the verb itself */
	bool is_default;
	int (*fn)(int argc, char **argv);
} Verb;

static const Verb verbs[] = {
	{ "status",  1, 1, true,  verb_status },
	{ "devices", 1, 1, false, verb_devices },
	{ "help",    1, 1, false, verb_help },
	{}
};

static int dispatch_verb(int argc, char **argv)
{
	const Verb *v = NULL;

	if (argc == 0) {
		for (const Verb *i = verbs; i->name; i++)
			if (i->is_default)
				v = i;
	} else {
		for (const Verb *i = verbs; i->name; i++)
			if (streq(i->name, argv[0]))
				v = i;
		if (!v) {
			log_error("Unknown command verb '%s'. See '%s --help'.", argv[0],
				  program_invocation_short_name);
			return COHCTL_EXIT_USAGE;
		}
	}

	if (argc > 0 && ((unsigned) argc < v->min_args || (unsigned) argc > v->max_args)) {
		log_error("Wrong number of arguments for '%s'.", v->name);
		return COHCTL_EXIT_USAGE;
	}
	return v->fn(argc, argv);
}

/* > 0: an exit code to return now (after --help, or a usage error), 0: go on. */
static int parse_argv(int argc, char **argv)
{
	enum {
		ARG_VERSION = 0x100,
		ARG_JSON,
		ARG_NO_LEGEND,
		ARG_SOCKET,
		ARG_TIMEOUT,
	};
	static const struct option options[] = {
		{ "help",      no_argument,       NULL, 'h' },
		{ "version",   no_argument,       NULL, ARG_VERSION },
		{ "json",      optional_argument, NULL, ARG_JSON },
		{ "no-legend", no_argument,       NULL, ARG_NO_LEGEND },
		{ "socket",    required_argument, NULL, ARG_SOCKET },
		{ "timeout",   required_argument, NULL, ARG_TIMEOUT },
		{}
	};
	const char *e;
	int c, r;

	e = getenv("COHCTL_SOCKET");
	if (!isempty(e))
		arg_socket = e;

	/* "+": stop at the verb, like systemctl; options after it are the verb's. */
	while ((c = getopt_long(argc, argv, "+hj", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			help();
			return -1;
		case ARG_VERSION:
			printf("cohctl (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
			return -1;
		case 'j':
			arg_json = JSON_PRETTY;
			break;
		case ARG_JSON:
			if (!optarg || streq(optarg, "pretty"))
				arg_json = JSON_PRETTY;
			else if (streq(optarg, "short"))
				arg_json = JSON_SHORT;
			else if (streq(optarg, "off"))
				arg_json = JSON_OFF;
			else {
				log_error("Unknown --json mode '%s': expected pretty, short or off.", optarg);
				return COHCTL_EXIT_USAGE;
			}
			break;
		case ARG_NO_LEGEND:
			arg_legend = false;
			break;
		case ARG_SOCKET:
			if (isempty(optarg)) {
				log_error("--socket needs a path.");
				return COHCTL_EXIT_USAGE;
			}
			arg_socket = optarg;
			break;
		case ARG_TIMEOUT:
			if (streq(optarg, "infinity")) {
				arg_timeout_usec = 0;  /* varlink: wait forever */
				break;
			}
			r = parse_duration(optarg, &arg_timeout_usec);
			if (r < 0 || arg_timeout_usec == 0) {
				log_error("Invalid --timeout '%s': expected a duration such as 5s or 1min.",
					  optarg);
				return COHCTL_EXIT_USAGE;
			}
			break;
		case '?':
			/* getopt_long() already said what is wrong. */
			return COHCTL_EXIT_USAGE;
		default:
			return COHCTL_EXIT_FAILURE;
		}

	return 0;
}

int main(int argc, char **argv)
{
	int r;

	log_setup();

	r = parse_argv(argc, argv);
	if (r < 0)
		return COHCTL_EXIT_SUCCESS;
	if (r > 0)
		return r;

	r = dispatch_verb(argc - optind, argv + optind);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		log_error("Failed to write output.");
		return COHCTL_EXIT_FAILURE;
	}
	return r;
}
