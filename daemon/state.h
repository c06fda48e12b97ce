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
 * valid (bad JSON, wrong version, a bad entry) is renamed to
 * targets.json.corrupt-<realtime usec> and reported through *ret_set_aside;
 * the daemon starts with no targets. Ids are assigned anew on load.
 */

#include "targets.h"

#define STATE_FILE_NAME "targets.json"

/*
 * Write s to dir/targets.json atomically (creating dir, mode 0700, when
 * missing). Negative errno on I/O errors; the old file is then untouched.
 */
int state_save(const char *dir, const TargetSet *s);

/*
 * Read dir/targets.json into s (which must be empty). Returns 0 (also when the
 * file does not exist: nothing loaded), or a negative errno for I/O errors
 * other than ENOENT. When the file was set aside, *ret_set_aside gets its new
 * path and *ret_reason what was wrong (both malloc'd; NULL otherwise).
 */
int state_load(const char *dir, TargetSet *s, char **ret_set_aside, char **ret_reason);
