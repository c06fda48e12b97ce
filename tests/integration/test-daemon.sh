#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Host integration test: the real coherentd from the build tree on a temporary
# socket with a fixture sysfs root, driven through the real cohctl. Asserts on
# cohctl's tables and JSON, its exit codes and messages when nothing listens or
# the daemon misbehaves, and that malformed, oversized, garbage, stalled and
# flooding clients never stop the daemon from answering the next cohctl.
#
# Expected sizes are computed from the fixtures' meminfo files, not copied from
# the daemon. Prints TAP; exits 1 when any check failed. Needs python3.
#
# Run by `make check` (which sets top_srcdir, top_builddir and FIXTURES), or by
# hand: top_srcdir=.. top_builddir=. FIXTURES=../tests/fixtures ../tests/integration/test-daemon.sh

set -u

: "${top_srcdir:?run through make check}"
: "${top_builddir:?run through make check}"
: "${FIXTURES:?run through make check}"

. "$top_srcdir/tests/integration/lib.sh"
need_built "$COHERENTD" "$COHCTL"

IDL="$top_srcdir/daemon/io.coherentd.varlink"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/coh-integ.XXXXXX") || exit 1
SOCK="$tmp/sock"
DPID=
n=0
failures=0

cleanup() {
	if [ -n "$DPID" ]; then
		kill -KILL "$DPID" 2>/dev/null
		wait "$DPID" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# bytes FIXTURE NODE FIELD: a node's meminfo field in bytes (the kernel prints kB).
bytes() {
	awk -v f="$3:" '$3 == f { printf "%.0f\n", $4 * 1024 }' \
		"$FIXTURES/$1/sys/devices/system/node/node$2/meminfo"
}

# start_daemon FIXTURE CONFIG-TEXT
start_daemon() {
	printf '%s' "$2" >"$tmp/coherentd.conf"
	rm -f "$SOCK"
	"$COHERENTD" --root "$FIXTURES/$1" --socket "$SOCK" --config "$tmp/coherentd.conf" \
		>"$tmp/daemon.log" 2>&1 &
	DPID=$!
	# Wait for the daemon to answer, not for a fixed time; bail out if it died.
	i=0
	while ! "$COHCTL" --socket "$SOCK" --timeout 5s status >/dev/null 2>&1; do
		if ! kill -0 "$DPID" 2>/dev/null; then
			ok "coherentd starts on fixture $1" 1 "$tmp/daemon.log"
			wait "$DPID"
			DPID=
			return 1
		fi
		i=$((i + 1))
		if [ "$i" -gt 600 ]; then
			ok "coherentd answers on fixture $1 within 60s" 1 "$tmp/daemon.log"
			return 1
		fi
		sleep 0.1
	done
	ok "coherentd starts on fixture $1 and answers" 0
}

# stop_daemon: SIGTERM, exit status 0, socket removed.
stop_daemon() {
	kill -TERM "$DPID"
	wait "$DPID"
	rc=$?
	DPID=
	echo "exit status $rc" >"$tmp/detail"
	cat "$tmp/daemon.log" >>"$tmp/detail"
	ok "coherentd exits 0 on SIGTERM" "$rc" "$tmp/detail"
	test ! -e "$SOCK"
	ok "coherentd removes its socket on exit" $?
}

# field LABEL: the value of "Label: value" in cohctl status output ($tmp/out).
field() {
	sed -n "s/^ *$1: //p" "$tmp/out"
}

# row NAME: the devices table row of NAME with single spaces ($tmp/out).
row() {
	awk -v n="$1" '$1 == n { $1 = $1; print }' "$tmp/out"
}

VERSION=$("$COHERENTD" --version | awk '{ print $NF; exit }')

# ------------------------------------------------------------ no daemon
expect_rc "cohctl without a daemon exits 69" 69 cohctl status
same "cohctl says the daemon is not running" "$(cat "$tmp/err")" \
	"coherentd is not running (no socket at $SOCK)."
expect_rc "cohctl devices without a daemon exits 69" 69 cohctl devices

$RAW stale "$SOCK"
expect_rc "cohctl on a stale socket exits 69" 69 cohctl status
same "cohctl says nothing listens on a stale socket" "$(cat "$tmp/err")" \
	"coherentd is not running (nothing listens on the socket at $SOCK)."
rm -f "$SOCK"

# ------------------------------------------------------------ usage
expect_rc "unknown verb is a usage error" 2 cohctl frobnicate
expect_rc "unknown option is a usage error" 2 cohctl --frobnicate status
expect_rc "bad --json mode is a usage error" 2 cohctl --json=yaml status
expect_rc "extra argument is a usage error" 2 cohctl status extra
expect_rc "bad --timeout is a usage error" 2 cohctl --timeout=soon status
expect_rc "--help exits 0" 0 cohctl --help
grep -q "69" "$tmp/out"
ok "--help documents exit status 69" $?
expect_rc "--version exits 0" 0 cohctl --version
grep -q "$VERSION" "$tmp/out"
ok "--version prints $VERSION" $?

# ------------------------------------------------------------ cohctl against a broken daemon
$RAW fake-daemon "$SOCK" error 2 org.varlink.service.MethodNotFound &
fake=$!
while [ ! -S "$SOCK" ] && kill -0 $fake 2>/dev/null; do sleep 0.05; done
expect_rc "an error reply exits 1" 1 cohctl status
same "an error reply is printed as its name and parameters" "$(cat "$tmp/err")" \
	'io.coherentd.GetStatus failed: org.varlink.service.MethodNotFound {"method":"io.coherentd.GetStatus"}'
expect_rc "an error reply with --json exits 1" 1 cohctl --json devices
wait $fake

# The errors with exit codes of their own (cohctl(8), EXIT STATUS).
for e in InvalidParameter:2 NoSuchProcess:3 ProcessNotMigratable:3 NothingMapped:3 \
	 PermissionDenied:4 NoSuchDevice:5 MigrationFailed:1; do
	rm -f "$SOCK"
	$RAW fake-daemon "$SOCK" error 1 "io.coherentd.${e%%:*}" &
	fake=$!
	while [ ! -S "$SOCK" ] && kill -0 $fake 2>/dev/null; do sleep 0.05; done
	expect_rc "io.coherentd.${e%%:*} exits ${e#*:}" "${e#*:}" cohctl stats
	wait $fake
done

$RAW fake-daemon "$SOCK" malformed 2 &
fake=$!
while [ ! -S "$SOCK" ] && kill -0 $fake 2>/dev/null; do sleep 0.05; done
expect_rc "a malformed status reply exits 1" 1 cohctl status
grep -q "Malformed reply to io.coherentd.GetStatus" "$tmp/err"
ok "a malformed status reply is reported as such" $? "$tmp/err"
expect_rc "a malformed devices reply exits 1" 1 cohctl devices
grep -q "field 'devices'" "$tmp/err"
ok "a malformed devices reply names the field" $? "$tmp/err"
wait $fake

$RAW fake-daemon "$SOCK" close 1 &
fake=$!
while [ ! -S "$SOCK" ] && kill -0 $fake 2>/dev/null; do sleep 0.05; done
expect_rc "a daemon hanging up before answering: exit 69" 69 cohctl status
grep -q "closed the connection" "$tmp/err"
ok "hang-up is reported" $? "$tmp/err"
wait $fake

# The only wall-clock wait: a daemon that never answers must not hang cohctl.
$RAW fake-daemon "$SOCK" silent 1 &
fake=$!
while [ ! -S "$SOCK" ] && kill -0 $fake 2>/dev/null; do sleep 0.05; done
expect_rc "a daemon that never answers: --timeout, exit 69" 69 cohctl --timeout=200ms status
grep -q "did not answer" "$tmp/err"
ok "the timeout is reported" $? "$tmp/err"
wait $fake

# ------------------------------------------------------------ grace-hopper: one HBM node
GH_TOTAL=$(bytes grace-hopper 1 MemTotal)
GH_FREE=$(bytes grace-hopper 1 MemFree)
# The daemon reports its root canonicalized ($FIXTURES may contain "..").
GH_ROOT=$(cd "$FIXTURES/grace-hopper" && pwd -P)
start_daemon grace-hopper '[Device hbm0]
Node=1
LowWatermark=8G
HighWatermark=16G
' || exit 1

expect_rc "status exits 0" 0 cohctl status
same "status: version" "$(field Version)" "$VERSION"
same "status: pid" "$(field PID)" "$DPID"
same "status: root" "$(field Root)" "$GH_ROOT"
same "status: config" "$(field Config)" "$tmp/coherentd.conf"
same "status: devices" "$(field Devices)" "1"
same "status: memory" "$(field Memory)" "96.0G total, 90.0G free (93.8%)"
same "status: connections" "$(field Connections)" "1"

expect_rc "status is the default verb" 0 cohctl
same "default verb prints status" "$(field Devices)" "1"

expect_rc "status --json exits 0" 0 cohctl --json status
json_ok "status --json: fields and values" \
	"j['version'] == '$VERSION' and j['pid'] == $DPID and j['root'] == '$GH_ROOT'
	 and j['config_files'] == ['$tmp/coherentd.conf'] and j['n_devices'] == 1
	 and j['total_device_bytes'] == $GH_TOTAL and j['free_device_bytes'] == $GH_FREE
	 and j['n_connections'] == 1 and isinstance(j['uptime_usec'], int)"
grep -q '^  "n_devices": 1,$' "$tmp/json"
ok "--json is pretty (indented, one field per line)" $? "$tmp/json"
expect_rc "status --json=short exits 0" 0 cohctl --json=short status
same "--json=short is one line" "$(wc -l <"$tmp/out" | tr -d ' ')" "1"

expect_rc "devices exits 0" 0 cohctl devices
same "devices: header" "$(sed -n '1{s/  */ /g;p}' "$tmp/out")" \
	"NAME KIND NODE TIER TOTAL FREE LOW HIGH CONFIGURED"
same "devices: hbm0 row" "$(row hbm0)" "hbm0 numa 1 4 96.0G 90.0G 8.0G 16.0G yes"
same "devices: footer" "$(tail -n 1 "$tmp/out")" "1 device listed."
expect_rc "devices --no-legend exits 0" 0 cohctl --no-legend devices
same "--no-legend prints only rows" "$(cat "$tmp/out" | tr -s ' ')" \
	"hbm0 numa 1 4 96.0G 90.0G 8.0G 16.0G yes"

expect_rc "devices --json exits 0" 0 cohctl -j devices
json_ok "devices --json: the HBM node with exact bytes" \
	"j == {'devices': [{'name': 'hbm0', 'kind': 'numa', 'node': 1, 'tier': 4,
	  'total_bytes': $GH_TOTAL, 'free_bytes': $GH_FREE,
	  'low_watermark_bytes': 8 << 30, 'high_watermark_bytes': 16 << 30,
	  'configured': True}]}"

