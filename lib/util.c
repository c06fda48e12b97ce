/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* ---- numbers ---- */

/* strto* skip leading whitespace and accept a sign; we want neither silently. */
static int check_number_start(const char *s, bool allow_minus)
{
	if (isempty(s))
		return -EINVAL;
	if (s[0] == '-') {
		if (!allow_minus || !isdigit((unsigned char) s[1]))
			return -EINVAL;
		return 0;
	}
	if (!isdigit((unsigned char) s[0]))
		return -EINVAL;
	return 0;
}

int safe_atoi64(const char *s, int64_t *ret)
{
	char *end;
	long long v;

	if (check_number_start(s, true) < 0)
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	*ret = v;
	return 0;
}

int safe_atou64(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (check_number_start(s, false) < 0)
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	*ret = v;
	return 0;
}

int safe_atoi(const char *s, int *ret)
{
	int64_t v;
	int r;

	r = safe_atoi64(s, &v);
	if (r < 0)
		return r;
	if (v < INT_MIN || v > INT_MAX)
		return -ERANGE;
	*ret = (int) v;
	return 0;
}

int safe_atou(const char *s, unsigned *ret)
{
	uint64_t v;
	int r;

	r = safe_atou64(s, &v);
	if (r < 0)
		return r;
	if (v > UINT_MAX)
		return -ERANGE;
	*ret = (unsigned) v;
	return 0;
}

/*
 * Parse "123" or "123.456" at *p, advancing *p. ret_frac holds the fraction
 * digits as an integer with ret_frac_digits digits (at most 18).
 */
static int parse_decimal(const char **p, uint64_t *ret_int, uint64_t *ret_frac,
			 unsigned *ret_frac_digits)
{
	const char *s = *p;
	uint64_t i = 0, f = 0;
	unsigned fd = 0;

	if (!isdigit((unsigned char) *s))
		return -EINVAL;
	for (; isdigit((unsigned char) *s); s++) {
		unsigned d = (unsigned) (*s - '0');
		if (i > (UINT64_MAX - d) / 10)
			return -ERANGE;
		i = i * 10 + d;
	}
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char) *s))
			return -EINVAL;
		for (; isdigit((unsigned char) *s); s++) {
			if (fd >= 18)
				return -EINVAL;
			f = f * 10 + (uint64_t) (*s - '0');
			fd++;
		}
	}
	*p = s;
	*ret_int = i;
	*ret_frac = f;
	*ret_frac_digits = fd;
	return 0;
}

static uint64_t pow10_u64(unsigned n)
{
	uint64_t r = 1;
	while (n-- > 0)
		r *= 10;
	return r;
}

/* i.f * mult, rounding the fractional part down. */
static int scale_decimal(uint64_t i, uint64_t f, unsigned fd, uint64_t mult, uint64_t *ret)
{
	uint64_t v, frac;
	unsigned __int128 x;

	if (mult != 0 && i > UINT64_MAX / mult)
		return -ERANGE;
	v = i * mult;
	x = (unsigned __int128) f * mult / pow10_u64(fd);
	frac = (uint64_t) x;
	if (v > UINT64_MAX - frac)
		return -ERANGE;
	*ret = v + frac;
	return 0;
}

int parse_size(const char *s, uint64_t *ret)
{
	static const struct {
		char c;
		uint64_t mult;
	} units[] = {
		{ 'K', UINT64_C(1) << 10 },
		{ 'M', UINT64_C(1) << 20 },
		{ 'G', UINT64_C(1) << 30 },
		{ 'T', UINT64_C(1) << 40 },
		{ 'P', UINT64_C(1) << 50 },
		{ 'E', UINT64_C(1) << 60 },
	};
	uint64_t i, f, mult = 1;
	unsigned fd;
	const char *p = s;
	int r;

	if (isempty(s))
		return -EINVAL;
	r = parse_decimal(&p, &i, &f, &fd);
	if (r < 0)
		return r;

	if (*p != '\0') {
		size_t k;
		for (k = 0; k < ELEMENTSOF(units); k++)
			if (toupper((unsigned char) *p) == units[k].c)
				break;
		if (k < ELEMENTSOF(units)) {
			mult = units[k].mult;
			p++;
			if (strcasecmp(p, "iB") == 0 || strcasecmp(p, "B") == 0)
				p += strlen(p);
		} else if (strcasecmp(p, "B") == 0)
			p++;
		if (*p != '\0')
			return -EINVAL;
	}
	/* A fraction of a byte is meaningless. */
	if (mult == 1 && fd > 0)
		return -EINVAL;

	return scale_decimal(i, f, fd, mult, ret);
}

