/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daemon/auth: the /proc/PID/status parser, the decision table, and the pidfd checks. */

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth.h"
#include "util.h"

#define STATUS_HEAD "Name:\tcat\nUmask:\t0022\n"
#define STATUS_IDS "Tgid:\t%d\nNgid:\t0\nPid:\t%d\nPPid:\t1\nTracerPid:\t0\n"
#define STATUS_VM "VmPeak:\t    5480 kB\nVmSize:\t    5480 kB\nVmRSS:\t    1024 kB\n"
#define STATUS_TAIL "Threads:\t1\nSigQ:\t0/63704\nCpus_allowed_list:\t0-1\n"

#define BAD(s) { .text = (s), .r = -EBADMSG }

static void test_parse_status(void **state)
{
	static const struct {
		const char *text;
		int r;
		uid_t ruid, euid;
		char st;
		bool has_mm, kthread;
	} t[] = {
		/* A user process. */
		{ STATUS_HEAD "State:\tS (sleeping)\nTgid:\t42\nUid:\t1000\t1000\t1000\t1000\n"
		  "Gid:\t100\t100\t100\t100\n" STATUS_VM STATUS_TAIL, 0, 1000, 1000, 'S', true, false },
		/* A setuid program: real and effective differ. */
		{ "State:\tR (running)\nTgid:\t7\nUid:\t1000\t0\t0\t0\nVmSize:\t1 kB\n", 0, 1000, 0, 'R',
		  true, false },
		/* A kernel thread before Linux 6.4: no Vm lines. */
		{ "Name:\tkthreadd\nState:\tS (sleeping)\nTgid:\t2\nUid:\t0\t0\t0\t0\n", 0, 0, 0, 'S',
		  false, true },
		/* Linux 6.4+ says so. */
		{ "State:\tI (idle)\nTgid:\t3\nUid:\t0\t0\t0\t0\nKthread:\t1\n", 0, 0, 0, 'I', false,
		  true },
		{ "State:\tS (sleeping)\nTgid:\t3\nUid:\t0\t0\t0\t0\nKthread:\t0\nVmSize:\t1 kB\n", 0, 0,
		  0, 'S', true, false },
		/* A zombie has no mm either, and is not a kernel thread. */
		{ "State:\tZ (zombie)\nTgid:\t9\nUid:\t1000\t1000\t1000\t1000\n", 0, 1000, 1000, 'Z',
		  false, false },
		/* No trailing newline. */
		{ "State:\tS (sleeping)\nTgid:\t9\nUid:\t5\t5\t5\t5", 0, 5, 5, 'S', false, true },
		/* Broken. */
		BAD(""),
		BAD("State:\tS (sleeping)\nTgid:\t9\n"),                      /* no Uid */
		BAD("Tgid:\t9\nUid:\t5\t5\t5\t5\n"),                            /* no State */
		BAD("State:\tS\nUid:\t5\t5\t5\t5\n"),                           /* no Tgid */
		BAD("State:\tS\nTgid:\t9\nUid:\t5\t5\t5\n"),                    /* 3 ids */
		BAD("State:\tS\nTgid:\t9\nUid:\t5\t5\t5\t5\t5\n"),              /* 5 ids */
		BAD("State:\tS\nTgid:\t9\nUid:\t5\tx\t5\t5\n"),
		BAD("State:\tS\nTgid:\t9\nUid:\t-5\t5\t5\t5\n"),
		BAD("State:\tS\nTgid:\t9\nUid:\t4294967295\t5\t5\t5\n"),       /* (uid_t) -1 */
		BAD("State:\tS\nTgid:\t9\nUid:\t99999999999\t5\t5\t5\n"),
		BAD("State:\tS\nTgid:\t9\nUid:\t5\t5\t5\t5\nUid:\t0\t0\t0\t0\n"), /* twice */
		BAD("State:\tS\nState:\tR\nTgid:\t9\nUid:\t5\t5\t5\t5\n"),
		BAD("State:\t\nTgid:\t9\nUid:\t5\t5\t5\t5\n"),
		BAD("State:\ts\nTgid:\t9\nUid:\t5\t5\t5\t5\n"),
		BAD("State:\tS\nTgid:\t9x\nUid:\t5\t5\t5\t5\n"),
		BAD("State:\tS\nTgid:\t9\nUid:\t5\t5\t5\t5\nKthread:\t2\n"),
		BAD("State:\tS\nTgid:\t9\nUid:\t5\t5\t5\t5\ngarbage line\n"),
	};
	AuthProcStatus st;

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		int r = auth_parse_status(t[i].text, strlen(t[i].text), &st);

		if (r != t[i].r)
			fail_msg("case %zu: got %d, want %d", i, r, t[i].r);
		if (r < 0)
			continue;
		assert_int_equal(st.ruid, t[i].ruid);
		assert_int_equal(st.euid, t[i].euid);
		assert_int_equal(st.state, t[i].st);
		assert_int_equal(st.has_mm, t[i].has_mm);
		assert_int_equal(st.kthread, t[i].kthread);
	}

	/* A NUL byte inside is malformed, not the end. */
	assert_int_equal(auth_parse_status("State:\tS\nTgid:\t9\0\nUid:\t5\t5\t5\t5\n", 33, &st),
			 -EBADMSG);
	/* size is honoured: the Uid line past it does not count. */
	assert_int_equal(auth_parse_status("State:\tS\nTgid:\t9\nUid:\t5\t5\t5\t5\n", 17, &st),
			 -EBADMSG);
}

