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
#include <unistd.h>

#include <json-c/json.h>

#include "cohctl-record.h"
#include "cohctl-simulate.h"
#include "log.h"
#include "macro.h"
#include "policy.h"
#include "util.h"
#include "varlink.h"

/* Exit codes, see cohctl(8). */
enum {
	COHCTL_EXIT_SUCCESS     = 0,
	COHCTL_EXIT_FAILURE     = 1,   /* error reply, malformed reply, local failure */
	COHCTL_EXIT_USAGE       = 2,   /* bad command line, or InvalidParameter from the daemon */
	COHCTL_EXIT_NO_PROCESS  = 3,   /* NoSuchProcess, ProcessNotMigratable, NothingMapped,
					* NoSuchTarget, NoSuchCgroup */
	COHCTL_EXIT_DENIED      = 4,   /* PermissionDenied (LSB: insufficient privilege) */
	COHCTL_EXIT_NO_DEVICE   = 5,   /* NoSuchDevice */
	COHCTL_EXIT_UNAVAILABLE = EX_UNAVAILABLE, /* 69: daemon not reachable or not answering */
};

#define COHCTL_DEFAULT_SOCKET COHERENTD_SOCKET_PATH  /* util.h, shared with the daemon */
#define COHCTL_DEFAULT_TIMEOUT_USEC (25 * USEC_PER_SEC)
/* io.coherentd.Record's limit. */
#define COHCTL_RECORD_MAX_USEC USEC_PER_DAY

typedef enum JsonMode {
	JSON_OFF,
	JSON_PRETTY,
	JSON_SHORT,
} JsonMode;

static const char *arg_socket = NULL;
static JsonMode arg_json = JSON_OFF;
static bool arg_legend = true;
static uint64_t arg_timeout_usec = COHCTL_DEFAULT_TIMEOUT_USEC;
static bool arg_timeout_set = false;
static pid_t arg_pid = 0;
static bool arg_all = false;
static bool arg_have_range = false;
static uint64_t arg_start = 0, arg_end = 0;
static const char *arg_to = NULL;
static bool arg_dry_run = false;
static bool arg_verbose = false;
static const char *arg_cgroup = NULL;
static uint64_t arg_job = 0;
static uint64_t arg_quota = 0;
static int arg_priority = 0;
static uint64_t arg_duration_usec = 0;
static const char *arg_output = NULL;

/* Verb-specific options, as a set: each verb says which it takes. */
enum {
	OPT_PID     = 1 << 0,
	OPT_RANGE   = 1 << 1,
	OPT_ALL     = 1 << 2,
	OPT_TO      = 1 << 3,
	OPT_DRY_RUN = 1 << 4,
	OPT_VERBOSE = 1 << 5,
	OPT_CGROUP  = 1 << 6,
	OPT_JOB     = 1 << 7,
	OPT_QUOTA   = 1 << 8,
	OPT_PRIORITY = 1 << 9,
	OPT_DURATION = 1 << 10,
	OPT_OUTPUT  = 1 << 11,
	_OPT_LAST   = OPT_OUTPUT,
};
static unsigned arg_given = 0;

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

/* The exit code an error reply maps to (cohctl(8), EXIT STATUS). */
static int exit_code_for_error(const char *error)
{
	static const struct {
		const char *error;
		int code;
	} table[] = {
		{ "io.coherentd.InvalidParameter",     COHCTL_EXIT_USAGE },
		{ "io.coherentd.NoSuchProcess",        COHCTL_EXIT_NO_PROCESS },
		{ "io.coherentd.ProcessNotMigratable", COHCTL_EXIT_NO_PROCESS },
		{ "io.coherentd.NothingMapped",        COHCTL_EXIT_NO_PROCESS },
		{ "io.coherentd.PermissionDenied",     COHCTL_EXIT_DENIED },
		{ "io.coherentd.NoSuchTarget",         COHCTL_EXIT_NO_PROCESS },
		{ "io.coherentd.NoSuchCgroup",         COHCTL_EXIT_NO_PROCESS },
		{ "io.coherentd.NoSuchDevice",         COHCTL_EXIT_NO_DEVICE },
	};

	for (size_t i = 0; i < ELEMENTSOF(table); i++)
		if (streq(table[i].error, error))
			return table[i].code;
	return COHCTL_EXIT_FAILURE;
}

static const char *socket_path(void)
{
	return arg_socket ?: COHCTL_DEFAULT_SOCKET;
}

typedef void (*ProgressFn)(json_object *reply);
static void progress_clear(void);

/*
 * Call method and return its reply parameters, or print why not and return the exit
 * code: COHCTL_EXIT_UNAVAILABLE when the daemon cannot be reached or does not answer,
 * the code of the error (exit_code_for_error()) for an error reply, COHCTL_EXIT_FAILURE
 * for a broken reply. With progress, the call asks for "more" replies and progress
 * gets each one before the last; timeout_usec applies to each reply (0: forever).
 */
static int call_full(const char *method, json_object *parameters, uint64_t timeout_usec,
		     ProgressFn progress, json_object **ret)
{
	VarlinkClient *client = NULL;
	json_object *reply = NULL;
	char *error = NULL;
	bool continues = false;
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

	r = varlink_client_send_ext(client, method, parameters, !!progress, timeout_usec);
	for (;;) {
		if (r < 0)
			break;
		r = varlink_client_receive_ext(client, timeout_usec, &reply, &error, &continues);
		if (r < 0 || error || !continues)
			break;
		if (progress)
			progress(reply);
		json_object_put(reply);
		reply = NULL;
	}
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

		if (progress)
			progress_clear();
		/* The varlink error name and its parameters, verbatim: the name is the message. */
		log_error("%s failed: %s %s", method, error, p ?: "{}");
		r = exit_code_for_error(error);
		free(error);
		json_object_put(reply);
		return r;
	}

	*ret = reply;
	return COHCTL_EXIT_SUCCESS;
}

