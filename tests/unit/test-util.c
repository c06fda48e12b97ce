/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "util.h"

#define GIB (UINT64_C(1) << 30)

static void test_parse_size(void **state)
{
	static const struct {
		const char *in;
		int ret;
		uint64_t bytes;
	} t[] = {
		{ "0", 0, 0 },
		{ "4096", 0, 4096 },
		{ "4096B", 0, 4096 },
		{ "4K", 0, 4096 },
		{ "4k", 0, 4096 },
		{ "4KiB", 0, 4096 },
		{ "4KB", 0, 4096 },
		{ "1M", 0, UINT64_C(1) << 20 },
		{ "1.5G", 0, 3 * GIB / 2 },
		{ "2T", 0, UINT64_C(2) << 40 },
		{ "1P", 0, UINT64_C(1) << 50 },
		{ "15E", 0, UINT64_C(15) << 60 },
		{ "0.1K", 0, 102 },                       /* fractions of a byte round down */
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "18446744073709551616", -ERANGE, 0 },
		{ "16E", -ERANGE, 0 },
		{ "17179869184G", -ERANGE, 0 },
		{ "1.5", -EINVAL, 0 },                    /* a fraction of a byte */
		{ "", -EINVAL, 0 },
		{ "G", -EINVAL, 0 },
		{ "-1G", -EINVAL, 0 },
		{ " 1G", -EINVAL, 0 },
		{ "1G ", -EINVAL, 0 },
		{ "1 G", -EINVAL, 0 },
		{ "1X", -EINVAL, 0 },
		{ "1GiBB", -EINVAL, 0 },
		{ "1.G", -EINVAL, 0 },
		{ "1..5G", -EINVAL, 0 },
		{ "0x10", -EINVAL, 0 },
		{ "10%", -EINVAL, 0 },
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		uint64_t v = 12345;
		int r = parse_size(t[i].in, &v);

		if (r != t[i].ret)
			fail_msg("parse_size(\"%s\") = %d, expected %d", t[i].in, r, t[i].ret);
		if (r == 0 && v != t[i].bytes)
			fail_msg("parse_size(\"%s\") → %" PRIu64 ", expected %" PRIu64, t[i].in, v,
				 t[i].bytes);
	}
}

static void test_parse_percent(void **state)
{
	static const struct {
		const char *in;
		int ret;
		unsigned bp;
	} t[] = {
		{ "0%", 0, 0 },
		{ "10%", 0, 1000 },
		{ "12.5%", 0, 1250 },
		{ "0.01%", 0, 1 },
		{ "100%", 0, 10000 },
		{ "100.0%", 0, 10000 },
		{ "100.01%", -ERANGE, 0 },
		{ "101%", -ERANGE, 0 },
		{ "1.234%", -EINVAL, 0 },
		{ "10", -EINVAL, 0 },
		{ "%", -EINVAL, 0 },
		{ "10 %", -EINVAL, 0 },
		{ "-5%", -EINVAL, 0 },
		{ "", -EINVAL, 0 },
		{ "10%%", -EINVAL, 0 },
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		unsigned v = 777;
		int r = parse_percent_bp(t[i].in, &v);

		if (r != t[i].ret)
			fail_msg("parse_percent_bp(\"%s\") = %d, expected %d", t[i].in, r, t[i].ret);
		if (r == 0 && v != t[i].bp)
			fail_msg("parse_percent_bp(\"%s\") → %u, expected %u", t[i].in, v, t[i].bp);
	}
}

