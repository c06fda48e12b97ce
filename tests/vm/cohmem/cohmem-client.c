// SPDX-License-Identifier: GPL-2.0
/*
 * Shared helpers for the in-VM cohmem tests and benchmark; see cohmem-client.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>

#include "cohmem-client.h"

struct coh_client {
	struct nl_sock *sk;
	int family;
	char message[256];	/* extended ACK message of the last request */
};

/* libnl error codes only reach us for local failures; the kernel's errno
 * comes through the error callback untouched. */
static int coh_nlerr(int nlerr)
{
	switch (-nlerr) {
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_AGAIN:
		return -EAGAIN;
	case NLE_OBJ_NOTFOUND:
		return -ENOENT;
	case NLE_PERM:
		return -EPERM;
	case NLE_MSGSIZE:
		return -EMSGSIZE;
	default:
		return -EIO;
	}
}

static int coh_socket(struct nl_sock **ret)
{
	struct nl_sock *sk = nl_socket_alloc();
	int one = 1, r;

	if (!sk)
		return -ENOMEM;
	r = genl_connect(sk);
	if (r < 0) {
		nl_socket_free(sk);
		return coh_nlerr(r);
	}
	nl_socket_enable_msg_peek(sk);
	nl_socket_set_buffer_size(sk, 4 << 20, 1 << 20);
	/* extended ACK messages, the request not echoed back */
	setsockopt(nl_socket_get_fd(sk), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	setsockopt(nl_socket_get_fd(sk), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	*ret = sk;
	return 0;
}

int coh_open(struct coh_client **ret)
{
	struct coh_client *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	r = coh_socket(&c->sk);
	if (r < 0) {
		free(c);
		return r;
	}
	c->family = genl_ctrl_resolve(c->sk, COHMEM_FAMILY_NAME);
	if (c->family < 0) {
		nl_socket_free(c->sk);
		free(c);
		return -ENOENT;
	}
	*ret = c;
	return 0;
}

void coh_close(struct coh_client *c)
{
	if (!c)
		return;
	nl_socket_free(c->sk);
	free(c);
}

int coh_family_id(struct coh_client *c)
{
	return c->family;
}

const char *coh_last_message(struct coh_client *c)
{
	return c->message;
}

void coh_reply_free(struct coh_reply *r)
{
	free(r->extents);
	free(r->bitmap);
	memset(r, 0, sizeof(*r));
}

static void coh_pool_from_tb(struct nlattr **tb, struct coh_pool *p)
{
	memset(p, 0, sizeof(*p));
	p->nid = -2;
	if (tb[COHMEM_A_POOL_ID])
		p->id = nla_get_u32(tb[COHMEM_A_POOL_ID]);
	if (tb[COHMEM_A_POOL_NAME])
		snprintf(p->name, sizeof(p->name), "%s", nla_get_string(tb[COHMEM_A_POOL_NAME]));
	if (tb[COHMEM_A_POOL_PHYS_START])
		p->phys_start = nla_get_u64(tb[COHMEM_A_POOL_PHYS_START]);
	if (tb[COHMEM_A_POOL_PHYS_SIZE])
		p->phys_size = nla_get_u64(tb[COHMEM_A_POOL_PHYS_SIZE]);
	if (tb[COHMEM_A_POOL_NID])
		p->nid = (int32_t)nla_get_u32(tb[COHMEM_A_POOL_NID]);
	if (tb[COHMEM_A_POOL_TOTAL_PAGES])
		p->total = nla_get_u64(tb[COHMEM_A_POOL_TOTAL_PAGES]);
	if (tb[COHMEM_A_POOL_FREE_PAGES])
		p->free = nla_get_u64(tb[COHMEM_A_POOL_FREE_PAGES]);
	if (tb[COHMEM_A_POOL_MIGRATED_IN])
		p->migrated_in = nla_get_u64(tb[COHMEM_A_POOL_MIGRATED_IN]);
	if (tb[COHMEM_A_POOL_MIGRATED_OUT])
		p->migrated_out = nla_get_u64(tb[COHMEM_A_POOL_MIGRATED_OUT]);
	if (tb[COHMEM_A_POOL_EVICTED])
		p->evicted = nla_get_u64(tb[COHMEM_A_POOL_EVICTED]);
	if (tb[COHMEM_A_POOL_FAILURES])
		p->failures = nla_get_u64(tb[COHMEM_A_POOL_FAILURES]);
	if (tb[COHMEM_A_POOL_LOW_PAGES])
		p->low = nla_get_u64(tb[COHMEM_A_POOL_LOW_PAGES]);
	if (tb[COHMEM_A_POOL_HIGH_PAGES])
		p->high = nla_get_u64(tb[COHMEM_A_POOL_HIGH_PAGES]);
}

static int coh_parse_msg(struct nl_msg *msg, void *arg)
{
	struct coh_reply *r = arg;
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct nlattr *tb[COHMEM_A_MAX + 1];
	struct nlattr *a;
	int rem, i;

	if (genlmsg_parse(nlh, 0, tb, COHMEM_A_MAX, NULL) < 0)
		return NL_SKIP;
	r->nr_msgs++;
	r->cmd = ((struct genlmsghdr *)nlmsg_data(nlh))->cmd;
	for (i = 1; i <= COHMEM_A_MAX; i++) {
		if (!tb[i])
			continue;
		switch (nla_len(tb[i])) {
		case 4:
			r->v[i] = i == COHMEM_A_POOL_NID ? (uint64_t)(int64_t)(int32_t)nla_get_u32(tb[i])
							 : nla_get_u32(tb[i]);
			r->have |= COH_BIT(i);
			break;
		case 8:
			r->v[i] = nla_get_u64(tb[i]);
			r->have |= COH_BIT(i);
			break;
		default:
			break;
		}
	}
	if (tb[COHMEM_A_POOL_ID] && tb[COHMEM_A_POOL_TOTAL_PAGES] && r->nr_pools < COH_MAX_POOLS)
		coh_pool_from_tb(tb, &r->pools[r->nr_pools++]);
	if (tb[COHMEM_A_TRUNCATED])
		r->truncated = true;
	r->nr_windows = 0;
	if (tb[COHMEM_A_BITMAP]) {
		size_t len = nla_len(tb[COHMEM_A_BITMAP]);

		free(r->bitmap);
		r->bitmap = malloc(len ? len : 1);
		if (r->bitmap) {
			memcpy(r->bitmap, nla_data(tb[COHMEM_A_BITMAP]), len);
			r->bitmap_len = len;
		}
	}
	/* RESIDENT and EXTENT repeat: walk the attribute stream. */
	nla_for_each_attr(a, genlmsg_attrdata(nlmsg_data(nlh), 0),
			  genlmsg_attrlen(nlmsg_data(nlh), 0), rem) {
		struct nlattr *nt[COHMEM_A_MAX + 1];
		int type = nla_type(a);

		if (type != COHMEM_A_RESIDENT && type != COHMEM_A_EXTENT && type != COHMEM_A_WINDOW)
			continue;
		if (nla_parse_nested(nt, COHMEM_A_MAX, a, NULL) < 0)
			continue;
		if (type == COHMEM_A_WINDOW) {
			struct coh_window *w = &r->windows[r->nr_windows];

			if (r->nr_windows >= COHMEM_SAMPLE_MAX_WINDOWS)
				continue;
			w->start = nt[COHMEM_A_START] ? nla_get_u64(nt[COHMEM_A_START]) : ~0ULL;
			w->nr_pages = nt[COHMEM_A_NR_PAGES] ?
				      nla_get_u64(nt[COHMEM_A_NR_PAGES]) : ~0ULL;
			w->nr_young = nt[COHMEM_A_NR_YOUNG] ?
				      nla_get_u64(nt[COHMEM_A_NR_YOUNG]) : ~0ULL;
			w->no_mapping = nt[COHMEM_A_NO_MAPPING] != NULL;
			r->nr_windows++;
		} else if (type == COHMEM_A_RESIDENT) {
			if (r->nr_resident >= COH_MAX_POOLS)
				continue;
			r->resident[r->nr_resident].pool_id =
				nt[COHMEM_A_POOL_ID] ? nla_get_u32(nt[COHMEM_A_POOL_ID]) : ~0U;
			r->resident[r->nr_resident].nr_pages =
				nt[COHMEM_A_NR_PAGES] ? nla_get_u64(nt[COHMEM_A_NR_PAGES]) : ~0ULL;
			r->nr_resident++;
		} else {
			struct coh_extent *e = realloc(r->extents,
						       (r->nr_extents + 1) * sizeof(*e));

			if (!e)
				continue;
			r->extents = e;
			e[r->nr_extents].pool_id =
				nt[COHMEM_A_POOL_ID] ? nla_get_u32(nt[COHMEM_A_POOL_ID]) : ~0U;
			e[r->nr_extents].start =
				nt[COHMEM_A_START] ? nla_get_u64(nt[COHMEM_A_START]) : 0;
			e[r->nr_extents].length =
				nt[COHMEM_A_LENGTH] ? nla_get_u64(nt[COHMEM_A_LENGTH]) : 0;
			r->nr_extents++;
		}
	}
	return NL_OK;
}

struct coh_status {
	int status;		/* 1 while waiting */
	struct coh_client *c;
};

static int coh_err_cb(struct sockaddr_nl *nla, struct nlmsgerr *err, void *arg)
{
	struct coh_status *st = arg;
	struct nlmsghdr *nlh = (struct nlmsghdr *)((char *)err - NLMSG_HDRLEN);
	int len = (int)nlh->nlmsg_len - NLMSG_HDRLEN - (int)sizeof(*err);
	struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];

	(void)nla;
	st->status = err->error;
	/* NETLINK_CAP_ACK: the TLVs follow the request's header */
	if ((nlh->nlmsg_flags & NLM_F_ACK_TLVS) && len > 0 &&
	    nla_parse(tb, NLMSGERR_ATTR_MAX, (struct nlattr *)(err + 1), len, NULL) == 0 &&
	    tb[NLMSGERR_ATTR_MSG])
		snprintf(st->c->message, sizeof(st->c->message), "%.*s",
			 nla_len(tb[NLMSGERR_ATTR_MSG]),
			 (const char *)nla_data(tb[NLMSGERR_ATTR_MSG]));
	return NL_STOP;
}

static int coh_done_cb(struct nl_msg *msg, void *arg)
{
	struct coh_status *st = arg;

	(void)msg;
	st->status = 0;
	return NL_STOP;
}

static int coh_put_req(struct nl_msg *msg, const struct coh_req *q)
{
	if (!q)
		return 0;
	if ((q->present & COH_BIT(COHMEM_A_POOL_ID)) && nla_put_u32(msg, COHMEM_A_POOL_ID, q->pool_id))
		return -EMSGSIZE;
	if ((q->present & COH_BIT(COHMEM_A_PID)) && nla_put_u32(msg, COHMEM_A_PID, q->pid))
		return -EMSGSIZE;
	if ((q->present & COH_BIT(COHMEM_A_START)) && nla_put_u64(msg, COHMEM_A_START, q->start))
		return -EMSGSIZE;
	if ((q->present & COH_BIT(COHMEM_A_LENGTH)) && nla_put_u64(msg, COHMEM_A_LENGTH, q->length))
		return -EMSGSIZE;
	if ((q->present & COH_BIT(COHMEM_A_DEST)) && nla_put_u32(msg, COHMEM_A_DEST, q->dest))
		return -EMSGSIZE;
	if ((q->present & COH_BIT(COHMEM_A_NR_PAGES)) &&
	    nla_put_u64(msg, COHMEM_A_NR_PAGES, q->nr_pages))
		return -EMSGSIZE;
	if ((q->present & COH_BIT(COHMEM_A_CLEAR)) && q->clear && nla_put_flag(msg, COHMEM_A_CLEAR))
		return -EMSGSIZE;
	for (int i = 0; i < q->nr_windows; i++) {
		struct nlattr *nest = nla_nest_start(msg, COHMEM_A_WINDOW | NLA_F_NESTED);

		if (!nest || nla_put_u64(msg, COHMEM_A_START, q->windows[i][0]) ||
		    nla_put_u64(msg, COHMEM_A_LENGTH, q->windows[i][1]))
			return -EMSGSIZE;
		nla_nest_end(msg, nest);
	}
	if (q->raw_type && nla_put(msg, q->raw_type, q->raw_len, q->raw_data))
		return -EMSGSIZE;
	if (q->bad_reserved)
		((struct genlmsghdr *)nlmsg_data(nlmsg_hdr(msg)))->reserved = 1;
	return 0;
}

int coh_request(struct coh_client *c, int cmd, bool dump, const struct coh_req *req,
		struct coh_reply *ret)
{
	struct coh_reply scratch;
	struct coh_status st = { .status = 1, .c = c };
	struct nl_msg *msg;
	struct nl_cb *cb;
	int r;

	c->message[0] = 0;
	if (!ret)
		ret = &scratch;
	memset(ret, 0, sizeof(*ret));
	msg = nlmsg_alloc();
	if (!msg)
		return -ENOMEM;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, c->family, 0,
			 NLM_F_REQUEST | NLM_F_ACK | (dump ? NLM_F_DUMP : 0), cmd,
			 COHMEM_FAMILY_VERSION)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	r = coh_put_req(msg, req);
	if (r < 0) {
		nlmsg_free(msg);
		return r;
	}
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!cb) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	nl_cb_err(cb, NL_CB_CUSTOM, coh_err_cb, &st);
	nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, coh_done_cb, &st);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, coh_done_cb, &st);
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, coh_parse_msg, ret);
	r = nl_send_auto(c->sk, msg);
	nlmsg_free(msg);
	if (r < 0) {
		nl_cb_put(cb);
		return coh_nlerr(r);
	}
	while (st.status > 0) {
		r = nl_recvmsgs(c->sk, cb);
		if (r < 0 && st.status > 0) {
			st.status = coh_nlerr(r);
			break;
		}
	}
	nl_cb_put(cb);
	if (ret == &scratch)
		coh_reply_free(&scratch);
	return st.status;
}

