/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>

#include "conf.h"
#include "log.h"
#include "tracker.h"
#include "util.h"

/* Config files are small; anything larger is a mistake, not a config. */
#define CONF_FILE_SIZE_MAX (1024U * 1024U)

static const char *const device_kind_table[_DEVICE_KIND_MAX] = {
	[DEVICE_KIND_NUMA] = "numa",
	[DEVICE_KIND_COHMEM] = "cohmem",
};

const char *device_kind_to_string(DeviceKind k)
{
	if ((int) k < 0 || k >= _DEVICE_KIND_MAX)
		return NULL;
	return device_kind_table[k];
}

int device_kind_from_string(const char *s)
{
	for (int i = 0; i < _DEVICE_KIND_MAX; i++)
		if (streq(s, device_kind_table[i]))
			return i;
	return -EINVAL;
}

uint64_t watermark_bytes(const Watermark *w, uint64_t total_bytes)
{
	if (!w->set)
		return 0;
	if (!w->percent)
		return w->value;
	return (uint64_t) ((unsigned __int128) total_bytes * w->value / 10000);
}

char *watermark_format(const Watermark *w, char *buf, size_t l)
{
	if (!w->set)
		snprintf(buf, l, "%s", "");
	else if (!w->percent)
		format_size(buf, l, w->value);
	else if (w->value % 100 == 0)
		snprintf(buf, l, "%" PRIu64 "%%", w->value / 100);
	else if (w->value % 10 == 0)
		snprintf(buf, l, "%" PRIu64 ".%" PRIu64 "%%", w->value / 100, (w->value % 100) / 10);
	else
		snprintf(buf, l, "%" PRIu64 ".%02" PRIu64 "%%", w->value / 100, w->value % 100);
	return buf;
}

Conf *conf_new(void)
{
	Conf *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->tick_usec = CONF_TICK_USEC_DEFAULT;
	c->log_level = -1;
	policy_settings_init(&c->policy);
	c->tracker = -1;
	c->max_regions = CONF_MAX_REGIONS_DEFAULT;
	return c;
}

Conf *conf_free(Conf *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < c->n_devices; i++) {
		free(c->devices[i].name);
		free(c->devices[i].file);
	}
	free(c->devices);
	strv_free(c->files);
	free(c);
	return NULL;
}

const ConfDevice *conf_find_device(const Conf *c, const char *name)
{
	for (size_t i = 0; i < c->n_devices; i++)
		if (streq(c->devices[i].name, name))
			return &c->devices[i];
	return NULL;
}

const ConfDevice *conf_find_device_by_node(const Conf *c, int node)
{
	for (size_t i = 0; i < c->n_devices; i++)
		if (c->devices[i].node == node)
			return &c->devices[i];
	return NULL;
}

void conf_errors_free(ConfError *errors, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(errors[i].file);
		free(errors[i].message);
	}
	free(errors);
}

static int conf_error_add(ConfError **errors, size_t *n_errors, const char *file, unsigned line,
			  const char *format, ...) _printf_(5, 6);
static int conf_error_add(ConfError **errors, size_t *n_errors, const char *file, unsigned line,
			  const char *format, ...)
{
	ConfError *n;
	char *msg;
	va_list ap;
	int k;

	va_start(ap, format);
	k = vasprintf(&msg, format, ap);
	va_end(ap);
	if (k < 0)
		return -ENOMEM;

	n = realloc(*errors, (*n_errors + 1) * sizeof(ConfError));
	if (!n) {
		free(msg);
		return -ENOMEM;
	}
	*errors = n;
	n[*n_errors] = (ConfError) {
		.file = strdup(file),
		.line = line,
		.message = msg,
	};
	if (!n[*n_errors].file) {
		free(msg);
		return -ENOMEM;
	}
	(*n_errors)++;
	return 0;
}

/* ---- parsing one file ---- */

typedef enum SectionType {
	SECTION_NONE,     /* before the first [section] */
	SECTION_DAEMON,
	SECTION_DEVICE,
	SECTION_POLICY,
	SECTION_INVALID,  /* already reported; its keys are ignored */
} SectionType;

