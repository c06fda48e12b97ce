// SPDX-License-Identifier: GPL-2.0
/*
 * cohmem conformance: bad requests are refused with a precise errno and
 * change nothing; non-admin callers get EPERM.
 *
 * Runs as root inside the test VM; loads cohmem.ko itself; prints TAP.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/capability.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cohmem-client.h"

#define PLAN 59

#define A_PID	COH_BIT(COHMEM_A_PID)
#define A_START	COH_BIT(COHMEM_A_START)
#define A_LEN	COH_BIT(COHMEM_A_LENGTH)
#define A_DEST	COH_BIT(COHMEM_A_DEST)
#define A_POOL	COH_BIT(COHMEM_A_POOL_ID)
#define A_NR	COH_BIT(COHMEM_A_NR_PAGES)
#define A_RANGE	(A_PID | A_START | A_LEN)

static struct coh_env env;
static uint32_t P;
static char *buf;
static const size_t n = 64;

static const char *errname(int r)
{
	static char s[32];

	switch (-r) {
	case 0: return "0";
	case EINVAL: return "EINVAL";
	case ESRCH: return "ESRCH";
	case ENOENT: return "ENOENT";
	case EFAULT: return "EFAULT";
	case EPERM: return "EPERM";
	case ERANGE: return "ERANGE";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	default:
		snprintf(s, sizeof(s), "%d", r);
		return s;
	}
}

static int req(struct coh_client *c, int cmd, const struct coh_req *q)
{
	return coh_request(c, cmd, false, q, NULL);
}

static struct coh_req migrate_req(void)
{
	return (struct coh_req){
		.present = A_RANGE | A_DEST, .pid = getpid(), .start = (uintptr_t)buf,
		.length = n * COH_PAGE_SIZE, .dest = P,
	};
}

static void expect(int got, int want, const char *what)
{
	tap_ok(got == want, "%s -> %s (got %s)", what, errname(want), errname(got));
}

/* -EINVAL with an extended ACK message. */
static void expect_einval_msg(int got, const char *what)
{
	const char *m = coh_last_message(env.c);

	tap_ok(got == -EINVAL && m[0], "%s -> EINVAL with a message (got %s, \"%s\")", what,
	       errname(got), m);
}

/* One netlink attribute at p; returns its aligned size. */
static size_t put_attr(uint8_t *p, uint16_t type, const void *data, uint16_t len)
{
	struct nlattr *a = (struct nlattr *)p;

	a->nla_len = NLA_HDRLEN + len;
	a->nla_type = type;
	memcpy(p + NLA_HDRLEN, data, len);
	return NLA_ALIGN(a->nla_len);
}