int coh_pool_dump(struct coh_client *c, struct coh_pool *pools, int max)
{
	struct coh_reply rep;
	int r, n;

	r = coh_request(c, COHMEM_CMD_POOL_GET, true, NULL, &rep);
	if (r < 0)
		return r;
	n = rep.nr_pools < max ? rep.nr_pools : max;
	memcpy(pools, rep.pools, n * sizeof(*pools));
	coh_reply_free(&rep);
	return n;
}

int coh_pool_get(struct coh_client *c, uint32_t id, struct coh_pool *ret)
{
	struct coh_req q = { .present = COH_BIT(COHMEM_A_POOL_ID), .pool_id = id };
	struct coh_reply rep;
	int r;

	r = coh_request(c, COHMEM_CMD_POOL_GET, false, &q, &rep);
	if (r < 0)
		return r;
	if (rep.nr_pools != 1) {
		coh_reply_free(&rep);
		return -EBADMSG;
	}
	*ret = rep.pools[0];
	coh_reply_free(&rep);
	return 0;
}

int coh_pool_find(struct coh_client *c, const char *name, struct coh_pool *ret)
{
	struct coh_pool pools[COH_MAX_POOLS];
	int n, i;

	n = coh_pool_dump(c, pools, COH_MAX_POOLS);
	if (n < 0)
		return n;
	for (i = 0; i < n; i++) {
		if (!strcmp(pools[i].name, name)) {
			*ret = pools[i];
			return 0;
		}
	}
	return -ENOENT;
}