COHCTL_SOCKET="$SOCK" "$COHCTL" devices >"$tmp/out" 2>&1
ok "\$COHCTL_SOCKET selects the socket" $? "$tmp/out"
COHCTL_SOCKET="$tmp/elsewhere" "$COHCTL" --socket "$SOCK" devices >"$tmp/out" 2>&1
ok "--socket overrides \$COHCTL_SOCKET" $? "$tmp/out"

# Protocol, as any varlink client sees it.
check "GetInfo lists io.coherentd, version $VERSION" $RAW info "$SOCK" "$VERSION"
check "GetInterfaceDescription serves daemon/io.coherentd.varlink verbatim" $RAW idl "$SOCK" "$IDL"
check "unknown method/interface, stray parameter, oneway: varlink errors" $RAW errors "$SOCK"

# Abuse; after each, the next cohctl is answered.
check "malformed messages get InvalidParameter, connection stays usable" $RAW malformed "$SOCK"
check "  ... and the next cohctl is answered" cohctl status

check "an oversized message (> 1 MiB, no NUL) closes that connection" $RAW oversize "$SOCK"
check "  ... and the next cohctl is answered" cohctl status

check "garbage bytes get only error replies, then EOF" $RAW garbage "$SOCK" 1 65536
check "  ... and the next cohctl is answered" cohctl status
check "more garbage (another seed)" $RAW garbage "$SOCK" 7 300000
check "  ... and the next cohctl is answered" cohctl devices

