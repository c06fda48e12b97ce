/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cohmem backend: pools of cohmem.ko through its generic netlink family
 * (man/cohmem.4, kernel/include/uapi/linux/cohmem.h), with libnl-genl-3.
 *
 * The family and the monitor group are resolved once, at open. Every
 * operation uses a netlink socket of its own for its duration, so worker
 * threads never share a socket (a libnl socket is not thread-safe, and a
 * reply could reach the wrong thread). Most operations open one and close it
 * at the end; sample(), called about once per region per tracker tick, takes
 * one from a small pool of idle sockets and puts it back when its exchanges
 * with the kernel ended cleanly (any socket-level error closes it instead),
 * which saves a socket, a bind and a receive buffer per call. The pool is
 * emptied at close. Extended ACK messages are kept in backend_last_message().
 *
 * A kernel error ENOENT can mean that the family is gone (module unloaded, or
 * reloaded under a new id): the family is then resolved again, and when it no
 * longer matches the call fails with -ENODEV, after which the backend should
 * be closed and opened again.
 *
 * move(): an explicit range is one MIGRATE call (the kernel classifies every
 * page and batches internally). length 0 is one MIGRATE per anonymous private
 * mapping of /proc/PID/maps; the pages of the other mappings are counted by
 * the mapping's kind without asking the kernel. residency(): likewise one
 * RESIDENCY per mapping for length 0 ([vsyscall] and the like left out).
 */

#include <errno.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netlink/genl/ctrl.h>
#include <netlink/genl/family.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>

#include <linux/cohmem.h>

#include "backend.h"
#include "util.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

#define COHMEM_POOLS_MAX 64
/* Idle SAMPLE sockets kept: one per thread that samples at the same time. */
#define COHMEM_IDLE_SOCKETS_MAX 4
/* Receive buffer of a SAMPLE socket: the largest reply, a bitmap of 32 KiB, fits. */
#define COHMEM_SAMPLE_MSG_BUF (64U * 1024U)
/* A WINDOW nest of a reply: header, START, NR_PAGES, NR_YOUNG (with padding), NO_MAPPING. */
#define COHMEM_WINDOW_REPLY_MAX (4 + 3 * 16 + 4)
_Static_assert(COHMEM_SAMPLE_MAX_PAGES / 8 + 4096 +
	       COHMEM_SAMPLE_MAX_WINDOWS * COHMEM_WINDOW_REPLY_MAX <= COHMEM_SAMPLE_MSG_BUF,
	       "a SAMPLE reply must fit the receive buffer");
_Static_assert(BACKEND_SAMPLE_WINDOWS_MAX <= COHMEM_SAMPLE_MAX_WINDOWS &&
	       BACKEND_SAMPLE_PAGES_MAX <= COHMEM_SAMPLE_MAX_PAGES,
	       "a sample_windows() call must be one SAMPLE request");

struct Backend {
	char *root;
	uint64_t page_size;
	int family;
	int monitor_group;      /* -1 when the module has none */
	bool have_windows;      /* SAMPLE takes WINDOW nests (the family's maxattr has them) */
	atomic_bool gone;       /* UNLOAD seen, or the family changed */

	/* SAMPLE sockets between calls; a socket in use is in no list. */
	pthread_mutex_t idle_lock;
	struct nl_sock *idle[COHMEM_IDLE_SOCKETS_MAX];
	size_t n_idle;

	/* Event loop thread only. */
	struct nl_sock *monitor;
	BackendEventFn monitor_fn;
	void *monitor_userdata;
};

/* ---- requests ---- */

typedef struct CohRequest {
	uint64_t present;       /* bit per attribute to send */
	uint32_t pool_id, pid, dest;
	uint64_t start, length, nr_pages;
	bool clear;
	const BackendSampleWindow *windows;     /* SAMPLE: one WINDOW nest each */
	size_t n_windows;
} CohRequest;

#define A(attr) (UINT64_C(1) << (attr))

typedef struct CohPool {
	uint32_t id;
	char name[32];
	int32_t nid;
	uint64_t phys_start, phys_size, total, free;
	uint64_t migrated_in, migrated_out, evicted, failures, low, high;
} CohPool;

typedef struct CohReply {
	int error;              /* kernel errno (negative), 0, or 1 while waiting */
	uint64_t have;
	uint64_t v[COHMEM_A_MAX + 1];
	CohPool *pools;         /* dump: one per message */
	size_t n_pools;
	int64_t resident_id[COHMEM_POOLS_MAX];
	uint64_t resident_pages[COHMEM_POOLS_MAX];
	size_t n_resident;
	const uint8_t *bitmap_src;
	uint8_t *bitmap;        /* caller's buffer for SAMPLE */
	size_t bitmap_bytes, bitmap_len;
	BackendSampleWindow *windows;   /* SAMPLE with windows: the request's, filled in order */
	size_t n_windows, n_windows_seen;
	uint64_t page_size;
	bool bad;               /* a reply failed validation */
} CohReply;