static int call(const char *method, json_object *parameters, json_object **ret)
{
	return call_full(method, parameters, arg_timeout_usec, NULL, ret);
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

typedef struct Column {
	const char *title;
	bool right;  /* numbers align right */
} Column;

static const Column device_columns[_COL_MAX] = {
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

#define CELL_MAX 256

/*
 * cells: n_rows rows of n_cols cells each, row 0 the column titles (filled in
 * here); the header only with the legend.
 */
static void print_table(const Column *cols, size_t n_cols, char (*cells)[CELL_MAX], size_t n_rows)
{
	_cleanup_free_ size_t *width = calloc(n_cols, sizeof(size_t));

	if (!width) {
		log_oom();
		return;
	}
	for (size_t j = 0; j < n_cols; j++)
		snprintf(cells[j], CELL_MAX, "%s", cols[j].title);
	for (size_t i = arg_legend ? 0 : 1; i < n_rows; i++)
		for (size_t j = 0; j < n_cols; j++)
			width[j] = MAX(width[j], strlen(cells[i * n_cols + j]));
	for (size_t i = arg_legend ? 0 : 1; i < n_rows; i++)
		for (size_t j = 0; j < n_cols; j++) {
			const char *c = cells[i * n_cols + j];
			bool last = j == n_cols - 1;

			if (cols[j].right)
				printf("%*s", (int) width[j], c);
			else if (last)
				printf("%s", c);
			else
				printf("%-*s", (int) width[j], c);
			printf(last ? "\n" : " ");
		}
}

/*
 * Call a method that answers with a list in field: the exit code, with
 * *ret_reply (to put) and *ret_list borrowed from it; *ret_list is NULL when
 * --json printed the reply already.
 */
static int call_list(const char *method, const char *field, json_object **ret_reply,
		     json_object **ret_list)
{
	json_object *reply = NULL, *list;
	int r;

	*ret_reply = *ret_list = NULL;
	r = call(method, NULL, &reply);
	if (r != COHCTL_EXIT_SUCCESS)
		return r;
	*ret_reply = reply;
	if (arg_json != JSON_OFF)
		return print_json(reply);
	if (!json_object_object_get_ex(reply, field, &list) ||
	    !json_object_is_type(list, json_type_array)) {
		reply_malformed(method, field);
		return COHCTL_EXIT_FAILURE;
	}
	*ret_list = list;
	return COHCTL_EXIT_SUCCESS;
}

static int verb_devices(int argc, char **argv)
{
	static const char *method = "io.coherentd.ListDevices";
	json_object *reply = NULL, *devices;
	char (*cells)[_COL_MAX][CELL_MAX] = NULL;
	size_t n;
	int ret = COHCTL_EXIT_FAILURE, r;

	r = call_list(method, "devices", &reply, &devices);
	if (r != COHCTL_EXIT_SUCCESS || !devices) {
		ret = r;
		goto finish;
	}
	n = json_object_array_length(devices);

	/* Row 0 is the header. */
	cells = calloc(n + 1, sizeof(*cells));
	if (!cells) {
		log_oom();
		goto finish;
	}
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

	print_table(device_columns, _COL_MAX, cells[0], n + 1);

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

/* ------------------------------------------------------------------ migrate */

static const char *const count_names[] = {
	"migrated", "already", "not_present", "file", "shared", "pinned", "unmovable",
	"no_space", "failed",
};

enum {
	CNT_MIGRATED, CNT_ALREADY, CNT_NOT_PRESENT, CNT_FILE, CNT_SHARED, CNT_PINNED,
	CNT_UNMOVABLE, CNT_NO_SPACE, CNT_FAILED, _CNT_MAX,
};

/* Human words for the skip reasons, in count_names order. */
static const char *const count_words[] = {
	"migrated", "already there", "not present", "file", "shared", "pinned", "unmovable",
	"no space", "failed",
};

static int get_counts(json_object *reply, const char *method, uint64_t c[_CNT_MAX])
{
	json_object *o;

	if (!json_object_object_get_ex(reply, "counts", &o) || !json_object_is_type(o, json_type_object))
		return reply_malformed(method, "counts");
	for (size_t i = 0; i < _CNT_MAX; i++)
		if (get_uint(o, method, count_names[i], &c[i]) < 0)
			return -EBADMSG;
	return 0;
}

/* "1.5s", "250.0ms", "42us": for durations of a move. */
static char *format_elapsed(char *buf, size_t l, uint64_t usec)
{
	if (usec >= USEC_PER_SEC)
		snprintf(buf, l, "%" PRIu64 ".%03" PRIu64 "s", usec / USEC_PER_SEC,
			 usec % USEC_PER_SEC / USEC_PER_MSEC);
	else if (usec >= USEC_PER_MSEC)
		snprintf(buf, l, "%" PRIu64 ".%" PRIu64 "ms", usec / USEC_PER_MSEC,
			 usec % USEC_PER_MSEC / 100);
	else
		snprintf(buf, l, "%" PRIu64 "us", usec);
	return buf;
}

static bool progress_shown = false;

static void progress_clear(void)
{
	if (progress_shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		progress_shown = false;
	}
}

static void progress_show(json_object *reply)
{
	static const char *method = "io.coherentd.Migrate";
	uint64_t c[_CNT_MAX], pages, total, ps;
	char b[32];

	if (get_counts(reply, method, c) < 0 || get_uint(reply, method, "pages", &pages) < 0 ||
	    get_uint(reply, method, "pages_total", &total) < 0 ||
	    get_uint(reply, method, "page_size", &ps) < 0)
		return;
	fprintf(stderr, "\r\033[KMigrating PID %d to %s: %" PRIu64, (int) arg_pid, arg_to, pages);
	if (total > 0)
		fprintf(stderr, "/%" PRIu64 " pages (%" PRIu64 "%%)", total,
			pages * 100 / (total ?: 1));
	else
		fprintf(stderr, " pages");
	fprintf(stderr, ", %s moved", format_bytes(b, sizeof(b), c[CNT_MIGRATED] * ps));
	fflush(stderr);
	progress_shown = true;
}

static int migrate_summary(json_object *reply)
{
	static const char *method = "io.coherentd.Migrate";
	uint64_t c[_CNT_MAX], pages, ps, elapsed, skipped = 0, bytes;
	bool dry_run, exited;
	char b1[32], b2[32], b3[32];
	const char *sep = "";

	if (get_counts(reply, method, c) < 0 || get_uint(reply, method, "pages", &pages) < 0 ||
	    get_uint(reply, method, "page_size", &ps) < 0 ||
	    get_uint(reply, method, "elapsed_usec", &elapsed) < 0 ||
	    get_uint(reply, method, "bytes_migrated", &bytes) < 0 ||
	    get_bool(reply, method, "dry_run", &dry_run) < 0 ||
	    get_bool(reply, method, "target_exited", &exited) < 0)
		return COHCTL_EXIT_FAILURE;

	for (size_t i = CNT_NOT_PRESENT; i <= CNT_NO_SPACE; i++)
		skipped += c[i];

	if (dry_run)
		printf("Dry run, PID %d to %s: would migrate %" PRIu64 " page%s (%s) of %" PRIu64
		       ".\n", (int) arg_pid, arg_to, c[CNT_MIGRATED], c[CNT_MIGRATED] == 1 ? "" : "s",
		       format_bytes(b1, sizeof(b1), bytes), pages);
	else {
		printf("Migrated %" PRIu64 " page%s (%s) of PID %d to %s in %s", c[CNT_MIGRATED],
		       c[CNT_MIGRATED] == 1 ? "" : "s", format_bytes(b1, sizeof(b1), bytes),
		       (int) arg_pid, arg_to, format_elapsed(b2, sizeof(b2), elapsed));
		if (elapsed > 0 && bytes > 0)
			printf(", %s/s", format_bytes(b3, sizeof(b3),
						      (uint64_t) ((double) bytes * 1e6 / (double) elapsed)));
		printf(".\n");
	}
	printf("  Pages: %" PRIu64 " of %s\n", pages, format_bytes(b1, sizeof(b1), pages * ps));
	printf("  Already there: %" PRIu64 "\n", c[CNT_ALREADY]);
	printf("  Skipped: %" PRIu64, skipped);
	if (skipped > 0) {
		printf(" (");
		for (size_t i = CNT_NOT_PRESENT; i <= CNT_NO_SPACE; i++)
			if (c[i] > 0) {
				printf("%s%s %" PRIu64, sep, count_words[i], c[i]);
				sep = ", ";
			}
		printf(")");
	}
	printf("\n  Failed: %" PRIu64 "\n", c[CNT_FAILED]);
	if (exited)
		printf("The process exited during the move: the counts cover what was done before.\n");
	return COHCTL_EXIT_SUCCESS;
}

static int verb_migrate(int argc, char **argv)
{
	static const char *method = "io.coherentd.Migrate";
	json_object *p = NULL, *reply = NULL;
	bool progress;
	int r, ret = COHCTL_EXIT_FAILURE;

	if (!(arg_given & OPT_PID) || !(arg_given & OPT_TO)) {
		log_error("migrate needs --pid=PID and --to=DEVICE|system.");
		return COHCTL_EXIT_USAGE;
	}
	if (!!(arg_given & OPT_RANGE) == !!(arg_given & OPT_ALL)) {
		log_error("migrate needs exactly one of --range=START-END and --all.");
		return COHCTL_EXIT_USAGE;
	}

	p = json_object_new_object();
	if (!p) {
		log_oom();
		return COHCTL_EXIT_FAILURE;
	}
	json_object_object_add(p, "pid", json_object_new_int((int) arg_pid));
	if (arg_all)
		json_object_object_add(p, "all", json_object_new_boolean(true));
	else {
		json_object_object_add(p, "start", json_object_new_int64((int64_t) arg_start));
		json_object_object_add(p, "end", json_object_new_int64((int64_t) arg_end));
	}
	json_object_object_add(p, "to", json_object_new_string(arg_to));
	if (arg_dry_run)
		json_object_object_add(p, "dry_run", json_object_new_boolean(true));

	/* A move takes as long as it takes: progress replies show it is alive. */
	progress = arg_json == JSON_OFF && isatty(STDERR_FILENO);
	r = call_full(method, p, !arg_timeout_set ? 0 : arg_timeout_usec,
		      progress ? progress_show : NULL, &reply);
	json_object_put(p);
	progress_clear();
	if (r != COHCTL_EXIT_SUCCESS)
		return r;

	if (arg_json != JSON_OFF)
		ret = print_json(reply);
	else
		ret = migrate_summary(reply);
	json_object_put(reply);
	return ret;
}

/* ------------------------------------------------------------------ residency */

/* "system 1.2M, node1 3.0M", or "-". */
static int format_residency(json_object *list, const char *method, char *buf, size_t l)
{
	size_t n = 0;

	buf[0] = '\0';
	if (!json_object_is_type(list, json_type_array))
		return reply_malformed(method, "residency");
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *e = json_object_array_get_idx(list, i);
		const char *dev;
		uint64_t bytes;
		char b[32];

		if (!json_object_is_type(e, json_type_object) ||
		    get_string(e, method, "device", &dev) < 0 || get_uint(e, method, "bytes", &bytes) < 0)
			return -EBADMSG;
		if (n < l)
			n += snprintf(buf + n, l - n, "%s%s %s", n > 0 ? ", " : "", dev,
				      format_bytes(b, sizeof(b), bytes));
	}
	if (n == 0)
		snprintf(buf, l, "-");
	return 0;
}

static int verb_residency(int argc, char **argv)
{
	static const char *method = "io.coherentd.GetResidency";
	json_object *p, *reply = NULL, *list, *maps;
	uint64_t total;
	int r, ret = COHCTL_EXIT_FAILURE;

	if (!(arg_given & OPT_PID)) {
		log_error("residency needs --pid=PID.");
		return COHCTL_EXIT_USAGE;
	}
	p = json_object_new_object();
	if (!p) {
		log_oom();
		return COHCTL_EXIT_FAILURE;
	}
	json_object_object_add(p, "pid", json_object_new_int((int) arg_pid));
	if (arg_verbose)
		json_object_object_add(p, "verbose", json_object_new_boolean(true));
	r = call(method, p, &reply);
	json_object_put(p);
	if (r != COHCTL_EXIT_SUCCESS)
		return r;

	if (arg_json != JSON_OFF) {
		ret = print_json(reply);
		goto finish;
	}

	if (!json_object_object_get_ex(reply, "residency", &list) ||
	    !json_object_is_type(list, json_type_array)) {
		reply_malformed(method, "residency");
		goto finish;
	}
	if (get_uint(reply, method, "total_bytes", &total) < 0)
		goto finish;

	if (arg_legend)
		printf("%-16s %-8s %10s %7s\n", "DEVICE", "KIND", "BYTES", "SHARE");
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *e = json_object_array_get_idx(list, i);
		const char *dev, *kind;
		uint64_t bytes;
		char b[32];

		if (!json_object_is_type(e, json_type_object)) {
			reply_malformed(method, "residency");
			goto finish;
		}
		if (get_string(e, method, "device", &dev) < 0 ||
		    get_string(e, method, "kind", &kind) < 0 ||
		    get_uint(e, method, "bytes", &bytes) < 0)
			goto finish;
		printf("%-16s %-8s %10s %6.1f%%\n", dev, kind, format_bytes(b, sizeof(b), bytes),
		       total > 0 ? 100.0 * (double) bytes / (double) total : 0.0);
	}
	if (arg_legend) {
		char b[32];

		printf("\nPID %d: %s present.\n", (int) arg_pid, format_bytes(b, sizeof(b), total));
	}

	if (arg_verbose && json_object_object_get_ex(reply, "mappings", &maps) && maps) {
		if (!json_object_is_type(maps, json_type_array)) {
			reply_malformed(method, "mappings");
			goto finish;
		}
		printf("\n");
		if (arg_legend)
			printf("%-33s %-4s %-7s %-40s %s\n", "RANGE", "PERM", "KIND", "RESIDENCY",
			       "PATH");
		for (size_t i = 0; i < json_object_array_length(maps); i++) {
			json_object *mo = json_object_array_get_idx(maps, i), *res, *pv;
			uint64_t start, end;
			const char *perms, *kind, *path = "";
			char rbuf[256], range[40];

			if (!json_object_is_type(mo, json_type_object) ||
			    get_uint(mo, method, "start", &start) < 0 ||
			    get_uint(mo, method, "end", &end) < 0 ||
			    get_string(mo, method, "perms", &perms) < 0 ||
			    get_string(mo, method, "kind", &kind) < 0 ||
			    !json_object_object_get_ex(mo, "residency", &res) ||
			    format_residency(res, method, rbuf, sizeof(rbuf)) < 0) {
				reply_malformed(method, "mappings");
				goto finish;
			}
			if (json_object_object_get_ex(mo, "path", &pv) && pv &&
			    json_object_is_type(pv, json_type_string))
				path = json_object_get_string(pv);
			snprintf(range, sizeof(range), "%" PRIx64 "-%" PRIx64, start, end);
			printf("%-33s %-4s %-7s %-40s %s\n", range, perms, kind, rbuf, path);
		}
	}
	ret = COHCTL_EXIT_SUCCESS;
finish:
	json_object_put(reply);
	return ret;
}

/* ------------------------------------------------------------------ stats */

static int verb_stats(int argc, char **argv)
{
	static const char *method = "io.coherentd.GetStats";
	json_object *reply = NULL, *list;
	uint64_t uptime;
	int r, ret = COHCTL_EXIT_FAILURE;
	char b[32];

	r = call(method, NULL, &reply);
	if (r != COHCTL_EXIT_SUCCESS)
		return r;
	if (arg_json != JSON_OFF) {
		ret = print_json(reply);
		goto finish;
	}
	if (get_uint(reply, method, "uptime_usec", &uptime) < 0)
		goto finish;
	if (!json_object_object_get_ex(reply, "devices", &list) ||
	    !json_object_is_type(list, json_type_array)) {
		reply_malformed(method, "devices");
		goto finish;
	}

	if (arg_legend)
		printf("%-16s %10s %10s %10s %8s %12s %9s %9s %9s\n", "NAME", "IN", "OUT",
		       "MIGRATIONS", "FAILURES", "FAILED-PAGES", "PROMOTED", "DEMOTED", "EVICTED");
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		json_object *e = json_object_array_get_idx(list, i);
		const char *name;
		uint64_t in, out, migrations, failures, failed_pages, promoted, demoted, evicted;
		char b1[32], b2[32], b3[32], b4[32], b5[32];

		if (!json_object_is_type(e, json_type_object)) {
			reply_malformed(method, "devices");
			goto finish;
		}
		if (get_string(e, method, "name", &name) < 0 ||
		    get_uint(e, method, "bytes_in", &in) < 0 ||
		    get_uint(e, method, "bytes_out", &out) < 0 ||
		    get_uint(e, method, "migrations", &migrations) < 0 ||
		    get_uint(e, method, "failures", &failures) < 0 ||
		    get_uint(e, method, "failed_pages", &failed_pages) < 0 ||
		    get_uint(e, method, "promoted_bytes", &promoted) < 0 ||
		    get_uint(e, method, "demoted_bytes", &demoted) < 0 ||
		    get_uint(e, method, "evicted_bytes", &evicted) < 0)
			goto finish;
		printf("%-16s %10s %10s %10" PRIu64 " %8" PRIu64 " %12" PRIu64 " %9s %9s %9s\n",
		       name, format_bytes(b1, sizeof(b1), in), format_bytes(b2, sizeof(b2), out),
		       migrations, failures, failed_pages,
		       format_bytes(b3, sizeof(b3), promoted), format_bytes(b4, sizeof(b4), demoted),
		       format_bytes(b5, sizeof(b5), evicted));
	}
	if (arg_legend)
		printf("\nSince coherentd started, %s ago.\n", format_uptime(b, sizeof(b), uptime));
	ret = COHCTL_EXIT_SUCCESS;
finish:
	json_object_put(reply);
	return ret;
}

