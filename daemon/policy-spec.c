/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Policies as users write them: "system", "bind:DEV", "hot:DEV", optionally
 * followed by ",quota=SIZE" and ",priority=N". One parser for cohctl, the
 * daemon, the state file and the SPANK plugin, so they cannot disagree.
 */

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"
#include "util.h"

/* The rule of coherentd.conf's [Device NAME] (daemon/conf.c), so every configured name works here. */
static bool spec_device_name_is_valid(const char *s, size_t n)
{
	if (n == 0 || n > POLICY_DEVICE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char) s[i]) && !strchr("_.-", s[i]))
			return false;
	return true;
}

static int spec_error(const char **ret_error, const char *msg)
{
	if (ret_error)
		*ret_error = msg;
	return -EINVAL;
}

/* Longest option we accept: "priority=" and a number, or "quota=" and a size. */
#define SPEC_OPTION_MAX 64

static int spec_parse_option(const char *opt, size_t n, PolicySpec *p, bool *seen_quota,
			     bool *seen_priority, const char **ret_error)
{
	char buf[SPEC_OPTION_MAX + 1];
	const char *v;
	int r;

	if (n == 0)
		return spec_error(ret_error, "empty option (two commas, or a trailing comma)");
	if (n > SPEC_OPTION_MAX)
		return spec_error(ret_error, "option too long");
	memcpy(buf, opt, n);
	buf[n] = '\0';

	v = startswith(buf, "quota=");
	if (v) {
		uint64_t q;

		if (*seen_quota)
			return spec_error(ret_error, "quota given twice");
		*seen_quota = true;
		if (p->kind == POLICY_KIND_SYSTEM)
			return spec_error(ret_error, "quota does not apply to system");
		/* parse_size() skips leading blanks (strtod): the option must start with a digit. */
		if (!isdigit((unsigned char) v[0]))
			return spec_error(ret_error, "bad quota: expected a size such as 512M or 2G");
		r = parse_size(v, &q);
		if (r == -ERANGE || (r >= 0 && q == POLICY_QUOTA_NONE))
			return spec_error(ret_error, "quota too large");
		if (r < 0)
			return spec_error(ret_error, "bad quota: expected a size such as 512M or 2G");
		if (q == 0)
			return spec_error(ret_error, "quota must be more than 0");
		p->quota = q;
		return 0;
	}

	v = startswith(buf, "priority=");
	if (v) {
		int prio;

		if (*seen_priority)
			return spec_error(ret_error, "priority given twice");
		*seen_priority = true;
		if (p->kind == POLICY_KIND_SYSTEM)
			return spec_error(ret_error, "priority does not apply to system");
		if (!isdigit((unsigned char) v[0]) && !(v[0] == '-' && isdigit((unsigned char) v[1])))
			return spec_error(ret_error, "bad priority: expected an integer");
		r = safe_atoi(v, &prio);
		if (r == -ERANGE || (r >= 0 && (prio < TARGET_PRIORITY_MIN || prio > TARGET_PRIORITY_MAX)))
			return spec_error(ret_error, "priority out of range (-1000..1000)");
		if (r < 0)
			return spec_error(ret_error, "bad priority: expected an integer");
		p->priority = prio;
		return 0;
	}

	return spec_error(ret_error, "unknown option: expected quota=SIZE or priority=N");
}

int policy_spec_parse(const char *s, PolicySpec *ret, const char **ret_error)
{
	PolicySpec p = { .quota = POLICY_QUOTA_NONE };
	bool seen_quota = false, seen_priority = false;
	const char *head_end, *dev;
	size_t n;
	int r;

	if (isempty(s))
		return spec_error(ret_error, "empty policy");

	head_end = s + strcspn(s, ",");
	n = (size_t) (head_end - s);

	if (n == STRLEN("system") && strneq(s, "system", n))
		p.kind = POLICY_KIND_SYSTEM;
	else if (strneq(s, "bind:", STRLEN("bind:"))) {
		p.kind = POLICY_KIND_BIND;
		dev = s + STRLEN("bind:");
	} else if (strneq(s, "hot:", STRLEN("hot:"))) {
		p.kind = POLICY_KIND_HOT;
		dev = s + STRLEN("hot:");
	} else if ((n == STRLEN("bind") && strneq(s, "bind", n)) ||
		   (n == STRLEN("hot") && strneq(s, "hot", n)))
		return spec_error(ret_error, "missing device name: bind:DEV or hot:DEV");
	else
		return spec_error(ret_error, "unknown policy kind: expected system, bind:DEV or hot:DEV");

	if (p.kind != POLICY_KIND_SYSTEM) {
		size_t dn = (size_t) (head_end - dev);

		if (dn == 0)
			return spec_error(ret_error, "missing device name: bind:DEV or hot:DEV");
		if (!spec_device_name_is_valid(dev, dn))
			return spec_error(ret_error, "invalid device name: expected 1-63 characters "
					  "of A-Z a-z 0-9 _ . -");
		memcpy(p.device, dev, dn);
		p.device[dn] = '\0';
	}

	while (*head_end == ',') {
		const char *opt = head_end + 1;

		head_end = opt + strcspn(opt, ",");
		r = spec_parse_option(opt, (size_t) (head_end - opt), &p, &seen_quota, &seen_priority,
				      ret_error);
		if (r < 0)
			return r;
	}

	*ret = p;
	if (ret_error)
		*ret_error = NULL;
	return 0;
}

char *policy_spec_format(const PolicySpec *p, char *buf, size_t size)
{
	char q[FORMAT_SIZE_MAX];
	size_t l;

	if (p->kind == POLICY_KIND_SYSTEM) {
		snprintf(buf, size, "system");
		return buf;
	}

	l = (size_t) snprintf(buf, size, "%s:%s", policy_kind_to_string(p->kind), p->device);
	if (p->quota != POLICY_QUOTA_NONE && l < size)
		l += (size_t) snprintf(buf + l, size - l, ",quota=%s", format_size(q, sizeof(q), p->quota));
	if (p->priority != 0 && l < size)
		(void) snprintf(buf + l, size - l, ",priority=%d", p->priority);
	return buf;
}