static struct nla_policy reply_policy[COHMEM_A_MAX + 1] = {
	[COHMEM_A_POOL_ID] = { .type = NLA_U32 },
	[COHMEM_A_POOL_NAME] = { .type = NLA_STRING, .maxlen = 32 },
	[COHMEM_A_POOL_PHYS_START] = { .type = NLA_U64 },
	[COHMEM_A_POOL_PHYS_SIZE] = { .type = NLA_U64 },
	[COHMEM_A_POOL_NID] = { .type = NLA_U32 },
	[COHMEM_A_POOL_TOTAL_PAGES] = { .type = NLA_U64 },
	[COHMEM_A_POOL_FREE_PAGES] = { .type = NLA_U64 },
	[COHMEM_A_POOL_MIGRATED_IN] = { .type = NLA_U64 },
	[COHMEM_A_POOL_MIGRATED_OUT] = { .type = NLA_U64 },
	[COHMEM_A_POOL_EVICTED] = { .type = NLA_U64 },
	[COHMEM_A_POOL_FAILURES] = { .type = NLA_U64 },
	[COHMEM_A_POOL_LOW_PAGES] = { .type = NLA_U64 },
	[COHMEM_A_POOL_HIGH_PAGES] = { .type = NLA_U64 },
	[COHMEM_A_PID] = { .type = NLA_U32 },
	[COHMEM_A_START] = { .type = NLA_U64 },
	[COHMEM_A_LENGTH] = { .type = NLA_U64 },
	[COHMEM_A_DEST] = { .type = NLA_U32 },
	[COHMEM_A_MIGRATED] = { .type = NLA_U64 },
	[COHMEM_A_ALREADY] = { .type = NLA_U64 },
	[COHMEM_A_SKIP_NOT_PRESENT] = { .type = NLA_U64 },
	[COHMEM_A_SKIP_FILE] = { .type = NLA_U64 },
	[COHMEM_A_SKIP_SHARED] = { .type = NLA_U64 },
	[COHMEM_A_SKIP_PINNED] = { .type = NLA_U64 },
	[COHMEM_A_SKIP_UNMOVABLE] = { .type = NLA_U64 },
	[COHMEM_A_SKIP_NO_SPACE] = { .type = NLA_U64 },
	[COHMEM_A_FAILED] = { .type = NLA_U64 },
	[COHMEM_A_SYSTEM_PAGES] = { .type = NLA_U64 },
	[COHMEM_A_RESIDENT] = { .type = NLA_NESTED },
	[COHMEM_A_EXTENT] = { .type = NLA_NESTED },
	[COHMEM_A_TRUNCATED] = { .type = NLA_FLAG },
	[COHMEM_A_CLEAR] = { .type = NLA_FLAG },
	[COHMEM_A_BITMAP] = { .type = NLA_UNSPEC },
	[COHMEM_A_NR_PAGES] = { .type = NLA_U64 },
	[COHMEM_A_NR_YOUNG] = { .type = NLA_U64 },
	[COHMEM_A_EVICTED] = { .type = NLA_U64 },
	[COHMEM_A_WMARK] = { .type = NLA_U32 },
	[COHMEM_A_WINDOW] = { .type = NLA_NESTED },
	[COHMEM_A_NO_MAPPING] = { .type = NLA_FLAG },
};

static void reply_done(CohReply *r)
{
	free(r->pools);
	r->pools = NULL;
}

static uint64_t attr_value(struct nlattr *a)
{
	return nla_len(a) == 8 ? nla_get_u64(a) : nla_get_u32(a);
}

static int parse_pool(struct nlattr **tb, CohPool *p)
{
	if (!tb[COHMEM_A_POOL_ID] || !tb[COHMEM_A_POOL_NAME] || !tb[COHMEM_A_POOL_TOTAL_PAGES] ||
	    !tb[COHMEM_A_POOL_FREE_PAGES])
		return -EBADMSG;
	*p = (CohPool) { .nid = -1 };
	p->id = nla_get_u32(tb[COHMEM_A_POOL_ID]);
	(void) snprintf(p->name, sizeof(p->name), "%s", nla_get_string(tb[COHMEM_A_POOL_NAME]));
#define GET(field, attr) if (tb[attr]) p->field = nla_get_u64(tb[attr])
	GET(phys_start, COHMEM_A_POOL_PHYS_START);
	GET(phys_size, COHMEM_A_POOL_PHYS_SIZE);
	GET(total, COHMEM_A_POOL_TOTAL_PAGES);
	GET(free, COHMEM_A_POOL_FREE_PAGES);
	GET(migrated_in, COHMEM_A_POOL_MIGRATED_IN);
	GET(migrated_out, COHMEM_A_POOL_MIGRATED_OUT);
	GET(evicted, COHMEM_A_POOL_EVICTED);
	GET(failures, COHMEM_A_POOL_FAILURES);
	GET(low, COHMEM_A_POOL_LOW_PAGES);
	GET(high, COHMEM_A_POOL_HIGH_PAGES);
#undef GET
	if (tb[COHMEM_A_POOL_NID])
		p->nid = (int32_t) nla_get_u32(tb[COHMEM_A_POOL_NID]);
	if (p->free > p->total)
		return -EBADMSG;
	return 0;
}

/* The next WINDOW nest of a SAMPLE reply: it must describe the next window asked for. */
static void parse_window(CohReply *r, struct nlattr *a)
{
	struct nlattr *nt[COHMEM_A_MAX + 1];
	BackendSampleWindow *w;
	uint64_t pages, young;

	if (r->n_windows_seen >= r->n_windows ||
	    nla_parse_nested(nt, COHMEM_A_MAX, a, reply_policy) < 0 || !nt[COHMEM_A_START] ||
	    !nt[COHMEM_A_NR_PAGES] || !nt[COHMEM_A_NR_YOUNG]) {
		r->bad = true;
		return;
	}
	w = &r->windows[r->n_windows_seen++];
	pages = nla_get_u64(nt[COHMEM_A_NR_PAGES]);
	young = nla_get_u64(nt[COHMEM_A_NR_YOUNG]);
	if (nla_get_u64(nt[COHMEM_A_START]) != w->start || pages != w->length / r->page_size ||
	    young > pages) {
		r->bad = true;
		return;
	}
	w->young = young;
	w->unmapped = nt[COHMEM_A_NO_MAPPING] != NULL;
}

