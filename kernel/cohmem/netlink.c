// SPDX-License-Identifier: GPL-2.0
/*
 * cohmem generic netlink family. Documentation/netlink/specs/cohmem.yaml
 * describes it; include/uapi/linux/cohmem.h mirrors the spec.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <net/genetlink.h>

#include "cohmem.h"

static struct genl_family cohmem_family;
static bool cohmem_nl_registered;

/*
 * Strict per-command policies: an attribute that a command does not take
 * is refused ("Unsupported attribute"), and every attribute is checked for
 * its exact type and size. Values are checked by the handlers so that the
 * errno is the documented one (EINVAL, ENOENT, ESRCH) and not ERANGE.
 */
static const struct nla_policy cohmem_pool_get_policy[COHMEM_A_MAX + 1] = {
	[COHMEM_A_POOL_ID]	= { .type = NLA_U32 },
};

static const struct nla_policy cohmem_range_policy[COHMEM_A_MAX + 1] = {
	[COHMEM_A_PID]		= { .type = NLA_U32 },
	[COHMEM_A_START]	= { .type = NLA_U64 },
	[COHMEM_A_LENGTH]	= { .type = NLA_U64 },
};

static const struct nla_policy cohmem_migrate_policy[COHMEM_A_MAX + 1] = {
	[COHMEM_A_PID]		= { .type = NLA_U32 },
	[COHMEM_A_START]	= { .type = NLA_U64 },
	[COHMEM_A_LENGTH]	= { .type = NLA_U64 },
	[COHMEM_A_DEST]		= { .type = NLA_U32 },
};

static const struct nla_policy cohmem_window_policy[COHMEM_A_MAX + 1] = {
	[COHMEM_A_START]	= { .type = NLA_U64 },
	[COHMEM_A_LENGTH]	= { .type = NLA_U64 },
};

static const struct nla_policy cohmem_sample_policy[COHMEM_A_MAX + 1] = {
	[COHMEM_A_PID]		= { .type = NLA_U32 },
	[COHMEM_A_START]	= { .type = NLA_U64 },
	[COHMEM_A_LENGTH]	= { .type = NLA_U64 },
	[COHMEM_A_CLEAR]	= { .type = NLA_FLAG },
	[COHMEM_A_WINDOW]	= NLA_POLICY_NESTED(cohmem_window_policy),
};

static const struct nla_policy cohmem_evict_policy[COHMEM_A_MAX + 1] = {
	[COHMEM_A_POOL_ID]	= { .type = NLA_U32 },
	[COHMEM_A_NR_PAGES]	= { .type = NLA_U64 },
};

static int cohmem_put_u64(struct sk_buff *skb, int attr, u64 v)
{
	return nla_put_u64_64bit(skb, attr, v, COHMEM_A_PAD);
}