static void coh_counts_from(const struct coh_reply *rep, struct coh_counts *k)
{
	k->migrated = rep->v[COHMEM_A_MIGRATED];
	k->already = rep->v[COHMEM_A_ALREADY];
	k->not_present = rep->v[COHMEM_A_SKIP_NOT_PRESENT];
	k->file = rep->v[COHMEM_A_SKIP_FILE];
	k->shared = rep->v[COHMEM_A_SKIP_SHARED];
	k->pinned = rep->v[COHMEM_A_SKIP_PINNED];
	k->unmovable = rep->v[COHMEM_A_SKIP_UNMOVABLE];
	k->no_space = rep->v[COHMEM_A_SKIP_NO_SPACE];
	k->failed = rep->v[COHMEM_A_FAILED];
}

int coh_migrate(struct coh_client *c, pid_t pid, uint64_t start, uint64_t len, uint32_t dest,
		struct coh_counts *ret)
{
	struct coh_req q = {
		.present = COH_BIT(COHMEM_A_PID) | COH_BIT(COHMEM_A_START) |
			   COH_BIT(COHMEM_A_LENGTH) | COH_BIT(COHMEM_A_DEST),
		.pid = pid, .start = start, .length = len, .dest = dest,
	};
	struct coh_reply rep;
	int r;