static int on_valid(struct nl_msg *msg, void *arg)
{
	CohReply *r = arg;
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct genlmsghdr *gh = nlmsg_data(nlh);
	struct nlattr *tb[COHMEM_A_MAX + 1], *a;
	int rem;

	if (genlmsg_parse(nlh, 0, tb, COHMEM_A_MAX, reply_policy) < 0) {
		r->bad = true;
		return NL_SKIP;
	}
	for (int i = 1; i <= COHMEM_A_MAX; i++)
		if (tb[i] && (nla_len(tb[i]) == 4 || nla_len(tb[i]) == 8) &&
		    i != COHMEM_A_POOL_NAME && i != COHMEM_A_BITMAP) {
			r->v[i] = attr_value(tb[i]);
			r->have |= A(i);
		}
	if (gh->cmd == COHMEM_CMD_POOL_GET) {
		CohPool *np;

		if (r->n_pools >= COHMEM_POOLS_MAX) {
			r->bad = true;
			return NL_SKIP;
		}
		np = realloc(r->pools, (r->n_pools + 1) * sizeof(*np));
		if (!np) {
			r->bad = true;
			return NL_SKIP;
		}
		r->pools = np;
		if (parse_pool(tb, &r->pools[r->n_pools]) < 0)
			r->bad = true;
		else
			r->n_pools++;
	}
	if (tb[COHMEM_A_BITMAP] && r->bitmap) {
		size_t len = (size_t) nla_len(tb[COHMEM_A_BITMAP]);

		if (len > r->bitmap_bytes)
			r->bad = true;
		else {
			memcpy(r->bitmap, nla_data(tb[COHMEM_A_BITMAP]), len);
			r->bitmap_len = len;
		}
	}
	nla_for_each_attr(a, genlmsg_attrdata(gh, 0), genlmsg_attrlen(gh, 0), rem) {
		struct nlattr *nt[COHMEM_A_MAX + 1];

		if (nla_type(a) == COHMEM_A_WINDOW && r->windows) {
			parse_window(r, a);
			continue;
		}
		if (nla_type(a) != COHMEM_A_RESIDENT)
			continue;
		if (nla_parse_nested(nt, COHMEM_A_MAX, a, reply_policy) < 0 ||
		    !nt[COHMEM_A_POOL_ID] || !nt[COHMEM_A_NR_PAGES] ||
		    r->n_resident >= COHMEM_POOLS_MAX) {
			r->bad = true;
			continue;
		}
		r->resident_id[r->n_resident] = nla_get_u32(nt[COHMEM_A_POOL_ID]);
		r->resident_pages[r->n_resident] = nla_get_u64(nt[COHMEM_A_NR_PAGES]);
		r->n_resident++;
	}
	return NL_OK;
}

static int on_error(struct sockaddr_nl *nla, struct nlmsgerr *err, void *arg)
{
	CohReply *r = arg;
	struct nlmsghdr *nlh = (struct nlmsghdr *) ((char *) err - NLMSG_HDRLEN);

	r->error = err->error < 0 ? err->error : -EIO;
	if (nlh->nlmsg_flags & NLM_F_ACK_TLVS) {
		/* With NETLINK_CAP_ACK only the request's header is echoed. */
		int len = (int) nlh->nlmsg_len - NLMSG_HDRLEN - (int) sizeof(*err);
		struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];

		if (len > 0 && nla_parse(tb, NLMSGERR_ATTR_MAX, (struct nlattr *) (err + 1), len,
					 NULL) == 0 && tb[NLMSGERR_ATTR_MSG]) {
			const char *m = nla_data(tb[NLMSGERR_ATTR_MSG]);
			int ml = nla_len(tb[NLMSGERR_ATTR_MSG]);

			backend_set_last_message("cohmem: %.*s", ml > 0 ? ml - 1 : 0, m);
		}
	}
	return NL_STOP;
}

static int on_done(struct nl_msg *msg, void *arg)
{
	CohReply *r = arg;

	if (r->error > 0)
		r->error = 0;
	return NL_STOP;
}