typedef struct ParseContext {
	Conf *conf;
	const char *file;
	const char *text;
	size_t pos;
	unsigned line;
	SectionType section;
	size_t device;    /* index into conf->devices for SECTION_DEVICE */
	ConfError **errors;
	size_t *n_errors;
	int error;        /* first hard failure (-ENOMEM) */
} ParseContext;

#define ctx_error(ctx, ...)                                                             \
	do {                                                                            \
		int _r_ = conf_error_add((ctx)->errors, (ctx)->n_errors, (ctx)->file,   \
					 (ctx)->line, __VA_ARGS__);                     \
		if (_r_ < 0 && (ctx)->error == 0)                                       \
			(ctx)->error = _r_;                                             \
	} while (0)

static bool device_name_is_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CONF_DEVICE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char) s[i]) && !strchr("_.-", s[i]))
			return false;
	return true;
}

static int conf_device_get(Conf *c, const char *name, const char *file, unsigned line,
			   size_t *ret_index)
{
	ConfDevice *n;

	for (size_t i = 0; i < c->n_devices; i++)
		if (streq(c->devices[i].name, name)) {
			*ret_index = i;
			return 0;
		}

	n = realloc(c->devices, (c->n_devices + 1) * sizeof(ConfDevice));
	if (!n)
		return -ENOMEM;
	c->devices = n;
	n[c->n_devices] = (ConfDevice) {
		.name = strdup(name),
		.file = strdup(file),
		.line = line,
		.kind = DEVICE_KIND_NUMA,
		.node = -1,
	};
	if (!n[c->n_devices].name || !n[c->n_devices].file) {
		free(n[c->n_devices].name);
		free(n[c->n_devices].file);
		return -ENOMEM;
	}
	*ret_index = c->n_devices++;
	return 0;
}

/* A line starting with '[': switch section, or report why not. */
static void parse_section_header(ParseContext *ctx, const char *line)
{
	_cleanup_free_ char *name = NULL;
	const char *end, *dev;
	int r;

	end = strchr(line, ']');
	if (!end) {
		ctx_error(ctx, "syntax error: section header without ']'");
		ctx->section = SECTION_INVALID;
		return;
	}
	name = strndup(line + 1, (size_t) (end - line - 1));
	if (!name) {
		ctx->error = -ENOMEM;
		return;
	}

	if (streq(name, "Daemon")) {
		ctx->section = SECTION_DAEMON;
		return;
	}
	if (streq(name, "Policy")) {
		ctx->section = SECTION_POLICY;
		return;
	}

	dev = startswith(name, "Device ");
	if (dev) {
		if (!device_name_is_valid(dev)) {
			ctx_error(ctx, "invalid device name \"%s\": expected 1-%d characters "
				  "of A-Z a-z 0-9 _ . -", dev, CONF_DEVICE_NAME_MAX);
			ctx->section = SECTION_INVALID;
			return;
		}
		r = conf_device_get(ctx->conf, dev, ctx->file, ctx->line, &ctx->device);
		if (r < 0) {
			ctx->error = r;
			return;
		}
		ctx->section = SECTION_DEVICE;
		return;
	}

	if (streq(name, "Device"))
		ctx_error(ctx, "section [Device] needs a name: [Device NAME]");
	else
		ctx_error(ctx, "unknown section [%s]", name);
	ctx->section = SECTION_INVALID;
}

/*
 * fgets()-style reader for inih: hands out one line at a time, counts lines,
 * and looks at section headers itself because inih does not report empty
 * sections to the handler.
 */