	r = coh_request(c, COHMEM_CMD_MIGRATE, false, &q, &rep);
	if (r < 0)
		return r;
	if (ret)
		coh_counts_from(&rep, ret);
	coh_reply_free(&rep);
	return 0;
}

int coh_evict(struct coh_client *c, uint32_t pool_id, uint64_t nr_pages,
	      uint64_t *ret_evicted, uint64_t *ret_failed)
{
	struct coh_req q = {
		.present = COH_BIT(COHMEM_A_POOL_ID) | COH_BIT(COHMEM_A_NR_PAGES),
		.pool_id = pool_id, .nr_pages = nr_pages,
	};
	struct coh_reply rep;
	int r;

	r = coh_request(c, COHMEM_CMD_EVICT, false, &q, &rep);
	if (r < 0)
		return r;
	if (ret_evicted)
		*ret_evicted = rep.v[COHMEM_A_EVICTED];
	if (ret_failed)
		*ret_failed = rep.v[COHMEM_A_FAILED];
	coh_reply_free(&rep);
	return 0;
}

uint64_t coh_counts_sum(const struct coh_counts *k)
{
	return k->migrated + k->already + k->not_present + k->file + k->shared + k->pinned +
	       k->unmovable + k->no_space + k->failed;
}

void coh_counts_str(const struct coh_counts *k, char *buf, size_t n)
{
	snprintf(buf, n,
		 "migrated=%llu already=%llu not_present=%llu file=%llu shared=%llu "
		 "pinned=%llu unmovable=%llu no_space=%llu failed=%llu",
		 (unsigned long long)k->migrated, (unsigned long long)k->already,
		 (unsigned long long)k->not_present, (unsigned long long)k->file,
		 (unsigned long long)k->shared, (unsigned long long)k->pinned,
		 (unsigned long long)k->unmovable, (unsigned long long)k->no_space,
		 (unsigned long long)k->failed);
}