static int socket_open(struct nl_sock **ret)
{
	struct nl_sock *sk;
	int one = 1, r;

	sk = nl_socket_alloc();
	if (!sk)
		return -ENOMEM;
	r = genl_connect(sk);
	if (r < 0) {
		nl_socket_free(sk);
		return backend_errno_from_nl(r);
	}
	/* Extended ACK messages, without the request echoed back. */
	(void) setsockopt(nl_socket_get_fd(sk), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	(void) setsockopt(nl_socket_get_fd(sk), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	/* RESIDENCY replies reach 150 KiB: size the receive buffer by peeking. */
	nl_socket_enable_msg_peek(sk);
	(void) nl_socket_set_buffer_size(sk, 1 << 20, 0);
	*ret = sk;
	return 0;
}

/* An idle SAMPLE socket of the pool, or a new one: the caller's alone until socket_release(). */
static int socket_acquire(Backend *b, struct nl_sock **ret)
{
	struct nl_sock *sk = NULL;
	int r;

	pthread_mutex_lock(&b->idle_lock);
	if (b->n_idle > 0)
		sk = b->idle[--b->n_idle];
	pthread_mutex_unlock(&b->idle_lock);
	if (!sk) {
		r = socket_open(&sk);
		if (r < 0)
			return r;
		/*
		 * Replies are bounded: one recvmsg() into a buffer that fits any of
		 * them, instead of a peek for the size and a second read. A larger
		 * one fails with NLE_MSG_TRUNC and closes the socket.
		 */
		nl_socket_disable_msg_peek(sk);
		r = nl_socket_set_msg_buf_size(sk, COHMEM_SAMPLE_MSG_BUF);
		if (r < 0) {
			nl_socket_free(sk);
			return backend_errno_from_nl(r);
		}
	}
	*ret = sk;
	return 0;
}

/*
 * Back to the pool when reuse is safe: the last exchange ended with the
 * kernel's ACK or error, so nothing of it is left to read, and the family is
 * still ours. Closed otherwise, or when the pool is full.
 */
static void socket_release(Backend *b, struct nl_sock *sk, bool reusable)
{
	if (!sk)
		return;
	if (reusable && !atomic_load(&b->gone)) {
		pthread_mutex_lock(&b->idle_lock);
		if (b->n_idle < COHMEM_IDLE_SOCKETS_MAX) {
			b->idle[b->n_idle++] = sk;
			sk = NULL;
		}
		pthread_mutex_unlock(&b->idle_lock);
	}
	if (sk)
		nl_socket_free(sk);
}

/* Is the family still the one we resolved? */
static int check_family(Backend *b, struct nl_sock *sk)
{
	int id = genl_ctrl_resolve(sk, COHMEM_FAMILY_NAME);

	if (id < 0 || id != b->family) {
		atomic_store(&b->gone, true);
		return -ENODEV;
	}
	return 0;
}

static int request(Backend *b, struct nl_sock *sk, int cmd, bool dump, const CohRequest *q,
		   CohReply *ret)
{
	struct nl_msg *msg = NULL;
	struct nl_cb *cb = NULL;
	int r;

	ret->error = 1;
	if (atomic_load(&b->gone))
		return -ENODEV;
	msg = nlmsg_alloc();
	if (!msg)
		return -ENOMEM;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, b->family, 0,
			 NLM_F_REQUEST | NLM_F_ACK | (dump ? NLM_F_DUMP : 0), (uint8_t) cmd,
			 COHMEM_FAMILY_VERSION)) {
		r = -EMSGSIZE;
		goto out;
	}
	r = -EMSGSIZE;
	if (q) {
		if ((q->present & A(COHMEM_A_POOL_ID)) && nla_put_u32(msg, COHMEM_A_POOL_ID, q->pool_id))
			goto out;
		if ((q->present & A(COHMEM_A_PID)) && nla_put_u32(msg, COHMEM_A_PID, q->pid))
			goto out;
		if ((q->present & A(COHMEM_A_START)) && nla_put_u64(msg, COHMEM_A_START, q->start))
			goto out;
		if ((q->present & A(COHMEM_A_LENGTH)) && nla_put_u64(msg, COHMEM_A_LENGTH, q->length))
			goto out;
		if ((q->present & A(COHMEM_A_DEST)) && nla_put_u32(msg, COHMEM_A_DEST, q->dest))
			goto out;
		if ((q->present & A(COHMEM_A_NR_PAGES)) &&
		    nla_put_u64(msg, COHMEM_A_NR_PAGES, q->nr_pages))
			goto out;
		if (q->clear && nla_put_flag(msg, COHMEM_A_CLEAR))
			goto out;
		for (size_t i = 0; i < q->n_windows; i++) {
			/* NLA_F_NESTED: the kernel validates nests strictly */
			struct nlattr *nest = nla_nest_start(msg, COHMEM_A_WINDOW | NLA_F_NESTED);

			if (!nest || nla_put_u64(msg, COHMEM_A_START, q->windows[i].start) ||
			    nla_put_u64(msg, COHMEM_A_LENGTH, q->windows[i].length))
				goto out;
			nla_nest_end(msg, nest);
		}
	}
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!cb) {
		r = -ENOMEM;
		goto out;
	}
	nl_cb_err(cb, NL_CB_CUSTOM, on_error, ret);
	nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, on_done, ret);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_done, ret);
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_valid, ret);
	r = nl_send_auto(sk, msg);
	if (r < 0) {
		r = backend_errno_from_nl(r);
		goto out;
	}
	while (ret->error > 0) {
		r = nl_recvmsgs(sk, cb);
		if (r < 0 && ret->error > 0) {
			r = backend_errno_from_nl(r);
			goto out;
		}
	}
	r = ret->error;
	if (r == -ENOENT) {
		int k = check_family(b, sk);

		if (k < 0)
			r = k;
	}
	if (r == 0 && ret->bad)
		r = -EBADMSG;
out:
	nl_cb_put(cb);
	nlmsg_free(msg);
	return r;
}

/* ---- open / close / devices ---- */

