/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "auth.h"
#include "util.h"

/* "\t1000\t1000\t1000\t1000": exactly four unsigned decimal ids. */
static int parse_ids(const char *s, const char *end, uid_t ret[4])
{
	for (size_t i = 0; i < 4; i++) {
		uint64_t v = 0;
		size_t n = 0;

		while (s < end && (*s == '\t' || *s == ' '))
			s++;
		while (s < end && *s >= '0' && *s <= '9') {
			v = v * 10 + (uint64_t) (*s - '0');
			if (++n > 10 || v > UINT32_MAX - 1)   /* (uid_t) -1 is never a real id */
				return -EBADMSG;
			s++;
		}
		if (n == 0)
			return -EBADMSG;
		ret[i] = (uid_t) v;
	}
	while (s < end && (*s == '\t' || *s == ' '))
		s++;
	return s == end ? 0 : -EBADMSG;
}

static int parse_pid_value(const char *s, const char *end, pid_t *ret)
{
	uint64_t v = 0;
	size_t n = 0;

	while (s < end && (*s == '\t' || *s == ' '))
		s++;
	while (s < end && *s >= '0' && *s <= '9') {
		v = v * 10 + (uint64_t) (*s - '0');
		if (++n > 10 || v > INT_MAX)
			return -EBADMSG;
		s++;
	}
	if (n == 0 || s != end)
		return -EBADMSG;
	*ret = (pid_t) v;
	return 0;
}

int auth_parse_status(const char *text, size_t size, AuthProcStatus *ret)
{
	AuthProcStatus st = { .state = 0, .tgid = -1 };
	bool have_state = false, have_uid = false, have_tgid = false;
	const char *p = text, *end = text + size;

	if (!text || !ret)
		return -EINVAL;
	if (memchr(text, '\0', size))
		return -EBADMSG;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t) (end - p)), *le = eol ?: end;
		const char *colon = memchr(p, ':', (size_t) (le - p));
		size_t klen;

		if (!colon) {
			if (le != p)
				return -EBADMSG;   /* every non-empty line is "Key:\tvalue" */
			p = eol ? eol + 1 : end;
			continue;
		}
		klen = (size_t) (colon - p);
		colon++;

#define KEY(k) (klen == STRLEN(k) && memcmp(p, k, klen) == 0)
		if (KEY("State")) {
			const char *s = colon;

			if (have_state)
				return -EBADMSG;
			while (s < le && (*s == '\t' || *s == ' '))
				s++;
			if (s >= le || *s < 'A' || *s > 'Z')
				return -EBADMSG;
			st.state = *s;
			have_state = true;
		} else if (KEY("Uid")) {
			uid_t ids[4];

			if (have_uid || parse_ids(colon, le, ids) < 0)
				return -EBADMSG;
			st.ruid = ids[0];
			st.euid = ids[1];
			st.suid = ids[2];
			st.fsuid = ids[3];
			have_uid = true;
		} else if (KEY("Tgid")) {
			if (have_tgid || parse_pid_value(colon, le, &st.tgid) < 0)
				return -EBADMSG;
			have_tgid = true;
		} else if (KEY("VmSize")) {
			st.has_mm = true;
		} else if (KEY("Kthread")) {
			const char *s = colon;

			while (s < le && (*s == '\t' || *s == ' '))
				s++;
			if (le - s != 1 || (*s != '0' && *s != '1'))
				return -EBADMSG;
			st.kthread = *s == '1';
		}
#undef KEY
		p = eol ? eol + 1 : end;
	}

	if (!have_state || !have_uid || !have_tgid)
		return -EBADMSG;
	/* Before Linux 6.4 a kernel thread shows only as a task without mm (as a zombie does). */
	if (!st.has_mm && st.state != 'Z')
		st.kthread = true;
	*ret = st;
	return 0;
}

