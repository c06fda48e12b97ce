#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Host integration test of migration: the real coherentd from the build tree on
# the host's own sysfs and procfs (--root /), driven through the real cohctl,
# against a workload process this test starts. This host may have a single
# NUMA node and no cohmem.ko, so the moves here are to system RAM (where the
# pages already are) and the rest are the error paths: each documented error
# with its exit code, and authorization (as root: an unprivileged caller is
# denied someone else's process and allowed its own). The moves onto device
# memory are tested in the VM (tests/vm/daemon/).
#
# Prints TAP; exits 1 when any check failed. Needs python3.

set -u

: "${top_srcdir:?run through make check}"
: "${top_builddir:?run through make check}"

. "$top_srcdir/tests/integration/lib.sh"
need_built "$COHERENTD" "$COHCTL"

MIB16=16777216

tmp=$(mktemp -d "${TMPDIR:-/tmp}/coh-migrate.XXXXXX") || exit 1
# Reachable by the unprivileged caller of the permission checks.
chmod 755 "$tmp"
SOCK="$tmp/sock"
DPID=
WPID=
n=0
failures=0

cleanup() {
	for p in $DPID $WPID ${NPID:-}; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# A raw Migrate/GetResidency call; prints the reply.
raw_call() {
	python3 - "$SOCK" "$1" "$2" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sys.argv[1])
s.sendall(json.dumps({"method": sys.argv[2], "parameters": json.loads(sys.argv[3])}).encode() + b"\0")
buf = b""
while b"\0" not in buf:
    d = s.recv(65536)
    if not d:
        sys.exit("connection closed")
    buf += d
print(buf.split(b"\0")[0].decode())
PY
}