/* ------------------------------------------------------------------ policy */

/* {"pid": N} / {"cgroup": PATH} / {"job": ID} from exactly one of --pid, --cgroup and --job. */
static int target_ref(const char *what, json_object **ret)
{
	unsigned given = arg_given & (OPT_PID | OPT_CGROUP | OPT_JOB);
	json_object *t;

	if (given == 0 || (given & (given - 1))) {
		log_error("%s needs exactly one of --pid=PID, --cgroup=PATH and --job=ID.", what);
		return COHCTL_EXIT_USAGE;
	}
	t = json_object_new_object();
	if (!t) {
		log_oom();
		return COHCTL_EXIT_FAILURE;
	}
	if (given & OPT_PID)
		json_object_object_add(t, "pid", json_object_new_int((int) arg_pid));
	else if (given & OPT_CGROUP)
		json_object_object_add(t, "cgroup", json_object_new_string(arg_cgroup));
	else
		json_object_object_add(t, "job", json_object_new_int64((int64_t) arg_job));
	*ret = t;
	return COHCTL_EXIT_SUCCESS;
}

/*
 * POLICY with --quota and --priority applied, checked with the daemon's own
 * parser: the canonical string in buf, or exit code 2 with a message.
 */
static int policy_string(const char *policy, char *buf, size_t l)
{
	const char *why = NULL;
	PolicySpec spec;
	int r;

	r = policy_spec_parse(policy, &spec, &why);
	if (r < 0) {
		log_error("Invalid policy '%s': %s.", policy,
			  why ?: "expected system, bind:DEVICE or hot:DEVICE, optionally with "
				 ",quota=SIZE and ,priority=N");
		return COHCTL_EXIT_USAGE;
	}
	if ((arg_given & (OPT_QUOTA | OPT_PRIORITY)) && spec.kind == POLICY_KIND_SYSTEM) {
		log_error("--quota and --priority do not apply to the system policy.");
		return COHCTL_EXIT_USAGE;
	}
	if (arg_given & OPT_QUOTA)
		spec.quota = arg_quota;
	if (arg_given & OPT_PRIORITY)
		spec.priority = arg_priority;
	policy_spec_format(&spec, buf, l);
	return COHCTL_EXIT_SUCCESS;
}