static char *conf_reader(char *str, int num, void *stream)
{
	ParseContext *ctx = stream;
	const char *start = ctx->text + ctx->pos, *nl;
	_cleanup_free_ char *copy = NULL;
	size_t len;
	char *s;

	if (*start == '\0' || ctx->error < 0)
		return NULL;

	nl = strchr(start, '\n');
	len = nl ? (size_t) (nl - start) + 1 : strlen(start);
	ctx->line++;
	ctx->pos += len;

	if (num <= 2 || len > (size_t) num - 2) {
		/* inih would split the line and parse its tail as a line of its own. */
		ctx_error(ctx, "line too long (more than %d characters)", num - 3);
		/* Hand inih a blank line so parsing continues with the next one. */
		str[0] = '\n';
		str[1] = '\0';
		return str;
	}
	memcpy(str, start, len);
	str[len] = '\0';

	copy = strdup(str);
	if (!copy) {
		ctx->error = -ENOMEM;
		return NULL;
	}
	s = strstrip(copy);
	if (s[0] == '[')
		parse_section_header(ctx, s);
	return str;
}

static void parse_watermark(ParseContext *ctx, const char *key, const char *value, Watermark *w)
{
	unsigned bp;
	uint64_t v;

	if (isempty(value)) {
		*w = (Watermark) {};
		return;
	}
	if (endswith(value, "%")) {
		int r = parse_percent_bp(value, &bp);
		if (r == -ERANGE)
			ctx_error(ctx, "%s=%s is out of range: at most 100%%", key, value);
		else if (r < 0)
			ctx_error(ctx, "invalid %s=%s: expected a percentage such as 10%% or 12.5%%",
				  key, value);
		else
			*w = (Watermark) { .set = true, .percent = true, .value = bp };
		return;
	}
	if (parse_size(value, &v) < 0) {
		ctx_error(ctx, "invalid %s=%s: expected a size (4G, 512M) or a percentage (10%%)",
			  key, value);
		return;
	}
	*w = (Watermark) { .set = true, .value = v };
}

static void parse_daemon_key(ParseContext *ctx, const char *key, const char *value)
{
	Conf *c = ctx->conf;

	if (streq(key, "TickSec")) {
		char a[FORMAT_DURATION_MAX], b[FORMAT_DURATION_MAX];
		uint64_t u;

		if (isempty(value)) {
			c->tick_usec = CONF_TICK_USEC_DEFAULT;
			return;
		}
		if (parse_duration(value, &u) < 0) {
			ctx_error(ctx, "invalid TickSec=%s: expected a duration such as 5s or 500ms",
				  value);
			return;
		}
		if (u < CONF_TICK_USEC_MIN || u > CONF_TICK_USEC_MAX) {
			ctx_error(ctx, "TickSec=%s is out of range (%s..%s)", value,
				  format_duration(a, sizeof(a), CONF_TICK_USEC_MIN),
				  format_duration(b, sizeof(b), CONF_TICK_USEC_MAX));
			return;
		}
		c->tick_usec = u;
	} else if (streq(key, "LogLevel")) {
		int l;

		if (isempty(value)) {
			c->log_level = -1;
			return;
		}
		l = log_level_from_string(value);
		if (l < 0) {
			ctx_error(ctx, "invalid LogLevel=%s: expected emerg, alert, crit, err, warning, "
				  "notice, info or debug", value);
			return;
		}
		c->log_level = l;
	} else
		ctx_error(ctx, "unknown key %s= in section [Daemon]", key);
}

/* The daemon's own [Policy] keys: how regions are tracked. 1 when key is one of them. */
static int parse_tracker_key(ParseContext *ctx, const char *key, const char *value)
{
	Conf *c = ctx->conf;

	if (streq(key, "Tracker")) {
		int k;

		if (isempty(value)) {
			c->tracker = -1;
			return 1;
		}
		k = tracker_kind_from_string(value);
		if (k == -EINVAL)
			ctx_error(ctx, "invalid Tracker=%s: expected auto, damon, sample or none",
				  value);
		else
			c->tracker = k;
		return 1;
	}
	if (streq(key, "MaxRegions")) {
		unsigned u;

		if (isempty(value)) {
			c->max_regions = CONF_MAX_REGIONS_DEFAULT;
			return 1;
		}
		if (safe_atou(value, &u) < 0 || u < CONF_MAX_REGIONS_MIN ||
		    u > CONF_MAX_REGIONS_MAX)
			ctx_error(ctx, "invalid MaxRegions=%s: expected a number %u..%u", value,
				  CONF_MAX_REGIONS_MIN, CONF_MAX_REGIONS_MAX);
		else
			c->max_regions = u;
		return 1;
	}
	return 0;
}

