/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "util.h"

static int log_max_level = LOG_INFO;
static bool log_syslog_prefix;

static const char *const log_level_table[] = {
	[LOG_EMERG] = "emerg",
	[LOG_ALERT] = "alert",
	[LOG_CRIT] = "crit",
	[LOG_ERR] = "err",
	[LOG_WARNING] = "warning",
	[LOG_NOTICE] = "notice",
	[LOG_INFO] = "info",
	[LOG_DEBUG] = "debug",
};

/*
 * $JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected to stdout or
 * stderr. Only when it names our stderr does the journal parse "<N>" prefixes;
 * a unit with StandardError=file: keeps the variable but not the stream.
 */
static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char tail;

	if (!e)
		return false;
	if (sscanf(e, "%llu:%llu%c", &dev, &ino, &tail) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_setup(void)
{
	const char *e;

	log_syslog_prefix = stderr_is_journal();

	e = getenv("COHERENTD_LOG_LEVEL");
	if (e) {
		int l = log_level_from_string(e);
		if (l >= 0)
			log_max_level = l;
	}
}

void log_set_syslog_prefix(bool b)
{
	log_syslog_prefix = b;
}

bool log_get_syslog_prefix(void)
{
	return log_syslog_prefix;
}

void log_set_max_level(int level)
{
	if (level < LOG_EMERG)
		level = LOG_EMERG;
	if (level > LOG_DEBUG)
		level = LOG_DEBUG;
	log_max_level = level;
}

int log_get_max_level(void)
{
	return log_max_level;
}

int log_level_from_string(const char *s)
{
	unsigned u;

	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(log_level_table); i++)
		if (streq(s, log_level_table[i]))
			return (int) i;
	/* Accept the spellings systemd accepts too. */
	if (streq(s, "error"))
		return LOG_ERR;
	if (streq(s, "warn"))
		return LOG_WARNING;
	if (safe_atou(s, &u) >= 0 && u <= LOG_DEBUG)
		return (int) u;
	return -EINVAL;
}

const char *log_level_to_string(int level)
{
	if (level < 0 || (size_t) level >= ELEMENTSOF(log_level_table))
		return NULL;
	return log_level_table[level];
}

int log_internal(int level, int error, const char *file, int line, const char *func,
		 const char *format, ...)
{
	char buf[2048];
	int saved_errno = errno;
	int e = error < 0 ? -error : error;
	va_list ap;

	if (level > log_max_level)
		return -e;

	/* glibc's %m expands strerror(errno); make it refer to the error given. */
	errno = e ? e : saved_errno;
	va_start(ap, format);
	(void) vsnprintf(buf, sizeof(buf), format, ap);
	va_end(ap);

	if (log_syslog_prefix)
		fprintf(stderr, "<%d>%s\n", level & LOG_PRIMASK, buf);
	else if (log_max_level >= LOG_DEBUG)
		fprintf(stderr, "%s:%d %s: %s\n", file, line, func, buf);
	else
		fprintf(stderr, "%s\n", buf);

	errno = saved_errno;
	return -e;
}
