/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Logging to stderr. Under systemd (stderr is the journal stream named by
 * $JOURNAL_STREAM) every line gets a "<N>" syslog priority prefix so the
 * journal records the right priority. Only the top layers log; library code
 * returns negative errno.
 *
 * Format strings may use %m: it expands to strerror() of the error passed to
 * the *_errno() variants (or of errno for the plain ones).
 */

#include <stdbool.h>
#include <syslog.h>

#include "macro.h"

/* Detect the journal from $JOURNAL_STREAM; call once at startup. */
void log_setup(void);
/* Force the "<N>" prefix on or off (tests, --log-target-like overrides). */
void log_set_syslog_prefix(bool b);
bool log_get_syslog_prefix(void);

void log_set_max_level(int level);
int log_get_max_level(void);

/* "emerg" ... "debug" or "0" ... "7" → LOG_* level; -EINVAL otherwise. */
int log_level_from_string(const char *s);
/* LOG_* level → "err", "info", ...; NULL when out of range. */
const char *log_level_to_string(int level);

/*
 * Log at level; error is an errno value (either sign, 0 for none) used by %m.
 * Returns -abs(error), so `return log_error_errno(r, "...: %m");` works.
 */
int log_internal(int level, int error, const char *file, int line, const char *func,
		 const char *format, ...) _printf_(6, 7);

#define log_full_errno(level, error, ...)                                              \
	({                                                                             \
		int _level_ = (level), _e_ = (error);                                  \
		(log_get_max_level() >= _level_)                                       \
			? log_internal(_level_, _e_, __FILE__, __LINE__, __func__, __VA_ARGS__) \
			: -((_e_) < 0 ? -(_e_) : (_e_));                               \
	})

#define log_full(level, ...) ((void) log_full_errno((level), 0, __VA_ARGS__))

#define log_debug(...)   log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)    log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...)  log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...)   log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(error, ...)   log_full_errno(LOG_DEBUG, error, __VA_ARGS__)
#define log_info_errno(error, ...)    log_full_errno(LOG_INFO, error, __VA_ARGS__)
#define log_notice_errno(error, ...)  log_full_errno(LOG_NOTICE, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...)   log_full_errno(LOG_ERR, error, __VA_ARGS__)

/* For allocation failures at the top layer. */
#define log_oom() log_error_errno(ENOMEM, "Out of memory.")