static int cohmem_fill_pool(struct sk_buff *skb, struct cohmem_pool *pool,
			    u32 portid, u32 seq, int flags)
{
	void *hdr;

	hdr = genlmsg_put(skb, portid, seq, &cohmem_family, flags,
			  COHMEM_CMD_POOL_GET);
	if (!hdr)
		return -EMSGSIZE;
	if (nla_put_u32(skb, COHMEM_A_POOL_ID, pool->id) ||
	    nla_put_string(skb, COHMEM_A_POOL_NAME, pool->name) ||
	    cohmem_put_u64(skb, COHMEM_A_POOL_PHYS_START, pool->start) ||
	    cohmem_put_u64(skb, COHMEM_A_POOL_PHYS_SIZE, pool->size) ||
	    nla_put_s32(skb, COHMEM_A_POOL_NID, pool->nid) ||
	    cohmem_put_u64(skb, COHMEM_A_POOL_TOTAL_PAGES, pool->npages) ||
	    cohmem_put_u64(skb, COHMEM_A_POOL_FREE_PAGES,
			   cohmem_pool_free_pages(pool)) ||
	    cohmem_put_u64(skb, COHMEM_A_POOL_MIGRATED_IN,
			   atomic64_read(&pool->migrated_in)) ||
	    cohmem_put_u64(skb, COHMEM_A_POOL_MIGRATED_OUT,
			   atomic64_read(&pool->migrated_out)) ||
	    cohmem_put_u64(skb, COHMEM_A_POOL_EVICTED,
			   atomic64_read(&pool->evicted)) ||
	    cohmem_put_u64(skb, COHMEM_A_POOL_FAILURES,
			   atomic64_read(&pool->failures)) ||
	    cohmem_put_u64(skb, COHMEM_A_POOL_LOW_PAGES, pool->low_pages) ||
	    cohmem_put_u64(skb, COHMEM_A_POOL_HIGH_PAGES, pool->high_pages)) {
		genlmsg_cancel(skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return 0;
}

static int cohmem_pool_get_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct cohmem_pool *pool;
	struct sk_buff *msg;
	int r;

	if (GENL_REQ_ATTR_CHECK(info, COHMEM_A_POOL_ID))
		return -EINVAL;
	pool = cohmem_pool_get(nla_get_u32(info->attrs[COHMEM_A_POOL_ID]));
	if (!pool) {
		NL_SET_ERR_MSG_ATTR(info->extack,
				    info->attrs[COHMEM_A_POOL_ID], "no such pool");
		return -ENOENT;
	}
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	r = cohmem_fill_pool(msg, pool, info->snd_portid, info->snd_seq, 0);
	if (r) {
		nlmsg_free(msg);
		return r;
	}
	return genlmsg_reply(msg, info);
}

static int cohmem_pool_get_dumpit(struct sk_buff *skb,
				  struct netlink_callback *cb)
{
	unsigned long i;

	for (i = cb->args[0]; i < cohmem_nr_pools; i++) {
		if (cohmem_fill_pool(skb, cohmem_pools[i],
				     NETLINK_CB(cb->skb).portid,
				     cb->nlh->nlmsg_seq, NLM_F_MULTI))
			break;
	}
	cb->args[0] = i;
	return skb->len;
}

/* PID, START and LENGTH: present, range valid, process found. */
static struct mm_struct *cohmem_range_args(struct genl_info *info,
					   u64 *start, u64 *length)
{
	int r;

	if (GENL_REQ_ATTR_CHECK(info, COHMEM_A_PID) ||
	    GENL_REQ_ATTR_CHECK(info, COHMEM_A_START) ||
	    GENL_REQ_ATTR_CHECK(info, COHMEM_A_LENGTH))
		return ERR_PTR(-EINVAL);
	*start = nla_get_u64(info->attrs[COHMEM_A_START]);
	*length = nla_get_u64(info->attrs[COHMEM_A_LENGTH]);
	r = cohmem_check_range(*start, *length, info->extack);
	if (r)
		return ERR_PTR(r);
	return NULL;
}

static int cohmem_migrate_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct cohmem_migrate_result res = {};
	struct mm_struct *mm;
	struct sk_buff *msg;
	u64 start, length;
	void *hdr;
	u32 dest;
	int r;

	mm = cohmem_range_args(info, &start, &length);
	if (IS_ERR(mm))
		return PTR_ERR(mm);
	if (GENL_REQ_ATTR_CHECK(info, COHMEM_A_DEST))
		return -EINVAL;
	dest = nla_get_u32(info->attrs[COHMEM_A_DEST]);
	if (dest != COHMEM_DEST_SYSTEM && !cohmem_pool_get(dest)) {
		NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[COHMEM_A_DEST],
				    "no such pool");
		return -ENOENT;
	}
	mm = cohmem_get_mm(nla_get_u32(info->attrs[COHMEM_A_PID]),
			   info->extack);
	if (IS_ERR(mm))
		return PTR_ERR(mm);
	r = cohmem_migrate(mm, start, length, dest, &res, info->extack);
	mmput(mm);
	if (r)
		return r;

	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &cohmem_family, 0,
				COHMEM_CMD_MIGRATE);
	if (!hdr ||
	    cohmem_put_u64(msg, COHMEM_A_MIGRATED, res.migrated) ||
	    cohmem_put_u64(msg, COHMEM_A_ALREADY, res.already) ||
	    cohmem_put_u64(msg, COHMEM_A_SKIP_NOT_PRESENT, res.not_present) ||
	    cohmem_put_u64(msg, COHMEM_A_SKIP_FILE, res.file) ||
	    cohmem_put_u64(msg, COHMEM_A_SKIP_SHARED, res.shared) ||
	    cohmem_put_u64(msg, COHMEM_A_SKIP_PINNED, res.pinned) ||
	    cohmem_put_u64(msg, COHMEM_A_SKIP_UNMOVABLE, res.unmovable) ||
	    cohmem_put_u64(msg, COHMEM_A_SKIP_NO_SPACE, res.no_space) ||
	    cohmem_put_u64(msg, COHMEM_A_FAILED, res.failed)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

static int cohmem_residency_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct cohmem_resident *res;
	struct mm_struct *mm;
	struct sk_buff *msg = NULL;
	u64 start, length;
	unsigned int i;
	size_t size;
	void *hdr;
	int r;

	mm = cohmem_range_args(info, &start, &length);
	if (IS_ERR(mm))
		return PTR_ERR(mm);
	res = kzalloc(sizeof(*res), GFP_KERNEL);
	if (!res)
		return -ENOMEM;
	res->extents = kvmalloc_array(COHMEM_EXTENTS_MAX,
				      sizeof(*res->extents), GFP_KERNEL);
	if (!res->extents) {
		r = -ENOMEM;
		goto out;
	}
	mm = cohmem_get_mm(nla_get_u32(info->attrs[COHMEM_A_PID]),
			   info->extack);
	if (IS_ERR(mm)) {
		r = PTR_ERR(mm);
		goto out;
	}
	r = cohmem_residency(mm, start, length, res, info->extack);
	mmput(mm);
	if (r)
		goto out;

	size = nla_total_size_64bit(sizeof(u64)) + nla_total_size(0) +
	       cohmem_nr_pools * (nla_total_size(0) +
				  nla_total_size(sizeof(u32)) +
				  nla_total_size_64bit(sizeof(u64))) +
	       res->nr_extents * (nla_total_size(0) +
				  nla_total_size(sizeof(u32)) +
				  2 * nla_total_size_64bit(sizeof(u64)));
	msg = genlmsg_new(size, GFP_KERNEL);
	if (!msg) {
		r = -ENOMEM;
		goto out;
	}
	r = -EMSGSIZE;
	hdr = genlmsg_put_reply(msg, info, &cohmem_family, 0,
				COHMEM_CMD_RESIDENCY);
	if (!hdr ||
	    cohmem_put_u64(msg, COHMEM_A_SYSTEM_PAGES, res->system_pages))
		goto out;
	for (i = 0; i < cohmem_nr_pools; i++) {
		struct nlattr *nest;

		if (!res->pool_pages[i])
			continue;
		nest = nla_nest_start(msg, COHMEM_A_RESIDENT);
		if (!nest || nla_put_u32(msg, COHMEM_A_POOL_ID, i) ||
		    cohmem_put_u64(msg, COHMEM_A_NR_PAGES, res->pool_pages[i]))
			goto out;
		nla_nest_end(msg, nest);
	}
	for (i = 0; i < res->nr_extents; i++) {
		struct cohmem_extent *e = &res->extents[i];
		struct nlattr *nest;

		nest = nla_nest_start(msg, COHMEM_A_EXTENT);
		if (!nest || nla_put_u32(msg, COHMEM_A_POOL_ID, e->pool) ||
		    cohmem_put_u64(msg, COHMEM_A_START, e->start) ||
		    cohmem_put_u64(msg, COHMEM_A_LENGTH, e->length))
			goto out;
		nla_nest_end(msg, nest);
	}
	if (res->truncated && nla_put_flag(msg, COHMEM_A_TRUNCATED))
		goto out;
	genlmsg_end(msg, hdr);
	r = genlmsg_reply(msg, info);
	msg = NULL;
out:
	nlmsg_free(msg);
	if (res)
		kvfree(res->extents);
	kfree(res);
	return r;
}

