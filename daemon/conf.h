/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * coherentd.conf: INI (inih), a main file plus "<main>.d/NAME.conf" drop-ins read
 * in lexical order, later assignments overriding earlier ones.
 *
 *   [Daemon]
 *   TickSec=5s            device refresh interval
 *   LogLevel=info
 *
 *   [Policy]              the policy engine's settings, see policy.h
 *   HotThreshold=1
 *   RateLimitMiB=infinity
 *   Tracker=auto          access tracker: auto, damon, sample, none (tracker.h)
 *   MaxRegions=1000       tracked regions per process at most
 *
 *   [Device NAME]
 *   Kind=numa             the only kind so far
 *   Node=1                NUMA node the device is
 *   LowWatermark=10%      free-memory watermarks: size or percentage of total
 *   HighWatermark=4G
 *
 * The parser never logs: every problem becomes a ConfError "FILE:LINE: text".
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "policy.h"
#include "util.h"

#define CONF_FILE_DEFAULT SYSCONFDIR "/coherentd/coherentd.conf"
#define CONF_TICK_USEC_DEFAULT (5 * USEC_PER_SEC)
#define CONF_TICK_USEC_MIN (100 * USEC_PER_MSEC)
#define CONF_TICK_USEC_MAX USEC_PER_DAY
#define CONF_DEVICE_NAME_MAX 63
/* Highest NUMA node id accepted (the kernel's MAX_NUMNODES is at most 1024). */
#define CONF_NODE_MAX 1023
#define CONF_MAX_REGIONS_DEFAULT 1000U
/* The tracker keeps at least 10 regions per process (TrackerParams.min_regions). */
#define CONF_MAX_REGIONS_MIN 10U
#define CONF_MAX_REGIONS_MAX 100000U

typedef enum DeviceKind {
	DEVICE_KIND_NUMA,
	DEVICE_KIND_COHMEM,
	_DEVICE_KIND_MAX,
} DeviceKind;

const char *device_kind_to_string(DeviceKind k);
int device_kind_from_string(const char *s);

typedef struct Watermark {
	bool set;
	bool percent;     /* value is basis points (1/100 %) of the device total */
	uint64_t value;   /* bytes, or basis points */
} Watermark;

/* Resolve against a device's total bytes. */
uint64_t watermark_bytes(const Watermark *w, uint64_t total_bytes);
/* "4G", "10%", "12.5%" — the canonical form --test-config prints. */
char *watermark_format(const Watermark *w, char *buf, size_t l);

typedef struct ConfDevice {
	char *name;
	DeviceKind kind;
	int node;            /* -1: not set */
	Watermark low, high;
	/* Where the section was first opened, for error messages. */
	char *file;
	unsigned line;
} ConfDevice;

typedef struct ConfError {
	char *file;
	unsigned line;       /* 0 when the error is about the whole file */
	char *message;
} ConfError;

typedef struct Conf {
	uint64_t tick_usec;
	int log_level;       /* -1: not set, keep the default */
	PolicySettings policy; /* [Policy], the engine's keys */
	int tracker;         /* [Policy] Tracker=: -1 auto, else a TrackerKind */
	unsigned max_regions; /* [Policy] MaxRegions= */

	ConfDevice *devices;
	size_t n_devices;

	/* Files that were read, in order. */
	char **files;
} Conf;

Conf *conf_new(void);
Conf *conf_free(Conf *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Conf *, conf_free)

const ConfDevice *conf_find_device(const Conf *c, const char *name);
const ConfDevice *conf_find_device_by_node(const Conf *c, int node);

/*
 * Parse one file's text into c, recording problems in errors. `file` is the
 * name used in messages. Returns 0, or -ENOMEM.
 */
int conf_parse_text(Conf *c, const char *file, const char *text,
		    ConfError **errors, size_t *n_errors);

/* Cross-checks after all files are read (Node= required, duplicate nodes, low <= high). */
int conf_validate(Conf *c, ConfError **errors, size_t *n_errors);

/*
 * Read path, then path.d/NAME.conf in lexical order. When must_exist is false a missing main file
 * is not an error (the built-in default path). Returns 0 and *ret, or
 * -EINVAL with the problems in *ret_errors (caller frees with
 * conf_errors_free), or another negative errno (-ENOMEM).
 */
int conf_load(const char *path, bool must_exist, Conf **ret,
	      ConfError **ret_errors, size_t *ret_n_errors);

void conf_errors_free(ConfError *errors, size_t n);

/* The effective configuration in canonical form (--test-config). */
int conf_dump(const Conf *c, FILE *f);
