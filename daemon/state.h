/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Persistent state: the targets and their policies, in
 * STATE_DIR/targets.json (default /var/lib/coherentd, systemd's
 * StateDirectory=coherentd). Written as a temporary file in the same
 * directory, fsync'ed, renamed over the old one, and the directory fsync'ed,
 * so a crash leaves either the old or the new file. Format (JSON):
 *
 *   { "version": 1,
 *     "targets": [ { "kind": "pid", "pid": 1234, "starttime": 5678,
 *                    "owner": 1000, "policy": "hot:gpu0,quota=1G",
 *                    "set_realtime_usec": 1764000000000000 },
 *                  { "kind": "cgroup", "cgroup": "/a/b", ... },
 *                  { "kind": "job", "job": 42, ... } ] }
 *
 * Loading never fails because of the file's content: a file that is not
 * valid (bad JSON, wrong version, a bad entry, the same target twice, larger
 * than 16 MiB) is renamed to targets.json.corrupt-<realtime usec> and
 * reported through *ret_set_aside; the daemon starts with no targets. Keys
 * this version does not know are ignored. Ids are assigned anew on load.
 * Numbers are JSON integers below 2^64-1 (json-c turns larger ones into
 * that value, so it is refused).
 */

#include "stats.h"
#include "targets.h"

#define STATE_FILE_NAME "targets.json"
#define STATE_STATS_FILE_NAME "stats.json"

/*
 * Write s to dir/targets.json atomically (creating dir, mode 0700, when
 * missing). Negative errno on I/O errors; the old file is then untouched.
 */
int state_save(const char *dir, const TargetSet *s);

/*
 * Read dir/targets.json into s (which must be empty: -EBUSY). Returns 0 (also when the
 * file does not exist: nothing loaded), or a negative errno for I/O errors
 * other than ENOENT. When the file was set aside, *ret_set_aside gets its new
 * path and *ret_reason what was wrong (both malloc'd; NULL otherwise).
 */
int state_load(const char *dir, TargetSet *s, char **ret_set_aside, char **ret_reason);

/*
 * The counters of stats.h in STATE_DIR/stats.json, so they continue over a
 * restart instead of starting from zero. Written like targets.json:
 *
 *   { "version": 1,
 *     "devices": [ { "name": "gpu0", "bytes_in": 4096, "bytes_out": 0,
 *                    "migrations": 1, "failures": 0, "failed_pages": 0,
 *                    "promoted_bytes": 4096, "demoted_bytes": 0,
 *                    "evicted_bytes": 0 } ] }
 *
 * state_load_stats() fills s (which must be empty, -EBUSY otherwise) and
 * sets a bad file aside as stats.json.corrupt-<realtime usec>, the same way
 * state_load() does. A counter missing from a device's entry is 0 (a file
 * written before the counter existed).
 */
int state_save_stats(const char *dir, const Stats *s);
int state_load_stats(const char *dir, Stats *s, char **ret_set_aside, char **ret_reason);