static int policy_set(const char *policy)
{
	static const char *method = "io.coherentd.SetPolicy";
	json_object *p = NULL, *t = NULL, *reply = NULL;
	const char *target, *canonical;
	char buf[128];
	int64_t id;
	int r;

	r = policy_string(policy, buf, sizeof(buf));
	if (r != COHCTL_EXIT_SUCCESS)
		return r;
	r = target_ref("policy set", &t);
	if (r != COHCTL_EXIT_SUCCESS)
		return r;
	p = json_object_new_object();
	if (!p) {
		json_object_put(t);
		log_oom();
		return COHCTL_EXIT_FAILURE;
	}
	json_object_object_add(p, "target", t);
	json_object_object_add(p, "policy", json_object_new_string(buf));
	r = call(method, p, &reply);
	json_object_put(p);
	if (r != COHCTL_EXIT_SUCCESS)
		return r;

	if (arg_json != JSON_OFF)
		r = print_json(reply);
	else if (get_int(reply, method, "id", &id) < 0 ||
		 get_string(reply, method, "target", &target) < 0 ||
		 get_string(reply, method, "policy", &canonical) < 0)
		r = COHCTL_EXIT_FAILURE;
	else
		printf("Policy %s set for %s (id %" PRIi64 ").\n", canonical, target, id);
	json_object_put(reply);
	return r;
}