/*
 * The WINDOW nests of a SAMPLE request, in order, into @win (room for
 * COHMEM_SAMPLE_MAX_WINDOWS). The policy checked each nest's attributes.
 */
static int cohmem_sample_windows_args(struct genl_info *info,
				      struct cohmem_sample_window *win,
				      unsigned int *ret_n, u64 *ret_pages)
{
	struct nlattr *tb[COHMEM_A_MAX + 1];
	u64 pages = 0, prev_end = 0;
	unsigned int n = 0;
	struct nlattr *a;
	int rem, r;

	if (info->attrs[COHMEM_A_START] || info->attrs[COHMEM_A_LENGTH]) {
		NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[COHMEM_A_WINDOW],
				    "WINDOW and START/LENGTH exclude each other");
		return -EINVAL;
	}
	nlmsg_for_each_attr(a, info->nlhdr, GENL_HDRLEN, rem) {
		u64 start, length;

		if (nla_type(a) != COHMEM_A_WINDOW)
			continue;
		if (n == COHMEM_SAMPLE_MAX_WINDOWS) {
			NL_SET_ERR_MSG_ATTR(info->extack, a,
					    "more than COHMEM_SAMPLE_MAX_WINDOWS windows");
			return -EINVAL;
		}
		r = nla_parse_nested(tb, COHMEM_A_MAX, a, cohmem_window_policy,
				     info->extack);
		if (r)
			return r;
		if (!tb[COHMEM_A_START] || !tb[COHMEM_A_LENGTH]) {
			NL_SET_ERR_MSG_ATTR(info->extack, a,
					    "a window needs START and LENGTH");
			return -EINVAL;
		}
		start = nla_get_u64(tb[COHMEM_A_START]);
		length = nla_get_u64(tb[COHMEM_A_LENGTH]);
		r = cohmem_check_range(start, length, info->extack);
		if (r) {
			NL_SET_BAD_ATTR(info->extack, a);
			return r;
		}
		if (n && start < prev_end) {
			NL_SET_ERR_MSG_ATTR(info->extack, a,
					    "windows overlap or are not in address order");
			return -EINVAL;
		}
		win[n] = (struct cohmem_sample_window) {
			.start = start,
			.length = length,
			.first_bit = pages,
		};
		pages += length >> PAGE_SHIFT;
		if (pages > COHMEM_SAMPLE_MAX_PAGES) {
			NL_SET_ERR_MSG_ATTR(info->extack, a,
					    "more than COHMEM_SAMPLE_MAX_PAGES pages in all windows");
			return -EINVAL;
		}
		prev_end = start + length;
		n++;
	}
	*ret_n = n;
	*ret_pages = pages;
	return 0;
}

