/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "util.h"

/*
 * Parse text as file "t.conf" (plus an optional drop-in "d.conf"), validate,
 * and render either the canonical dump or the errors as "FILE:LINE: msg\n".
 */
static char *render(const char *text, const char *dropin)
{
	_cleanup_(conf_freep) Conf *c = conf_new();
	ConfError *errors = NULL;
	size_t n_errors = 0, size = 0;
	char *out = NULL;
	FILE *f;

	assert_non_null(c);
	assert_int_equal(conf_parse_text(c, "t.conf", text, &errors, &n_errors), 0);
	if (dropin)
		assert_int_equal(conf_parse_text(c, "d.conf", dropin, &errors, &n_errors), 0);
	assert_int_equal(conf_validate(c, &errors, &n_errors), 0);

	f = open_memstream(&out, &size);
	assert_non_null(f);
	if (n_errors == 0)
		assert_int_equal(conf_dump(c, f), 0);
	for (size_t i = 0; i < n_errors; i++)
		fprintf(f, "%s:%u: %s\n", errors[i].file, errors[i].line, errors[i].message);
	fclose(f);
	conf_errors_free(errors, n_errors);
	return out;
}

#define POLICY_DEFAULTS "\n[Policy]\nHotThreshold=1\nHysteresisTicks=1\nMinResidenceSec=5s\n" \
	"SwapMarginPercent=200\nColdDemoteTicks=0\nRateLimitMiB=infinity\n" \
	"Tracker=auto\nMaxRegions=1000\n"
#define DEFAULTS "# no configuration files read, built-in defaults\n" \
	"[Daemon]\nTickSec=5s\nLogLevel=info\n" POLICY_DEFAULTS