static int policy_clear(void)
{
	static const char *method = "io.coherentd.ClearPolicy";
	json_object *p, *t = NULL, *reply = NULL;
	int r;

	r = target_ref("policy clear", &t);
	if (r != COHCTL_EXIT_SUCCESS)
		return r;
	p = json_object_new_object();
	if (!p) {
		json_object_put(t);
		log_oom();
		return COHCTL_EXIT_FAILURE;
	}
	json_object_object_add(p, "target", t);
	r = call(method, p, &reply);
	json_object_put(p);
	if (r != COHCTL_EXIT_SUCCESS)
		return r;
	if (arg_json != JSON_OFF)
		r = print_json(reply);
	else if (arg_given & OPT_PID)
		printf("Policy of pid:%d cleared.\n", (int) arg_pid);
	else if (arg_given & OPT_CGROUP)
		printf("Policy of cgroup:%s cleared.\n", arg_cgroup);
	else
		printf("Policy of job:%" PRIu64 " cleared.\n", arg_job);
	json_object_put(reply);
	return r;
}

enum {
	PCOL_TARGET, PCOL_POLICY, PCOL_OWNER, PCOL_PIDS, PCOL_TRACKER, PCOL_DEVICE, PCOL_HOT,
	PCOL_TRACKED, PCOL_PROMOTED, PCOL_DEMOTED, PCOL_EVICTED, PCOL_TICKS,
	_PCOL_MAX,
};

static const Column policy_columns[_PCOL_MAX] = {
	[PCOL_TARGET] = { "TARGET", false },
	[PCOL_POLICY] = { "POLICY", false },
	[PCOL_OWNER] = { "OWNER", true },
	[PCOL_PIDS] = { "PIDS", true },
	[PCOL_TRACKER] = { "TRACKER", false },
	[PCOL_DEVICE] = { "DEVICE", true },
	[PCOL_HOT] = { "HOT", true },
	[PCOL_TRACKED] = { "TRACKED", true },
	[PCOL_PROMOTED] = { "PROMOTED", true },
	[PCOL_DEMOTED] = { "DEMOTED", true },
	[PCOL_EVICTED] = { "EVICTED", true },
	[PCOL_TICKS] = { "TICKS", true },
};

static int policy_list(void)
{
	static const char *method = "io.coherentd.ListPolicies";
	static const struct {
		int col;
		const char *field;
	} sizes[] = {
		{ PCOL_DEVICE, "device_bytes" },
		{ PCOL_HOT, "hot_bytes" },
		{ PCOL_TRACKED, "tracked_bytes" },
		{ PCOL_PROMOTED, "promoted_bytes" },
		{ PCOL_DEMOTED, "demoted_bytes" },
		{ PCOL_EVICTED, "evicted_bytes" },
	};
	json_object *reply = NULL, *list;
	char (*cells)[_PCOL_MAX][CELL_MAX] = NULL;
	size_t n;
	int r, ret = COHCTL_EXIT_FAILURE;

	r = call_list(method, "policies", &reply, &list);
	if (r != COHCTL_EXIT_SUCCESS || !list) {
		ret = r;
		goto finish;
	}
	n = json_object_array_length(list);
	cells = calloc(n + 1, sizeof(*cells));
	if (!cells) {
		log_oom();
		goto finish;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(list, i);
		char (*row)[CELL_MAX] = cells[i + 1];
		const char *target, *policy, *tracker;
		uint64_t owner, n_pids, ticks, v;

		if (!json_object_is_type(e, json_type_object)) {
			reply_malformed(method, "policies");
			goto finish;
		}
		if (get_string(e, method, "target", &target) < 0 ||
		    get_string(e, method, "policy", &policy) < 0 ||
		    get_string(e, method, "tracker", &tracker) < 0 ||
		    get_uint(e, method, "owner", &owner) < 0 ||
		    get_uint(e, method, "n_pids", &n_pids) < 0 ||
		    get_uint(e, method, "ticks", &ticks) < 0)
			goto finish;
		snprintf(row[PCOL_TARGET], CELL_MAX, "%s", target);
		snprintf(row[PCOL_POLICY], CELL_MAX, "%s", policy);
		snprintf(row[PCOL_OWNER], CELL_MAX, "%" PRIu64, owner);
		snprintf(row[PCOL_PIDS], CELL_MAX, "%" PRIu64, n_pids);
		snprintf(row[PCOL_TRACKER], CELL_MAX, "%s", tracker);
		snprintf(row[PCOL_TICKS], CELL_MAX, "%" PRIu64, ticks);
		for (size_t k = 0; k < ELEMENTSOF(sizes); k++) {
			if (get_uint(e, method, sizes[k].field, &v) < 0)
				goto finish;
			format_bytes(row[sizes[k].col], CELL_MAX, v);
		}
	}
	print_table(policy_columns, _PCOL_MAX, cells[0], n + 1);
	if (arg_legend) {
		if (n == 0)
			printf("\nNo policies set.\n");
		else
			printf("\n%zu polic%s listed.\n", n, n == 1 ? "y" : "ies");
	}
	ret = COHCTL_EXIT_SUCCESS;
finish:
	free(cells);
	json_object_put(reply);
	return ret;
}