int coh_monitor_open(struct coh_client **ret)
{
	struct coh_client *c;
	int r, grp;

	r = coh_open(&c);
	if (r < 0)
		return r;
	grp = genl_ctrl_resolve_grp(c->sk, COHMEM_FAMILY_NAME, COHMEM_MCGRP_MONITOR);
	if (grp < 0) {
		coh_close(c);
		return -ENOENT;
	}
	nl_socket_disable_seq_check(c->sk);
	r = nl_socket_add_membership(c->sk, grp);
	if (r < 0) {
		coh_close(c);
		return coh_nlerr(r);
	}
	*ret = c;
	return 0;
}

/* Notifications carry sequence number 0. */
static int coh_any_seq_cb(struct nl_msg *msg, void *arg)
{
	(void)msg;
	(void)arg;
	return NL_OK;
}

int coh_monitor_next(struct coh_client *c, int timeout_ms, struct coh_reply *ret)
{
	struct pollfd pfd = { .fd = nl_socket_get_fd(c->sk), .events = POLLIN };
	struct nl_cb *cb;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = poll(&pfd, 1, timeout_ms);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!cb)
		return -ENOMEM;
	nl_cb_set(cb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, coh_any_seq_cb, NULL);
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, coh_parse_msg, ret);
	r = nl_recvmsgs(c->sk, cb);
	nl_cb_put(cb);
	if (r < 0)
		return coh_nlerr(r);
	if (!ret->nr_msgs)
		return -EAGAIN;
	return ret->cmd;
}

/* ---- module ---------------------------------------------------------- */

const char *coh_module_path(void)
{
	static char path[512];
	const char *dir = getenv("COH_MODULE_DIR");

	snprintf(path, sizeof(path), "%s/cohmem.ko", dir && *dir ? dir : "/coh/modules");
	return path;
}

bool coh_module_present(void)
{
	return access(coh_module_path(), R_OK) == 0;
}

bool coh_module_loaded(void)
{
	return access("/sys/module/cohmem", F_OK) == 0;
}