check "a stalled half message does not block cohctl, and is answered when completed" \
	$RAW stall "$SOCK" "$COHCTL" --socket "$SOCK" --timeout 30s status

if [ "$(id -u)" = 0 ]; then limit=256; else limit=128; fi
$RAW flood "$SOCK" 300 $limit "$COHCTL" --socket "$SOCK" status >"$tmp/flood" 2>&1
ok "300 connections: $limit served, the rest accepted and closed" $? "$tmp/flood"
grep -q "command exit 69" "$tmp/flood"
ok "cohctl beyond the connection limit exits 69" $? "$tmp/flood"
expect_rc "after the flood the daemon answers again" 0 cohctl status
# The daemon may still be reaping the 300 hang-ups when that call arrives: wait for
# the count to settle (the deadline only catches connections that are never freed).
i=0
while [ "$(field Connections)" != 1 ] && [ $i -lt 300 ]; do
	sleep 0.1
	cohctl status >"$tmp/out" 2>&1
	i=$((i + 1))
done
same "after the flood every connection is freed (only cohctl is connected)" \
	"$(field Connections)" "1"

kill -0 "$DPID" 2>/dev/null
ok "coherentd survived everything" $? "$tmp/daemon.log"
stop_daemon
expect_rc "cohctl after the daemon stopped exits 69" 69 cohctl status