static void test_decide(void **state)
{
	static const struct {
		uid_t peer, ruid, euid;
		AuthVerdict v;
	} t[] = {
		{ 0, 0, 0, AUTH_ALLOW },
		{ 0, 1000, 1000, AUTH_ALLOW },        /* root: anybody */
		{ 0, 1000, 0, AUTH_ALLOW },
		{ 1000, 1000, 1000, AUTH_ALLOW },     /* one's own */
		{ 1000, 1001, 1001, AUTH_DENY },      /* somebody else's */
		{ 1000, 0, 0, AUTH_DENY },            /* root's */
		{ 1000, 1000, 0, AUTH_DENY },         /* own, running setuid root */
		{ 1000, 0, 1000, AUTH_DENY },         /* root's, with euid set to the caller */
		{ 65534, 65534, 65534, AUTH_ALLOW },
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		AuthProcStatus st = { .ruid = t[i].ruid, .euid = t[i].euid, .suid = t[i].euid };

		if (auth_decide(t[i].peer, &st) != t[i].v)
			fail_msg("case %zu: peer %u on ruid %u euid %u", i, t[i].peer, t[i].ruid,
				 t[i].euid);
	}
}

/* A fake procfs with PID/status for pid, in a temporary directory. */
static char *fake_proc(pid_t pid, const char *status)
{
	char tmpl[] = "/tmp/coh-test-auth.XXXXXX", path[PATH_MAX];
	char *dir = mkdtemp(tmpl);
	FILE *f;

	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/%d", dir, (int) pid);
	assert_int_equal(mkdir(path, 0755), 0);
	if (status) {
		snprintf(path, sizeof(path), "%s/%d/status", dir, (int) pid);
		f = fopen(path, "we");
		assert_non_null(f);
		fputs(status, f);
		fclose(f);
	}
	return strdup(dir);
}

static void rm_proc(char *dir, pid_t pid)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%d/status", dir, (int) pid);
	(void) unlink(path);
	snprintf(path, sizeof(path), "%s/%d", dir, (int) pid);
	(void) rmdir(path);
	(void) rmdir(dir);
	free(dir);
}

/* status_fmt has one %d: the pid. */
_printf_(4, 5)
static int check(pid_t pid, uid_t peer, AuthProcStatus *st, const char *status_fmt, ...)
{
	char text[1024];
	char *dir;
	va_list ap;
	int fd = -EBADF, r;

	va_start(ap, status_fmt);
	vsnprintf(text, sizeof(text), status_fmt, ap);
	va_end(ap);
	dir = fake_proc(pid, text);
	r = auth_check_process(dir, pid, peer, &fd, st);
	if (r == 0) {
		assert_true(fd >= 0);
		assert_int_equal(auth_pidfd_alive(fd), 0);
		close(fd);
	} else
		assert_int_equal(fd, -EBADF);   /* nothing handed out on failure */
	rm_proc(dir, pid);
	return r;
}