/* SAMPLE with WINDOW nests: what is refused (13). */
static void test_sample_windows_errors(void)
{
	uint64_t w[COHMEM_SAMPLE_MAX_WINDOWS + 1][2], start = (uintptr_t)buf, len = COH_PAGE_SIZE;
	struct coh_req q = { .present = A_PID, .pid = getpid(), .windows = w, .nr_windows = 2 };
	uint32_t pid32 = getpid();
	uint8_t nest[64];
	size_t i, k;

	for (i = 0; i <= COHMEM_SAMPLE_MAX_WINDOWS; i++) {
		w[i][0] = (uintptr_t)buf + i * COH_PAGE_SIZE;
		w[i][1] = COH_PAGE_SIZE;
	}
	q.nr_windows = COHMEM_SAMPLE_MAX_WINDOWS + 1;
	expect_einval_msg(req(env.c, COHMEM_CMD_SAMPLE, &q), "SAMPLE with 65 windows");
	q.nr_windows = 2;
	w[1][0] = w[0][0];
	expect_einval_msg(req(env.c, COHMEM_CMD_SAMPLE, &q), "SAMPLE overlapping windows");
	w[0][0] = (uintptr_t)buf + 4 * COH_PAGE_SIZE;
	expect_einval_msg(req(env.c, COHMEM_CMD_SAMPLE, &q), "SAMPLE windows out of address order");
	w[0][0] = (uintptr_t)buf + 1;
	expect_einval_msg(req(env.c, COHMEM_CMD_SAMPLE, &q), "SAMPLE unaligned window");
	w[0][0] = (uintptr_t)buf;
	w[0][1] = 0;
	expect_einval_msg(req(env.c, COHMEM_CMD_SAMPLE, &q), "SAMPLE empty window");
	w[0][1] = (COHMEM_SAMPLE_MAX_PAGES / 2 + 1) * COH_PAGE_SIZE;
	w[1][0] = w[0][0] + w[0][1];
	w[1][1] = w[0][1];
	expect_einval_msg(req(env.c, COHMEM_CMD_SAMPLE, &q),
			  "SAMPLE windows of more than COHMEM_SAMPLE_MAX_PAGES pages in all");
	w[0][1] = w[1][1] = COH_PAGE_SIZE;
	w[1][0] = w[0][0] + COH_PAGE_SIZE;
	q.present |= A_START | A_LEN;
	q.start = (uintptr_t)buf;
	q.length = COH_PAGE_SIZE;
	expect_einval_msg(req(env.c, COHMEM_CMD_SAMPLE, &q), "SAMPLE with WINDOW and START/LENGTH");
	q.present = 0;
	expect(req(env.c, COHMEM_CMD_SAMPLE, &q), -EINVAL, "SAMPLE with WINDOW without PID");

	/* nests built by hand, after one good window */
	q = (struct coh_req){ .present = A_PID, .pid = getpid(), .windows = w, .nr_windows = 1,
			      .raw_type = COHMEM_A_WINDOW | NLA_F_NESTED, .raw_data = nest };
	w[0][0] = (uintptr_t)buf;
	k = put_attr(nest, COHMEM_A_START, &start, sizeof(start));
	q.raw_len = (int)k;
	expect_einval_msg(req(env.c, COHMEM_CMD_SAMPLE, &q), "SAMPLE window without LENGTH");
	start += 8 * COH_PAGE_SIZE;
	k = put_attr(nest, COHMEM_A_START, &start, sizeof(start));
	k += put_attr(nest + k, COHMEM_A_LENGTH, &len, sizeof(len));
	k += put_attr(nest + k, COHMEM_A_PID, &pid32, sizeof(pid32));
	q.raw_len = (int)k;
	expect_einval_msg(req(env.c, COHMEM_CMD_SAMPLE, &q), "SAMPLE window with a PID inside");
	k = put_attr(nest, COHMEM_A_START, &start, sizeof(start));
	((struct nlattr *)nest)->nla_len = 40;	/* longer than the nest */
	q.raw_len = (int)k;
	expect_einval_msg(req(env.c, COHMEM_CMD_SAMPLE, &q),
			  "SAMPLE window with a truncated attribute");
	/* well formed but without NLA_F_NESTED, then as it should be */
	k = put_attr(nest, COHMEM_A_START, &start, sizeof(start));
	k += put_attr(nest + k, COHMEM_A_LENGTH, &len, sizeof(len));
	q.raw_len = (int)k;
	q.raw_type = COHMEM_A_WINDOW;
	expect_einval_msg(req(env.c, COHMEM_CMD_SAMPLE, &q), "SAMPLE WINDOW without NLA_F_NESTED");
	q.raw_type = COHMEM_A_WINDOW | NLA_F_NESTED;
	expect(req(env.c, COHMEM_CMD_SAMPLE, &q), 0, "SAMPLE two good windows, one built by hand");
}

static void expect2(int got, int want1, int want2, const char *what)
{
	tap_ok(got == want1 || got == want2, "%s -> %s or %s (got %s)", what, errname(want1),
	       errname(want2), errname(got));
}

