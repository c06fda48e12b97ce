#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Host integration test of the policy API (SetPolicy, ClearPolicy,
# ListPolicies, Record) through the real cohctl: the real coherentd from the
# build tree on the host's own sysfs and procfs (--root /, as test-migrate.sh),
# its socket and --state-dir in a scratch directory, and a configured device
# "dev0" on NUMA node 0 (a node with CPUs: the daemon accepts it when
# configured, and binding to it moves nothing anywhere new). Tracker=none, so
# the host's DAMON is left alone and hot: policies are refused predictably.
# Covered: set, list and clear on a pid target; the documented errors with
# their exit codes; persistence across a restart; authorization of an
# unprivileged caller. What the placement loop does to memory is tested in the
# VM (tests/vm/daemon/).
#
# Prints TAP; exits 1 when any check failed. Needs python3.

set -u

: "${top_srcdir:?run through make check}"
: "${top_builddir:?run through make check}"

. "$top_srcdir/tests/integration/lib.sh"
need_built "$COHERENTD" "$COHCTL"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/coh-policy.XXXXXX") || exit 1
# Reachable by the unprivileged caller of the permission checks.
chmod 755 "$tmp"
SOCK="$tmp/sock"
STATE="$tmp/state"
DPID=
SPID=
n=0
failures=0

cleanup() {
	for p in $DPID $SPID ${NPID:-} ${RPID:-} ${MPID:-} ${CPID:-}; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	[ -z "${CGDIR:-}" ] || rmdir "$CGDIR" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# raw_call METHOD PARAMETERS [more]: one call on its own connection; prints the
# replies (with "more", every one up to the last).
raw_call() {
	python3 - "$SOCK" "$1" "$2" "${3:-}" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(60)
s.connect(sys.argv[1])
call = {"method": sys.argv[2], "parameters": json.loads(sys.argv[3])}
if sys.argv[4] == "more":
    call["more"] = True
s.sendall(json.dumps(call).encode() + b"\0")
buf = b""
while True:
    while b"\0" not in buf:
        d = s.recv(65536)
        if not d:
            sys.exit("connection closed")
        buf += d
    msg, buf = buf.split(b"\0", 1)
    print(msg.decode())
    if not json.loads(msg).get("continues"):
        break
PY
}

start_daemon() {
	"$COHERENTD" --root / --socket "$SOCK" --config "$tmp/coherentd.conf" --state-dir "$STATE" \
		>>"$tmp/daemon.log" 2>&1 &
	DPID=$!
	i=0
	while ! "$COHCTL" --socket "$SOCK" --timeout 5s status >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt 600 ] || ! kill -0 "$DPID" 2>/dev/null; then
			echo "Bail out! coherentd did not start"
			cat "$tmp/daemon.log"
			exit 1
		fi
		sleep 0.1
	done
}

stop_daemon() {
	kill -TERM "$DPID"
	wait "$DPID"
	rc=$?
	DPID=
	return $rc
}

cat >"$tmp/coherentd.conf" <<'EOF'
[Daemon]
TickSec=500ms

[Policy]
Tracker=none

[Device dev0]
Node=0
EOF

sleep 3600 &
SPID=$!
start_daemon
ok "coherentd on / with --state-dir (workload pid $SPID) is up" 0

HAVE_DEV=0
if cohctl devices --json=short >"$tmp/devices" 2>&1 && grep -q '"name":"dev0"' "$tmp/devices"; then
	HAVE_DEV=1
fi

# ------------------------------------------------------------ set, list, clear
expect_rc "policy list with no policies: exit 0" 0 cohctl policy list
grep -q "^No policies set\.$" "$tmp/out"
ok "  ... says so" $? "$tmp/out"

expect_rc "policy set --pid PID system: exit 0" 0 cohctl policy set --pid "$SPID" system
grep -q "^Policy system set for pid:$SPID (id [0-9]*)\.$" "$tmp/out"
ok "  ... and says so" $? "$tmp/out"
grep -q "Policy system set for pid:$SPID by uid $(id -u)" "$tmp/daemon.log"
ok "  ... and the daemon logs it" $? "$tmp/daemon.log"