/* The family's highest attribute as the kernel registered it, or -1. */
static int family_maxattr(struct nl_sock *sk)
{
	struct nl_cache *cache = NULL;
	struct genl_family *f;
	int r = -1;

	if (genl_ctrl_alloc_cache(sk, &cache) < 0)
		return -1;
	f = genl_ctrl_search_by_name(cache, COHMEM_FAMILY_NAME);
	if (f) {
		r = genl_family_get_maxattr(f);
		genl_family_put(f);
	}
	nl_cache_free(cache);
	return r;
}

static int cohmem_open(Backend **ret, const char *root)
{
	struct nl_sock *sk = NULL;
	Backend *b;
	long ps;
	int r;

	ps = sysconf(_SC_PAGESIZE);
	if (ps <= 0)
		return -EINVAL;
	r = socket_open(&sk);
	if (r < 0)
		return r;
	b = calloc(1, sizeof(*b));
	if (!b) {
		nl_socket_free(sk);
		return -ENOMEM;
	}
	b->root = strdup(root ?: "/");
	b->page_size = (uint64_t) ps;
	b->family = genl_ctrl_resolve(sk, COHMEM_FAMILY_NAME);
	b->monitor_group = genl_ctrl_resolve_grp(sk, COHMEM_FAMILY_NAME, COHMEM_MCGRP_MONITOR);
	b->have_windows = family_maxattr(sk) >= COHMEM_A_NO_MAPPING;
	nl_socket_free(sk);
	if (!b->root || b->family < 0) {
		r = !b->root ? -ENOMEM : -ENODEV;
		free(b->root);
		free(b);
		return r;
	}
	if (b->monitor_group < 0)
		b->monitor_group = -1;
	atomic_init(&b->gone, false);
	pthread_mutex_init(&b->idle_lock, NULL);
	*ret = b;
	return 0;
}

static void cohmem_monitor_close(Backend *b)
{
	if (b->monitor)
		nl_socket_free(b->monitor);
	b->monitor = NULL;
	b->monitor_fn = NULL;
	b->monitor_userdata = NULL;
}

static void cohmem_close(Backend *b)
{
	if (!b)
		return;
	cohmem_monitor_close(b);
	while (b->n_idle > 0)
		nl_socket_free(b->idle[--b->n_idle]);
	pthread_mutex_destroy(&b->idle_lock);
	free(b->root);
	free(b);
}

static int cohmem_list_devices(Backend *b, BackendDevice **ret, size_t *ret_n)
{
	struct nl_sock *sk = NULL;
	BackendDevice *devs;
	CohReply rep = {};
	uint64_t ps = b->page_size;
	int r;

	r = socket_open(&sk);
	if (r < 0)
		return r;
	r = request(b, sk, COHMEM_CMD_POOL_GET, true, NULL, &rep);
	nl_socket_free(sk);
	if (r < 0) {
		reply_done(&rep);
		return r;
	}
	devs = calloc(rep.n_pools ?: 1, sizeof(*devs));
	if (!devs) {
		reply_done(&rep);
		return -ENOMEM;
	}
	for (size_t i = 0; i < rep.n_pools; i++) {
		const CohPool *p = &rep.pools[i];
		BackendDevice *d = &devs[i];

		(void) snprintf(d->name, sizeof(d->name), "%s", p->name);
		d->id = p->id;
		d->node = p->nid;
		d->total_bytes = p->total * ps;
		d->free_bytes = p->free * ps;
		d->phys_start = p->phys_start;
		d->phys_size = p->phys_size;
		d->migrated_in_bytes = p->migrated_in * ps;
		d->migrated_out_bytes = p->migrated_out * ps;
		d->evicted_bytes = p->evicted * ps;
		d->failed_bytes = p->failures * ps;
		d->low_watermark_bytes = p->low * ps;
		d->high_watermark_bytes = p->high * ps;
	}
	*ret = devs;
	*ret_n = rep.n_pools;
	reply_done(&rep);
	return 0;
}

/* ---- move ---- */

static void counts_from_reply(const CohReply *rep, MoveCounts *c)
{
	*c = (MoveCounts) {
		.migrated = rep->v[COHMEM_A_MIGRATED],
		.already = rep->v[COHMEM_A_ALREADY],
		.not_present = rep->v[COHMEM_A_SKIP_NOT_PRESENT],
		.file = rep->v[COHMEM_A_SKIP_FILE],
		.shared = rep->v[COHMEM_A_SKIP_SHARED],
		.pinned = rep->v[COHMEM_A_SKIP_PINNED],
		.unmovable = rep->v[COHMEM_A_SKIP_UNMOVABLE],
		.no_space = rep->v[COHMEM_A_SKIP_NO_SPACE],
		.failed = rep->v[COHMEM_A_FAILED],
	};
}

static int migrate_one(Backend *b, struct nl_sock *sk, pid_t pid, uint64_t start,
		       uint64_t length, uint32_t dest, MoveCounts *ret)
{
	CohRequest q = {
		.present = A(COHMEM_A_PID) | A(COHMEM_A_START) | A(COHMEM_A_LENGTH) |
			   A(COHMEM_A_DEST),
		.pid = (uint32_t) pid, .start = start, .length = length, .dest = dest,
	};
	static const int needed[] = {
		COHMEM_A_MIGRATED, COHMEM_A_ALREADY, COHMEM_A_SKIP_NOT_PRESENT,
		COHMEM_A_SKIP_FILE, COHMEM_A_SKIP_SHARED, COHMEM_A_SKIP_PINNED,
		COHMEM_A_SKIP_UNMOVABLE, COHMEM_A_SKIP_NO_SPACE, COHMEM_A_FAILED,
	};
	CohReply rep = {};
	int r;

	r = request(b, sk, COHMEM_CMD_MIGRATE, false, &q, &rep);
	reply_done(&rep);
	if (r == -ENOENT)
		return -ENODEV;    /* no such pool */
	if (r < 0)
		return r;
	for (size_t i = 0; i < ELEMENTSOF(needed); i++)
		if (!(rep.have & A(needed[i])))
			return -EBADMSG;
	counts_from_reply(&rep, ret);
	/* The kernel accounts for every page exactly once. */
	if (move_counts_total(ret) != length / b->page_size)
		return -EBADMSG;
	return 0;
}