/* The engine's keys and their checks are shared with cohctl simulate. */
static void parse_policy_key(ParseContext *ctx, const char *key, const char *value)
{
	const char *expected = NULL;
	int r;

	if (parse_tracker_key(ctx, key, value))
		return;
	r = policy_settings_set(&ctx->conf->policy, key, value, &expected);
	if (r == -ENOENT)
		ctx_error(ctx, "unknown key %s= in section [Policy]", key);
	else if (r < 0)
		ctx_error(ctx, "invalid %s=%s: expected %s", key, value, expected ?: "a valid value");
}

static void parse_device_key(ParseContext *ctx, const char *key, const char *value)
{
	ConfDevice *d = &ctx->conf->devices[ctx->device];

	if (streq(key, "Kind")) {
		int k;

		if (isempty(value)) {
			d->kind = DEVICE_KIND_NUMA;
			return;
		}
		k = device_kind_from_string(value);
		if (k < 0)
			ctx_error(ctx, "invalid Kind=%s: expected numa", value);
		else if (k != DEVICE_KIND_NUMA)
			ctx_error(ctx, "Kind=%s is not supported yet: only numa devices can be "
				  "configured", value);
		else
			d->kind = (DeviceKind) k;
	} else if (streq(key, "Node")) {
		unsigned u;

		if (isempty(value)) {
			d->node = -1;
			return;
		}
		if (safe_atou(value, &u) < 0 || u > CONF_NODE_MAX) {
			ctx_error(ctx, "invalid Node=%s: expected a NUMA node number 0..%d", value,
				  CONF_NODE_MAX);
			return;
		}
		d->node = (int) u;
	} else if (streq(key, "LowWatermark"))
		parse_watermark(ctx, key, value, &d->low);
	else if (streq(key, "HighWatermark"))
		parse_watermark(ctx, key, value, &d->high);
	else
		ctx_error(ctx, "unknown key %s= in section [Device %s]", key, d->name);
}

static int conf_handler(void *user, const char *section, const char *name, const char *value)
{
	ParseContext *ctx = user;

	if (ctx->error < 0)
		return 1;

	switch (ctx->section) {
	case SECTION_NONE:
		ctx_error(ctx, "%s= outside of a section: put it under [Daemon] or [Device NAME]",
			  name);
		break;
	case SECTION_DAEMON:
		parse_daemon_key(ctx, name, value);
		break;
	case SECTION_DEVICE:
		parse_device_key(ctx, name, value);
		break;
	case SECTION_POLICY:
		parse_policy_key(ctx, name, value);
		break;
	case SECTION_INVALID:
		break;
	}
	/* Our own errors are recorded above; a 0 return is kept for inih's syntax errors. */
	return 1;
}

static bool has_error_at(ConfError *errors, size_t n, const char *file, unsigned line)
{
	for (size_t i = 0; i < n; i++)
		if (errors[i].line == line && streq(errors[i].file, file))
			return true;
	return false;
}

/* Errors of one file come in line order, except inih's syntax error appended last. */
static void sort_errors_by_line(ConfError *errors, size_t from, size_t n)
{
	for (size_t i = from + 1; i < n; i++) {
		ConfError e = errors[i];
		size_t j = i;

		while (j > from && errors[j - 1].line > e.line) {
			errors[j] = errors[j - 1];
			j--;
		}
		errors[j] = e;
	}
}