# ------------------------------------------------------------ the workload
# 16 MiB of touched anonymous memory at a known address, a zombie child and a
# second thread; it writes what the test needs to know, then sleeps.
cat >"$tmp/workload.py" <<'PY'
import ctypes, mmap, os, sys, threading, time
m = mmap.mmap(-1, 16 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for i in range(0, len(m), 4096):
    m[i] = 1
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
zombie = os.fork()
if zombie == 0:
    os._exit(0)
tid = []
ev = threading.Event()
def t():
    tid.append(threading.get_native_id())
    ev.wait()
th = threading.Thread(target=t, daemon=True)
th.start()
while not tid:
    time.sleep(0.01)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(f"{addr} {zombie} {tid[0]}\n")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(3600)
PY
python3 "$tmp/workload.py" "$tmp/workload.info" &
WPID=$!

"$COHERENTD" --root / --socket "$SOCK" --config /dev/null >"$tmp/daemon.log" 2>&1 &
DPID=$!

i=0
while [ ! -s "$tmp/workload.info" ] || ! "$COHCTL" --socket "$SOCK" --timeout 5s status >/dev/null 2>&1; do
	i=$((i + 1))
	if [ "$i" -gt 600 ] || ! kill -0 "$DPID" 2>/dev/null || ! kill -0 "$WPID" 2>/dev/null; then
		echo "Bail out! coherentd or the workload did not start"
		cat "$tmp/daemon.log"
		exit 1
	fi
	sleep 0.1
done
read -r ADDR ZOMBIE TID <"$tmp/workload.info"
START=$(printf '0x%x' "$ADDR")
END=$(printf '0x%x' $((ADDR + MIB16)))
ok "coherentd on / and the workload (pid $WPID, buffer $START-$END) are up" 0

# ------------------------------------------------------------ options after the verb
expect_rc "devices --json: options after the verb work" 0 cohctl devices --json
json_ok "  ... and print the device list" "isinstance(j['devices'], list)"
expect_rc "--json before the verb still works" 0 cohctl --json=short stats
json_ok "  ... stats has a system entry" "any(d['name'] == 'system' for d in j['devices'])"

# ------------------------------------------------------------ moves to system RAM
expect_rc "migrate --all --to system exits 0" 0 cohctl migrate --pid "$WPID" --all --to system --json
json_ok "  ... counts add up to pages" \
	"j['pages'] == sum(j['counts'].values()) and j['finished'] and not j['dry_run']"
json_ok "  ... the touched buffer is counted (migrated or already in RAM)" \
	"j['counts']['migrated'] + j['counts']['already'] >= $MIB16 // j['page_size']"
json_ok "  ... the target did not exit" "j['target_exited'] is False and j['pid'] == $WPID"

expect_rc "migrate --range over the buffer exits 0" 0 \
	cohctl migrate --json --pid "$WPID" --range "$START-$END" --to system
json_ok "  ... exactly the pages of the range, all present" \
	"j['pages'] == $MIB16 // j['page_size'] and j['counts']['migrated'] + j['counts']['already'] == j['pages']"

expect_rc "migrate --dry-run exits 0" 0 \
	cohctl migrate --json --dry-run --pid "$WPID" --range "$START-$END" --to system
json_ok "  ... predicts every page of the buffer" \
	"j['dry_run'] and j['counts']['migrated'] + j['counts']['already'] == $MIB16 // j['page_size']"

expect_rc "migrate prints a summary" 0 cohctl migrate --pid "$WPID" --range "$START-$END" --to system
grep -q "^Migrated [0-9]* pages\? (.*) of PID $WPID to system in " "$tmp/out" &&
	grep -q "^  Already there: " "$tmp/out" && grep -q "^  Skipped: " "$tmp/out" &&
	grep -q "^  Failed: 0$" "$tmp/out"
ok "  ... with pages moved, already there, skipped and failed" $? "$tmp/out"

# The progress line: on a terminal only.
grep -q "Migrating PID" "$tmp/err"
ok "no progress line when stderr is not a terminal" $((! $?)) "$tmp/err"
if command -v script >/dev/null; then
	script -qec "$COHCTL --socket $SOCK migrate --pid $WPID --range $START-$END --to system" \
		/dev/null >"$tmp/tty" 2>&1
	grep -q "Migrating PID $WPID to system: [0-9]*/[0-9]* pages" "$tmp/tty"
	ok "a progress line on a terminal" $? "$tmp/tty"
else
	skip "a progress line on a terminal" "no script(1)"
fi

# ------------------------------------------------------------ residency and stats
expect_rc "residency --json exits 0" 0 cohctl residency --pid "$WPID" --json
json_ok "  ... at least the buffer, and the entries add up" \
	"j['total_bytes'] >= $MIB16 and sum(e['bytes'] for e in j['residency']) == j['total_bytes']"
expect_rc "residency --verbose --json exits 0" 0 cohctl residency --verbose --pid "$WPID" --json
json_ok "  ... the buffer's mapping holds its 16 MiB" \
	"any(m['start'] <= $ADDR and m['end'] >= $ADDR + $MIB16 and m['kind'] == 'anon' and sum(e['bytes'] for e in m['residency']) >= $MIB16 for m in j['mappings'])"
expect_rc "residency (table) exits 0" 0 cohctl residency --pid "$WPID"
grep -q "^system " "$tmp/out"
ok "  ... shows system RAM" $? "$tmp/out"

expect_rc "stats exits 0" 0 cohctl stats
grep -q "^system " "$tmp/out"
ok "  ... lists system RAM" $? "$tmp/out"

# ------------------------------------------------------------ documented errors
python3 -c 'import os; p = os.fork()
if p == 0: os._exit(0)
os.waitpid(p, 0); print(p)' >"$tmp/deadpid"
DEAD=$(cat "$tmp/deadpid")
expect_rc "a pid that exited: exit 3" 3 cohctl migrate --pid "$DEAD" --all --to system
err_has "  ... NoSuchProcess" "io.coherentd.NoSuchProcess {\"pid\":$DEAD}"
expect_rc "residency of a pid that exited: exit 3" 3 cohctl residency --pid "$DEAD"

expect_rc "a zombie: exit 3" 3 cohctl migrate --pid "$ZOMBIE" --all --to system
err_has "  ... ProcessNotMigratable, zombie" '"reason":"zombie"'

if [ "$(id -u)" = 0 ] && ! grep -q '^VmSize:' /proc/2/status 2>/dev/null; then
	expect_rc "a kernel thread (kthreadd): exit 3" 3 cohctl migrate --pid 2 --all --to system
	err_has "  ... ProcessNotMigratable, kernel thread" '"reason":"kernel thread"'
else
	skip "a kernel thread (kthreadd): exit 3" "not root, or pid 2 is not kthreadd here"
	skip "  ... ProcessNotMigratable, kernel thread" "as above"
fi

expect_rc "a thread id: exit 2" 2 cohctl migrate --pid "$TID" --all --to system
err_has "  ... InvalidParameter on pid" '"parameter":"pid"'

expect_rc "an unknown device: exit 5" 5 cohctl migrate --pid "$WPID" --all --to no-such-device
err_has "  ... NoSuchDevice" 'io.coherentd.NoSuchDevice {"name":"no-such-device"}'

expect_rc "a range with nothing mapped: exit 3" 3 cohctl migrate --pid "$WPID" --range 0x1000-0x2000 --to system
err_has "  ... NothingMapped" 'io.coherentd.NothingMapped {"pid":'"$WPID"',"start":4096,"end":8192}'

# cohctl refuses what it can tell is wrong, without asking.
expect_rc "--range and --all together: exit 2" 2 cohctl migrate --pid "$WPID" --all --range 0x1000-0x2000 --to system
expect_rc "neither --range nor --all: exit 2" 2 cohctl migrate --pid "$WPID" --to system
expect_rc "END below START: exit 2" 2 cohctl migrate --pid "$WPID" --range 0x2000-0x1000 --to system
expect_rc "an unaligned range: exit 2" 2 cohctl migrate --pid "$WPID" --range 4096-8193 --to system
expect_rc "a bad --pid: exit 2" 2 cohctl migrate --pid 12x --all --to system
expect_rc "no --to: exit 2" 2 cohctl migrate --pid "$WPID" --all
expect_rc "--pid on a verb without it: exit 2" 2 cohctl stats --pid 1
expect_rc "residency without --pid: exit 2" 2 cohctl residency

# The daemon checks for itself what another client could send.
for c in 'end-below-start:{"pid":'"$WPID"',"start":8192,"end":4096,"to":"system"}:end' \
	 'unaligned:{"pid":'"$WPID"',"start":4096,"end":8193,"to":"system"}:end' \
	 'both:{"pid":'"$WPID"',"all":true,"start":0,"end":4096,"to":"system"}:all' \
	 'neither:{"pid":'"$WPID"',"to":"system"}:start' \
	 'bad-pid:{"pid":0,"all":true,"to":"system"}:pid' \
	 'unknown:{"pid":'"$WPID"',"all":true,"to":"system","force":1}:force'; do
	name=${c%%:*}
	rest=${c#*:}
	params=${rest%:*}
	param=${rest##*:}
	raw_call io.coherentd.Migrate "$params" >"$tmp/out" 2>&1
	json_ok "raw Migrate ($name): InvalidParameter on $param" \
		"j['error'] == 'io.coherentd.InvalidParameter' and j['parameters']['parameter'] == '$param' and j['parameters']['reason']"
done

# ------------------------------------------------------------ authorization
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	AS_NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
	expect_rc "nobody migrating root's process: exit 4" 4 \
		$AS_NOBODY "$COHCTL" --socket "$SOCK" migrate --pid "$WPID" --all --to system
	err_has "  ... PermissionDenied" "io.coherentd.PermissionDenied"
	grep -q "Denied migrate of PID $WPID for uid 65534" "$tmp/daemon.log"
	ok "  ... and the daemon logs the denial" $? "$tmp/daemon.log"
	expect_rc "nobody asking root's process's residency: exit 4" 4 \
		$AS_NOBODY "$COHCTL" --socket "$SOCK" residency --pid "$WPID"

	$AS_NOBODY sleep 3600 &
	NPID=$!
	wait_became "$NPID" 65534 sleep
	expect_rc "nobody migrating its own process: exit 0" 0 \
		$AS_NOBODY "$COHCTL" --socket "$SOCK" migrate --json --pid "$NPID" --all --to system
	json_ok "  ... counted" "j['pid'] == $NPID and j['pages'] == sum(j['counts'].values()) > 0"
	expect_rc "nobody reading its own process's residency: exit 0" 0 \
		$AS_NOBODY "$COHCTL" --socket "$SOCK" residency --pid "$NPID"
	kill "$NPID"
	wait "$NPID" 2>/dev/null
	NPID=
else
	for d in "nobody migrating root's process: exit 4" "  ... PermissionDenied" \
		 "  ... and the daemon logs the denial" "nobody asking root's process's residency: exit 4" \
		 "nobody migrating its own process: exit 0" "  ... counted" \
		 "nobody reading its own process's residency: exit 0"; do
		skip "$d" "needs root and setpriv"
	done
fi

# ------------------------------------------------------------ the daemon is fine
expect_rc "after all that, status exits 0" 0 cohctl status
kill -TERM "$DPID"
wait "$DPID"
rc=$?
DPID=
ok "coherentd exits 0 on SIGTERM" "$rc" "$tmp/daemon.log"

echo "1..$n"
[ "$failures" -eq 0 ]