static void test_parse_duration(void **state)
{
	static const struct {
		const char *in;
		int ret;
		uint64_t usec;
	} t[] = {
		{ "5", 0, 5 * USEC_PER_SEC },
		{ "5s", 0, 5 * USEC_PER_SEC },
		{ "5sec", 0, 5 * USEC_PER_SEC },
		{ "5 seconds", 0, 5 * USEC_PER_SEC },
		{ "500ms", 0, 500 * USEC_PER_MSEC },
		{ "500msec", 0, 500 * USEC_PER_MSEC },
		{ "250us", 0, 250 },
		{ "1.5s", 0, 1500 * USEC_PER_MSEC },
		{ "2m", 0, 2 * USEC_PER_MINUTE },
		{ "2min", 0, 2 * USEC_PER_MINUTE },
		{ "1min 30s", 0, 90 * USEC_PER_SEC },
		{ "1h2min3s", 0, USEC_PER_HOUR + 2 * USEC_PER_MINUTE + 3 * USEC_PER_SEC },
		{ "1d", 0, USEC_PER_DAY },
		{ "2 hours", 0, 2 * USEC_PER_HOUR },
		{ "0", 0, 0 },
		{ "", -EINVAL, 0 },
		{ "  ", -EINVAL, 0 },
		{ "s", -EINVAL, 0 },
		{ "5x", -EINVAL, 0 },
		{ "5 s s", -EINVAL, 0 },
		{ "-5s", -EINVAL, 0 },
		{ "5.s", -EINVAL, 0 },
		{ "fast", -EINVAL, 0 },
		{ "99999999999999999999s", -ERANGE, 0 },
		{ "300000000d", -ERANGE, 0 },
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		uint64_t v = 4242;
		int r = parse_duration(t[i].in, &v);

		if (r != t[i].ret)
			fail_msg("parse_duration(\"%s\") = %d, expected %d", t[i].in, r, t[i].ret);
		if (r == 0 && v != t[i].usec)
			fail_msg("parse_duration(\"%s\") → %" PRIu64 ", expected %" PRIu64, t[i].in,
				 v, t[i].usec);
	}
}

static void test_format(void **state)
{
	static const struct {
		uint64_t v;
		const char *size, *duration;
	} t[] = {
		{ 0, "0", "0us" },
		{ 1, "1", "1us" },
		{ 1000, "1000", "1ms" },
		{ 1024, "1K", "1024us" },
		{ 1536 * (UINT64_C(1) << 20), "1536M", "1610612736us" },
		{ 4 * GIB, "4G", "4294967296us" },
		{ 90 * USEC_PER_SEC, "90000000", "90s" },
		{ 5 * USEC_PER_SEC, "5000000", "5s" },
		{ 2 * USEC_PER_MINUTE, "120000000", "2min" },
		{ USEC_PER_DAY, "84375000K", "1d" },
		{ UINT64_MAX, "18446744073709551615", "infinity" },
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		char buf[FORMAT_SIZE_MAX];
		uint64_t back;

		assert_string_equal(format_size(buf, sizeof(buf), t[i].v), t[i].size);
		assert_string_equal(format_duration(buf, sizeof(buf), t[i].v), t[i].duration);

		/* What we print, we parse back to the same value. */
		assert_int_equal(parse_size(t[i].size, &back), 0);
		assert_int_equal(back, t[i].v);
		if (t[i].v != UINT64_MAX) {
			assert_int_equal(parse_duration(t[i].duration, &back), 0);
			assert_int_equal(back, t[i].v);
		}
	}
}

static void test_safe_ato(void **state)
{
	static const struct {
		const char *in;
		int ret_i, ret_u, ret_u64;
		int64_t value;
	} t[] = {
		{ "0", 0, 0, 0, 0 },
		{ "42", 0, 0, 0, 42 },
		{ "-42", 0, -EINVAL, -EINVAL, -42 },
		{ "2147483647", 0, 0, 0, 2147483647 },
		{ "2147483648", -ERANGE, 0, 0, 2147483648 },
		{ "4294967296", -ERANGE, -ERANGE, 0, 4294967296 },
		{ "-2147483649", -ERANGE, -EINVAL, -EINVAL, 0 },
		{ "", -EINVAL, -EINVAL, -EINVAL, 0 },
		{ " 1", -EINVAL, -EINVAL, -EINVAL, 0 },
		{ "1 ", -EINVAL, -EINVAL, -EINVAL, 0 },
		{ "+1", -EINVAL, -EINVAL, -EINVAL, 0 },
		{ "1a", -EINVAL, -EINVAL, -EINVAL, 0 },
		{ "0x1", -EINVAL, -EINVAL, -EINVAL, 0 },
		{ "-", -EINVAL, -EINVAL, -EINVAL, 0 },
		{ "99999999999999999999", -ERANGE, -ERANGE, -ERANGE, 0 },
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		unsigned u;
		uint64_t u64;
		int v;

		if (safe_atoi(t[i].in, &v) != t[i].ret_i)
			fail_msg("safe_atoi(\"%s\") != %d", t[i].in, t[i].ret_i);
		if (t[i].ret_i == 0)
			assert_int_equal(v, t[i].value);
		if (safe_atou(t[i].in, &u) != t[i].ret_u)
			fail_msg("safe_atou(\"%s\") != %d", t[i].in, t[i].ret_u);
		if (t[i].ret_u == 0)
			assert_int_equal(u, t[i].value);
		if (safe_atou64(t[i].in, &u64) != t[i].ret_u64)
			fail_msg("safe_atou64(\"%s\") != %d", t[i].in, t[i].ret_u64);
		if (t[i].ret_u64 == 0)
			assert_int_equal(u64, t[i].value);
	}
}