static int verb_policy(int argc, char **argv)
{
	const char *sub = argv[1];

	if (streq(sub, "set")) {
		if (argc != 3) {
			log_error("policy set needs a POLICY, e.g. hot:gpu0 or bind:node1,quota=2G.");
			return COHCTL_EXIT_USAGE;
		}
		return policy_set(argv[2]);
	}
	if (!streq(sub, "clear") && !streq(sub, "list")) {
		log_error("Unknown policy command '%s': expected set, clear or list.", sub);
		return COHCTL_EXIT_USAGE;
	}
	if (argc != 2) {
		log_error("Wrong number of arguments for 'policy %s'.", sub);
		return COHCTL_EXIT_USAGE;
	}
	if (arg_given & (OPT_QUOTA | OPT_PRIORITY)) {
		log_error("--quota and --priority belong to 'policy set'.");
		return COHCTL_EXIT_USAGE;
	}
	if (streq(sub, "clear"))
		return policy_clear();
	if (arg_given & (OPT_PID | OPT_CGROUP | OPT_JOB)) {
		log_error("'policy list' takes no --pid, --cgroup or --job: it lists every policy.");
		return COHCTL_EXIT_USAGE;
	}
	return policy_list();
}

/* ------------------------------------------------------------------ record */

static RecordedTick *rec_ticks = NULL;
static size_t rec_n_ticks = 0;
static bool rec_failed = false;

static void recorded_ticks_free(void)
{
	for (size_t i = 0; i < rec_n_ticks; i++)
		free(rec_ticks[i].regions);
	free(rec_ticks);
	rec_ticks = NULL;
	rec_n_ticks = 0;
}

/*
 * One reply of io.coherentd.Record (a ProgressFn): a tick's regions, kept for
 * the trace; a reply with the same tick as the one before continues that tick.
 */
static void record_collect(json_object *reply)
{
	static const char *method = "io.coherentd.Record";
	json_object *list;
	RecordedRegion *g;
	RecordedTick *k;
	uint64_t tick;
	size_t n;

	if (rec_failed)
		return;
	if (get_uint(reply, method, "tick", &tick) < 0)
		goto malformed;
	if (!json_object_object_get_ex(reply, "regions", &list) ||
	    !json_object_is_type(list, json_type_array)) {
		reply_malformed(method, "regions");
		goto malformed;
	}
	n = json_object_array_length(list);

	if (rec_n_ticks == 0 || rec_ticks[rec_n_ticks - 1].tick != tick) {
		RecordedTick *x = realloc(rec_ticks, (rec_n_ticks + 1) * sizeof(RecordedTick));

		if (!x)
			goto oom;
		rec_ticks = x;
		rec_ticks[rec_n_ticks++] = (RecordedTick) { .tick = tick };
	}
	k = &rec_ticks[rec_n_ticks - 1];
	g = realloc(k->regions, (k->n_regions + n ?: 1) * sizeof(RecordedRegion));
	if (!g)
		goto oom;
	k->regions = g;
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(list, i);
		RecordedRegion *x = &k->regions[k->n_regions];

		if (!json_object_is_type(e, json_type_object) ||
		    get_uint(e, method, "start", &x->start) < 0 ||
		    get_uint(e, method, "length", &x->length) < 0 ||
		    get_uint(e, method, "heat", &x->heat) < 0)
			goto malformed;
		k->n_regions++;
	}
	return;
oom:
	log_oom();
malformed:
	rec_failed = true;
}

static int record_write(const Trace *t, const char *path)
{
	_cleanup_fclose_ FILE *f = NULL;
	int r;

	if (streq(path, "-"))
		return trace_write(t, stdout);
	f = fopen(path, "we");
	if (!f)
		return log_error_errno(errno, "Failed to open %s: %m", path);
	r = trace_write(t, f);
	if (r >= 0 && fflush(f) != 0)
		r = -errno;
	if (r < 0) {
		log_error_errno(r, "Failed to write %s: %m", path);
		(void) unlink(path);
	}
	return r;
}