# ------------------------------------------------------------ one-node: no device memory
start_daemon one-node '' || exit 1
expect_rc "one-node: devices exits 0" 0 cohctl devices
same "one-node: no devices" "$(cat "$tmp/out")" "NAME KIND NODE TIER TOTAL FREE LOW HIGH CONFIGURED

No devices found."
expect_rc "one-node: devices --json exits 0" 0 cohctl --json devices
json_ok "one-node: empty device list" "j == {'devices': []}"
expect_rc "one-node: status exits 0" 0 cohctl status
same "one-node: status devices" "$(field Devices)" "0"
same "one-node: no memory line" "$(field Memory)" ""
stop_daemon

# ------------------------------------------------------------ eight-memonly: 8 device nodes
start_daemon eight-memonly '' || exit 1
expect_rc "eight-memonly: devices exits 0" 0 cohctl --json devices
want="["
total=0
for node in 2 3 4 5 6 7 8 9; do
	t=$(bytes eight-memonly $node MemTotal)
	f=$(bytes eight-memonly $node MemFree)
	total=$((total + t))
	want="$want{'name': 'node$node', 'kind': 'numa', 'node': $node, 'tier': 5, 'total_bytes': $t, 'free_bytes': $f, 'configured': False},"
done
want="$want]"
json_ok "eight-memonly: nodes 2-9, tier 5, each with its own free bytes" \
	"[{k: v for k, v in d.items() if v is not None} for d in j['devices']] == $want"
expect_rc "eight-memonly: table exits 0" 0 cohctl devices
same "eight-memonly: 8 rows" "$(awk '$2 == "numa"' "$tmp/out" | wc -l | tr -d ' ')" "8"
same "eight-memonly: footer" "$(tail -n 1 "$tmp/out")" "8 devices listed."
same "eight-memonly: unconfigured, no watermarks" \
	"$(awk '$2 == "numa" { print $7, $8, $9 }' "$tmp/out" | sort -u)" "- - no"
expect_rc "eight-memonly: status exits 0" 0 cohctl --json status
json_ok "eight-memonly: status sums the devices" \
	"j['n_devices'] == 8 and j['total_device_bytes'] == $total"
stop_daemon

# ------------------------------------------------------------ free memory is read when asked
# A tick an hour: what cohctl shows must still be the node's memory now.
cp -R "$FIXTURES/grace-hopper" "$tmp/live" && chmod -R u+w "$tmp/live"
saved_fixtures=$FIXTURES
FIXTURES=$tmp
start_daemon live '[Daemon]
TickSec=1h
' || exit 1
FIXTURES=$saved_fixtures
sed -i 's/MemFree: *[0-9]* kB/MemFree: 1048576 kB/' "$tmp/live/sys/devices/system/node/node1/meminfo"
expect_rc "live: devices exits 0" 0 cohctl --json devices
json_ok "live: devices shows the free memory of now, not of the last tick" \
	"j['devices'][0]['free_bytes'] == 1 << 30"
sed -i 's/MemFree: *[0-9]* kB/MemFree: 2097152 kB/' "$tmp/live/sys/devices/system/node/node1/meminfo"
expect_rc "live: status exits 0" 0 cohctl --json status
json_ok "live: status too" "j['free_device_bytes'] == 2 << 30"
# A node that cannot be read any more: the last list stays, the daemon answers.
mv "$tmp/live/sys/devices/system/node/node1/meminfo" "$tmp/live/meminfo.saved"
expect_rc "live: devices with node1 unreadable exits 0" 0 cohctl --json devices
json_ok "live: ... the last list it read" "j['devices'][0]['free_bytes'] == 2 << 30"
grep -q "keeping the previous device list" "$tmp/daemon.log"
ok "live: ... and the daemon says why" $? "$tmp/daemon.log"
stop_daemon

# ------------------------------------------------------------ cxl-tier: a slower tier
start_daemon cxl-tier '' || exit 1
CXL_TOTAL=$(bytes cxl-tier 1 MemTotal)
expect_rc "cxl-tier: devices exits 0" 0 cohctl devices
same "cxl-tier: node1 in tier 22" "$(row node1 | cut -d' ' -f1-5)" "node1 numa 1 22 128.0G"
expect_rc "cxl-tier: devices --json exits 0" 0 cohctl --json devices
json_ok "cxl-tier: tier 22 in JSON" \
	"len(j['devices']) == 1 and j['devices'][0]['tier'] == 22 and j['devices'][0]['total_bytes'] == $CXL_TOTAL"
stop_daemon

echo "1..$n"
if [ "$failures" -gt 0 ]; then
	echo "# $failures of $n checks failed"
	exit 1
fi
exit 0