static void test_check_process(void **state)
{
	pid_t self = getpid(), child;
	AuthProcStatus st;
	char *dir;
	int fd = -EBADF, status;

	assert_int_equal(check(self, 1000, &st, "State:\tS\nTgid:\t%d\nUid:\t1000\t1000\t1000\t1000\n"
			       "VmSize:\t1 kB\n", (int) self), 0);
	assert_int_equal(check(self, 0, &st, "State:\tS\nTgid:\t%d\nUid:\t1000\t1000\t1000\t1000\n"
			       "VmSize:\t1 kB\n", (int) self), 0);
	assert_int_equal(check(self, 1001, &st, "State:\tS\nTgid:\t%d\nUid:\t1000\t1000\t1000\t1000\n"
			       "VmSize:\t1 kB\n", (int) self), -EPERM);
	assert_int_equal(st.ruid, 1000);   /* filled in for the log line */
	assert_int_equal(check(self, 1000, &st, "State:\tS\nTgid:\t%d\nUid:\t1000\t0\t0\t0\nVmSize:\t1 kB\n", (int) self), -EPERM);
	/* Not migratable, only said to those who may act on it. */
	assert_int_equal(check(self, 0, &st, "State:\tZ (zombie)\nTgid:\t%d\nUid:\t5\t5\t5\t5\n", (int) self),
			 -EOWNERDEAD);
	assert_int_equal(check(self, 6, &st, "State:\tZ (zombie)\nTgid:\t%d\nUid:\t5\t5\t5\t5\n", (int) self),
			 -EPERM);
	assert_int_equal(check(self, 0, &st, "State:\tS\nTgid:\t%d\nUid:\t0\t0\t0\t0\n", (int) self),
			 -EMEDIUMTYPE);
	/* A thread id: its Tgid is another. */
	assert_int_equal(check(self, 0, &st, "State:\tS\nTgid:\t1%d\nUid:\t0\t0\t0\t0\nVmSize:\t1 kB\n", (int) self), -EINVAL);
	/* Malformed status. */
	assert_int_equal(check(self, 0, &st, "State:\tS\nTgid:\t%d\n", (int) self), -EBADMSG);

	/* No status file although the process exists: it went away meanwhile. */
	dir = fake_proc(self, NULL);
	assert_int_equal(auth_check_process(dir, self, 0, &fd, &st), -ESRCH);
	rm_proc(dir, self);

	/* Out of range. */
	assert_int_equal(auth_check_process("/proc", 0, 0, &fd, &st), -EINVAL);
	assert_int_equal(auth_check_process("/proc", -1, 0, &fd, &st), -EINVAL);

	/* A reaped child: no such process, whatever the fixture says. */
	child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_int_equal(check(child, 0, &st, "State:\tS\nTgid:\t%d\nUid:\t0\t0\t0\t0\nVmSize:\t1 kB\n", (int) child), -ESRCH);

	/* The real procfs: this process is its own user's, pid 1 is root's. */
	assert_int_equal(auth_check_process("/proc", self, getuid(), &fd, &st), 0);
	assert_int_equal(st.ruid, getuid());
	close(fd);
	if (getuid() != 0)
		assert_int_equal(auth_check_process("/proc", 1, getuid(), &fd, &st), -EPERM);
	else
		assert_int_equal(auth_check_process("/proc", 1, 65534, &fd, &st), -EPERM);
}

static pid_t thread_tid;
static sem_t thread_ready, thread_exit;

static void *thread_main(void *arg)
{
	thread_tid = gettid();
	sem_post(&thread_ready);
	sem_wait(&thread_exit);
	return NULL;
}

/* A thread id is not a process: InvalidParameter, whatever the kernel's pidfd_open() says. */
static void test_thread_id(void **state)
{
	AuthProcStatus st;
	pthread_t t;
	int fd = -EBADF;

	sem_init(&thread_ready, 0, 0);
	sem_init(&thread_exit, 0, 0);
	assert_int_equal(pthread_create(&t, NULL, thread_main, NULL), 0);
	sem_wait(&thread_ready);
	assert_int_not_equal(thread_tid, getpid());
	assert_int_equal(auth_check_process("/proc", thread_tid, getuid(), &fd, &st), -EINVAL);
	assert_int_equal(fd, -EBADF);
	sem_post(&thread_exit);
	assert_int_equal(pthread_join(t, NULL), 0);
	sem_destroy(&thread_ready);
	sem_destroy(&thread_exit);
}

/* A pidfd of a process that exited is not alive, even before it is reaped. */
static void test_pidfd_alive(void **state)
{
	pid_t child;
	int fd = -EBADF, status;
	AuthProcStatus st;
	char text[256];
	char *dir;

	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		pause();
		_exit(0);
	}
	snprintf(text, sizeof(text), "State:\tS\nTgid:\t%d\nUid:\t0\t0\t0\t0\nVmSize:\t1 kB\n",
		 (int) child);
	dir = fake_proc(child, text);
	assert_int_equal(auth_check_process(dir, child, 0, &fd, &st), 0);
	rm_proc(dir, child);
	assert_int_equal(auth_pidfd_alive(fd), 0);
	kill(child, SIGKILL);
	assert_int_equal(waitpid(child, &status, 0), child);
	/* Reaped: the pid may be reused, the pidfd still refers to the dead process. */
	assert_int_equal(auth_pidfd_alive(fd), -ESRCH);
	close(fd);
}

