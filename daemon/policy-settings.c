/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The [Policy] section's keys: parsed once here for coherentd.conf (conf.c)
 * and for `cohctl simulate --config` (simulate.c), so both read the same keys
 * the same way.
 */

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "policy.h"
#include "util.h"

void policy_settings_init(PolicySettings *s)
{
	PolicyConfig c;

	policy_config_init(&c);
	*s = (PolicySettings) {
		.hot_threshold = c.hot_threshold,
		.hysteresis_ticks = c.hysteresis_ticks,
		.min_residence_usec = c.min_residence_usec,
		.swap_margin_pct = c.swap_margin_pct,
		.cold_demote_ticks = c.cold_demote_ticks,
		.rate_mib_per_sec = 0,
	};
}

static int parse_bounded(const char *value, uint64_t min, uint64_t max, uint64_t *ret)
{
	uint64_t v;

	if (safe_atou64(value, &v) < 0 || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

int policy_settings_set(PolicySettings *s, const char *key, const char *value,
			const char **ret_expected)
{
	PolicySettings d, n = *s;
	const char *expected = NULL;
	uint64_t v;

	policy_settings_init(&d);
	if (!key || !value)
		return -EINVAL;
	if (streq(key, "HotThreshold")) {
		expected = "a number of accesses per tick, 1 or more";
		if (!*value)
			n.hot_threshold = d.hot_threshold;
		else if (parse_bounded(value, 1, UINT64_MAX, &v) < 0)
			goto bad;
		else
			n.hot_threshold = v;
	} else if (streq(key, "HysteresisTicks")) {
		expected = "a number of ticks, 0 to 1000";
		if (!*value)
			n.hysteresis_ticks = d.hysteresis_ticks;
		else if (parse_bounded(value, 0, POLICY_HYSTERESIS_MAX, &v) < 0)
			goto bad;
		else
			n.hysteresis_ticks = (unsigned) v;
	} else if (streq(key, "MinResidenceSec")) {
		expected = "a duration such as 5s or 500ms";
		if (!*value)
			n.min_residence_usec = d.min_residence_usec;
		else if (parse_duration(value, &v) < 0)
			goto bad;
		else
			n.min_residence_usec = v;
	} else if (streq(key, "SwapMarginPercent")) {
		expected = "a percentage as a number, 0 to 10000";
		if (!*value)
			n.swap_margin_pct = d.swap_margin_pct;
		else if (parse_bounded(value, 0, POLICY_SWAP_MARGIN_MAX, &v) < 0)
			goto bad;
		else
			n.swap_margin_pct = (unsigned) v;
	} else if (streq(key, "ColdDemoteTicks")) {
		expected = "a number of ticks, 0 (never) to 1000000";
		if (!*value)
			n.cold_demote_ticks = d.cold_demote_ticks;
		else if (parse_bounded(value, 0, POLICY_COLD_DEMOTE_MAX, &v) < 0)
			goto bad;
		else
			n.cold_demote_ticks = (unsigned) v;
	} else if (streq(key, "RateLimitMiB")) {
		expected = "MiB per second, 1 to 1073741824, or 0 or \"infinity\" for no limit";
		if (!*value || streq(value, "infinity"))
			n.rate_mib_per_sec = 0;
		else if (parse_bounded(value, 0, POLICY_RATE_MIB_MAX, &v) < 0)
			goto bad;
		else
			n.rate_mib_per_sec = v;
	} else
		return -ENOENT;
	*s = n;
	return 0;
bad:
	if (ret_expected)
		*ret_expected = expected;
	return -EINVAL;
}

void policy_settings_to_config(const PolicySettings *s, uint64_t tick_usec, PolicyConfig *ret)
{
	policy_config_init(ret);
	ret->tick_usec = tick_usec;
	ret->hot_threshold = s->hot_threshold;
	ret->hysteresis_ticks = s->hysteresis_ticks;
	ret->min_residence_usec = s->min_residence_usec;
	ret->swap_margin_pct = s->swap_margin_pct;
	ret->cold_demote_ticks = s->cold_demote_ticks;
	if (s->rate_mib_per_sec == 0)
		ret->rate_bytes_per_tick = POLICY_RATE_NONE;
	else {
		unsigned __int128 b = (unsigned __int128) s->rate_mib_per_sec * (UINT64_C(1) << 20) *
				      tick_usec / USEC_PER_SEC;

		ret->rate_bytes_per_tick = b >= POLICY_RATE_NONE ? POLICY_RATE_NONE - 1 : (uint64_t) b;
	}
}

int policy_settings_dump(const PolicySettings *s, FILE *f)
{
	char buf[FORMAT_DURATION_MAX];

	fprintf(f, "HotThreshold=%" PRIu64 "\n", s->hot_threshold);
	fprintf(f, "HysteresisTicks=%u\n", s->hysteresis_ticks);
	fprintf(f, "MinResidenceSec=%s\n", format_duration(buf, sizeof(buf), s->min_residence_usec));
	fprintf(f, "SwapMarginPercent=%u\n", s->swap_margin_pct);
	fprintf(f, "ColdDemoteTicks=%u\n", s->cold_demote_ticks);
	if (s->rate_mib_per_sec)
		fprintf(f, "RateLimitMiB=%" PRIu64 "\n", s->rate_mib_per_sec);
	else
		fprintf(f, "RateLimitMiB=infinity\n");
	return ferror(f) ? -EIO : 0;
}
