/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cohctl's offline verbs: simulate and trace-generate. They need no daemon and
 * take their own options after the verb.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cohctl-simulate.h"
#include "log.h"
#include "macro.h"
#include "simulate.h"
#include "trace.h"
#include "util.h"

#define EXIT_USAGE 2
#define FILE_MAX (UINT64_C(1) << 30)

static int read_whole(const char *path, char **ret, size_t *ret_len)
{
	FILE *f = streq(path, "-") ? stdin : fopen(path, "re");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f)
		return -errno;
	for (;;) {
		size_t n;

		if (cap - len < 65536) {
			char *nb;

			if (cap >= FILE_MAX) {
				free(buf);
				if (f != stdin)
					fclose(f);
				return -EFBIG;
			}
			cap = cap ? cap * 2 : 65536;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				if (f != stdin)
					fclose(f);
				return -ENOMEM;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		if (f != stdin)
			fclose(f);
		return -EIO;
	}
	if (f != stdin)
		fclose(f);
	*ret = buf;
	*ret_len = len;
	return 0;
}

static void print_result_text(SimPolicy p, const SimResult *r, const SimResult *oracle)
{
	char sz[FORMAT_SIZE_MAX];

	printf("%-32s %9.4f %12s %10.4f %9.3f %9.3f\n", sim_policy_label(p), r->hit_ratio,
	       format_size(sz, sizeof(sz), r->bytes_moved), r->pingpong_fraction,
	       oracle->hit_ratio > 0 ? r->hit_ratio / oracle->hit_ratio : 0.0,
	       oracle->bytes_moved > 0 ? (double) r->bytes_moved / (double) oracle->bytes_moved : 0.0);
}

static json_object *result_json(SimPolicy p, const SimResult *r, const SimResult *oracle)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "policy", json_object_new_string(sim_policy_to_string(p)));
	json_object_object_add(o, "label", json_object_new_string(sim_policy_label(p)));
	json_object_object_add(o, "accesses", json_object_new_int64((int64_t) r->accesses));
	json_object_object_add(o, "hits", json_object_new_int64((int64_t) r->hits));
	json_object_object_add(o, "hit_ratio", json_object_new_double(r->hit_ratio));
	json_object_object_add(o, "bytes_moved", json_object_new_int64((int64_t) r->bytes_moved));
	json_object_object_add(o, "moves", json_object_new_int64((int64_t) r->moves));
	json_object_object_add(o, "bytes_pingpong", json_object_new_int64((int64_t) r->bytes_pingpong));
	json_object_object_add(o, "pingpong_fraction", json_object_new_double(r->pingpong_fraction));
	json_object_object_add(o, "hit_ratio_vs_oracle",
			       json_object_new_double(oracle->hit_ratio > 0 ?
						      r->hit_ratio / oracle->hit_ratio : 0.0));
	json_object_object_add(o, "bytes_moved_vs_oracle",
			       json_object_new_double(oracle->bytes_moved > 0 ?
						      (double) r->bytes_moved / (double) oracle->bytes_moved : 0.0));
	return o;
}