static int verb_record(int argc, char **argv)
{
	static const char *method = "io.coherentd.Record";
	json_object *p = NULL, *reply = NULL, *v;
	long ps = sysconf(_SC_PAGESIZE);
	bool exited = false, to_stdout;
	Trace *t = NULL;
	uint64_t timeout;
	int r, ret = COHCTL_EXIT_FAILURE;

	if ((arg_given & (OPT_PID | OPT_DURATION | OPT_OUTPUT)) != (OPT_PID | OPT_DURATION | OPT_OUTPUT)) {
		log_error("record needs --pid=PID, --duration=DURATION and -o FILE.");
		return COHCTL_EXIT_USAGE;
	}
	to_stdout = streq(arg_output, "-");
	if (to_stdout && arg_json != JSON_OFF) {
		log_error("record -o - writes the trace to standard output: no room for --json there.");
		return COHCTL_EXIT_USAGE;
	}
	p = json_object_new_object();
	if (!p) {
		log_oom();
		return COHCTL_EXIT_FAILURE;
	}
	json_object_object_add(p, "pid", json_object_new_int((int) arg_pid));
	json_object_object_add(p, "duration_usec", json_object_new_int64((int64_t) arg_duration_usec));

	/* A reply per tick and the last one after the duration: wait that long, and some. */
	timeout = arg_timeout_set ? arg_timeout_usec : arg_duration_usec + COHCTL_DEFAULT_TIMEOUT_USEC;
	r = call_full(method, p, timeout, record_collect, &reply);
	json_object_put(p);
	if (r != COHCTL_EXIT_SUCCESS) {
		ret = r;
		goto finish;
	}
	if (rec_failed)
		goto finish;
	if (json_object_object_get_ex(reply, "target_exited", &v) && v) {
		if (!json_object_is_type(v, json_type_boolean)) {
			reply_malformed(method, "target_exited");
			goto finish;
		}
		exited = json_object_get_boolean(v);
	}

	r = record_build_trace(rec_ticks, rec_n_ticks, ps > 0 ? (uint64_t) ps : 4096, &t);
	if (r == -ENODATA) {
		log_error("No regions of PID %d were recorded in %" PRIu64 " tick%s%s: record for "
			  "longer than the daemon's tick (TickSec=).", (int) arg_pid, (uint64_t) rec_n_ticks,
			  rec_n_ticks == 1 ? "" : "s", exited ? " (the process exited)" : "");
		goto finish;
	}
	if (r == -EINVAL) {
		log_error("Malformed reply to %s from coherentd: overlapping or invalid regions, or "
			  "ticks out of order.", method);
		goto finish;
	}
	if (r < 0) {
		log_error_errno(r, "Failed to build the trace: %m");
		goto finish;
	}
	if (record_write(t, arg_output) < 0)
		goto finish;
	if (trace_total_accesses(t) == 0)
		log_warning("Warning: every region had heat 0: the process did not touch its memory, "
			    "or coherentd has no access tracker (Tracker=none, see coherentd.conf(5)).");

	if (arg_json != JSON_OFF) {
		json_object *o = json_object_new_object();

		if (!o) {
			log_oom();
			goto finish;
		}
		json_object_object_add(o, "pid", json_object_new_int((int) arg_pid));
		json_object_object_add(o, "ticks", json_object_new_int64((int64_t) rec_n_ticks));
		json_object_object_add(o, "regions", json_object_new_int64((int64_t) t->n_regions));
		json_object_object_add(o, "accesses",
				       json_object_new_int64((int64_t) trace_total_accesses(t)));
		json_object_object_add(o, "target_exited", json_object_new_boolean(exited));
		json_object_object_add(o, "output", json_object_new_string(arg_output));
		ret = print_json(o);
		json_object_put(o);
	} else {
		fprintf(to_stdout ? stderr : stdout,
			"Recorded %zu tick%s of PID %d: %zu regions, %" PRIu64 " estimated page "
			"accesses%s%s%s.\n", rec_n_ticks, rec_n_ticks == 1 ? "" : "s", (int) arg_pid,
			t->n_regions, trace_total_accesses(t),
			exited ? "; the process exited" : "", to_stdout ? "" : ", written to ",
			to_stdout ? "" : arg_output);
		ret = COHCTL_EXIT_SUCCESS;
	}
finish:
	trace_free(t);
	recorded_ticks_free();
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
	       "  migrate --pid=PID (--range=START-END | --all) --to=DEVICE|system [--dry-run]\n"
	       "                         Move a process's memory to a device or to system RAM\n"
	       "  residency --pid=PID [--verbose]\n"
	       "                         Show where a process's memory is\n"
	       "  stats                  Per-device migration counters since start\n"
	       "  policy set (--pid=PID | --cgroup=PATH | --job=ID) POLICY [--quota=SIZE]\n"
	       "             [--priority=N]\n"
	       "                         Place a process's, cgroup's or Slurm job's memory by\n"
	       "                         POLICY: system, bind:DEVICE or hot:DEVICE\n"
	       "  policy clear (--pid=PID | --cgroup=PATH | --job=ID)\n"
	       "                         Drop a target's policy\n"
	       "  policy list            Show the policies and what the daemon did with them\n"
	       "  record --pid=PID --duration=DURATION -o FILE\n"
	       "                         Record what the access tracker sees of a process as a\n"
	       "                         trace for simulate (- for standard output)\n"
	       "  simulate --trace=FILE [--config=FILE] [--device-size=SIZE] [--json]\n"
	       "                         Replay an access trace through the policy engine, an\n"
	       "                         oracle and two baselines (no daemon needed)\n"
	       "  trace-generate --kind=hotset|zipf|scan [...] -o FILE\n"
	       "                         Write a synthetic access trace\n"
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
	       "                         for migrate infinity, for record the duration and\n"
	       "                         25s more between ticks; \"infinity\" to wait forever)\n"
	       "\n"
	       "Options of migrate and residency:\n"
	       "  -p --pid=PID           The process\n"
	       "     --range=START-END   Addresses [START, END), page aligned, hex (0x...) or decimal\n"
	       "     --all               Every mapping of the process\n"
	       "  -t --to=DEVICE         A device from 'cohctl devices', or \"system\" for system RAM\n"
	       "     --dry-run           Report what would move, move nothing\n"
	       "  -v --verbose           residency: also per mapping\n"
	       "\n"
	       "Options of policy and record:\n"
	       "     --cgroup=PATH       A cgroup v2 directory, below the cgroup2 mount\n"
	       "     --job=ID            A Slurm job\n"
	       "     --quota=SIZE        policy set: at most SIZE bytes on the device\n"
	       "     --priority=N        policy set: -1000..1000, higher first (default 0)\n"
	       "     --duration=DURATION record: how long, e.g. 30s, 5min (at most 1d)\n"
	       "  -o --output=FILE       record: where to write the trace\n"
	       "\n"
	       "Exit status: 0 success, 1 failure or error reply, 2 usage error or invalid\n"
	       "parameter, 3 no such process (or not migratable, nothing mapped, no such target\n"
	       "or cgroup), 4 permission\n"
	       "denied, 5 no such device, 69 coherentd not running or not answering. See cohctl(8).\n",
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
	unsigned options;             /* the verb-specific options it takes (OPT_*) */
	int (*fn)(int argc, char **argv);
} Verb;

static const Verb verbs[] = {
	{ "status",    1, 1, true,  0, verb_status },
	{ "devices",   1, 1, false, 0, verb_devices },
	{ "migrate",   1, 1, false, OPT_PID | OPT_RANGE | OPT_ALL | OPT_TO | OPT_DRY_RUN, verb_migrate },
	{ "residency", 1, 1, false, OPT_PID | OPT_VERBOSE, verb_residency },
	{ "stats",     1, 1, false, 0, verb_stats },
	{ "policy",    2, 3, false, OPT_PID | OPT_CGROUP | OPT_JOB | OPT_QUOTA | OPT_PRIORITY, verb_policy },
	{ "record",    1, 1, false, OPT_PID | OPT_DURATION | OPT_OUTPUT, verb_record },
	{ "help",      1, 1, false, 0, verb_help },
	/* Offline, options after the verb: main() hands them over before parse_argv(). */
	{ "simulate",       1, 1, false, 0, verb_simulate },
	{ "trace-generate", 1, 1, false, 0, verb_trace_generate },
	{}
};

static const char *option_name(unsigned opt)
{
	switch (opt) {
	case OPT_PID:     return "--pid";
	case OPT_RANGE:   return "--range";
	case OPT_ALL:     return "--all";
	case OPT_TO:      return "--to";
	case OPT_DRY_RUN: return "--dry-run";
	case OPT_VERBOSE: return "--verbose";
	case OPT_CGROUP:  return "--cgroup";
	case OPT_JOB:     return "--job";
	case OPT_QUOTA:   return "--quota";
	case OPT_PRIORITY: return "--priority";
	case OPT_DURATION: return "--duration";
	case OPT_OUTPUT:  return "--output";
	default:          return "?";
	}
}

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
	for (unsigned o = 1; o <= _OPT_LAST; o <<= 1)
		if ((arg_given & o) && !(v->options & o)) {
			log_error("Option %s is not valid for '%s'.", option_name(o), v->name);
			return COHCTL_EXIT_USAGE;
		}
	return v->fn(argc, argv);
}

/* "0x7f0000-0x7f8000" or "4096-8192": hex with 0x, decimal otherwise. */
static int parse_address(const char *s, size_t n, uint64_t *ret)
{
	char buf[32];
	char *end;

	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X')) {
		if (!buf[2] || strspn(buf + 2, "0123456789abcdefABCDEF") != strlen(buf + 2))
			return -EINVAL;
		errno = 0;
		*ret = strtoull(buf + 2, &end, 16);
		return errno == ERANGE ? -ERANGE : 0;
	}
	return safe_atou64(buf, ret);
}