/* Forks, runs @fn in the child, returns its result (a -errno) through the exit code. */
static int in_child(int (*fn)(void))
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(-fn() & 0xff);
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -EIO;
	return -WEXITSTATUS(status);
}

static int as_nobody_cmd;

static int nobody_request(void)
{
	struct coh_req q = migrate_req();
	struct coh_client *c;
	int r;

	if (setgid(65534) < 0 || setuid(65534) < 0)
		return -ECHILD;
	r = coh_open(&c);
	if (r < 0)
		return r == -ENOENT ? -ENOMSG : r;
	if (as_nobody_cmd == COHMEM_CMD_EVICT)
		q = (struct coh_req){ .present = A_POOL | A_NR, .pool_id = P, .nr_pages = 1 };
	else if (as_nobody_cmd != COHMEM_CMD_MIGRATE)
		q.present = A_RANGE;
	r = req(c, as_nobody_cmd, &q);
	coh_close(c);
	return r;
}

static int nobody_pool_get(void)
{
	struct coh_client *c;
	struct coh_pool p;
	int r;

	if (setgid(65534) < 0 || setuid(65534) < 0)
		return -ECHILD;
	r = coh_open(&c);
	if (r < 0)
		return r == -ENOENT ? -ENOMSG : r;
	r = coh_pool_get(c, P, &p);
	if (r == 0 && p.total != env.pool.total)
		r = -EBADMSG;
	coh_close(c);
	return r;
}

/* The family lives in the initial network namespace only. */
static int other_netns_open(void)
{
	struct coh_client *c = NULL;
	int r;

	if (unshare(CLONE_NEWNET) < 0)
		return -ECHILD;
	r = coh_open(&c);
	coh_close(c);
	return r;
}

static pid_t thread_tid;
static int thread_go[2], thread_stop[2];

static void *idle_thread(void *arg)
{
	char c;

	thread_tid = gettid();
	if (write(thread_go[1], "r", 1) != 1)
		return NULL;
	if (read(thread_stop[0], &c, 1) != 1)
		return NULL;
	return NULL;
}

/* Root, but CAP_NET_ADMIN dropped from the effective and permitted sets. */
static int no_netadmin_request(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	struct coh_req q = migrate_req();
	struct coh_client *c;
	int r;

	if (syscall(SYS_capget, &h, d) < 0)
		return -ECHILD;
	d[CAP_NET_ADMIN / 32].effective &= ~(1U << (CAP_NET_ADMIN % 32));
	d[CAP_NET_ADMIN / 32].permitted &= ~(1U << (CAP_NET_ADMIN % 32));
	d[CAP_NET_ADMIN / 32].inheritable &= ~(1U << (CAP_NET_ADMIN % 32));
	if (syscall(SYS_capset, &h, d) < 0)
		return -ECHILD;
	r = coh_open(&c);
	if (r < 0)
		return r == -ENOENT ? -ENOMSG : r;
	r = req(c, COHMEM_CMD_MIGRATE, &q);
	coh_close(c);
	return r;
}