int verb_simulate(int argc, char **argv)
{
	static const struct option options[] = {
		{ "trace",       required_argument, NULL, 't' },
		{ "config",      required_argument, NULL, 'c' },
		{ "device-size", required_argument, NULL, 's' },
		{ "json",        optional_argument, NULL, 'j' },
		{ "help",        no_argument,       NULL, 'h' },
		{}
	};
	const char *trace_path = NULL, *config_path = NULL;
	_cleanup_free_ char *buf = NULL;
	SimResult res[_SIM_POLICY_MAX];
	uint64_t device_size = 0;
	bool json = false;
	SimConfig cfg;
	Trace *t = NULL;
	unsigned line;
	size_t len;
	char sz[FORMAT_SIZE_MAX];
	int c, r;

	sim_config_init(&cfg);
	optind = 0;
	while ((c = getopt_long(argc, argv, "+t:c:s:j", options, NULL)) >= 0)
		switch (c) {
		case 't':
			trace_path = optarg;
			break;
		case 'c':
			config_path = optarg;
			break;
		case 's':
			if (parse_size(optarg, &device_size) < 0 || device_size == 0) {
				log_error("Invalid --device-size '%s': expected a size above 0 such as 512M.",
					  optarg);
				return EXIT_USAGE;
			}
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			printf("cohctl simulate --trace=FILE [--config=FILE] [--device-size=SIZE] [--json]\n");
			return 0;
		default:
			return EXIT_USAGE;
		}
	if (optind < argc) {
		log_error("simulate takes no arguments besides its options.");
		return EXIT_USAGE;
	}
	if (!trace_path) {
		log_error("simulate needs --trace=FILE.");
		return EXIT_USAGE;
	}
	if (config_path) {
		_cleanup_free_ char *cbuf = NULL;

		r = read_whole(config_path, &cbuf, &len);
		if (r < 0) {
			log_error("Failed to read %s: %s", config_path, strerror(-r));
			return 1;
		}
		r = sim_config_parse(cbuf, len, &cfg, &line);
		if (r < 0) {
			log_error("%s:%u: invalid line (see cohctl(8), [Policy] keys).", config_path, line);
			return EXIT_USAGE;
		}
	}
	if (device_size)
		cfg.device_size = device_size;

	r = read_whole(trace_path, &buf, &len);
	if (r < 0) {
		log_error("Failed to read %s: %s", trace_path, strerror(-r));
		return 1;
	}
	r = trace_parse(buf, len, &t, &line);
	if (r < 0) {
		if (r == -EBADMSG && line > 0)
			log_error("%s:%u: not a valid coherentd-trace v1 line (see cohctl(8)).",
				  trace_path, line);
		else if (r == -EBADMSG)
			log_error("%s: not a valid coherentd-trace v1 trace (no region, or regions "
				  "overlap; see cohctl(8)).", trace_path);
		else
			log_error("Failed to parse %s: %s", trace_path, strerror(-r));
		return r == -EBADMSG ? EXIT_USAGE : 1;
	}

	for (int p = 0; p < _SIM_POLICY_MAX; p++) {
		r = sim_run(t, &cfg, p, &res[p]);
		if (r < 0) {
			log_error("Simulation of %s failed: %s", sim_policy_to_string(p),
				  r == -E2BIG ? "too large: more than 2^34 region-ticks, or an oracle "
				  "knapsack of more than 2^27 cells for these region lengths and this "
				  "device size" : strerror(-r));
			trace_free(t);
			return 1;
		}
	}

	if (json) {
		json_object *o = json_object_new_object(), *a = json_object_new_array();

		json_object_object_add(o, "device_size",
				       json_object_new_int64((int64_t) res[0].device_size));
		json_object_object_add(o, "ticks", json_object_new_int64((int64_t) res[0].ticks));
		json_object_object_add(o, "regions", json_object_new_int64((int64_t) t->n_regions));
		for (int p = 0; p < _SIM_POLICY_MAX; p++)
			json_object_array_add(a, result_json(p, &res[p], &res[SIM_POLICY_ORACLE]));
		json_object_object_add(o, "results", a);
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		printf("trace: %zu regions, %" PRIu64 " ticks, %" PRIu64 " accesses; device %s\n",
		       t->n_regions, res[0].ticks, res[0].accesses,
		       format_size(sz, sizeof(sz), res[0].device_size));
		printf("%-32s %9s %12s %10s %9s %9s\n", "POLICY", "HIT", "MOVED", "PING-PONG",
		       "HIT/OPT", "MOVED/OPT");
		for (int p = 0; p < _SIM_POLICY_MAX; p++)
			print_result_text(p, &res[p], &res[SIM_POLICY_ORACLE]);
	}
	trace_free(t);
	return 0;
}