/*
 * A zombie (exited, not reaped by its parent) takes signal 0, but has exited:
 * its pidfd polls readable. Not alive; auth_check_process() calls it a zombie.
 */
static void test_pidfd_zombie(void **state)
{
	siginfo_t si = {};
	AuthProcStatus st;
	pid_t child;
	int fd, fd2 = -EBADF;

	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		pause();
		_exit(0);
	}
	fd = (int) syscall(SYS_pidfd_open, child, 0);
	assert_true(fd >= 0);
	assert_int_equal(auth_pidfd_exited(fd, 0), 0);
	assert_int_equal(auth_pidfd_alive(fd), 0);

	assert_int_equal(kill(child, SIGKILL), 0);
	/* Until it is a zombie; WNOWAIT leaves it one. */
	assert_int_equal(waitid(P_PID, (id_t) child, &si, WEXITED | WNOWAIT), 0);
	assert_int_equal(kill(child, 0), 0);     /* signal 0 alone would call it alive */
	assert_int_equal(auth_pidfd_exited(fd, 0), 1);
	assert_int_equal(auth_pidfd_exited(fd, -1), 1);
	assert_int_equal(auth_pidfd_alive(fd), -ESRCH);
	assert_int_equal(auth_check_process("/proc", child, getuid(), &fd2, &st), -EOWNERDEAD);
	assert_int_equal(fd2, -EBADF);
	assert_true(st.state == 'Z' || st.state == 'X');

	assert_int_equal(waitpid(child, NULL, 0), child);
	assert_int_equal(auth_pidfd_exited(fd, 0), 1);
	assert_int_equal(auth_pidfd_alive(fd), -ESRCH);
	close(fd);
	/* Not a pidfd: an error, not "alive". */
	assert_true(auth_pidfd_exited(-1, 0) < 0);
}

/*
 * As in the service: root without CAP_KILL. Signal 0 to another user's live
 * process is EPERM then, and the process must still count as alive.
 */
static void test_alive_without_cap_kill(void **state)
{
	pid_t target, checker;
	int status;

	if (geteuid() != 0) {
		/* Without root there is no CAP_KILL to drop: the same case, reached directly. */
		int fd = (int) syscall(SYS_pidfd_open, 1, 0);

		assert_true(fd >= 0);
		assert_int_equal(auth_pidfd_alive(fd), 0);
		close(fd);
		return;
	}

	target = fork();
	assert_true(target >= 0);
	if (target == 0) {
		if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
			_exit(1);
		pause();
		_exit(0);
	}

	checker = fork();
	assert_true(checker >= 0);
	if (checker == 0) {
		struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
		struct __user_cap_data_struct d[2] = {};
		int fd, k;

		if (syscall(SYS_capget, &h, d) < 0)
			_exit(10);
		d[0].effective &= ~(1U << CAP_KILL);
		if (syscall(SYS_capset, &h, d) < 0)
			_exit(11);
		/* Wait until the target runs as nobody. */
		for (k = 0; k < 100000; k++) {
			char path[64], *text = NULL;
			AuthProcStatus st;
			size_t n;
			bool ready;

			snprintf(path, sizeof(path), "/proc/%d/status", (int) target);
			if (read_file(path, 0, &text, &n) < 0)
				_exit(12);
			ready = auth_parse_status(text, n, &st) == 0 && st.euid == 65534;
			free(text);
			if (ready)
				break;
			usleep(1000);
		}
		if (kill(target, 0) == 0 || errno != EPERM)
			_exit(13);     /* CAP_KILL was not dropped: the test would prove nothing */
		fd = (int) syscall(SYS_pidfd_open, target, 0);
		if (fd < 0)
			_exit(14);
		_exit(auth_pidfd_alive(fd) == 0 ? 0 : 15);
	}
	assert_int_equal(waitpid(checker, &status, 0), checker);
	kill(target, SIGKILL);
	assert_int_equal(waitpid(target, NULL, 0), target);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_status),
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_check_process),
		cmocka_unit_test(test_thread_id),
		cmocka_unit_test(test_pidfd_alive),
		cmocka_unit_test(test_pidfd_zombie),
		cmocka_unit_test(test_alive_without_cap_kill),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