static void test_parse_id_list(void **state)
{
	static const struct {
		const char *in;
		size_t n_bits;
		int ret;
		uint64_t w0, w1;
	} t[] = {
		{ "", 128, 0, 0, 0 },
		{ "\n", 128, 0, 0, 0 },
		{ "0\n", 128, 0, 0x1, 0 },
		{ "0-3\n", 128, 0, 0xf, 0 },
		{ "0-3,8,10-11\n", 128, 0, 0xd0f, 0 },
		{ "63-64", 128, 0, UINT64_C(1) << 63, 1 },
		{ "127", 128, 0, 0, UINT64_C(1) << 63 },
		{ "128", 128, -ERANGE, 0, 0 },
		{ "0-128", 128, -ERANGE, 0, 0 },
		{ "3-1", 128, -EINVAL, 0, 0 },
		{ "1,,2", 128, -EINVAL, 0, 0 },
		{ "a", 128, -EINVAL, 0, 0 },
		{ "1-", 128, -EINVAL, 0, 0 },
		{ "-1", 128, -EINVAL, 0, 0 },
		{ "1 2", 128, -EINVAL, 0, 0 },
		{ "99999999999999999999", 128, -ERANGE, 0, 0 },
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		uint64_t bits[2] = {};
		int r = parse_id_list(t[i].in, bits, t[i].n_bits);

		if (r != t[i].ret)
			fail_msg("parse_id_list(\"%s\") = %d, expected %d", t[i].in, r, t[i].ret);
		if (r == 0 && (bits[0] != t[i].w0 || bits[1] != t[i].w1))
			fail_msg("parse_id_list(\"%s\") → %" PRIx64 " %" PRIx64, t[i].in, bits[0],
				 bits[1]);
	}
}

static void test_parse_boolean(void **state)
{
	assert_int_equal(parse_boolean("yes"), 1);
	assert_int_equal(parse_boolean("On"), 1);
	assert_int_equal(parse_boolean("1"), 1);
	assert_int_equal(parse_boolean("no"), 0);
	assert_int_equal(parse_boolean("FALSE"), 0);
	assert_int_equal(parse_boolean("maybe"), -EINVAL);
	assert_int_equal(parse_boolean(""), -EINVAL);
}

static void test_path_join_root(void **state)
{
	static const struct {
		const char *root, *path, *out;
	} t[] = {
		{ "/", "/sys/x", "/sys/x" },
		{ NULL, "/sys/x", "/sys/x" },
		{ "", "sys/x", "/sys/x" },
		{ "fix/gh", "/sys/x", "fix/gh/sys/x" },
		{ "fix/gh/", "/sys/x", "fix/gh/sys/x" },
		{ "/tmp/r//", "//sys/x", "/tmp/r/sys/x" },
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		_cleanup_free_ char *p = path_join_root(t[i].root, t[i].path);

		assert_non_null(p);
		assert_string_equal(p, t[i].out);
	}
}