static int parse_u64_opt(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	uint64_t v;

	if (safe_atou64(s, &v) < 0 || v < min || v > max) {
		log_error("Invalid --%s '%s': expected %" PRIu64 "..%" PRIu64 ".", name, s, min, max);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

int verb_trace_generate(int argc, char **argv)
{
	enum { ARG_REGIONS = 0x100, ARG_REGION_SIZE, ARG_TICKS, ARG_ACCESSES, ARG_SEED, ARG_HOT,
	       ARG_HOT_PERCENT, ARG_PHASE, ARG_ZIPF_S, ARG_SCAN_WIDTH };
	static const struct option options[] = {
		{ "kind",        required_argument, NULL, 'k' },
		{ "output",      required_argument, NULL, 'o' },
		{ "regions",     required_argument, NULL, ARG_REGIONS },
		{ "region-size", required_argument, NULL, ARG_REGION_SIZE },
		{ "ticks",       required_argument, NULL, ARG_TICKS },
		{ "accesses",    required_argument, NULL, ARG_ACCESSES },
		{ "seed",        required_argument, NULL, ARG_SEED },
		{ "hot-regions", required_argument, NULL, ARG_HOT },
		{ "hot-percent", required_argument, NULL, ARG_HOT_PERCENT },
		{ "phase-ticks", required_argument, NULL, ARG_PHASE },
		{ "zipf-s",      required_argument, NULL, ARG_ZIPF_S },
		{ "scan-width",  required_argument, NULL, ARG_SCAN_WIDTH },
		{ "help",        no_argument,       NULL, 'h' },
		{}
	};
	/* Options before --kind are applied after the kind's defaults. */
	struct { int opt; const char *arg; } given[32];
	size_t n_given = 0;
	const char *output = NULL, *kind = NULL;
	TraceGenParams p;
	Trace *t = NULL;
	uint64_t v;
	FILE *f;
	int c, k, r;

	optind = 0;
	while ((c = getopt_long(argc, argv, "+k:o:", options, NULL)) >= 0)
		switch (c) {
		case 'k':
			kind = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		case 'h':
			printf("cohctl trace-generate --kind=hotset|zipf|scan [--regions=N] "
			       "[--region-size=SIZE] [--ticks=T]\n"
			       "       [--accesses=N] [--seed=S] [--hot-regions=N] [--hot-percent=P]\n"
			       "       [--phase-ticks=T] [--zipf-s=S100] [--scan-width=N] -o FILE\n");
			return 0;
		case '?':
			return EXIT_USAGE;
		default:
			if (n_given == ELEMENTSOF(given)) {
				log_error("Too many options.");
				return EXIT_USAGE;
			}
			given[n_given].opt = c;
			given[n_given++].arg = optarg;
			break;
		}
	if (optind < argc) {
		log_error("trace-generate takes no arguments besides its options.");
		return EXIT_USAGE;
	}
	k = trace_gen_kind_from_string(kind);
	if (k < 0) {
		log_error("trace-generate needs --kind=hotset, zipf or scan.");
		return EXIT_USAGE;
	}
	if (!output) {
		log_error("trace-generate needs -o FILE (\"-\" for standard output).");
		return EXIT_USAGE;
	}
	trace_gen_params_init(&p, k);
	for (size_t i = 0; i < n_given; i++) {
		const char *a = given[i].arg;

		switch (given[i].opt) {
		case ARG_REGIONS:
			r = parse_u64_opt("regions", a, 1, TRACE_REGIONS_MAX, &v);
			p.regions = (uint32_t) v;
			break;
		case ARG_REGION_SIZE:
			r = parse_size(a, &v);
			if (r < 0 || v == 0 || v > (UINT64_C(1) << 40)) {
				log_error("Invalid --region-size '%s'.", a);
				r = -EINVAL;
			}
			p.region_size = v;
			break;
		case ARG_TICKS:
			r = parse_u64_opt("ticks", a, 1, TRACE_TICK_MAX, &p.ticks);
			break;
		case ARG_ACCESSES:
			r = parse_u64_opt("accesses", a, 1, UINT64_C(1) << 32, &p.accesses_per_tick);
			break;
		case ARG_SEED:
			r = parse_u64_opt("seed", a, 0, UINT64_MAX, &p.seed);
			break;
		case ARG_HOT:
			r = parse_u64_opt("hot-regions", a, 0, TRACE_REGIONS_MAX, &v);
			p.hot_regions = (uint32_t) v;
			break;
		case ARG_HOT_PERCENT:
			r = parse_u64_opt("hot-percent", a, 0, 100, &v);
			p.hot_percent = (unsigned) v;
			break;
		case ARG_PHASE:
			r = parse_u64_opt("phase-ticks", a, 0, TRACE_TICK_MAX, &p.phase_ticks);
			break;
		case ARG_ZIPF_S:
			r = parse_u64_opt("zipf-s", a, 0, 1000, &v);
			p.zipf_s_percent = (unsigned) v;
			break;
		case ARG_SCAN_WIDTH:
			r = parse_u64_opt("scan-width", a, 1, TRACE_REGIONS_MAX, &v);
			p.scan_width = (uint32_t) v;
			break;
		default:
			r = -EINVAL;
		}
		if (r < 0)
			return EXIT_USAGE;
	}
	r = trace_generate(&p, &t);
	if (r < 0) {
		log_error("Invalid parameters for a %s trace: %s (hot set larger than the "
			  "regions, scan wider than the regions?).", kind, strerror(-r));
		return EXIT_USAGE;
	}
	f = streq(output, "-") ? stdout : fopen(output, "we");
	if (!f) {
		log_error("Failed to open %s: %m", output);
		trace_free(t);
		return 1;
	}
	r = trace_write(t, f);
	if (f != stdout && fclose(f) != 0 && r == 0)
		r = -errno;
	trace_free(t);
	if (r < 0) {
		log_error("Failed to write %s: %s", output, strerror(-r));
		return 1;
	}
	return 0;
}