expect_rc "policy list --json: exit 0" 0 cohctl policy list --json
json_ok "  ... one entry with every field" \
	"len(j['policies']) == 1 and set(j['policies'][0]) >= {'id', 'target', 'kind', 'pid', 'owner', 'policy', 'set_realtime_usec', 'n_pids', 'tracker', 'tracked_bytes', 'device_bytes', 'hot_bytes', 'promoted_bytes', 'demoted_bytes', 'evicted_bytes', 'ticks'}"
json_ok "  ... target, kind, pid, owner, policy, tracker" \
	"(lambda e: e['target'] == 'pid:$SPID' and e['kind'] == 'pid' and e['pid'] == $SPID and e['owner'] == $(id -u) and e['policy'] == 'system' and e['tracker'] == 'none' and 'cgroup' not in e and 'job' not in e)(j['policies'][0])"
json_ok "  ... set now (CLOCK_REALTIME, within a day)" \
	"abs(j['policies'][0]['set_realtime_usec'] / 1e6 - __import__('time').time()) < 86400"

if [ "$HAVE_DEV" = 1 ]; then
	expect_rc "policy set bind:dev0 --quota 1G --priority 5 replaces it: exit 0" 0 \
		cohctl policy set --pid "$SPID" bind:dev0 --quota 1G --priority 5
	grep -q "^Policy bind:dev0,quota=1G,priority=5 set for pid:$SPID" "$tmp/out"
	ok "  ... the options are part of the policy" $? "$tmp/out"
	expect_rc "policy list --json=short: exit 0" 0 cohctl policy list --json=short
	json_ok "  ... still one entry, with the new policy" \
		"len(j['policies']) == 1 and j['policies'][0]['policy'] == 'bind:dev0,quota=1G,priority=5'"
	expect_rc "policy list (table): exit 0" 0 cohctl policy list
	head -n 1 "$tmp/out" | grep -q "^TARGET  *POLICY  *OWNER  *PIDS  *TRACKER  *DEVICE  *HOT  *TRACKED  *PROMOTED  *DEMOTED  *EVICTED  *TICKS$" &&
		grep -q "^pid:$SPID  *bind:dev0,quota=1G,priority=5  *$(id -u)  " "$tmp/out" &&
		grep -q "^1 policy listed\.$" "$tmp/out"
	ok "  ... header, the row and the footer" $? "$tmp/out"
	expect_rc "policy list --no-legend: exit 0" 0 cohctl --no-legend policy list
	[ "$(wc -l <"$tmp/out")" -eq 1 ] && grep -q "^pid:$SPID " "$tmp/out"
	ok "  ... only the row" $? "$tmp/out"

	expect_rc "hot:dev0 without a tracker: exit 1" 1 cohctl policy set --pid "$SPID" hot:dev0
	err_has "  ... TrackerUnavailable" "io.coherentd.TrackerUnavailable"
	expect_rc "  ... and the policy is unchanged" 0 cohctl policy list --json=short
	json_ok "  ... (still bind:dev0)" "j['policies'][0]['policy'] == 'bind:dev0,quota=1G,priority=5'"
else
	for d in "policy set bind:dev0 --quota 1G --priority 5 replaces it: exit 0" \
		 "  ... the options are part of the policy" "policy list --json=short: exit 0" \
		 "  ... still one entry, with the new policy" "policy list (table): exit 0" \
		 "  ... header, the row and the footer" "policy list --no-legend: exit 0" \
		 "  ... only the row" "hot:dev0 without a tracker: exit 1" "  ... TrackerUnavailable" \
		 "  ... and the policy is unchanged" "  ... (still bind:dev0)"; do
		skip "$d" "no NUMA node 0 for the configured device dev0 on this host"
	done
fi

# ------------------------------------------------------------ persistence
[ -s "$STATE/targets.json" ] && grep -q "\"pid\": *$SPID" "$STATE/targets.json"
ok "the policy is in --state-dir's targets.json" $? "$STATE/targets.json"
cohctl policy list --json=short >"$tmp/before" 2>&1
stop_daemon
ok "coherentd exits 0 on SIGTERM" $? "$tmp/daemon.log"
start_daemon
expect_rc "after a restart, policy list --json: exit 0" 0 cohctl policy list --json=short
json_ok "  ... the same target and policy (a new id is fine)" \
	"[(e['target'], e['policy'], e['owner'], e['set_realtime_usec']) for e in j['policies']] == [(e['target'], e['policy'], e['owner'], e['set_realtime_usec']) for e in __import__('json').load(open('$tmp/before'))['policies']]"