static void test_conf_table(void **state)
{
	static const struct {
		const char *name, *text, *dropin, *expected;
	} t[] = {
		{ "empty", "", NULL, DEFAULTS },
		{ "comments only", "# x\n; y\n\n", NULL, DEFAULTS },
		{ "daemon", "[Daemon]\nTickSec=250ms\nLogLevel=debug\n", NULL,
		  "# no configuration files read, built-in defaults\n"
		  "[Daemon]\nTickSec=250ms\nLogLevel=debug\n" POLICY_DEFAULTS },
		{ "numeric log level", "[Daemon]\nLogLevel=3\n", NULL,
		  "# no configuration files read, built-in defaults\n"
		  "[Daemon]\nTickSec=5s\nLogLevel=err\n" POLICY_DEFAULTS },
		{ "device", "[Device gpu0]\nNode=1\nLowWatermark=10%\nHighWatermark=4096M\n", NULL,
		  DEFAULTS "\n[Device gpu0]\nKind=numa\nNode=1\nLowWatermark=10%\nHighWatermark=4G\n" },
		{ "devices sorted by name", "[Device b]\nNode=2\n[Device a]\nNode=1\n", NULL,
		  DEFAULTS "\n[Device a]\nKind=numa\nNode=1\n\n[Device b]\nKind=numa\nNode=2\n" },
		{ "spaces and inline comment", "[Device x]\n  Node =  7 ; seven\n", NULL,
		  DEFAULTS "\n[Device x]\nKind=numa\nNode=7\n" },
		{ "later assignment wins", "[Daemon]\nTickSec=1s\nTickSec=2s\n", NULL,
		  "# no configuration files read, built-in defaults\n"
		  "[Daemon]\nTickSec=2s\nLogLevel=info\n" POLICY_DEFAULTS },
		{ "drop-in extends a device", "[Device g]\nNode=1\n", "[Device g]\nHighWatermark=1G\n",
		  DEFAULTS "\n[Device g]\nKind=numa\nNode=1\nHighWatermark=1G\n" },
		{ "empty value resets", "[Device g]\nNode=1\nLowWatermark=1G\n", "[Device g]\nLowWatermark=\n",
		  DEFAULTS "\n[Device g]\nKind=numa\nNode=1\n" },
		{ "percent formats", "[Device g]\nNode=1\nLowWatermark=0.05%\nHighWatermark=99.9%\n", NULL,
		  DEFAULTS "\n[Device g]\nKind=numa\nNode=1\nLowWatermark=0.05%\nHighWatermark=99.9%\n" },
		{ "mixed units are not compared", "[Device g]\nNode=1\nLowWatermark=90%\nHighWatermark=1K\n",
		  NULL, DEFAULTS "\n[Device g]\nKind=numa\nNode=1\nLowWatermark=90%\nHighWatermark=1K\n" },

		{ "unknown section", "[Foo]\nA=b\n", NULL, "t.conf:1: unknown section [Foo]\n" },
		{ "unknown key", "[Daemon]\nFoo=1\n", NULL,
		  "t.conf:2: unknown key Foo= in section [Daemon]\n" },
		{ "unknown device key", "[Device g]\nNode=1\nSize=1G\n", NULL,
		  "t.conf:3: unknown key Size= in section [Device g]\n" },
		{ "outside section", "TickSec=1s\n", NULL,
		  "t.conf:1: TickSec= outside of a section: put it under [Daemon] or [Device NAME]\n" },
		{ "no equals", "[Daemon]\n\nTickSec\n", NULL,
		  "t.conf:3: syntax error: expected [Section] or Key=Value\n" },
		{ "unterminated section", "[Daemon\nTickSec=1s\n", NULL,
		  "t.conf:1: syntax error: section header without ']'\n" },
		{ "device without name", "[Device]\nNode=1\n", NULL,
		  "t.conf:1: section [Device] needs a name: [Device NAME]\n" },
		{ "bad device name", "[Device a/b]\nNode=1\n", NULL,
		  "t.conf:1: invalid device name \"a/b\": expected 1-63 characters of A-Z a-z 0-9 _ . -\n" },
		{ "device name too long",
		  "[Device 0123456789012345678901234567890123456789012345678901234567890123]\n", NULL,
		  "t.conf:1: invalid device name \"0123456789012345678901234567890123456789012345678901234567890123\": "
		  "expected 1-63 characters of A-Z a-z 0-9 _ . -\n" },
		{ "bad tick", "[Daemon]\nTickSec=soon\n", NULL,
		  "t.conf:2: invalid TickSec=soon: expected a duration such as 5s or 500ms\n" },
		{ "tick too short", "[Daemon]\nTickSec=99ms\n", NULL,
		  "t.conf:2: TickSec=99ms is out of range (100ms..1d)\n" },
		{ "tick too long", "[Daemon]\nTickSec=2d\n", NULL,
		  "t.conf:2: TickSec=2d is out of range (100ms..1d)\n" },
		{ "bad log level", "[Daemon]\nLogLevel=8\n", NULL,
		  "t.conf:2: invalid LogLevel=8: expected emerg, alert, crit, err, warning, notice, info or debug\n" },
		{ "bad node", "[Device g]\nNode=one\n", NULL,
		  "t.conf:2: invalid Node=one: expected a NUMA node number 0..1023\n"
		  "t.conf:1: [Device g] has no Node=\n" },
		{ "node too large", "[Device g]\nNode=1024\nNode=3\n", NULL,
		  "t.conf:2: invalid Node=1024: expected a NUMA node number 0..1023\n" },
		{ "bad kind", "[Device g]\nNode=1\nKind=gpu\n", NULL,
		  "t.conf:3: invalid Kind=gpu: expected numa\n" },
		{ "cohmem not yet", "[Device g]\nNode=1\nKind=cohmem\n", NULL,
		  "t.conf:3: Kind=cohmem is not supported yet: only numa devices can be configured\n" },
		{ "bad size", "[Device g]\nNode=1\nLowWatermark=1Q\n", NULL,
		  "t.conf:3: invalid LowWatermark=1Q: expected a size (4G, 512M) or a percentage (10%)\n" },
		{ "bad percent", "[Device g]\nNode=1\nHighWatermark=x%\n", NULL,
		  "t.conf:3: invalid HighWatermark=x%: expected a percentage such as 10% or 12.5%\n" },
		{ "percent above 100", "[Device g]\nNode=1\nHighWatermark=100.5%\n", NULL,
		  "t.conf:3: HighWatermark=100.5% is out of range: at most 100%\n" },
		{ "no node", "[Device g]\n", NULL, "t.conf:1: [Device g] has no Node=\n" },
		{ "duplicate node", "[Device a]\nNode=1\n", "\n[Device b]\nNode=1\n",
		  "d.conf:2: [Device b] uses Node=1, already used by [Device a] (t.conf:1)\n" },
		{ "low above high", "[Device g]\nNode=1\nLowWatermark=2G\nHighWatermark=1G\n", NULL,
		  "t.conf:1: [Device g] LowWatermark=2G is above HighWatermark=1G\n" },
		{ "errors in line order", "[Daemon]\nBogus\nTickSec=x\nFoo=1\n", NULL,
		  "t.conf:2: syntax error: expected [Section] or Key=Value\n"
		  "t.conf:3: invalid TickSec=x: expected a duration such as 5s or 500ms\n"
		  "t.conf:4: unknown key Foo= in section [Daemon]\n" },
		{ "keys of a bad section are ignored", "[Nope]\nA=1\nB=2\n[Daemon]\nTickSec=1s\n", NULL,
		  "t.conf:1: unknown section [Nope]\n" },
		{ "policy", "[Policy]\nHotThreshold=4\nRateLimitMiB=100\nMinResidenceSec=90s\n"
		  "Tracker=damon\nMaxRegions=10\n", NULL,
		  "# no configuration files read, built-in defaults\n"
		  "[Daemon]\nTickSec=5s\nLogLevel=info\n\n[Policy]\nHotThreshold=4\nHysteresisTicks=1\n"
		  "MinResidenceSec=90s\nSwapMarginPercent=200\nColdDemoteTicks=0\nRateLimitMiB=100\n"
		  "Tracker=damon\nMaxRegions=10\n" },
		{ "tracker reset by a drop-in", "[Policy]\nTracker=none\nMaxRegions=100000\n",
		  "[Policy]\nTracker=\nMaxRegions=\n", DEFAULTS },
		{ "policy errors", "[Policy]\nNope=1\nHotThreshold=0\nTracker=Damon\nMaxRegions=9\n"
		  "MaxRegions=100001\nMaxRegions=-5\n", NULL,
		  "t.conf:2: unknown key Nope= in section [Policy]\n"
		  "t.conf:3: invalid HotThreshold=0: expected a number of accesses per tick, 1 or more\n"
		  "t.conf:4: invalid Tracker=Damon: expected auto, damon, sample or none\n"
		  "t.conf:5: invalid MaxRegions=9: expected a number 10..100000\n"
		  "t.conf:6: invalid MaxRegions=100001: expected a number 10..100000\n"
		  "t.conf:7: invalid MaxRegions=-5: expected a number 10..100000\n" },
		{ "CRLF line ends", "[Daemon]\r\nTickSec=3s\r\n", NULL,
		  "# no configuration files read, built-in defaults\n"
		  "[Daemon]\nTickSec=3s\nLogLevel=info\n" POLICY_DEFAULTS },
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		_cleanup_free_ char *out = render(t[i].text, t[i].dropin);

		if (!streq(out, t[i].expected))
			fail_msg("case \"%s\":\n--- expected\n%s--- got\n%s", t[i].name, t[i].expected,
				 out);
	}
}