int parse_percent_bp(const char *s, unsigned *ret_bp)
{
	uint64_t i, f;
	unsigned fd;
	const char *p = s;
	int r;

	if (isempty(s))
		return -EINVAL;
	r = parse_decimal(&p, &i, &f, &fd);
	if (r < 0)
		return r;
	if (!streq(p, "%"))
		return -EINVAL;
	if (fd > 2)
		return -EINVAL;
	if (fd == 1)
		f *= 10;
	if (i > 100 || (i == 100 && f > 0))
		return -ERANGE;
	*ret_bp = (unsigned) (i * 100 + f);
	return 0;
}

int parse_duration(const char *s, uint64_t *ret_usec)
{
	static const struct {
		const char *suffix;
		uint64_t usec;
	} units[] = {
		/* Longer spellings first so "ms" is not read as "m" + "s". */
		{ "usec", 1 },
		{ "us", 1 },
		{ "msec", USEC_PER_MSEC },
		{ "ms", USEC_PER_MSEC },
		{ "seconds", USEC_PER_SEC },
		{ "second", USEC_PER_SEC },
		{ "sec", USEC_PER_SEC },
		{ "s", USEC_PER_SEC },
		{ "minutes", USEC_PER_MINUTE },
		{ "minute", USEC_PER_MINUTE },
		{ "min", USEC_PER_MINUTE },
		{ "m", USEC_PER_MINUTE },
		{ "hours", USEC_PER_HOUR },
		{ "hour", USEC_PER_HOUR },
		{ "hr", USEC_PER_HOUR },
		{ "h", USEC_PER_HOUR },
		{ "days", USEC_PER_DAY },
		{ "day", USEC_PER_DAY },
		{ "d", USEC_PER_DAY },
	};
	const char *p = s;
	uint64_t total = 0;
	bool any = false;

	if (isempty(s))
		return -EINVAL;

	for (;;) {
		uint64_t i, f, mult = USEC_PER_SEC, v;
		unsigned fd;
		int r;

		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		r = parse_decimal(&p, &i, &f, &fd);
		if (r < 0)
			return r;
		p += strspn(p, " \t");
		if (isalpha((unsigned char) *p)) {
			size_t k, n = 0;
			while (isalpha((unsigned char) p[n]))
				n++;
			for (k = 0; k < ELEMENTSOF(units); k++)
				if (strlen(units[k].suffix) == n && strneq(p, units[k].suffix, n))
					break;
			if (k >= ELEMENTSOF(units))
				return -EINVAL;
			mult = units[k].usec;
			p += n;
		}
		r = scale_decimal(i, f, fd, mult, &v);
		if (r < 0)
			return r;
		if (total > UINT64_MAX - v)
			return -ERANGE;
		total += v;
		any = true;
	}
	if (!any)
		return -EINVAL;
	*ret_usec = total;
	return 0;
}

char *format_size(char *buf, size_t l, uint64_t bytes)
{
	static const char suffixes[] = "KMGTPE";
	int k = -1;

	if (bytes != 0)
		while (k + 1 < (int) (sizeof(suffixes) - 1) && (bytes & ((UINT64_C(1) << 10) - 1)) == 0) {
			bytes >>= 10;
			k++;
		}
	if (k < 0)
		snprintf(buf, l, "%" PRIu64, bytes);
	else
		snprintf(buf, l, "%" PRIu64 "%c", bytes, suffixes[k]);
	return buf;
}

char *format_duration(char *buf, size_t l, uint64_t usec)
{
	static const struct {
		const char *suffix;
		uint64_t usec;
	} units[] = {
		{ "d", USEC_PER_DAY },
		{ "h", USEC_PER_HOUR },
		{ "min", USEC_PER_MINUTE },
		{ "s", USEC_PER_SEC },
		{ "ms", USEC_PER_MSEC },
	};

	if (usec == USEC_INFINITY) {
		snprintf(buf, l, "infinity");
		return buf;
	}
	if (usec != 0)
		for (size_t k = 0; k < ELEMENTSOF(units); k++)
			if (usec % units[k].usec == 0) {
				snprintf(buf, l, "%" PRIu64 "%s", usec / units[k].usec, units[k].suffix);
				return buf;
			}
	snprintf(buf, l, "%" PRIu64 "us", usec);
	return buf;
}

int parse_boolean(const char *s)
{
	static const char *const yes[] = { "1", "yes", "y", "true", "t", "on" };
	static const char *const no[] = { "0", "no", "n", "false", "f", "off" };

	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(yes); i++)
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
	for (size_t i = 0; i < ELEMENTSOF(no); i++)
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	return -EINVAL;
}

