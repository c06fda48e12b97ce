/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * File reading relative to a root directory, strict number parsing, sizes,
 * durations, id lists and a few string helpers. Nothing here logs; every
 * function returns 0 or a negative errno.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define USEC_PER_MSEC UINT64_C(1000)
#define USEC_PER_SEC  UINT64_C(1000000)
#define USEC_PER_MINUTE (UINT64_C(60) * USEC_PER_SEC)
#define USEC_PER_HOUR (UINT64_C(60) * USEC_PER_MINUTE)
#define USEC_PER_DAY  (UINT64_C(24) * USEC_PER_HOUR)
#define USEC_INFINITY UINT64_MAX

/* Largest file read_file*() accept unless told otherwise (sysfs/procfs files are small). */
#define READ_FILE_MAX_DEFAULT (4U * 1024U * 1024U)

/* ---- strict number parsing: no leading/trailing junk, -ERANGE on overflow ---- */

int safe_atoi(const char *s, int *ret);
int safe_atou(const char *s, unsigned *ret);
int safe_atoi64(const char *s, int64_t *ret);
/* Decimal only; a leading '-' is -EINVAL (strtoull would wrap it). */
int safe_atou64(const char *s, uint64_t *ret);

/* ---- sizes and durations ---- */

/*
 * "4096", "4K", "4KiB", "1.5G", "2T": binary units (K = 1024), case-insensitive
 * suffix with optional "B"/"iB". -EINVAL for junk, -ERANGE past UINT64_MAX.
 */
int parse_size(const char *s, uint64_t *ret);

/*
 * "10%", "12.5%", "0.01%": a percentage as parts per ten thousand (basis
 * points), 0..10000. -EINVAL when not a percentage or more than two decimals,
 * -ERANGE above 100%.
 */
int parse_percent_bp(const char *s, unsigned *ret_bp);

/*
 * "5s", "500ms", "1min 30s", "2h", "250us", "1d"; a bare number is seconds.
 * Units: us usec ms msec s sec m min h hr hour d day (with plurals).
 * -EINVAL for junk, -ERANGE on overflow.
 */
int parse_duration(const char *s, uint64_t *ret_usec);

/* Canonical forms: the largest unit that represents the value exactly. */
char *format_size(char *buf, size_t l, uint64_t bytes);        /* "4G", "1536M", "100" */
char *format_duration(char *buf, size_t l, uint64_t usec);     /* "5s", "1500ms", "2min" */
#define FORMAT_SIZE_MAX 32
#define FORMAT_DURATION_MAX 32

/* "yes"/"no"/"true"/"false"/"on"/"off"/"1"/"0" → 1/0, -EINVAL otherwise. */
int parse_boolean(const char *s);

/*
 * Kernel id lists as in cpulist, nodelist, has_memory: "0-3,8,10-11", possibly
 * empty or just "\n". Sets bits in `bits` (caller zeroes it) for n_bits ids;
 * -ERANGE for an id >= n_bits, -EINVAL for junk or a reversed range.
 */
int parse_id_list(const char *s, uint64_t *bits, size_t n_bits);
static inline bool bit_test(const uint64_t *bits, size_t i)
{
	return (bits[i / 64] >> (i % 64)) & 1;
}
static inline void bit_set(uint64_t *bits, size_t i)
{
	bits[i / 64] |= UINT64_C(1) << (i % 64);
}

/* ---- files, always relative to a root directory ---- */

/*
 * Join root and an absolute path: ("/", "/sys/x") → "/sys/x",
 * ("fixtures/gh", "/sys/x") → "fixtures/gh/sys/x". root NULL or "" means "/".
 * Returns NULL on allocation failure.
 */
char *path_join_root(const char *root, const char *path);

/*
 * Read a whole file into a NUL-terminated malloc'd buffer. Fails with -EFBIG
 * when the file is larger than max (0: READ_FILE_MAX_DEFAULT).
 * ret_size may be NULL.
 */
int read_file(const char *path, size_t max, char **ret, size_t *ret_size);
int read_file_root(const char *root, const char *path, size_t max, char **ret, size_t *ret_size);
/* First line without the trailing newline. */
int read_one_line_root(const char *root, const char *path, char **ret);

/* ---- strings ---- */

/* Pointer past prefix when s starts with it, NULL otherwise. */
char *startswith(const char *s, const char *prefix) _pure_;
bool endswith(const char *s, const char *suffix) _pure_;
/* Strip leading and trailing whitespace in place; returns the new start. */
char *strstrip(char *s);
/* NULL-terminated string vectors. */
char **strv_free(char **l);
size_t strv_length(char * const *l) _pure_;
/* Append a copy of s. */
int strv_extend(char ***l, const char *s);
/* Append s itself (taken over on success). */
int strv_push(char ***l, char *s);
void strv_sort(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free)
#define _cleanup_strv_free_ _cleanup_(strv_freep)

/* ---- project paths ---- */

/* Where coherentd listens unless told otherwise (coherentd.socket uses the same). */
#define COHERENTD_SOCKET_PATH "/run/coherentd/io.coherentd"
