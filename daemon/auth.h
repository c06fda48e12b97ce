/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Who may act on which process.
 *
 * Root (peer uid 0) may migrate and query any process. Any other user only
 * its own: the peer's uid (SO_PEERCRED) must equal both the real and the
 * effective uid of the target, the rule kill(2) and ptrace apply to real
 * credentials. Everything else is denied.
 *
 * The target is pinned with a pidfd before its credentials are read from
 * /proc/PID/status, and the pidfd is checked to still refer to a live process
 * afterwards: a pid that was recycled in between cannot be mistaken for the
 * process that was checked. The caller keeps the pidfd for the duration of
 * the work.
 *
 * The status parser takes text so unit tests and the fuzzer feed it bytes.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct AuthProcStatus {
	uid_t ruid, euid, suid, fsuid;
	char state;             /* 'R', 'S', 'Z', ... */
	bool has_mm;            /* a user address space (Vm* lines are present) */
	bool kthread;           /* "Kthread: 1" (Linux 6.4+), or PF_KTHREAD-like: no mm */
	pid_t tgid;
} AuthProcStatus;

/*
 * Parse the text of /proc/PID/status (size bytes, no NUL needed). Needs the
 * State:, Tgid: and Uid: lines; -EBADMSG when one is missing or malformed, or
 * the text contains a NUL byte.
 */
int auth_parse_status(const char *text, size_t size, AuthProcStatus *ret);

typedef enum AuthVerdict {
	AUTH_ALLOW,
	AUTH_DENY,
} AuthVerdict;

/* The decision table: pure. */
AuthVerdict auth_decide(uid_t peer_uid, const AuthProcStatus *st);

/*
 * Resolve and authorize pid for peer_uid. Returns 0 with *ret_pidfd (owned
 * by the caller) and *ret_status, or:
 *   -ESRCH   no such process (or it exited while being checked)
 *   -EINVAL  pid out of range, or a thread id that is not a process (tgid)
 *   -EPERM   the peer may not act on it (*ret_status is filled in)
 *   -EOWNERDEAD  the process is a zombie; -EMEDIUMTYPE a kernel thread
 *            (no user address space) — nothing to migrate; only reported
 *            to callers that may act on it
 * proc is the procfs mount to read ("/proc" normally; tests pass a fixture).
 */
int auth_check_process(const char *proc, pid_t pid, uid_t peer_uid, int *ret_pidfd,
		       AuthProcStatus *ret_status);

/*
 * 0 while pidfd's process runs; -ESRCH once it has exited, a zombie its
 * parent has not reaped yet included (the pidfd polls readable); -EBADF
 * when pidfd is negative or closed.
 */
int auth_pidfd_alive(int pidfd);

/*
 * 1 when pidfd's process has exited (a zombie included), 0 while it runs:
 * after waiting up to timeout_ms for the exit (0: not at all, -1: without
 * limit). -EBADF when pidfd is negative or closed.
 */
int auth_pidfd_exited(int pidfd, int timeout_ms);