static int cohmem_move(Backend *b, pid_t pid, uint64_t start, uint64_t length,
		       const BackendTarget *target, BackendProgressFn progress, void *userdata,
		       MoveCounts *ret)
{
	struct nl_sock *sk = NULL;
	BackendMapping *maps = NULL;
	MoveCounts total = {};
	uint64_t pages_total = 0;
	uint32_t dest;
	size_t n = 0;
	int r;

	*ret = (MoveCounts) {};
	backend_set_last_message(NULL);
	r = backend_check_range(start, length, b->page_size);
	if (r < 0)
		return r;
	if (pid <= 0)
		return -ESRCH;
	if (target->system)
		dest = COHMEM_DEST_SYSTEM;
	else if (target->id < 0 || target->id >= COHMEM_DEST_SYSTEM)
		return -ENODEV;
	else
		dest = (uint32_t) target->id;

	r = socket_open(&sk);
	if (r < 0)
		return r;
	if (length > 0) {
		r = migrate_one(b, sk, pid, start, length, dest, &total);
		if (r >= 0) {
			*ret = total;
			if (progress) {
				int k = progress(&total, length / b->page_size, userdata);

				if (k < 0)
					r = k;
			}
		}
		goto out;
	}

	r = backend_maps_read(b->root, pid, &maps, &n);
	if (r < 0)
		goto out;
	if (n == 0) {
		r = -ESRCH;    /* kernel thread or zombie */
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		pages_total += (maps[i].end - maps[i].start) / b->page_size;
	for (size_t i = 0; i < n; i++) {
		uint64_t pages = (maps[i].end - maps[i].start) / b->page_size;
		uint64_t *field = move_counts_field_for_map_kind(&total, maps[i].kind);
		MoveCounts c;

		if (field)
			*field += pages;
		else {
			r = migrate_one(b, sk, pid, maps[i].start, maps[i].end - maps[i].start,
					dest, &c);
			if (r == -EFAULT) {
				/* Unmapped since we read the maps. */
				total.not_present += pages;
				r = 0;
			} else if (r == -ESRCH) {
				if (move_counts_total(&total) > 0) {
					*ret = total;
					r = BACKEND_MOVE_EXITED;
				}
				goto out;
			} else if (r < 0) {
				*ret = total;
				goto out;
			} else
				move_counts_add(&total, &c);
		}
		if (progress) {
			r = progress(&total, pages_total, userdata);
			if (r < 0) {
				*ret = total;
				goto out;
			}
		}
	}
	*ret = total;
	r = 0;
out:
	backend_mappings_free(maps, n);
	nl_socket_free(sk);
	return r;
}

/* ---- residency ---- */

typedef struct PoolPages {
	int64_t id;
	uint64_t pages;
} PoolPages;

static int residency_one(Backend *b, struct nl_sock *sk, pid_t pid, uint64_t start,
			 uint64_t length, uint64_t *system, PoolPages *pools, size_t *n_pools)
{
	CohRequest q = {
		.present = A(COHMEM_A_PID) | A(COHMEM_A_START) | A(COHMEM_A_LENGTH),
		.pid = (uint32_t) pid, .start = start, .length = length,
	};
	CohReply rep = {};
	int r;

	r = request(b, sk, COHMEM_CMD_RESIDENCY, false, &q, &rep);
	reply_done(&rep);
	if (r < 0)
		return r;
	if (!(rep.have & A(COHMEM_A_SYSTEM_PAGES)))
		return -EBADMSG;
	*system += rep.v[COHMEM_A_SYSTEM_PAGES];
	for (size_t i = 0; i < rep.n_resident; i++) {
		size_t j;

		for (j = 0; j < *n_pools; j++)
			if (pools[j].id == rep.resident_id[i])
				break;
		if (j == *n_pools) {
			if (*n_pools >= COHMEM_POOLS_MAX)
				return -EBADMSG;
			pools[(*n_pools)++] = (PoolPages) { .id = rep.resident_id[i] };
		}
		pools[j].pages += rep.resident_pages[i];
	}
	return 0;
}

static int cohmem_residency(Backend *b, pid_t pid, uint64_t start, uint64_t length,
			    ResidencyEntry **ret, size_t *ret_n)
{
	struct nl_sock *sk = NULL;
	BackendMapping *maps = NULL;
	PoolPages pools[COHMEM_POOLS_MAX];
	ResidencyEntry *e;
	uint64_t system = 0;
	size_t n = 0, n_pools = 0, k = 0;
	int r;

	backend_set_last_message(NULL);
	r = backend_check_range(start, length, b->page_size);
	if (r < 0)
		return r;
	if (pid <= 0)
		return -ESRCH;
	r = socket_open(&sk);
	if (r < 0)
		return r;
	if (length > 0)
		r = residency_one(b, sk, pid, start, length, &system, pools, &n_pools);
	else {
		r = backend_maps_read(b->root, pid, &maps, &n);
		if (r >= 0 && n == 0)
			r = -ESRCH;
		for (size_t i = 0; r >= 0 && i < n; i++) {
			if (maps[i].kind == BACKEND_MAP_SPECIAL ||
			    maps[i].end > BACKEND_USER_ADDR_MAX)
				continue;
			r = residency_one(b, sk, pid, maps[i].start, maps[i].end - maps[i].start,
					  &system, pools, &n_pools);
			if (r == -EFAULT)
				r = 0;    /* unmapped since */
		}
	}
	backend_mappings_free(maps, n);
	nl_socket_free(sk);
	if (r < 0)
		return r;

	e = calloc(n_pools + 1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < n_pools; i++)
		if (pools[i].pages > 0)
			e[k++] = (ResidencyEntry) { .id = pools[i].id,
						    .bytes = pools[i].pages * b->page_size };
	if (system > 0)
		e[k++] = (ResidencyEntry) { .system = true, .id = -1,
					    .bytes = system * b->page_size };
	*ret = e;
	*ret_n = k;
	return 0;
}

/* ---- sample / evict ---- */

static int cohmem_sample(Backend *b, pid_t pid, uint64_t start, uint64_t length, bool clear,
			 uint8_t *bitmap, size_t bitmap_bytes, uint64_t *ret_young)
{
	struct nl_sock *sk = NULL;
	uint64_t pages, young = 0;
	bool reusable = false;
	int r;

	backend_set_last_message(NULL);
	r = backend_check_range(start, length, b->page_size);
	if (r < 0)
		return r;
	if (length == 0)
		return -EINVAL;
	if (pid <= 0)
		return -ESRCH;
	pages = length / b->page_size;
	if (bitmap_bytes < (pages + 7) / 8)
		return -ENOBUFS;
	r = socket_acquire(b, &sk);
	if (r < 0)
		return r;
	/* COHMEM_SAMPLE_MAX_PAGES per call, a multiple of 8: chunks start on a byte. */
	for (uint64_t done = 0; done < pages;) {
		uint64_t n = MIN(pages - done, (uint64_t) COHMEM_SAMPLE_MAX_PAGES);
		CohRequest q = {
			.present = A(COHMEM_A_PID) | A(COHMEM_A_START) | A(COHMEM_A_LENGTH),
			.pid = (uint32_t) pid, .start = start + done * b->page_size,
			.length = n * b->page_size, .clear = clear,
		};
		CohReply rep = {
			.bitmap = bitmap + done / 8,
			.bitmap_bytes = (size_t) ((n + 7) / 8),
		};

		r = request(b, sk, COHMEM_CMD_SAMPLE, false, &q, &rep);
		reply_done(&rep);
		/* rep.error still 1: the exchange broke off (or never started). */
		reusable = rep.error <= 0;
		if (r < 0)
			break;
		if (rep.bitmap_len != (n + 7) / 8 || !(rep.have & A(COHMEM_A_NR_YOUNG))) {
			r = -EBADMSG;
			break;
		}
		young += rep.v[COHMEM_A_NR_YOUNG];
		done += n;
	}
	socket_release(b, sk, reusable);
	if (r < 0)
		return r;
	if (ret_young)
		*ret_young = young;
	return 0;
}

static int cohmem_sample_windows(Backend *b, pid_t pid, BackendSampleWindow *w, size_t n,
				 bool clear)
{
	struct nl_sock *sk = NULL;
	CohRequest q = {
		.present = A(COHMEM_A_PID), .pid = (uint32_t) pid, .clear = clear,
		.windows = w, .n_windows = n,
	};
	CohReply rep = { .windows = w, .n_windows = n, .page_size = b->page_size };
	int r;

	backend_set_last_message(NULL);
	r = backend_check_sample_windows(w, n, b->page_size);
	if (r < 0)
		return r;
	if (pid <= 0)
		return -ESRCH;
	if (!b->have_windows) {
		/* an older module: one SAMPLE per window */
		_cleanup_free_ uint8_t *bitmap = malloc(BACKEND_SAMPLE_PAGES_MAX / 8);

		if (!bitmap)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			r = cohmem_sample(b, pid, w[i].start, w[i].length, clear, bitmap,
					  BACKEND_SAMPLE_PAGES_MAX / 8, &w[i].young);
			w[i].unmapped = r == -EFAULT;
			if (r == -EFAULT)
				w[i].young = 0;
			else if (r < 0)
				return r;
		}
		return 0;
	}
	r = socket_acquire(b, &sk);
	if (r < 0)
		return r;
	r = request(b, sk, COHMEM_CMD_SAMPLE, false, &q, &rep);
	reply_done(&rep);
	socket_release(b, sk, rep.error <= 0);
	if (r < 0)
		return r;
	if (rep.n_windows_seen != n)
		return -EBADMSG;
	return 0;
}

