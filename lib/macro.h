/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Small macros used everywhere: attributes, cleanup helpers, array sizes.
 * Modelled on systemd's src/fundamental/macro-fundamental.h, trimmed down.
 */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))
#define _pure_ __attribute__((pure))
#define _const_ __attribute__((const))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define STRLEN(x) (sizeof("" x "") - 1)

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define streq(a, b) (strcmp((a), (b)) == 0)
#define strneq(a, b, n) (strncmp((a), (b), (n)) == 0)
#define isempty(s) (!(s) || !(s)[0])

/* Return the pointer and leave NULL behind, so a cleanup attribute does not free it. */
#define TAKE_PTR(p)                                  \
	({                                           \
		__typeof__(p) *_pp_ = &(p);          \
		__typeof__(p) _p_ = *_pp_;           \
		*_pp_ = NULL;                        \
		_p_;                                 \
	})

#define TAKE_FD(fd)                                  \
	({                                           \
		int *_pfd_ = &(fd);                  \
		int _fd_ = *_pfd_;                   \
		*_pfd_ = -EBADF;                     \
		_fd_;                                \
	})

/* Free *a and replace it by b (which is taken over). */
#define free_and_replace(a, b)                       \
	({                                           \
		__typeof__(a) *_pa_ = &(a);          \
		__typeof__(b) *_pb_ = &(b);          \
		free(*_pa_);                         \
		*_pa_ = *_pb_;                       \
		*_pb_ = NULL;                        \
		0;                                   \
	})

static inline void *mfree(void *p)
{
	free(p);
	return NULL;
}

static inline int safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		(void) close(fd);
		errno = saved;
	}
	return -EBADF;
}

/* Define static inline void funcp(type *p) { if (*p) func(*p); } for _cleanup_(). */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                  \
	static inline void func##p(type *p)                      \
	{                                                        \
		if (*p)                                          \
			(void) func(*p);                         \
	}

static inline void freep(void *p)
{
	free(*(void **) p);
}

static inline void closep(int *fd)
{
	safe_close(*fd);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose)
DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _cleanup_closedir_ _cleanup_(closedirp)