static int cohmem_put_windows(struct sk_buff *msg,
			      const struct cohmem_sample_window *win,
			      unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct nlattr *nest = nla_nest_start(msg, COHMEM_A_WINDOW);

		if (!nest ||
		    cohmem_put_u64(msg, COHMEM_A_START, win[i].start) ||
		    cohmem_put_u64(msg, COHMEM_A_NR_PAGES,
				   win[i].length >> PAGE_SHIFT) ||
		    cohmem_put_u64(msg, COHMEM_A_NR_YOUNG, win[i].nr_young) ||
		    (!win[i].mapped && nla_put_flag(msg, COHMEM_A_NO_MAPPING)))
			return -EMSGSIZE;
		nla_nest_end(msg, nest);
	}
	return 0;
}

static int cohmem_sample_doit(struct sk_buff *skb, struct genl_info *info)
{
	bool batched = info->attrs[COHMEM_A_WINDOW];
	struct cohmem_sample_window *win;
	unsigned long *bitmap = NULL;
	struct sk_buff *msg = NULL;
	struct mm_struct *mm;
	u64 start, length, npages, nr_young = 0;
	unsigned int i, n = 1;
	unsigned long bit;
	struct nlattr *attr;
	size_t nbytes;
	void *hdr;
	int r;

	win = kcalloc(batched ? COHMEM_SAMPLE_MAX_WINDOWS : 1, sizeof(*win),
		      GFP_KERNEL);
	if (!win)
		return -ENOMEM;
	if (batched) {
		r = GENL_REQ_ATTR_CHECK(info, COHMEM_A_PID) ? -EINVAL :
		    cohmem_sample_windows_args(info, win, &n, &npages);
		if (r)
			goto out;
	} else {
		mm = cohmem_range_args(info, &start, &length);
		if (IS_ERR(mm)) {
			r = PTR_ERR(mm);
			goto out;
		}
		npages = length >> PAGE_SHIFT;
		if (npages > COHMEM_SAMPLE_MAX_PAGES) {
			NL_SET_ERR_MSG_ATTR(info->extack,
					    info->attrs[COHMEM_A_LENGTH],
					    "more than COHMEM_SAMPLE_MAX_PAGES pages");
			r = -EINVAL;
			goto out;
		}
		win[0].start = start;
		win[0].length = length;
	}
	nbytes = DIV_ROUND_UP(npages, 8);
	r = -ENOMEM;
	bitmap = kvcalloc(BITS_TO_LONGS(npages), sizeof(long), GFP_KERNEL);
	if (!bitmap)
		goto out;
	mm = cohmem_get_mm(nla_get_u32(info->attrs[COHMEM_A_PID]),
			   info->extack);
	if (IS_ERR(mm)) {
		r = PTR_ERR(mm);
		goto out;
	}
	r = cohmem_sample(mm, win, n, nla_get_flag(info->attrs[COHMEM_A_CLEAR]),
			  bitmap);
	mmput(mm);
	if (r)
		goto out;
	if (!batched && !win[0].mapped) {
		NL_SET_ERR_MSG(info->extack, "no mapping in the range");
		r = -EFAULT;
		goto out;
	}
	for (i = 0; i < n; i++)
		nr_young += win[i].nr_young;

	r = -ENOMEM;
	msg = genlmsg_new(nla_total_size(nbytes) +
			  2 * nla_total_size_64bit(sizeof(u64)) +
			  (batched ? n * (nla_total_size(0) +
					  3 * nla_total_size_64bit(sizeof(u64)) +
					  nla_total_size(0)) : 0),
			  GFP_KERNEL);
	if (!msg)
		goto out;
	r = -EMSGSIZE;
	hdr = genlmsg_put_reply(msg, info, &cohmem_family, 0,
				COHMEM_CMD_SAMPLE);
	if (!hdr || cohmem_put_u64(msg, COHMEM_A_NR_PAGES, npages) ||
	    cohmem_put_u64(msg, COHMEM_A_NR_YOUNG, nr_young))
		goto out;
	attr = nla_reserve(msg, COHMEM_A_BITMAP, nbytes);
	if (!attr)
		goto out;
	/* one bit per page, LSB first within each byte, on any endianness */
	memset(nla_data(attr), 0, nbytes);
	for_each_set_bit(bit, bitmap, npages)
		((u8 *)nla_data(attr))[bit / 8] |= 1 << (bit % 8);
	if (batched && cohmem_put_windows(msg, win, n))
		goto out;
	genlmsg_end(msg, hdr);
	r = genlmsg_reply(msg, info);
	msg = NULL;
out:
	nlmsg_free(msg);
	kvfree(bitmap);
	kfree(win);
	return r;
}