static void test_read_file(void **state)
{
	char dir[] = "/tmp/test-util-XXXXXX";
	_cleanup_free_ char *path = NULL, *text = NULL;
	size_t size;
	int fd;

	assert_non_null(mkdtemp(dir));
	assert_true(asprintf(&path, "%s/sys/f", dir) > 0);

	assert_int_equal(read_file_root(dir, "/sys/f", 0, &text, &size), -ENOENT);

	*strrchr(path, '/') = '\0';
	assert_int_equal(mkdir(path, 0755), 0);
	path[strlen(path)] = '/';

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0-3\nsecond\n", 11), 11);
	close(fd);

	assert_int_equal(read_file_root(dir, "/sys/f", 0, &text, &size), 0);
	assert_int_equal(size, 11);
	assert_string_equal(text, "0-3\nsecond\n");
	free(text);
	text = NULL;

	/* Larger than the limit: refused, not truncated. */
	assert_int_equal(read_file_root(dir, "/sys/f", 10, &text, &size), -EFBIG);
	assert_null(text);
	assert_int_equal(read_file_root(dir, "/sys/f", 11, &text, &size), 0);
	free(text);
	text = NULL;

	assert_int_equal(read_one_line_root(dir, "sys/f", &text), 0);
	assert_string_equal(text, "0-3");
	free(text);
	text = NULL;

	/* Empty files read as "". */
	assert_int_equal(read_file("/dev/null", 0, &text, &size), 0);
	assert_int_equal(size, 0);
	assert_string_equal(text, "");

	assert_int_equal(read_file_root(dir, "/sys", 0, &text, &size), -EISDIR);

	unlink(path);
	*strrchr(path, '/') = '\0';
	rmdir(path);
	rmdir(dir);
}

static void test_strings(void **state)
{
	_cleanup_strv_free_ char **l = NULL;
	char buf[] = "  \tkey = value \n";

	assert_string_equal(startswith("memory_tier4", "memory_tier"), "4");
	assert_null(startswith("memory", "memory_tier"));
	assert_true(endswith("10-a.conf", ".conf"));
	assert_false(endswith("conf", ".conf"));
	assert_string_equal(strstrip(buf), "key = value");

	assert_int_equal(strv_extend(&l, "b.conf"), 0);
	assert_int_equal(strv_extend(&l, "a.conf"), 0);
	assert_int_equal(strv_extend(&l, "10-x.conf"), 0);
	strv_sort(l);
	assert_int_equal(strv_length(l), 3);
	assert_string_equal(l[0], "10-x.conf");
	assert_string_equal(l[1], "a.conf");
	assert_string_equal(l[2], "b.conf");
	assert_null(l[3]);
}

static void test_log(void **state)
{
	assert_int_equal(log_level_from_string("err"), LOG_ERR);
	assert_int_equal(log_level_from_string("error"), LOG_ERR);
	assert_int_equal(log_level_from_string("debug"), LOG_DEBUG);
	assert_int_equal(log_level_from_string("7"), LOG_DEBUG);
	assert_int_equal(log_level_from_string("8"), -EINVAL);
	assert_int_equal(log_level_from_string("loud"), -EINVAL);
	assert_string_equal(log_level_to_string(LOG_WARNING), "warning");
	assert_null(log_level_to_string(8));

	/* log_*_errno() returns the negative error whatever sign it was given. */
	log_set_max_level(LOG_EMERG);
	assert_int_equal(log_error_errno(ENOENT, "x: %m"), -ENOENT);
	assert_int_equal(log_error_errno(-EBADMSG, "x: %m"), -EBADMSG);
	log_set_max_level(LOG_INFO);
}

/* Run the log output through a pipe to see the "<N>" journal prefix and %m. */
static void test_log_output(void **state)
{
	char buf[256] = {};
	int p[2], saved;
	ssize_t n;

	assert_int_equal(pipe(p), 0);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(p[1], STDERR_FILENO) >= 0);

	log_set_max_level(LOG_INFO);
	log_set_syslog_prefix(true);
	(void) log_warning_errno(-ENOENT, "Failed to open %s: %m", "x");
	log_debug("not shown");
	log_set_syslog_prefix(false);
	log_info("plain");
	fflush(stderr);

	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	close(p[1]);
	n = read(p[0], buf, sizeof(buf) - 1);
	close(p[0]);
	assert_true(n > 0);
	assert_string_equal(buf, "<4>Failed to open x: No such file or directory\nplain\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_percent),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_safe_ato),
		cmocka_unit_test(test_parse_id_list),
		cmocka_unit_test(test_parse_boolean),
		cmocka_unit_test(test_path_join_root),
		cmocka_unit_test(test_read_file),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_log),
		cmocka_unit_test(test_log_output),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