int coh_module_load(const char *params)
{
	int fd, r;

	fd = open(coh_module_path(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = syscall(SYS_finit_module, fd, params ? params : "", 0);
	r = r < 0 ? -errno : 0;
	close(fd);
	return r;
}

int coh_module_unload(void)
{
	int i;

	for (i = 0; i < 200; i++) {
		if (syscall(SYS_delete_module, "cohmem", O_NONBLOCK) == 0)
			return 0;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EBUSY)
			return -errno;
		usleep(50000);
	}
	return -EBUSY;
}

uint64_t coh_parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	switch (*end) {
	case 'k': case 'K':
		return v << 10;
	case 'm': case 'M':
		return v << 20;
	case 'g': case 'G':
		return v << 30;
	default:
		return v;
	}
}

uint64_t coh_pool_env_start(void)
{
	const char *s = getenv("COH_POOL_START");

	return coh_parse_size(s && *s ? s : "0x60000000");
}

uint64_t coh_pool_env_size(void)
{
	const char *s = getenv("COH_POOL_SIZE");

	return coh_parse_size(s && *s ? s : "256M");
}

int coh_pool_env_nid(void)
{
	const char *s = getenv("COH_POOL_NID");

	return s && *s ? atoi(s) : 1;
}

void coh_pool_param(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "pools=%s:%lluK@0x%llx:%d", name,
		 (unsigned long long)(coh_pool_env_size() >> 10),
		 (unsigned long long)coh_pool_env_start(), coh_pool_env_nid());
}

/* ---- memory helpers -------------------------------------------------- */

int coh_pagemap(pid_t pid, uint64_t addr, size_t npages, uint64_t *pfns)
{
	char path[64];
	size_t done = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (done < npages) {
		ssize_t n = pread(fd, pfns + done, (npages - done) * 8,
				  (off_t)((addr / COH_PAGE_SIZE + done) * 8));

		if (n <= 0) {
			int e = n < 0 ? -errno : -EIO;

			close(fd);
			return e;
		}
		done += n / 8;
	}
	close(fd);
	for (done = 0; done < npages; done++) {
		uint64_t e = pfns[done];

		pfns[done] = (e >> 63) & 1 ? e & ((1ULL << 55) - 1) : 0;
	}
	return 0;
}

int coh_pages_in(pid_t pid, uint64_t addr, size_t npages, uint64_t lo_pfn, uint64_t hi_pfn,
		 size_t *ret_in, size_t *ret_present)
{
	uint64_t *pfns = malloc(npages * sizeof(*pfns) + 8);
	size_t in = 0, present = 0, i;
	int r;

	if (!pfns)
		return -ENOMEM;
	r = coh_pagemap(pid, addr, npages, pfns);
	if (r < 0) {
		free(pfns);
		return r;
	}
	for (i = 0; i < npages; i++) {
		if (!pfns[i])
			continue;
		present++;
		if (pfns[i] >= lo_pfn && pfns[i] < hi_pfn)
			in++;
	}
	free(pfns);
	if (ret_in)
		*ret_in = in;
	if (ret_present)
		*ret_present = present;
	return 0;
}

uint64_t coh_pattern(uint64_t seed, uint64_t page, uint64_t word)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL ^ (page << 20) ^ word;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	return x;
}

void coh_fill_at(void *buf, size_t first, size_t npages, uint64_t seed)
{
	uint64_t *w = buf;
	size_t p, i;

	for (p = first; p < first + npages; p++)
		for (i = 0; i < COH_PAGE_SIZE / 8; i++)
			*w++ = coh_pattern(seed, p, i);
}

size_t coh_check_at(const void *buf, size_t first, size_t npages, uint64_t seed)
{
	const uint64_t *w = buf;
	size_t p, i, bad = 0;

	for (p = first; p < first + npages; p++) {
		for (i = 0; i < COH_PAGE_SIZE / 8; i++) {
			if (w[i] != coh_pattern(seed, p, i)) {
				bad++;
				break;
			}
		}
		w += COH_PAGE_SIZE / 8;
	}
	return bad;
}

void coh_fill(void *buf, size_t npages, uint64_t seed)
{
	coh_fill_at(buf, 0, npages, seed);
}