expect_rc "policy clear --pid PID: exit 0" 0 cohctl policy clear --pid "$SPID"
grep -q "^Policy of pid:$SPID cleared\.$" "$tmp/out"
ok "  ... and says so" $? "$tmp/out"
expect_rc "  ... the list is empty" 0 cohctl policy list --json=short
json_ok "  ... (no entries)" "j['policies'] == []"
grep -q "\"pid\": *$SPID" "$STATE/targets.json"
ok "  ... and so is targets.json" $((! $?)) "$STATE/targets.json"
expect_rc "policy clear again: NoSuchTarget, exit 3" 3 cohctl policy clear --pid "$SPID"
err_has "  ... io.coherentd.NoSuchTarget" "io.coherentd.NoSuchTarget {\"target\":\"pid:$SPID\"}"

# ------------------------------------------------------------ bad input
for c in 'hot:|missing device name' 'cold:dev0|unknown policy kind' 'system,quota=1G|' \
	 'bind:dev0,quota=|' 'bind:dev0,priority=100000|' 'bind:dev0,color=red|' '|empty policy'; do
	pol=${c%%|*}
	msg=${c#*|}
	expect_rc "policy set '$pol': exit 2" 2 cohctl policy set --pid "$SPID" "$pol"
	grep -qF "Invalid policy '$pol': $msg" "$tmp/err"
	ok "  ... with a message" $? "$tmp/err"
done
expect_rc "--quota with system: exit 2" 2 cohctl policy set --pid "$SPID" system --quota 1G
err_has "  ... says why" "--quota and --priority do not apply to the system policy"
expect_rc "no target: exit 2" 2 cohctl policy set system
expect_rc "two targets: exit 2" 2 cohctl policy set --pid "$SPID" --job 5 system
expect_rc "no POLICY: exit 2" 2 cohctl policy set --pid "$SPID"
expect_rc "an unknown policy command: exit 2" 2 cohctl policy show
expect_rc "policy alone: exit 2" 2 cohctl policy
expect_rc "--quota on clear: exit 2" 2 cohctl policy clear --pid "$SPID" --quota 1G
expect_rc "a target on list: exit 2" 2 cohctl policy list --pid "$SPID"
expect_rc "--cgroup on migrate: exit 2" 2 cohctl migrate --cgroup /a --all --to system
expect_rc "a bad --job: exit 2" 2 cohctl policy clear --job 0
expect_rc "a bad --priority: exit 2" 2 cohctl policy set --pid "$SPID" bind:dev0 --priority 1001

python3 -c 'import os; p = os.fork()
if p == 0: os._exit(0)
os.waitpid(p, 0); print(p)' >"$tmp/deadpid"
DEAD=$(cat "$tmp/deadpid")
expect_rc "an unknown pid: exit 3" 3 cohctl policy set --pid "$DEAD" system
err_has "  ... NoSuchProcess" "io.coherentd.NoSuchProcess {\"pid\":$DEAD}"
expect_rc "clearing an unknown pid: exit 3" 3 cohctl policy clear --pid "$DEAD"
err_has "  ... NoSuchTarget" "io.coherentd.NoSuchTarget {\"target\":\"pid:$DEAD\"}"
expect_rc "a device that does not exist: exit 5" 5 cohctl policy set --pid "$SPID" bind:no-such-dev
err_has "  ... NoSuchDevice" 'io.coherentd.NoSuchDevice {"name":"no-such-dev"}'
expect_rc "a cgroup that does not exist: exit 3" 3 \
	cohctl policy set --cgroup /coherentd-test-no-such-cgroup system
err_has "  ... NoSuchCgroup" 'io.coherentd.NoSuchCgroup {"cgroup":"/coherentd-test-no-such-cgroup"}'
expect_rc "a cgroup path with '..': exit 2" 2 cohctl policy set --cgroup /a/../b system
err_has "  ... InvalidParameter on target.cgroup" '"parameter":"target.cgroup"'

# The daemon checks for itself what another client could send.
for c in 'no-target:{"policy":"system"}:target' \
	 'two:{"target":{"pid":1,"job":2},"policy":"system"}:target' \
	 'bad-pid:{"target":{"pid":0},"policy":"system"}:target.pid' \
	 'bad-policy:{"target":{"pid":1},"policy":"hot"}:policy' \
	 'unknown:{"target":{"pid":1},"policy":"system","force":1}:force'; do
	name=${c%%:*}
	rest=${c#*:}
	params=${rest%:*}
	param=${rest##*:}
	raw_call io.coherentd.SetPolicy "$params" >"$tmp/out" 2>&1
	json_ok "raw SetPolicy ($name): InvalidParameter on $param" \
		"j['error'] == 'io.coherentd.InvalidParameter' and j['parameters']['parameter'] == '$param' and j['parameters']['reason']"
done
raw_call io.coherentd.ListPolicies '{"all":true}' >"$tmp/out" 2>&1
json_ok "raw ListPolicies with a parameter: InvalidParameter" \
	"j['error'] == 'org.varlink.service.InvalidParameter'"

# ------------------------------------------------------------ jobs (Slurm's prolog)
if [ "$(id -u)" = 0 ]; then
	expect_rc "root sets a policy on a job without a cgroup yet: exit 0" 0 \
		cohctl policy set --job 987654321 system
	expect_rc "  ... listed" 0 cohctl policy list --json=short
	json_ok "  ... as job:987654321, no job_cgroup, no pids" \
		"any(e['target'] == 'job:987654321' and e['kind'] == 'job' and e['job'] == 987654321 and 'job_cgroup' not in e and e['n_pids'] == 0 for e in j['policies'])"
	expect_rc "  ... and cleared: exit 0" 0 cohctl policy clear --job 987654321
else
	for d in "root sets a policy on a job without a cgroup yet: exit 0" "  ... listed" \
		 "  ... as job:987654321, no job_cgroup, no pids" "  ... and cleared: exit 0"; do
		skip "$d" "needs root"
	done
fi
expect_rc "clearing a job without a policy: exit 3" 3 cohctl policy clear --job 987654321
err_has "  ... NoSuchTarget" 'io.coherentd.NoSuchTarget {"target":"job:987654321"}'

# ------------------------------------------------------------ a cgroup
# wait_list EXPR: polls policy list --json into $tmp/out until EXPR holds for
# it (a minute at most: only a stuck daemon takes that long).
wait_list() {
	i=0
	while :; do
		cohctl policy list --json=short >"$tmp/out" 2>"$tmp/err"
		$RAW assert "$1" <"$tmp/out" >/dev/null 2>&1 && break
		i=$((i + 1))
		[ "$i" -gt 600 ] && break
		sleep 0.1
	done
}

# A cgroup of our own below the cgroup2 mount, with a process in it.
CGMOUNT=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
CG=/coherentd-test-policy-$$
CGDIR=
if [ "$(id -u)" = 0 ] && [ -n "$CGMOUNT" ] && mkdir "$CGMOUNT$CG" 2>/dev/null; then
	CGDIR=$CGMOUNT$CG
	sleep 3600 &
	CPID=$!
	echo "$CPID" >"$CGDIR/cgroup.procs" 2>/dev/null || CGDIR_NOPROCS=1
fi
if [ -n "$CGDIR" ] && [ -z "${CGDIR_NOPROCS:-}" ]; then
	expect_rc "policy set --cgroup $CG system: exit 0" 0 cohctl policy set --cgroup "${CG#/}/" system
	grep -q "^Policy system set for cgroup:$CG (id [0-9]*)\.$" "$tmp/out"
	ok "  ... the path normalized" $? "$tmp/out"
	wait_list "any(e['target'] == 'cgroup:$CG' and e['ticks'] > 0 for e in j['policies'])"
	json_ok "  ... listed with kind, cgroup and its one process after a tick" \
		"any(e['target'] == 'cgroup:$CG' and e['kind'] == 'cgroup' and e['cgroup'] == '$CG' and e['n_pids'] == 1 for e in j['policies'])"
	if command -v setpriv >/dev/null; then
		AS_NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
		expect_rc "nobody setting a policy on root's cgroup: exit 4" 4 \
			$AS_NOBODY "$COHCTL" --socket "$SOCK" policy set --cgroup "$CG" system
		grep -q "Denied policy set of cgroup:$CG for uid 65534 (not the owner)" "$tmp/daemon.log"
		ok "  ... and the daemon logs the denial" $? "$tmp/daemon.log"
		chown 65534 "$CGDIR"
		expect_rc "nobody setting a policy on a cgroup directory it owns: exit 0" 0 \
			$AS_NOBODY "$COHCTL" --socket "$SOCK" policy set --cgroup "$CG" system
		expect_rc "  ... and clearing it: exit 0" 0 \
			$AS_NOBODY "$COHCTL" --socket "$SOCK" policy clear --cgroup "$CG"
		chown 0 "$CGDIR"
	else
		for d in "nobody setting a policy on root's cgroup: exit 4" \
			 "  ... and the daemon logs the denial" \
			 "nobody setting a policy on a cgroup directory it owns: exit 0" \
			 "  ... and clearing it: exit 0"; do
			skip "$d" "needs setpriv"
		done
	fi
	expect_rc "root sets it again" 0 cohctl policy set --cgroup "$CG" system
	kill "$CPID"
	wait "$CPID" 2>/dev/null
	CPID=
	rmdir "$CGDIR"
	wait_list "not any(e['target'] == 'cgroup:$CG' for e in j['policies'])"
	json_ok "a cgroup that is removed loses its policy" \
		"not any(e['target'] == 'cgroup:$CG' for e in j['policies'])"
	expect_rc "  ... and clearing it: NoSuchTarget, exit 3" 3 cohctl policy clear --cgroup "$CG"
	CGDIR=
else
	[ -z "$CGDIR" ] || rmdir "$CGDIR" 2>/dev/null
	CGDIR=
	for d in "policy set --cgroup $CG system: exit 0" "  ... the path normalized" \
		 "  ... listed with kind, cgroup and its one process after a tick" \
		 "nobody setting a policy on root's cgroup: exit 4" "  ... and the daemon logs the denial" \
		 "nobody setting a policy on a cgroup directory it owns: exit 0" "  ... and clearing it: exit 0" \
		 "root sets it again" "a cgroup that is removed loses its policy" \
		 "  ... and clearing it: NoSuchTarget, exit 3"; do
		skip "$d" "needs root and a writable cgroup2 hierarchy"
	done
fi

# ------------------------------------------------------------ record
expect_rc "record without -o: exit 2" 2 cohctl record --pid "$SPID" --duration 1s
expect_rc "record without --duration: exit 2" 2 cohctl record --pid "$SPID" -o "$tmp/t"
expect_rc "record --duration 2d: exit 2" 2 cohctl record --pid "$SPID" --duration 2d -o "$tmp/t"
expect_rc "record of an unknown pid: exit 3" 3 cohctl record --pid "$DEAD" --duration 1s -o "$tmp/t"
[ ! -e "$tmp/t" ]
ok "  ... writes no file" $? "$tmp/err"
raw_call io.coherentd.Record "{\"pid\":$SPID,\"duration_usec\":1000000}" >"$tmp/out" 2>&1
json_ok "raw Record without more: org.varlink.service.ExpectedMore" \
	"j['error'] == 'org.varlink.service.ExpectedMore'"

# record_ticks PID FILE: cohctl record into FILE, output in $tmp/out and
# $tmp/err, status in $rc, the duration in $d. A recording needs at least one
# tick (TickSec=500ms): a loaded host gets longer durations, not a failure.
record_ticks() {
	d=2
	while :; do
		cohctl record --pid "$1" --duration "${d}s" -o "$2" >"$tmp/out" 2>"$tmp/err"
		rc=$?
		if [ "$rc" -ne 1 ] || ! grep -q "No regions of PID" "$tmp/err" || [ "$d" -ge 64 ]; then
			break
		fi
		d=$((d * 2))
	done
}

record_ticks "$SPID" "$tmp/trace"
ok "record --pid PID --duration ${d}s -o FILE: exit 0" "$rc" "$tmp/err"
grep -q "^Recorded [0-9]* ticks\? of PID $SPID: [0-9]* regions, 0 estimated page accesses, written to $tmp/trace\.$" "$tmp/out"
ok "  ... says what it recorded" $? "$tmp/out"
grep -q "every region had heat 0" "$tmp/err"
ok "  ... and warns that nothing was seen (Tracker=none)" $? "$tmp/err"
head -n 1 "$tmp/trace" | grep -qx "# coherentd-trace v1" && grep -q "^region 0 0x" "$tmp/trace" &&
	grep -q "^tick 0$" "$tmp/trace"
ok "  ... a trace v1 with regions and ticks from 0" $? "$tmp/trace"
expect_rc "cohctl simulate reads the recorded trace: exit 0" 0 \
	"$COHCTL" simulate --trace "$tmp/trace" --json
json_ok "  ... its regions and no accesses" "j['regions'] > 0 and all(r['accesses'] == 0 for r in j['results'])"
expect_rc "record -o - --json: exit 2" 2 cohctl record --pid "$SPID" --duration 1s -o - --json

# More regions in a tick than one reply may hold (a message is at most 1 MiB,
# ~70 bytes a region): 25000 one-page mappings with gaps between them, which
# no tracker merges, come in several replies of the same tick.
cat >"$tmp/many.py" <<'PY'
import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
n, ps = int(sys.argv[1]), 4096
# PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS
base = libc.mmap(None, 2 * n * ps, 3, 0x22, -1, 0)
if base in (None, ctypes.c_void_p(-1).value):
    sys.exit("mmap failed")
for i in range(n):
    ctypes.memset(base + 2 * i * ps, 1, 1)
    if libc.munmap(base + (2 * i + 1) * ps, ps) != 0:
        sys.exit("munmap failed")
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write("ready\n")
__import__("os").rename(sys.argv[2] + ".tmp", sys.argv[2])
time.sleep(3600)
PY
if [ "$(getconf PAGESIZE)" = 4096 ]; then
	python3 "$tmp/many.py" 25000 "$tmp/many.ready" &
	MPID=$!
	i=0
	while [ ! -s "$tmp/many.ready" ] && kill -0 "$MPID" 2>/dev/null && [ "$i" -lt 600 ]; do
		i=$((i + 1))
		sleep 0.1
	done
	record_ticks "$MPID" "$tmp/many.trace"
	ok "record of a process with 25000 mappings: exit 0" "$rc" "$tmp/err"
	[ "$(grep -c '^region ' "$tmp/many.trace" 2>/dev/null)" -ge 25000 ]
	ok "  ... every mapping is a region of the trace" $? "$tmp/out"
	kill "$MPID"
	wait "$MPID" 2>/dev/null
	MPID=
else
	skip "record of a process with 25000 mappings: exit 0" "the workload assumes 4 KiB pages"
	skip "  ... every mapping is a region of the trace" "as above"
fi

# A caller that goes away stops the recording at the next tick.
python3 - "$SOCK" "$SPID" >"$tmp/rec-raw" 2>&1 <<'PY' &
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(60)
s.connect(sys.argv[1])
call = {"method": "io.coherentd.Record", "more": True,
        "parameters": {"pid": int(sys.argv[2]), "duration_usec": 86400000000}}
s.sendall(json.dumps(call).encode() + b"\0")
buf = b""
while b"\0" not in buf:
    d = s.recv(65536)
    if not d:
        sys.exit("connection closed")
    buf += d
print(buf.split(b"\0")[0].decode())
s.close()
PY
RPID=$!
wait "$RPID"
rc=$?
RPID=
cp "$tmp/rec-raw" "$tmp/out"
[ "$rc" -eq 0 ] && json_ok "a raw Record gets a tick (continues, not finished)" \
	"j['continues'] and not j['parameters']['finished'] and j['parameters']['regions']" ||
	ok "a raw Record gets a tick (continues, not finished)" 1 "$tmp/rec-raw"
i=0
while ! grep -q "Recording of PID $SPID for uid $(id -u) stopped after [0-9]* ticks: the caller disconnected" "$tmp/daemon.log"; do
	i=$((i + 1))
	[ "$i" -gt 600 ] && break
	sleep 0.1
done
[ "$i" -le 600 ]
ok "  ... and its disconnect stops the recording" $? "$tmp/daemon.log"

# ------------------------------------------------------------ authorization
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	AS_NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
	expect_rc "nobody setting a policy on root's process: exit 4" 4 \
		$AS_NOBODY "$COHCTL" --socket "$SOCK" policy set --pid "$SPID" system
	err_has "  ... PermissionDenied" "io.coherentd.PermissionDenied"
	grep -q "Denied policy set of PID $SPID for uid 65534" "$tmp/daemon.log"
	ok "  ... and the daemon logs the denial" $? "$tmp/daemon.log"

	$AS_NOBODY sleep 3600 &
	NPID=$!
	wait_became "$NPID" 65534 sleep
	expect_rc "nobody setting a policy on its own process: exit 0" 0 \
		$AS_NOBODY "$COHCTL" --socket "$SOCK" policy set --pid "$NPID" system
	expect_rc "  ... everybody may list it" 0 \
		$AS_NOBODY "$COHCTL" --socket "$SOCK" policy list --json=short
	json_ok "  ... owned by 65534" \
		"any(e['target'] == 'pid:$NPID' and e['owner'] == 65534 for e in j['policies'])"
	expect_rc "root sets a policy on root's process" 0 cohctl policy set --pid "$SPID" system
	expect_rc "nobody clearing it: exit 4" 4 \
		$AS_NOBODY "$COHCTL" --socket "$SOCK" policy clear --pid "$SPID"
	grep -q "Denied policy clear of PID $SPID for uid 65534" "$tmp/daemon.log"
	ok "  ... and the daemon logs the denial" $? "$tmp/daemon.log"
	expect_rc "nobody recording root's process: exit 4" 4 \
		$AS_NOBODY "$COHCTL" --socket "$SOCK" record --pid "$SPID" --duration 1s -o "$tmp/t"
	expect_rc "nobody setting a policy on a job without a cgroup: exit 3" 3 \
		$AS_NOBODY "$COHCTL" --socket "$SOCK" policy set --job 987654321 system
	err_has "  ... NoSuchTarget (only root may, for Slurm's prolog)" \
		'io.coherentd.NoSuchTarget {"target":"job:987654321"}'
	expect_rc "nobody clearing its own policy: exit 0" 0 \
		$AS_NOBODY "$COHCTL" --socket "$SOCK" policy clear --pid "$NPID"
	expect_rc "root clearing root's: exit 0" 0 cohctl policy clear --pid "$SPID"
	kill "$NPID"
	wait "$NPID" 2>/dev/null
	NPID=
else
	for d in "nobody setting a policy on root's process: exit 4" "  ... PermissionDenied" \
		 "  ... and the daemon logs the denial" \
		 "nobody setting a policy on its own process: exit 0" "  ... everybody may list it" \
		 "  ... owned by 65534" "root sets a policy on root's process" "nobody clearing it: exit 4" \
		 "  ... and the daemon logs the denial" "nobody recording root's process: exit 4" \
		 "nobody setting a policy on a job without a cgroup: exit 3" \
		 "  ... NoSuchTarget (only root may, for Slurm's prolog)" \
		 "nobody clearing its own policy: exit 0" "root clearing root's: exit 0"; do
		skip "$d" "needs root and setpriv"
	done
fi

# ------------------------------------------------------------ the daemon is fine
expect_rc "after all that, status exits 0" 0 cohctl status
stop_daemon
ok "coherentd exits 0 on SIGTERM" $? "$tmp/daemon.log"

# ------------------------------------------------------------ a state it cannot write
# The state directory below a regular file: saving fails with ENOTDIR, the
# policy is not set, the daemon goes on.
: >"$tmp/file"
STATE="$tmp/file/state"
start_daemon
expect_rc "policy set with an unwritable state directory: exit 1" 1 \
	cohctl policy set --pid "$SPID" system
err_has "  ... PolicyFailed with errno ENOTDIR" 'io.coherentd.PolicyFailed {"errno":20,'
expect_rc "  ... the policy is not set" 0 cohctl policy list --json=short
json_ok "  ... (no entries)" "j['policies'] == []"
grep -q "Failed to set policy system for pid:$SPID: Not a directory" "$tmp/daemon.log"
ok "  ... and the daemon logs why" $? "$tmp/daemon.log"
stop_daemon
ok "coherentd exits 0 on SIGTERM" $? "$tmp/daemon.log"

echo "1..$n"
[ "$failures" -eq 0 ]
