/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz what a migration request is made of from outside: the bytes as
 * /proc/PID/status (auth_parse_status(), read for every request) and, when
 * they are a JSON object, as the parameters of io.coherentd.Migrate and
 * GetResidency (api_parse_migrate(), api_parse_residency()).
 *
 * Invariants: the status parser accepts or says -EBADMSG and then writes
 * nothing; what it accepts has a state letter, a tgid, ids that are not
 * (uid_t) -1, and a kthread flag consistent with the mm. Accepted Migrate
 * parameters name a pid in range, a device name of sane length, and exactly
 * one of a range or all; a range is page aligned, not empty and below the
 * highest user address. Rejections name a parameter and a reason. The same
 * for SetPolicy, ClearPolicy and Record (api_parse_set_policy() and friends):
 * an accepted target is exactly one valid pid, normalized cgroup path or job,
 * an accepted policy names a device unless it is "system" and formats back to
 * itself, an accepted duration is within the limit.
 */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "api.h"
#include "auth.h"
#include "backend.h"
#include "conf.h"
#include "fuzz.h"
#include "macro.h"

#define CHECK(x)                                                                       \
	do {                                                                           \
		if (!(x)) {                                                            \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x); \
			abort();                                                       \
		}                                                                      \
	} while (0)

static void fuzz_status(const uint8_t *data, size_t size)
{
	AuthProcStatus st, poison;
	int r;

	memset(&st, 0x5a, sizeof(st));
	poison = st;
	r = auth_parse_status((const char *) data, size, &st);
	CHECK(r == 0 || r == -EBADMSG);
	if (r < 0) {
		CHECK(memcmp(&st, &poison, sizeof(st)) == 0);
		return;
	}
	CHECK(st.state >= 'A' && st.state <= 'Z');
	CHECK(st.tgid >= 0);
	CHECK(st.ruid != (uid_t) -1 && st.euid != (uid_t) -1);
	CHECK(st.suid != (uid_t) -1 && st.fsuid != (uid_t) -1);
	if (!st.has_mm && st.state != 'Z')
		CHECK(st.kthread);
	/* The decision only ever allows root or the owner. */
	if (auth_decide(1000, &st) == AUTH_ALLOW)
		CHECK(st.ruid == 1000 && st.euid == 1000);
	CHECK(auth_decide(0, &st) == AUTH_ALLOW);
}

static void check_target(const TargetKey *k)
{
	switch (k->kind) {
	case TARGET_PID:
		CHECK(k->pid > 0 && k->starttime == 0 && !k->cgroup);
		break;
	case TARGET_CGROUP:
		CHECK(k->cgroup && k->cgroup[0] == '/' && !strstr(k->cgroup, "//"));
		CHECK(!strstr(k->cgroup, "/../") && !strstr(k->cgroup, "/./"));
		CHECK(strlen(k->cgroup) == 1 || k->cgroup[strlen(k->cgroup) - 1] != '/');
		break;
	case TARGET_JOB:
		CHECK(k->job > 0 && !k->cgroup);
		break;
	default:
		CHECK(!"unknown target kind");
	}
}

static void fuzz_policy_params(json_object *p)
{
	ApiParamError err = {};
	SetPolicyParams sp = {};
	TargetKey key = {};
	PolicySpec again;
	char buf[128];
	uint64_t d;
	pid_t pid;
	int r;

	r = api_parse_set_policy(p, &sp, &err);
	CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
	if (r == -EINVAL)
		CHECK(err.parameter && err.reason && err.reason[0]);
	if (r == 0) {
		check_target(&sp.target);
		CHECK(sp.policy.kind == POLICY_KIND_SYSTEM ? !sp.policy.device[0] : !!sp.policy.device[0]);
		CHECK(policy_spec_parse(policy_spec_format(&sp.policy, buf, sizeof(buf)), &again, NULL) == 0);
		CHECK(again.kind == sp.policy.kind && streq(again.device, sp.policy.device));
		CHECK(again.quota == sp.policy.quota && again.priority == sp.policy.priority);
		target_key_done(&sp.target);
	}

	err = (ApiParamError) {};
	r = api_parse_clear_policy(p, &key, &err);
	CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
	if (r == -EINVAL)
		CHECK(err.parameter && err.reason && err.reason[0]);
	if (r == 0) {
		check_target(&key);
		target_key_done(&key);
	}

	err = (ApiParamError) {};
	r = api_parse_record(p, &pid, &d, &err);
	CHECK(r == 0 || r == -EINVAL);
	if (r < 0)
		CHECK(err.parameter && err.reason && err.reason[0]);
	else
		CHECK(pid > 0 && d > 0 && d <= API_RECORD_DURATION_MAX_USEC);
}

static void fuzz_params(json_object *p)
{
	ApiParamError err = {};
	MigrateParams mp;
	bool verbose;
	pid_t pid;
	int r;

	r = api_parse_migrate(p, 4096, &mp, &err);
	CHECK(r == 0 || r == -EINVAL);
	if (r < 0) {
		CHECK(err.parameter && err.reason && err.reason[0]);
	} else {
		CHECK(mp.pid > 0);
		CHECK(mp.to && mp.to[0] && strlen(mp.to) <= CONF_DEVICE_NAME_MAX);
		if (!mp.all) {
			CHECK(mp.start < mp.end);
			CHECK(mp.start % 4096 == 0 && mp.end % 4096 == 0);
			CHECK(mp.end <= BACKEND_USER_ADDR_MAX);
			CHECK(backend_check_range(mp.start, mp.end - mp.start, 4096) == 0);
		}
	}

	err = (ApiParamError) {};
	r = api_parse_residency(p, &pid, &verbose, &err);
	CHECK(r == 0 || r == -EINVAL);
	if (r < 0)
		CHECK(err.parameter && err.reason && err.reason[0]);
	else
		CHECK(pid > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_tokener *tok;
	json_object *o;

	if (size > 1 << 20)
		return 0;
	fuzz_status(data, size);

	tok = json_tokener_new();
	CHECK(tok);
	o = json_tokener_parse_ex(tok, (const char *) data, (int) size);
	if (o && json_object_is_type(o, json_type_object)) {
		fuzz_params(o);
		fuzz_policy_params(o);
	}
	json_object_put(o);
	json_tokener_free(tok);
	return 0;
}