int parse_id_list(const char *s, uint64_t *bits, size_t n_bits)
{
	const char *p = s;

	if (!s)
		return -EINVAL;
	/* sysfs files end in a newline; an empty list is a valid list. */
	p += strspn(p, " \t\n");
	while (*p != '\0') {
		uint64_t a, b;
		char *end;

		if (!isdigit((unsigned char) *p))
			return -EINVAL;
		errno = 0;
		a = strtoull(p, &end, 10);
		if (errno != 0)
			return -ERANGE;
		p = end;
		b = a;
		if (*p == '-') {
			p++;
			if (!isdigit((unsigned char) *p))
				return -EINVAL;
			errno = 0;
			b = strtoull(p, &end, 10);
			if (errno != 0)
				return -ERANGE;
			p = end;
			if (b < a)
				return -EINVAL;
		}
		if (b >= n_bits)
			return -ERANGE;
		for (uint64_t i = a; i <= b; i++)
			bit_set(bits, (size_t) i);
		if (*p == ',')
			p++;
		else {
			p += strspn(p, " \t\n");
			if (*p != '\0')
				return -EINVAL;
		}
	}
	return 0;
}

/* ---- files ---- */

char *path_join_root(const char *root, const char *path)
{
	size_t lr, lp;
	char *r;

	if (isempty(root))
		root = "/";
	while (*path == '/')
		path++;
	lr = strlen(root);
	while (lr > 1 && root[lr - 1] == '/')
		lr--;
	lp = strlen(path);
	r = malloc(lr + 1 + lp + 1);
	if (!r)
		return NULL;
	memcpy(r, root, lr);
	if (lr == 1 && root[0] == '/')
		lr = 0;
	r[lr] = '/';
	memcpy(r + lr + 1, path, lp + 1);
	return r;
}

int read_file(const char *path, size_t max, char **ret, size_t *ret_size)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, alloc = 0;

	if (max == 0)
		max = READ_FILE_MAX_DEFAULT;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;

	/* sysfs reports st_size 4096 for everything; read until EOF instead. */
	for (;;) {
		ssize_t n;

		if (alloc - len < 2) {
			size_t na = alloc ? alloc * 2 : 4096;
			char *nb;

			/* max bytes, one more to see a file is too large, and the NUL. */
			if (na > max + 2)
				na = max + 2;
			if (na <= alloc)
				return -EFBIG;
			nb = realloc(buf, na);
			if (!nb)
				return -ENOMEM;
			buf = nb;
			alloc = na;
		}
		n = read(fd, buf + len, alloc - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t) n;
		if (len > max)
			return -EFBIG;
	}
	if (!buf) {
		buf = malloc(1);
		if (!buf)
			return -ENOMEM;
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	if (ret_size)
		*ret_size = len;
	return 0;
}

int read_file_root(const char *root, const char *path, size_t max, char **ret, size_t *ret_size)
{
	_cleanup_free_ char *p = NULL;

	p = path_join_root(root, path);
	if (!p)
		return -ENOMEM;
	return read_file(p, max, ret, ret_size);
}

int read_one_line_root(const char *root, const char *path, char **ret)
{
	char *buf;
	int r;

	r = read_file_root(root, path, 0, &buf, NULL);
	if (r < 0)
		return r;
	buf[strcspn(buf, "\n")] = '\0';
	*ret = buf;
	return 0;
}

/* ---- strings ---- */

char *startswith(const char *s, const char *prefix)
{
	size_t l = strlen(prefix);

	if (strncmp(s, prefix, l) != 0)
		return NULL;
	return (char *) s + l;
}

bool endswith(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

char *strstrip(char *s)
{
	char *e;

	s += strspn(s, " \t\n\r");
	e = s + strlen(s);
	while (e > s && strchr(" \t\n\r", e[-1]))
		e--;
	*e = '\0';
	return s;
}

char **strv_free(char **l)
{
	if (!l)
		return NULL;
	for (char **i = l; *i; i++)
		free(*i);
	free(l);
	return NULL;
}

size_t strv_length(char * const *l)
{
	size_t n = 0;

	if (!l)
		return 0;
	while (l[n])
		n++;
	return n;
}

int strv_push(char ***l, char *s)
{
	size_t n = strv_length(*l);
	char **nl;

	nl = realloc(*l, (n + 2) * sizeof(char *));
	if (!nl)
		return -ENOMEM;
	nl[n] = s;
	nl[n + 1] = NULL;
	*l = nl;
	return 0;
}

int strv_extend(char ***l, const char *s)
{
	char *c;
	int r;

	c = strdup(s);
	if (!c)
		return -ENOMEM;
	r = strv_push(l, c);
	if (r < 0)
		free(c);
	return r;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char * const *) a, *(char * const *) b);
}

void strv_sort(char **l)
{
	size_t n = strv_length(l);

	if (n > 1)
		qsort(l, n, sizeof(char *), cmp_str);
}