static void test_conf_long_line(void **state)
{
	_cleanup_free_ char *text = NULL, *out = NULL;
	size_t n = 4096;

	text = malloc(n + 32);
	assert_non_null(text);
	strcpy(text, "[Daemon]\nTickSec=");
	memset(text + strlen(text), '1', n);
	strcpy(text + 17 + n, "\nFoo=1\n");

	/* The tail of a long line must not be parsed as a line of its own. */
	out = render(text, NULL);
	assert_non_null(strstr(out, "t.conf:2: line too long"));
	assert_non_null(strstr(out, "t.conf:3: unknown key Foo="));
	assert_null(strstr(out, "t.conf:2: invalid"));
}

static void test_watermark(void **state)
{
	Watermark pct = { .set = true, .percent = true, .value = 1250 };
	Watermark abs = { .set = true, .value = 4096 };
	Watermark none = {};
	char buf[FORMAT_SIZE_MAX];

	assert_int_equal(watermark_bytes(&pct, 1000000), 125000);
	assert_int_equal(watermark_bytes(&pct, UINT64_C(96) << 30), (UINT64_C(96) << 30) / 8);
	assert_int_equal(watermark_bytes(&abs, 1), 4096);
	assert_int_equal(watermark_bytes(&none, 1000), 0);
	assert_string_equal(watermark_format(&pct, buf, sizeof(buf)), "12.5%");
	assert_string_equal(watermark_format(&abs, buf, sizeof(buf)), "4K");
}