static int cohmem_evict(Backend *b, int64_t id, uint64_t n_pages, uint64_t *ret_evicted)
{
	struct nl_sock *sk = NULL;
	CohRequest q = {
		.present = A(COHMEM_A_POOL_ID) | A(COHMEM_A_NR_PAGES),
		.pool_id = (uint32_t) id, .nr_pages = n_pages,
	};
	CohReply rep = {};
	int r;

	backend_set_last_message(NULL);
	if (id < 0 || id >= COHMEM_DEST_SYSTEM)
		return -ENODEV;
	if (n_pages == 0)
		return -EINVAL;
	r = socket_open(&sk);
	if (r < 0)
		return r;
	r = request(b, sk, COHMEM_CMD_EVICT, false, &q, &rep);
	reply_done(&rep);
	nl_socket_free(sk);
	if (r == -ENOENT)
		return -ENODEV;
	if (r < 0)
		return r;
	if (!(rep.have & A(COHMEM_A_EVICTED)))
		return -EBADMSG;
	if (ret_evicted)
		*ret_evicted = rep.v[COHMEM_A_EVICTED];
	return 0;
}

/* ---- monitor ---- */

static int cohmem_monitor_open(Backend *b, BackendEventFn fn, void *userdata, int *ret_fd)
{
	struct nl_sock *sk = NULL;
	int r;

	if (!fn)
		return -EINVAL;
	if (b->monitor)
		return -EBUSY;
	if (b->monitor_group < 0)
		return -EOPNOTSUPP;
	r = socket_open(&sk);
	if (r < 0)
		return r;
	nl_socket_disable_seq_check(sk);
	r = nl_socket_add_membership(sk, b->monitor_group);
	if (r >= 0)
		r = nl_socket_set_nonblocking(sk);
	if (r < 0) {
		nl_socket_free(sk);
		return backend_errno_from_nl(r);
	}
	b->monitor = sk;
	b->monitor_fn = fn;
	b->monitor_userdata = userdata;
	*ret_fd = nl_socket_get_fd(sk);
	return 0;
}

