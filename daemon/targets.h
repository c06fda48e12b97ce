/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Policy targets: what a policy applies to, and which processes that is now.
 *
 *   pid      one process, identified by pid and its start time (field 22 of
 *            /proc/PID/stat) so a recycled pid is not mistaken for it
 *   cgroup   every process in a cgroup v2 directory and below, including
 *            processes started later; path relative to the cgroup2 mount
 *            ("/system.slice/foo.service")
 *   job      a Slurm job: its cgroup is found by scanning the cgroup2 tree
 *            for a directory "job_<ID>" (Slurm's cgroup/v2 layout, e.g.
 *            /system.slice/slurmstepd.scope/job_42). Where there is none
 *            (nodes with proctrack/linuxproc, cgroup v1 or hybrid hosts,
 *            which Slurm 22.05's cgroup/v2 refuses), the job is every
 *            descendant of its slurmstepd processes: root's processes titled
 *            "slurmstepd: [ID.STEP]". Neither found: the job has no
 *            processes (pending, or just ended). Slurm 26.05 names
 *            these directories after the job's SLUID instead ("s5K1KKYAYG5D00"),
 *            which cannot be derived from the job id: such nodes need
 *            CgroupJobIdPaths=yes in cgroup.conf (Slurm 26.05.2 and later)
 *
 * A target whose process exited or whose cgroup disappeared is "gone" and
 * is dropped by the daemon. Every path is read under a root directory
 * ("/" normally) so unit tests run on fixture trees.
 */

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy.h"
#include "util.h"

typedef enum TargetKind {
	TARGET_PID,
	TARGET_CGROUP,
	TARGET_JOB,
	_TARGET_KIND_MAX,
} TargetKind;

const char *target_kind_to_string(TargetKind k);
int target_kind_from_string(const char *s);

/* What a target is (its key: two keys are equal when they name the same thing). */
typedef struct TargetKey {
	TargetKind kind;
	pid_t pid;              /* TARGET_PID */
	uint64_t starttime;     /* TARGET_PID: clock ticks since boot, from /proc/PID/stat */
	char *cgroup;           /* TARGET_CGROUP: normalized, starts with '/', no trailing '/', no "." or ".." */
	uint64_t job;           /* TARGET_JOB: Slurm job id */
} TargetKey;

typedef struct Target {
	uint64_t id;            /* unique within a TargetSet, never reused while the daemon runs */
	TargetKey key;
	uid_t owner;            /* the uid that set the policy (root: 0) */
	PolicySpec policy;
	uint64_t set_realtime_usec; /* CLOCK_REALTIME when the policy was set */
} Target;

typedef struct TargetSet {
	Target *targets;
	size_t n_targets;
	uint64_t next_id;
} TargetSet;

void target_set_init(TargetSet *s);
void target_set_done(TargetSet *s);
/*
 * Set the policy of key (copied): replaces the policy of an existing target
 * with an equal key (keeps its id), otherwise appends one. *ret_id (may be
 * NULL) gets the target's id.
 */
int target_set_put(TargetSet *s, const TargetKey *key, uid_t owner, const PolicySpec *policy,
		   uint64_t now_realtime_usec, uint64_t *ret_id);
/* -ENOENT when there is no target with this key. */
int target_set_remove(TargetSet *s, const TargetKey *key);
int target_set_remove_id(TargetSet *s, uint64_t id);
Target *target_set_find(const TargetSet *s, const TargetKey *key);
Target *target_set_find_id(const TargetSet *s, uint64_t id);

bool target_key_equal(const TargetKey *a, const TargetKey *b);
int target_key_copy(TargetKey *dst, const TargetKey *src);
void target_key_done(TargetKey *k);
/* "pid:1234", "cgroup:/a/b", "job:42"; truncated to size. */
#define TARGET_KEY_STRING_MAX (STRLEN("cgroup:") + PATH_MAX + 1)
char *target_key_format(const TargetKey *k, char *buf, size_t size);

/*
 * Normalize a cgroup path as users give it ("a/b/", "/a//b"): -EINVAL for
 * "", "." or ".." components, or longer than PATH_MAX. *ret malloc'd.
 */
int cgroup_path_normalize(const char *path, char **ret);

/*
 * Where cgroup2 is mounted, from ROOT/proc/self/mountinfo (the first
 * "cgroup2" mount), as an absolute path without root ("/sys/fs/cgroup" or
 * "/sys/fs/cgroup/unified"). -ENOENT when there is none.
 */
int cgroup2_find_mount(const char *root, char **ret);

/* Start time of pid (field 22 of ROOT/proc/PID/stat). -ESRCH when no such process. */
int pid_read_starttime(const char *root, pid_t pid, uint64_t *ret);
/* Real uid of pid (ROOT/proc/PID/status). -ESRCH. */
int pid_read_uid(const char *root, pid_t pid, uid_t *ret);

/*
 * The job's cgroup (relative to the cgroup2 mount), by scanning the tree
 * under ROOT/<mount> for a directory "job_<job>" (depth-limited to 6).
 * -ENOENT when there is none.
 */
int cgroup_find_job(const char *root, const char *mount, uint64_t job, char **ret);

/*
 * The processes a target covers now, sorted ascending, without duplicates:
 * pid → itself when alive with the same starttime (not a zombie); cgroup → every
 * pid in cgroup.procs of it and all its descendants; job → the same for its
 * cgroup, or without one the descendants of its slurmstepd processes. Returns 0 and the pids (maybe none: a job between steps), or
 * -ENOENT/-ESRCH when the target is gone (pid exited or recycled, cgroup
 * directory removed). For jobs, *ret_cgroup (may be NULL) gets the cgroup
 * found. `mount` as from cgroup2_find_mount(); may be NULL for pid and job
 * targets (a job is then found through slurmstepd only).
 */
int target_resolve_pids(const char *root, const char *mount, const TargetKey *key,
			pid_t **ret, size_t *ret_n, char **ret_cgroup);

/*
 * Whether uid may set or clear policy for key: root always; others for a pid
 * target when the process's real and effective uid are theirs (auth.h's rule
 * for Migrate); for a cgroup or job target when the cgroup directory is owned
 * by them or every process in it runs as them (at least one). A job's user
 * owns their job: Slurm runs the job's tasks as the job uid; its own
 * slurmstepd processes (in "slurm_processes" directories of the job's cgroup)
 * run as root and do not count. A job without a cgroup: every descendant of
 * its slurmstepd processes runs as them. -EPERM when not, -ENOENT/-ESRCH when
 * the target is gone (for a job: neither a cgroup nor processes found).
 */
int target_check_owner(const char *root, const char *mount, const TargetKey *key, uid_t uid);