/* conf_load(): main file, drop-in ordering, non-.conf files, missing files. */
static void write_file(const char *dir, const char *name, const char *text)
{
	_cleanup_free_ char *p = NULL;
	FILE *f;

	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	f = fopen(p, "we");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_conf_load(void **state)
{
	char dir[] = "/tmp/test-conf-XXXXXX";
	_cleanup_free_ char *main_path = NULL, *dropins = NULL, *missing = NULL;
	Conf *c = NULL;
	ConfError *errors = NULL;
	size_t n_errors = 0;

	assert_non_null(mkdtemp(dir));
	assert_true(asprintf(&main_path, "%s/c.conf", dir) > 0);
	assert_true(asprintf(&dropins, "%s/c.conf.d", dir) > 0);
	assert_true(asprintf(&missing, "%s/none.conf", dir) > 0);

	/* The default path may be missing, an explicit one may not. */
	assert_int_equal(conf_load(missing, false, &c, &errors, &n_errors), 0);
	assert_int_equal(strv_length(c->files), 0);
	assert_int_equal(c->tick_usec, CONF_TICK_USEC_DEFAULT);
	c = conf_free(c);
	assert_int_equal(conf_load(missing, true, &c, &errors, &n_errors), -EINVAL);
	assert_null(c);
	assert_int_equal(n_errors, 1);
	assert_string_equal(errors[0].message, "cannot read: No such file or directory");
	assert_int_equal(errors[0].line, 0);
	conf_errors_free(errors, n_errors);

	write_file(dir, "c.conf", "[Daemon]\nTickSec=1s\n");
	assert_int_equal(mkdir(dropins, 0755), 0);
	write_file(dir, "c.conf.d/20-b.conf", "[Daemon]\nTickSec=3s\n");
	write_file(dir, "c.conf.d/10-a.conf", "[Daemon]\nTickSec=2s\nLogLevel=debug\n");
	write_file(dir, "c.conf.d/30-c.conf.bak", "[Daemon]\nTickSec=garbage\n");
	write_file(dir, "c.conf.d/.hidden.conf", "[Daemon]\nTickSec=garbage\n");

	assert_int_equal(conf_load(main_path, true, &c, &errors, &n_errors), 0);
	assert_int_equal(c->tick_usec, 3 * USEC_PER_SEC);
	assert_int_equal(c->log_level, LOG_DEBUG);
	assert_int_equal(strv_length(c->files), 3);
	assert_true(endswith(c->files[0], "/c.conf"));
	assert_true(endswith(c->files[1], "/c.conf.d/10-a.conf"));
	assert_true(endswith(c->files[2], "/c.conf.d/20-b.conf"));
	c = conf_free(c);

	/* A bad drop-in fails the whole load and names the drop-in. */
	write_file(dir, "c.conf.d/40-bad.conf", "[Daemon]\n\nTickSec=never\n");
	assert_int_equal(conf_load(main_path, true, &c, &errors, &n_errors), -EINVAL);
	assert_null(c);
	assert_int_equal(n_errors, 1);
	assert_true(endswith(errors[0].file, "/c.conf.d/40-bad.conf"));
	assert_int_equal(errors[0].line, 3);
	conf_errors_free(errors, n_errors);

	/* A NUL byte is reported, not silently cut off. */
	{
		_cleanup_free_ char *p = NULL;
		FILE *f;

		assert_true(asprintf(&p, "%s/c.conf.d/40-bad.conf", dir) > 0);
		f = fopen(p, "we");
		assert_non_null(f);
		fwrite("[Daemon]\n\0TickSec=1s\n", 1, 21, f);
		fclose(f);
	}
	assert_int_equal(conf_load(main_path, true, &c, &errors, &n_errors), -EINVAL);
	assert_int_equal(n_errors, 1);
	assert_string_equal(errors[0].message, "file contains a NUL byte");
	conf_errors_free(errors, n_errors);

	{
		_cleanup_free_ char *cmd = NULL;

		assert_true(asprintf(&cmd, "rm -rf -- '%s'", dir) > 0);
		assert_int_equal(system(cmd), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf_table),
		cmocka_unit_test(test_conf_long_line),
		cmocka_unit_test(test_watermark),
		cmocka_unit_test(test_conf_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