typedef struct MonitorBatch {
	BackendEvent events[64];
	size_t n;
	uint64_t page_size;
	int family;
} MonitorBatch;

static int on_monitor(struct nl_msg *msg, void *arg)
{
	MonitorBatch *mb = arg;
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct genlmsghdr *gh;
	struct nlattr *tb[COHMEM_A_MAX + 1];
	BackendEvent ev = {};

	if (nlh->nlmsg_type != mb->family || mb->n >= ELEMENTSOF(mb->events))
		return NL_SKIP;
	if (genlmsg_parse(nlh, 0, tb, COHMEM_A_MAX, reply_policy) < 0)
		return NL_SKIP;
	gh = nlmsg_data(nlh);
	switch (gh->cmd) {
	case COHMEM_CMD_WATERMARK_NTF:
		if (!tb[COHMEM_A_POOL_ID] || !tb[COHMEM_A_POOL_FREE_PAGES] || !tb[COHMEM_A_WMARK])
			return NL_SKIP;
		switch (nla_get_u32(tb[COHMEM_A_WMARK])) {
		case COHMEM_WMARK_LOW:
			ev.type = BACKEND_EVENT_WATERMARK_LOW;
			break;
		case COHMEM_WMARK_HIGH:
			ev.type = BACKEND_EVENT_WATERMARK_HIGH;
			break;
		default:
			return NL_SKIP;
		}
		ev.id = nla_get_u32(tb[COHMEM_A_POOL_ID]);
		ev.free_bytes = nla_get_u64(tb[COHMEM_A_POOL_FREE_PAGES]) * mb->page_size;
		break;
	case COHMEM_CMD_UNLOAD_NTF:
		ev = (BackendEvent) { .type = BACKEND_EVENT_UNLOAD, .id = -1 };
		break;
	default:
		return NL_SKIP;
	}
	mb->events[mb->n++] = ev;
	return NL_OK;
}

/* Notifications carry sequence number 0: no sequence check on this socket. */
static int on_any_seq(struct nl_msg *msg, void *arg)
{
	return NL_OK;
}

static int cohmem_monitor_dispatch(Backend *b)
{
	MonitorBatch mb = { .page_size = b->page_size, .family = b->family };
	BackendEventFn fn = b->monitor_fn;
	void *userdata = b->monitor_userdata;
	struct nl_cb *cb;
	int r = 0, k;

	if (!b->monitor)
		return -EBADF;
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!cb)
		return -ENOMEM;
	nl_cb_set(cb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, on_any_seq, NULL);
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_monitor, &mb);
	/* Read what is pending; stop early when the batch is full. */
	while (mb.n < ELEMENTSOF(mb.events) - 1) {
		k = nl_recvmsgs(b->monitor, cb);
		if (k == -NLE_AGAIN)
			break;
		if (k < 0) {
			/* ENOBUFS (NLE_NOMEM): notifications were lost. */
			r = k == -NLE_NOMEM ? -ENOBUFS : backend_errno_from_nl(k);
			break;
		}
		if (k == 0)
			break;
	}
	nl_cb_put(cb);
	for (size_t i = 0; i < mb.n; i++) {
		if (mb.events[i].type == BACKEND_EVENT_UNLOAD)
			atomic_store(&b->gone, true);
		fn(b, &mb.events[i], userdata);
	}
	return r;
}

const BackendOps backend_cohmem_ops = {
	.name = "cohmem",
	.open = cohmem_open,
	.close = cohmem_close,
	.list_devices = cohmem_list_devices,
	.move = cohmem_move,
	.residency = cohmem_residency,
	.sample = cohmem_sample,
	.sample_windows = cohmem_sample_windows,
	.evict = cohmem_evict,
	.monitor_open = cohmem_monitor_open,
	.monitor_dispatch = cohmem_monitor_dispatch,
	.monitor_close = cohmem_monitor_close,
};