size_t coh_check(const void *buf, size_t npages, uint64_t seed)
{
	return coh_check_at(buf, 0, npages, seed);
}

/* ---- TAP -------------------------------------------------------------- */

static struct {
	const char *prog;
	int planned;
	int n;
	int failed;
	int kmsg;
} tap;

void tap_init(const char *prog, int planned)
{
	int fd;

	tap.prog = prog;
	tap.planned = planned;
	setvbuf(stdout, NULL, _IOLBF, 0);
	tap.kmsg = open("/dev/kmsg", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (tap.kmsg >= 0) {
		lseek(tap.kmsg, 0, SEEK_END);
		fd = tap.kmsg;
		dprintf(fd, "%s: start\n", prog);
	}
	printf("TAP version 13\n1..%d\n", planned);
}

static void tap_vline(bool ok, const char *directive, const char *fmt, va_list ap)
{
	tap.n++;
	if (!ok)
		tap.failed++;
	printf("%s %d - ", ok ? "ok" : "not ok", tap.n);
	vprintf(fmt, ap);
	if (directive)
		printf(" # %s", directive);
	printf("\n");
	fflush(stdout);
}

int tap_ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vline(cond, NULL, fmt, ap);
	va_end(ap);
	return cond;
}

void tap_skip(const char *why, const char *fmt, ...)
{
	char dir[256];
	va_list ap;

	snprintf(dir, sizeof(dir), "SKIP %s", why);
	va_start(ap, fmt);
	tap_vline(true, dir, fmt, ap);
	va_end(ap);
}

void tap_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static bool tap_kmsg_clean(char *first, size_t n)
{
	static const char *const bad[] = {
		"WARNING:", "BUG:", "BUG kernel", "Oops", "general protection fault",
		"kernel BUG", "Call Trace:", "list_add corruption", "list_del corruption",
		"Bad page", "bad_page", "UBSAN:", "KASAN:",
	};
	char rec[8192];
	bool clean = true;

	if (tap.kmsg < 0)
		return true;
	for (;;) {
		ssize_t len = read(tap.kmsg, rec, sizeof(rec) - 1);
		size_t i;

		if (len < 0) {
			if (errno == EPIPE)
				continue;	/* overwritten records; keep reading */
			break;
		}
		rec[len] = 0;
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			if (strstr(rec, bad[i])) {
				if (clean) {
					char *msg = strchr(rec, ';');

					snprintf(first, n, "%.200s", msg ? msg + 1 : rec);
					first[strcspn(first, "\n")] = 0;
				}
				clean = false;
			}
		}
	}
	return clean;
}

int tap_finish(void)
{
	char first[256] = "";
	bool clean = tap_kmsg_clean(first, sizeof(first));

	if (tap.kmsg < 0)
		tap_skip("/dev/kmsg unavailable", "%s: no kernel warning, BUG or oops", tap.prog);
	else
		tap_ok(clean, "%s: no kernel warning, BUG or oops%s%s", tap.prog,
		       clean ? "" : ": ", first);
	while (tap.n < tap.planned)
		tap_ok(false, "%s: check not reached", tap.prog);
	if (tap.n > tap.planned) {
		tap_diag("planned %d checks, ran %d", tap.planned, tap.n);
		tap.failed++;
	}
	tap_diag("%s: %d/%d failed", tap.prog, tap.failed, tap.n);
	return tap.failed ? 1 : 0;
}

void tap_skip_all(const char *why)
{
	fprintf(stderr, "# SKIP %s\n", why);
	exit(77);
}

/* ---- shared fixtures ------------------------------------------------- */

int coh_env_setup(struct coh_env *e, const char *name, const char *extra)
{
	char params[512];
	size_t len;
	int r;

	memset(e, 0, sizeof(*e));
	if (!coh_module_present())
		tap_skip_all("cohmem.ko not found (COH_MODULE_DIR)");
	if (coh_module_loaded()) {
		r = coh_module_unload();
		if (r < 0)
			return r;
	}
	coh_pool_param(params, sizeof(params), name);
	len = strlen(params);
	if (extra && *extra)
		snprintf(params + len, sizeof(params) - len, " %s", extra);
	r = coh_module_load(params);
	if (r < 0)
		return r;
	r = coh_open(&e->c);
	if (r < 0)
		return r;
	r = coh_pool_find(e->c, name, &e->pool);
	if (r < 0)
		return r;
	e->lo_pfn = e->pool.phys_start / COH_PAGE_SIZE;
	e->hi_pfn = (e->pool.phys_start + e->pool.phys_size) / COH_PAGE_SIZE;
	return 0;
}