int conf_parse_text(Conf *c, const char *file, const char *text,
		    ConfError **errors, size_t *n_errors)
{
	ParseContext ctx = {
		.conf = c,
		.file = file,
		.text = text,
		.errors = errors,
		.n_errors = n_errors,
	};
	size_t first = *n_errors;
	int r;

	/* Library defaults that differ from what we document. */
	ini_allow_multiline = false;
	ini_allow_no_value = false;
	ini_stop_on_first_error = false;

	r = ini_parse_stream(conf_reader, &ctx, conf_handler, &ctx);
	if (ctx.error < 0)
		return ctx.error;
	if (r == -2)
		return -ENOMEM;
	if (r > 0 && !has_error_at(*errors, *n_errors, file, (unsigned) r)) {
		r = conf_error_add(errors, n_errors, file, (unsigned) r,
				   "syntax error: expected [Section] or Key=Value");
		if (r < 0)
			return r;
	}
	sort_errors_by_line(*errors, first, *n_errors);
	return 0;
}

int conf_validate(Conf *c, ConfError **errors, size_t *n_errors)
{
	int r;

	for (size_t i = 0; i < c->n_devices; i++) {
		ConfDevice *d = &c->devices[i];

		if (d->node < 0) {
			r = conf_error_add(errors, n_errors, d->file, d->line,
					   "[Device %s] has no Node=", d->name);
			if (r < 0)
				return r;
		}
		for (size_t j = 0; j < i && d->node >= 0; j++)
			if (c->devices[j].node == d->node) {
				r = conf_error_add(errors, n_errors, d->file, d->line,
						   "[Device %s] uses Node=%d, already used by "
						   "[Device %s] (%s:%u)", d->name, d->node,
						   c->devices[j].name, c->devices[j].file,
						   c->devices[j].line);
				if (r < 0)
					return r;
				break;
			}
		/* Mixed units can only be compared against a device's size, at discovery. */
		if (d->low.set && d->high.set && d->low.percent == d->high.percent &&
		    d->low.value > d->high.value) {
			char a[FORMAT_SIZE_MAX], b[FORMAT_SIZE_MAX];

			r = conf_error_add(errors, n_errors, d->file, d->line,
					   "[Device %s] LowWatermark=%s is above HighWatermark=%s",
					   d->name, watermark_format(&d->low, a, sizeof(a)),
					   watermark_format(&d->high, b, sizeof(b)));
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int conf_read_file(Conf *c, const char *path, bool must_exist,
			  ConfError **errors, size_t *n_errors)
{
	_cleanup_free_ char *text = NULL;
	size_t size;
	int r;

	r = read_file(path, CONF_FILE_SIZE_MAX, &text, &size);
	if (r == -ENOENT && !must_exist)
		return 0;
	if (r == -EFBIG)
		return conf_error_add(errors, n_errors, path, 0,
				      "file is larger than %u bytes", CONF_FILE_SIZE_MAX);
	if (r < 0)
		return conf_error_add(errors, n_errors, path, 0, "cannot read: %s", strerror(-r));
	if (strlen(text) != size)
		return conf_error_add(errors, n_errors, path, 0, "file contains a NUL byte");

	r = strv_extend(&c->files, path);
	if (r < 0)
		return r;
	return conf_parse_text(c, path, text, errors, n_errors);
}

static bool is_regular_file(DIR *d, const struct dirent *de)
{
	struct stat st;

	if (de->d_type == DT_REG)
		return true;
	if (de->d_type != DT_UNKNOWN && de->d_type != DT_LNK)
		return false;
	/* Symlinks to files are fine (as in systemd's conf.d handling). */
	return fstatat(dirfd(d), de->d_name, &st, 0) == 0 && S_ISREG(st.st_mode);
}

static int conf_list_dropins(const char *dir, char ***ret, ConfError **errors, size_t *n_errors)
{
	_cleanup_closedir_ DIR *d = NULL;
	_cleanup_strv_free_ char **names = NULL;
	struct dirent *de;
	int r;

	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT) {
			*ret = NULL;
			return 0;
		}
		return conf_error_add(errors, n_errors, dir, 0, "cannot open drop-in directory: %s",
				      strerror(errno));
	}

	while ((errno = 0, de = readdir(d))) {
		_cleanup_free_ char *p = NULL;

		if (de->d_name[0] == '.' || !endswith(de->d_name, ".conf"))
			continue;
		if (!is_regular_file(d, de))
			continue;
		if (asprintf(&p, "%s/%s", dir, de->d_name) < 0)
			return -ENOMEM;
		r = strv_push(&names, p);
		if (r < 0)
			return r;
		p = NULL;
	}
	if (errno != 0)
		return conf_error_add(errors, n_errors, dir, 0, "cannot read drop-in directory: %s",
				      strerror(errno));

	strv_sort(names);
	*ret = TAKE_PTR(names);
	return 0;
}

int conf_load(const char *path, bool must_exist, Conf **ret,
	      ConfError **ret_errors, size_t *ret_n_errors)
{
	_cleanup_(conf_freep) Conf *c = NULL;
	_cleanup_strv_free_ char **dropins = NULL;
	_cleanup_free_ char *dir = NULL;
	ConfError *errors = NULL;
	size_t n_errors = 0;
	int r;

	c = conf_new();
	if (!c)
		return -ENOMEM;

	r = conf_read_file(c, path, must_exist, &errors, &n_errors);
	if (r < 0)
		goto fail;

	if (asprintf(&dir, "%s.d", path) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	r = conf_list_dropins(dir, &dropins, &errors, &n_errors);
	if (r < 0)
		goto fail;
	for (char **i = dropins; i && *i; i++) {
		r = conf_read_file(c, *i, true, &errors, &n_errors);
		if (r < 0)
			goto fail;
	}

	r = conf_validate(c, &errors, &n_errors);
	if (r < 0)
		goto fail;

	if (n_errors > 0) {
		*ret_errors = errors;
		*ret_n_errors = n_errors;
		return -EINVAL;
	}
	*ret = TAKE_PTR(c);
	*ret_errors = NULL;
	*ret_n_errors = 0;
	return 0;

fail:
	conf_errors_free(errors, n_errors);
	*ret_errors = NULL;
	*ret_n_errors = 0;
	return r;
}

static int cmp_device_name(const void *a, const void *b)
{
	return strcmp((*(const ConfDevice * const *) a)->name, (*(const ConfDevice * const *) b)->name);
}

int conf_dump(const Conf *c, FILE *f)
{
	_cleanup_free_ const ConfDevice **sorted = NULL;
	char buf[FORMAT_DURATION_MAX];

	if (strv_length(c->files) == 0)
		fputs("# no configuration files read, built-in defaults\n", f);
	for (char **i = c->files; i && *i; i++)
		fprintf(f, "# %s\n", *i);

	fprintf(f, "[Daemon]\n");
	fprintf(f, "TickSec=%s\n", format_duration(buf, sizeof(buf), c->tick_usec));
	fprintf(f, "LogLevel=%s\n", c->log_level >= 0 ? log_level_to_string(c->log_level) : "info");
	fprintf(f, "\n[Policy]\n");
	policy_settings_dump(&c->policy, f);
	fprintf(f, "Tracker=%s\n", c->tracker < 0 ? "auto" : tracker_kind_to_string(c->tracker));
	fprintf(f, "MaxRegions=%u\n", c->max_regions);

	if (c->n_devices > 0) {
		sorted = malloc(c->n_devices * sizeof(*sorted));
		if (!sorted)
			return -ENOMEM;
		for (size_t i = 0; i < c->n_devices; i++)
			sorted[i] = &c->devices[i];
		qsort(sorted, c->n_devices, sizeof(*sorted), cmp_device_name);
	}
	for (size_t i = 0; i < c->n_devices; i++) {
		const ConfDevice *d = sorted[i];
		char w[FORMAT_SIZE_MAX];

		fprintf(f, "\n[Device %s]\n", d->name);
		fprintf(f, "Kind=%s\n", device_kind_to_string(d->kind));
		fprintf(f, "Node=%d\n", d->node);
		if (d->low.set)
			fprintf(f, "LowWatermark=%s\n", watermark_format(&d->low, w, sizeof(w)));
		if (d->high.set)
			fprintf(f, "HighWatermark=%s\n", watermark_format(&d->high, w, sizeof(w)));
	}
	if (fflush(f) != 0 || ferror(f))
		return errno > 0 ? -errno : -EIO;
	return 0;
}