static int parse_range(const char *s, uint64_t *ret_start, uint64_t *ret_end)
{
	const char *dash = strchr(s, '-');
	long ps = sysconf(_SC_PAGESIZE);
	uint64_t start, end;

	if (!dash || parse_address(s, dash - s, &start) < 0 ||
	    parse_address(dash + 1, strlen(dash + 1), &end) < 0) {
		log_error("Invalid --range '%s': expected START-END, hex (0x...) or decimal.", s);
		return -EINVAL;
	}
	if (end <= start) {
		log_error("Invalid --range '%s': END must be above START.", s);
		return -EINVAL;
	}
	if (ps > 0 && ((start | end) & (uint64_t) (ps - 1))) {
		log_error("Invalid --range '%s': START and END must be multiples of the page size "
			  "(%ld).", s, ps);
		return -EINVAL;
	}
	*ret_start = start;
	*ret_end = end;
	return 0;
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
		ARG_RANGE,
		ARG_ALL,
		ARG_DRY_RUN,
		ARG_CGROUP,
		ARG_JOB,
		ARG_QUOTA,
		ARG_PRIORITY,
		ARG_DURATION,
	};
	static const struct option options[] = {
		{ "help",      no_argument,       NULL, 'h' },
		{ "version",   no_argument,       NULL, ARG_VERSION },
		{ "json",      optional_argument, NULL, ARG_JSON },
		{ "no-legend", no_argument,       NULL, ARG_NO_LEGEND },
		{ "socket",    required_argument, NULL, ARG_SOCKET },
		{ "timeout",   required_argument, NULL, ARG_TIMEOUT },
		{ "pid",       required_argument, NULL, 'p' },
		{ "range",     required_argument, NULL, ARG_RANGE },
		{ "all",       no_argument,       NULL, ARG_ALL },
		{ "to",        required_argument, NULL, 't' },
		{ "dry-run",   no_argument,       NULL, ARG_DRY_RUN },
		{ "verbose",   no_argument,       NULL, 'v' },
		{ "cgroup",    required_argument, NULL, ARG_CGROUP },
		{ "job",       required_argument, NULL, ARG_JOB },
		{ "quota",     required_argument, NULL, ARG_QUOTA },
		{ "priority",  required_argument, NULL, ARG_PRIORITY },
		{ "duration",  required_argument, NULL, ARG_DURATION },
		{ "output",    required_argument, NULL, 'o' },
		{}
	};
	const char *e;
	int c, r;

	e = getenv("COHCTL_SOCKET");
	if (!isempty(e))
		arg_socket = e;

	/*
	 * No "+": getopt permutes, so options may come before or after the verb
	 * (cohctl devices --json), as with systemctl. Verb-specific options are
	 * checked against the verb in dispatch_verb().
	 */
	while ((c = getopt_long(argc, argv, "hjp:t:vo:", options, NULL)) >= 0)
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
			arg_timeout_set = true;
			break;
		case 'p': {
			int pid;

			r = safe_atoi(optarg, &pid);
			if (r < 0 || pid <= 0) {
				log_error("Invalid --pid '%s': expected a process id above 0.", optarg);
				return COHCTL_EXIT_USAGE;
			}
			arg_pid = pid;
			arg_given |= OPT_PID;
			break;
		}
		case ARG_RANGE:
			r = parse_range(optarg, &arg_start, &arg_end);
			if (r < 0)
				return COHCTL_EXIT_USAGE;
			arg_have_range = true;
			arg_given |= OPT_RANGE;
			break;
		case ARG_ALL:
			arg_all = true;
			arg_given |= OPT_ALL;
			break;
		case 't':
			if (isempty(optarg)) {
				log_error("--to needs a device name or \"system\".");
				return COHCTL_EXIT_USAGE;
			}
			arg_to = optarg;
			arg_given |= OPT_TO;
			break;
		case ARG_DRY_RUN:
			arg_dry_run = true;
			arg_given |= OPT_DRY_RUN;
			break;
		case 'v':
			arg_verbose = true;
			arg_given |= OPT_VERBOSE;
			break;
		case ARG_CGROUP:
			if (isempty(optarg)) {
				log_error("--cgroup needs a cgroup path such as /system.slice/foo.service.");
				return COHCTL_EXIT_USAGE;
			}
			arg_cgroup = optarg;
			arg_given |= OPT_CGROUP;
			break;
		case ARG_JOB:
			r = safe_atou64(optarg, &arg_job);
			if (r < 0 || arg_job == 0 || arg_job > INT64_MAX - 1) {
				log_error("Invalid --job '%s': expected a Slurm job id above 0.", optarg);
				return COHCTL_EXIT_USAGE;
			}
			arg_given |= OPT_JOB;
			break;
		case ARG_QUOTA:
			r = parse_size(optarg, &arg_quota);
			if (r < 0 || arg_quota == 0) {
				log_error("Invalid --quota '%s': expected a size such as 2G or 512M.", optarg);
				return COHCTL_EXIT_USAGE;
			}
			arg_given |= OPT_QUOTA;
			break;
		case ARG_PRIORITY:
			r = safe_atoi(optarg, &arg_priority);
			if (r < 0 || arg_priority < TARGET_PRIORITY_MIN || arg_priority > TARGET_PRIORITY_MAX) {
				log_error("Invalid --priority '%s': expected an integer from %d to %d.", optarg,
					  TARGET_PRIORITY_MIN, TARGET_PRIORITY_MAX);
				return COHCTL_EXIT_USAGE;
			}
			arg_given |= OPT_PRIORITY;
			break;
		case ARG_DURATION:
			r = parse_duration(optarg, &arg_duration_usec);
			if (r < 0 || arg_duration_usec == 0 || arg_duration_usec > COHCTL_RECORD_MAX_USEC) {
				log_error("Invalid --duration '%s': expected a duration from 1us to 1d, "
					  "such as 30s or 5min.", optarg);
				return COHCTL_EXIT_USAGE;
			}
			arg_given |= OPT_DURATION;
			break;
		case 'o':
			if (isempty(optarg)) {
				log_error("--output needs a file name, or - for standard output.");
				return COHCTL_EXIT_USAGE;
			}
			arg_output = optarg;
			arg_given |= OPT_OUTPUT;
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

	/* The offline verbs parse their own options and need no daemon. */
	if (argc > 1 && streq(argv[1], "simulate"))
		return verb_simulate(argc - 1, argv + 1);
	if (argc > 1 && streq(argv[1], "trace-generate"))
		return verb_trace_generate(argc - 1, argv + 1);

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