void coh_env_teardown(struct coh_env *e)
{
	coh_close(e->c);
	e->c = NULL;
}

uint64_t coh_env_free(struct coh_env *e)
{
	struct coh_pool p;

	if (coh_pool_get(e->c, e->pool.id, &p) < 0)
		return ~0ULL;
	return p.free;
}

struct victim_msg {
	int32_t op;
	uint64_t arg;
};

static void coh_victim_main(int cmd_fd, int rsp_fd, size_t npages, uint64_t seed)
{
	size_t len = npages * COH_PAGE_SIZE;
	struct victim_msg m;
	int64_t res;
	char *buf;

	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		_exit(2);
	/* 4 KiB pages: exact counts do not depend on THP placement */
	madvise(buf, len, MADV_NOHUGEPAGE);
	coh_fill(buf, npages, seed);
	res = (int64_t)(uintptr_t)buf;
	if (write(rsp_fd, &res, sizeof(res)) != sizeof(res))
		_exit(3);
	while (read(cmd_fd, &m, sizeof(m)) == sizeof(m)) {
		switch (m.op) {
		case VICTIM_FILL:
			coh_fill(buf, npages, m.arg);
			res = 0;
			break;
		case VICTIM_CHECK:
			res = (int64_t)coh_check(buf, npages, m.arg);
			break;
		case VICTIM_QUIT:
			_exit(0);
		default:
			res = -EINVAL;
			break;
		}
		if (write(rsp_fd, &res, sizeof(res)) != sizeof(res))
			_exit(3);
	}
	_exit(0);
}

int coh_victim_start(struct coh_victim *v, size_t npages, uint64_t seed)
{
	int cmd[2], rsp[2];
	int64_t addr;

	memset(v, 0, sizeof(*v));
	if (pipe2(cmd, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(rsp, O_CLOEXEC) < 0) {
		close(cmd[0]);
		close(cmd[1]);
		return -errno;
	}
	fflush(stdout);
	v->pid = fork();
	if (v->pid < 0)
		return -errno;
	if (v->pid == 0) {
		close(cmd[1]);
		close(rsp[0]);
		coh_victim_main(cmd[0], rsp[1], npages, seed);
	}
	close(cmd[0]);
	close(rsp[1]);
	v->cmd_fd = cmd[1];
	v->rsp_fd = rsp[0];
	v->npages = npages;
	if (read(v->rsp_fd, &addr, sizeof(addr)) != sizeof(addr)) {
		coh_victim_stop(v);
		return -EIO;
	}
	v->addr = (uint64_t)addr;
	return 0;
}

int64_t coh_victim_cmd(struct coh_victim *v, int op, uint64_t arg)
{
	struct victim_msg m = { .op = op, .arg = arg };
	int64_t res;

	if (write(v->cmd_fd, &m, sizeof(m)) != sizeof(m))
		return -EIO;
	if (op == VICTIM_QUIT)
		return 0;
	if (read(v->rsp_fd, &res, sizeof(res)) != sizeof(res))
		return -EIO;
	return res;
}

int coh_victim_stop(struct coh_victim *v)
{
	int status = 0;

	if (v->pid <= 0)
		return -ESRCH;
	coh_victim_cmd(v, VICTIM_QUIT, 0);
	close(v->cmd_fd);
	close(v->rsp_fd);
	if (waitpid(v->pid, &status, 0) < 0)
		return -errno;
	v->pid = 0;
	return status;
}

int coh_kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

bool coh_kmsg_grep(int fd, const char *needle)
{
	char rec[8192];
	bool found = false;

	if (fd < 0)
		return false;
	for (;;) {
		ssize_t len = read(fd, rec, sizeof(rec) - 1);

		if (len < 0) {
			if (errno == EPIPE)
				continue;
			break;
		}
		rec[len] = 0;
		if (strstr(rec, needle))
			found = true;
	}
	return found;
}