AuthVerdict auth_decide(uid_t peer_uid, const AuthProcStatus *st)
{
	if (peer_uid == 0)
		return AUTH_ALLOW;
	if (st->ruid == peer_uid && st->euid == peer_uid)
		return AUTH_ALLOW;
	return AUTH_DENY;
}

static int pidfd_open_compat(pid_t pid)
{
	int fd = (int) syscall(SYS_pidfd_open, pid, 0);

	return fd < 0 ? -errno : fd;
}

/* 0 while pidfd's process is not reaped (alive or a zombie), -ESRCH once it is. */
static int pidfd_not_reaped(int pidfd)
{
	/*
	 * Signal 0 checks permission as kill(2) does: without CAP_KILL (the
	 * service's bounding set has none) another user's live process answers
	 * EPERM. Only ESRCH means gone. A zombie still takes signals.
	 */
	if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0 && errno != EPERM)
		return errno == ESRCH ? -ESRCH : -errno;
	return 0;
}

int auth_pidfd_exited(int pidfd, int timeout_ms)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	int r;

	/*
	 * A pidfd polls readable once its process has exited: the whole thread
	 * group, at the moment the leader becomes a zombie (Linux 5.3+), before
	 * the parent reaps it.
	 */
	if (pidfd < 0)
		return -EBADF;
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (p.revents & POLLNVAL)
		return -EBADF;
	return (p.revents & (POLLIN | POLLHUP)) ? 1 : 0;
}

int auth_pidfd_alive(int pidfd)
{
	int r;

	r = auth_pidfd_exited(pidfd, 0);
	if (r < 0)
		return r;
	if (r > 0)
		return -ESRCH;
	return pidfd_not_reaped(pidfd);
}

int auth_check_process(const char *proc, pid_t pid, uid_t peer_uid, int *ret_pidfd,
		       AuthProcStatus *ret_status)
{
	_cleanup_close_ int pidfd = -EBADF;
	_cleanup_free_ char *text = NULL;
	AuthProcStatus st;
	char path[64];
	size_t size;
	int r;

	if (pid <= 0)
		return -EINVAL;

	(void) snprintf(path, sizeof(path), "%s/%d/status", proc ?: "/proc", (int) pid);

	pidfd = pidfd_open_compat(pid);
	if (pidfd == -EINVAL || pidfd == -ENOENT) {
		/*
		 * A thread that does not lead its process (-EINVAL before Linux 6.9,
		 * -ENOENT since): procfs still shows it, with the process's Tgid.
		 */
		if (read_file(path, 0, &text, &size) >= 0 &&
		    auth_parse_status(text, size, &st) >= 0 && st.tgid != pid)
			return -EINVAL;
		return -ESRCH;
	}
	if (pidfd < 0)
		return pidfd;     /* -ESRCH, or -EMFILE and the like */

	r = read_file(path, 0, &text, &size);
	if (r == -ENOENT || r == -ESRCH)
		return -ESRCH;
	if (r < 0)
		return r;
	r = auth_parse_status(text, size, &st);
	if (r < 0)
		return r;
	if (st.tgid != pid)
		return -EINVAL;

	/*
	 * The pidfd was opened first: if its process is not reaped yet, the pid
	 * was not reused and that is the one read (a zombie included).
	 */
	r = pidfd_not_reaped(pidfd);
	if (r < 0)
		return r;
	/* Exited after the read, or while its threads still die: a zombie all the same. */
	r = auth_pidfd_exited(pidfd, 0);
	if (r < 0)
		return r;
	if (r > 0)
		st.state = 'Z';

	if (ret_status)
		*ret_status = st;
	if (auth_decide(peer_uid, &st) != AUTH_ALLOW)
		return -EPERM;
	if (st.state == 'Z' || st.state == 'X')
		return -EOWNERDEAD;
	if (st.kthread)
		return -EMEDIUMTYPE;

	*ret_pidfd = TAKE_FD(pidfd);
	return 0;
}