int main(void)
{
	struct coh_req q;
	struct coh_counts k;
	uint64_t free0;
	pid_t zombie;
	char *hole;
	int r;

	r = coh_env_setup(&env, "t0", NULL);
	tap_init("cohmem-errors", PLAN);
	if (!tap_ok(r == 0, "load cohmem with pool t0 and find it (r=%d)", r))
		return tap_finish();
	P = env.pool.id;
	buf = mmap(NULL, n * COH_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	madvise(buf, n * COH_PAGE_SIZE, MADV_NOHUGEPAGE);
	coh_fill(buf, n, 7);
	free0 = coh_env_free(&env);

	/* the request every case below breaks in one way works as such */
	q = migrate_req();
	q.length = COH_PAGE_SIZE;
	r = coh_migrate(env.c, getpid(), (uintptr_t)buf, COH_PAGE_SIZE, P, &k);
	tap_ok(r == 0 && k.migrated == 1, "baseline: valid one-page MIGRATE works (r=%d)", r);
	coh_migrate(env.c, getpid(), (uintptr_t)buf, COH_PAGE_SIZE, COHMEM_DEST_SYSTEM, &k);

	q = migrate_req();
	q.pid = 0x3fffff;	/* above pid_max's ceiling */
	expect(req(env.c, COHMEM_CMD_MIGRATE, &q), -ESRCH, "MIGRATE pid with no process");
	q = migrate_req();
	q.pid = 2;		/* kthreadd */
	expect2(req(env.c, COHMEM_CMD_MIGRATE, &q), -EINVAL, -ESRCH, "MIGRATE kernel thread");
	fflush(stdout);
	zombie = fork();
	if (zombie == 0)
		_exit(0);
	usleep(200000);
	q = migrate_req();
	q.pid = zombie;
	{
		/* only meaningful once the child really is a zombie */
		char path[64], state = 0, line[256];
		FILE *f;
		int i;

		for (i = 0; i < 100 && state != 'Z'; i++) {
			snprintf(path, sizeof(path), "/proc/%d/stat", zombie);
			f = fopen(path, "re");
			if (f && fgets(line, sizeof(line), f)) {
				char *p = strrchr(line, ')');

				state = p ? p[2] : 0;
			}
			if (f)
				fclose(f);
			if (state != 'Z')
				usleep(50000);
		}
		if (state == 'Z')
			expect2(req(env.c, COHMEM_CMD_MIGRATE, &q), -EINVAL, -ESRCH,
				"MIGRATE zombie process");
		else
			tap_skip("child never became a zombie", "MIGRATE zombie process");
	}
	waitpid(zombie, NULL, 0);

	q = migrate_req();
	q.start += 8;
	expect(req(env.c, COHMEM_CMD_MIGRATE, &q), -EINVAL, "MIGRATE unaligned start");
	q = migrate_req();
	q.length -= 100;
	expect(req(env.c, COHMEM_CMD_MIGRATE, &q), -EINVAL, "MIGRATE unaligned length");
	q = migrate_req();
	q.length = 0;
	expect(req(env.c, COHMEM_CMD_MIGRATE, &q), -EINVAL, "MIGRATE zero length");
	q = migrate_req();
	q.start = 0xfffffffffffff000ULL;
	q.length = 0x2000;
	expect2(req(env.c, COHMEM_CMD_MIGRATE, &q), -EINVAL, -EFAULT, "MIGRATE start+length wraps");
	q = migrate_req();
	q.present &= ~A_PID;
	expect(req(env.c, COHMEM_CMD_MIGRATE, &q), -EINVAL, "MIGRATE without PID");
	q = migrate_req();
	q.present &= ~A_START;
	expect(req(env.c, COHMEM_CMD_MIGRATE, &q), -EINVAL, "MIGRATE without START");
	q = migrate_req();
	q.present &= ~A_LEN;
	expect(req(env.c, COHMEM_CMD_MIGRATE, &q), -EINVAL, "MIGRATE without LENGTH");
	q = migrate_req();
	q.present &= ~A_DEST;
	expect(req(env.c, COHMEM_CMD_MIGRATE, &q), -EINVAL, "MIGRATE without DEST");
	q = migrate_req();
	q.dest = P + 1000;
	expect(req(env.c, COHMEM_CMD_MIGRATE, &q), -ENOENT, "MIGRATE to an unknown pool");

	hole = mmap(NULL, 16 * COH_PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(hole, 16 * COH_PAGE_SIZE);
	q = migrate_req();
	q.start = (uintptr_t)hole;
	q.length = 16 * COH_PAGE_SIZE;
	expect(req(env.c, COHMEM_CMD_MIGRATE, &q), -EFAULT, "MIGRATE a range with no VMA");

	q = (struct coh_req){ .present = A_RANGE & ~A_PID, .start = (uintptr_t)buf,
			      .length = n * COH_PAGE_SIZE };
	expect(req(env.c, COHMEM_CMD_RESIDENCY, &q), -EINVAL, "RESIDENCY without PID");
	q = (struct coh_req){ .present = A_RANGE, .pid = 0x3fffff, .start = (uintptr_t)buf,
			      .length = n * COH_PAGE_SIZE };
	expect(req(env.c, COHMEM_CMD_RESIDENCY, &q), -ESRCH, "RESIDENCY pid with no process");
	q = (struct coh_req){ .present = A_RANGE, .pid = getpid(), .start = (uintptr_t)buf + 1,
			      .length = n * COH_PAGE_SIZE };
	expect(req(env.c, COHMEM_CMD_SAMPLE, &q), -EINVAL, "SAMPLE unaligned start");
	q.start = (uintptr_t)buf;
	q.length = 0;
	expect(req(env.c, COHMEM_CMD_SAMPLE, &q), -EINVAL, "SAMPLE zero length");
	test_sample_windows_errors();
	q = (struct coh_req){ .present = A_NR, .nr_pages = 1 };
	expect(req(env.c, COHMEM_CMD_EVICT, &q), -EINVAL, "EVICT without POOL_ID");
	q = (struct coh_req){ .present = A_POOL | A_NR, .pool_id = P + 1000, .nr_pages = 1 };
	expect(req(env.c, COHMEM_CMD_EVICT, &q), -ENOENT, "EVICT an unknown pool");
	q = (struct coh_req){ .present = A_POOL, .pool_id = P + 1000 };
	expect(req(env.c, COHMEM_CMD_POOL_GET, &q), -ENOENT, "POOL_GET an unknown pool");

	/* the policy is strict */
	{
		uint64_t pid64 = getpid();
		uint32_t one = 1;

		q = migrate_req();
		q.present &= ~A_PID;
		q.raw_type = COHMEM_A_PID;
		q.raw_data = &pid64;
		q.raw_len = sizeof(pid64);
		expect(req(env.c, COHMEM_CMD_MIGRATE, &q), -EINVAL, "MIGRATE with PID as u64");
		q = migrate_req();
		q.present |= COH_BIT(COHMEM_A_CLEAR);
		q.clear = true;
		expect(req(env.c, COHMEM_CMD_MIGRATE, &q), -EINVAL,
		       "MIGRATE with CLEAR, an attribute it does not take");
		q = migrate_req();
		q.raw_type = COHMEM_A_MAX + 1;
		q.raw_data = &one;
		q.raw_len = sizeof(one);
		expect(req(env.c, COHMEM_CMD_MIGRATE, &q), -EINVAL, "MIGRATE with an unknown attribute");
		q = migrate_req();
		q.bad_reserved = true;
		expect(req(env.c, COHMEM_CMD_MIGRATE, &q), -EINVAL,
		       "MIGRATE with a non-zero reserved header field");
	}
	q = migrate_req();
	q.start = 0x7ffffffff000ULL;
	q.length = 2 * COH_PAGE_SIZE;
	expect(req(env.c, COHMEM_CMD_MIGRATE, &q), -EINVAL,
	       "MIGRATE range leaving the user address space");
	/* the first failing check gives the error: range, pool, process, mapping */
	q = migrate_req();
	q.start += 8;
	q.pid = 0x3fffff;
	expect(req(env.c, COHMEM_CMD_MIGRATE, &q), -EINVAL, "order: unaligned before no process");
	q = migrate_req();
	q.dest = P + 1000;
	q.pid = 0x3fffff;
	expect(req(env.c, COHMEM_CMD_MIGRATE, &q), -ENOENT, "order: unknown pool before no process");
	q = migrate_req();
	q.pid = 0x3fffff;
	q.start = (uintptr_t)hole;
	q.length = 16 * COH_PAGE_SIZE;
	expect(req(env.c, COHMEM_CMD_MIGRATE, &q), -ESRCH, "order: no process before no mapping");
	q = (struct coh_req){ 0 };
	expect(req(env.c, COHMEM_CMD_POOL_GET, &q), -EINVAL, "POOL_GET do without POOL_ID");
	q = (struct coh_req){ .present = A_POOL | A_NR, .pool_id = P, .nr_pages = 0 };
	expect(req(env.c, COHMEM_CMD_EVICT, &q), -EINVAL, "EVICT zero pages");
	expect(in_child(nobody_pool_get), 0, "POOL_GET as uid 65534 (open to every user)");
	expect(in_child(other_netns_open), -ENOENT, "no family in another network namespace");
	{
		pthread_t t;
		char c = 'x';

		r = pipe(thread_go) || pipe(thread_stop) ? -errno : 0;
		r = r ?: pthread_create(&t, NULL, idle_thread, NULL);
		r = r ?: (read(thread_go[0], &c, 1) == 1 ? 0 : -EIO);
		if (r == 0) {
			r = coh_migrate(env.c, thread_tid, (uintptr_t)buf, n * COH_PAGE_SIZE, P, &k);
			tap_ok(r == 0 && k.migrated == n && thread_tid != getpid(),
			       "MIGRATE by thread id %d works on the process's memory (r=%d)",
			       (int)thread_tid, r);
			r = coh_migrate(env.c, getpid(), (uintptr_t)buf, n * COH_PAGE_SIZE,
					COHMEM_DEST_SYSTEM, &k);
			if (write(thread_stop[1], "q", 1) == 1)
				pthread_join(t, NULL);
		} else {
			tap_ok(false, "MIGRATE by thread id: start a thread (r=%d)", r);
		}
	}

	as_nobody_cmd = COHMEM_CMD_MIGRATE;
	expect(in_child(nobody_request), -EPERM, "MIGRATE as uid 65534");
	as_nobody_cmd = COHMEM_CMD_RESIDENCY;
	expect(in_child(nobody_request), -EPERM, "RESIDENCY as uid 65534");
	as_nobody_cmd = COHMEM_CMD_SAMPLE;
	expect(in_child(nobody_request), -EPERM, "SAMPLE as uid 65534");
	as_nobody_cmd = COHMEM_CMD_EVICT;
	expect(in_child(nobody_request), -EPERM, "EVICT as uid 65534");
	expect(in_child(no_netadmin_request), -EPERM, "MIGRATE as root without CAP_NET_ADMIN");

	/* nothing of the above moved or lost anything */
	tap_ok(coh_env_free(&env) == free0, "refused requests left pool free at %llu (now %llu)",
	       (unsigned long long)free0, (unsigned long long)coh_env_free(&env));
	{
		size_t in = 1;

		coh_pages_in(getpid(), (uintptr_t)buf, n, env.lo_pfn, env.hi_pfn, &in, NULL);
		tap_ok(in == 0 && coh_check(buf, n, 7) == 0,
		       "refused requests left the buffer in RAM with its data (%zu in pool)", in);
	}
	/* and the family still works */
	r = coh_migrate(env.c, getpid(), (uintptr_t)buf, n * COH_PAGE_SIZE, P, &k);
	tap_ok(r == 0 && k.migrated == n, "a valid MIGRATE still works afterwards (r=%d)", r);
	r = coh_migrate(env.c, getpid(), (uintptr_t)buf, n * COH_PAGE_SIZE, COHMEM_DEST_SYSTEM, &k);
	tap_ok(r == 0 && k.migrated == n && coh_check(buf, n, 7) == 0, "and back (r=%d)", r);

	munmap(buf, n * COH_PAGE_SIZE);
	coh_env_teardown(&env);
	r = coh_module_unload();
	tap_ok(r == 0, "unload (r=%d)", r);
	return tap_finish();
}