static int cohmem_evict_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct cohmem_pool *pool;
	u64 count, evicted = 0, failed = 0;
	struct sk_buff *msg;
	void *hdr;
	int r;

	if (GENL_REQ_ATTR_CHECK(info, COHMEM_A_POOL_ID) ||
	    GENL_REQ_ATTR_CHECK(info, COHMEM_A_NR_PAGES))
		return -EINVAL;
	count = nla_get_u64(info->attrs[COHMEM_A_NR_PAGES]);
	if (!count) {
		NL_SET_ERR_MSG_ATTR(info->extack,
				    info->attrs[COHMEM_A_NR_PAGES],
				    "page count must not be zero");
		return -EINVAL;
	}
	pool = cohmem_pool_get(nla_get_u32(info->attrs[COHMEM_A_POOL_ID]));
	if (!pool) {
		NL_SET_ERR_MSG_ATTR(info->extack,
				    info->attrs[COHMEM_A_POOL_ID], "no such pool");
		return -ENOENT;
	}
	r = cohmem_evict(pool, count, &evicted, &failed);
	if (r)
		return r;

	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &cohmem_family, 0,
				COHMEM_CMD_EVICT);
	if (!hdr || nla_put_u32(msg, COHMEM_A_POOL_ID, pool->id) ||
	    cohmem_put_u64(msg, COHMEM_A_EVICTED, evicted) ||
	    cohmem_put_u64(msg, COHMEM_A_FAILED, failed)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

static const struct genl_ops cohmem_ops[] = {
	{
		.cmd = COHMEM_CMD_POOL_GET,
		.doit = cohmem_pool_get_doit,
		.dumpit = cohmem_pool_get_dumpit,
		.policy = cohmem_pool_get_policy,
		.maxattr = COHMEM_A_MAX,
	},
	{
		.cmd = COHMEM_CMD_MIGRATE,
		.doit = cohmem_migrate_doit,
		.policy = cohmem_migrate_policy,
		.maxattr = COHMEM_A_MAX,
		.flags = GENL_ADMIN_PERM,
	},
	{
		.cmd = COHMEM_CMD_RESIDENCY,
		.doit = cohmem_residency_doit,
		.policy = cohmem_range_policy,
		.maxattr = COHMEM_A_MAX,
		.flags = GENL_ADMIN_PERM,
	},
	{
		.cmd = COHMEM_CMD_SAMPLE,
		.doit = cohmem_sample_doit,
		.policy = cohmem_sample_policy,
		.maxattr = COHMEM_A_MAX,
		.flags = GENL_ADMIN_PERM,
	},
	{
		.cmd = COHMEM_CMD_EVICT,
		.doit = cohmem_evict_doit,
		.policy = cohmem_evict_policy,
		.maxattr = COHMEM_A_MAX,
		.flags = GENL_ADMIN_PERM,
	},
};

static const struct genl_multicast_group cohmem_mcgrps[] = {
	{ .name = COHMEM_MCGRP_MONITOR, },
};

static struct genl_family cohmem_family __ro_after_init = {
	.name = COHMEM_FAMILY_NAME,
	.version = COHMEM_FAMILY_VERSION,
	.maxattr = COHMEM_A_MAX,
	.netnsok = false,
	.parallel_ops = true,
	.module = THIS_MODULE,
	.ops = cohmem_ops,
	.n_ops = ARRAY_SIZE(cohmem_ops),
	.mcgrps = cohmem_mcgrps,
	.n_mcgrps = ARRAY_SIZE(cohmem_mcgrps),
};

static void cohmem_multicast(struct sk_buff *msg)
{
	/* -ESRCH only means that nobody listens */
	genlmsg_multicast(&cohmem_family, msg, 0, 0, GFP_KERNEL);
}

/**
 * cohmem_nl_notify_wmark() - tell the monitor group about a crossing
 * @pool: pool
 * @wmark: COHMEM_WMARK_LOW or COHMEM_WMARK_HIGH
 * @free_pages: free pages when the watermark was crossed
 *
 * Process context only.
 */
void cohmem_nl_notify_wmark(struct cohmem_pool *pool, u32 wmark,
			    u64 free_pages)
{
	struct sk_buff *msg;
	void *hdr;

	if (!READ_ONCE(cohmem_nl_registered))
		return;
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return;
	hdr = genlmsg_put(msg, 0, 0, &cohmem_family, 0,
			  COHMEM_CMD_WATERMARK_NTF);
	if (!hdr || nla_put_u32(msg, COHMEM_A_POOL_ID, pool->id) ||
	    cohmem_put_u64(msg, COHMEM_A_POOL_FREE_PAGES, free_pages) ||
	    nla_put_u32(msg, COHMEM_A_WMARK, wmark)) {
		nlmsg_free(msg);
		return;
	}
	genlmsg_end(msg, hdr);
	cohmem_multicast(msg);
}

/**
 * cohmem_nl_notify_unload() - tell the monitor group the module goes away
 */
void cohmem_nl_notify_unload(void)
{
	struct sk_buff *msg;
	void *hdr;

	if (!cohmem_nl_registered)
		return;
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return;
	hdr = genlmsg_put(msg, 0, 0, &cohmem_family, 0,
			  COHMEM_CMD_UNLOAD_NTF);
	if (!hdr) {
		nlmsg_free(msg);
		return;
	}
	genlmsg_end(msg, hdr);
	cohmem_multicast(msg);
}

/**
 * cohmem_nl_init() - register the generic netlink family
 *
 * Return: 0 or negative errno.
 */
int cohmem_nl_init(void)
{
	int r = genl_register_family(&cohmem_family);

	if (!r)
		WRITE_ONCE(cohmem_nl_registered, true);
	return r;
}

/**
 * cohmem_nl_exit() - unregister the family
 *
 * Waits for commands that are running; none runs after it returns.
 */
void cohmem_nl_exit(void)
{
	WRITE_ONCE(cohmem_nl_registered, false);
	genl_unregister_family(&cohmem_family);
}
