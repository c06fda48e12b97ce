#!/bin/sh
# coherentd and cohctl in Debian's kernel: the daemon discovers the VM's
# memory-only NUMA node from the real sysfs, serves it over its socket, and
# exits cleanly on SIGTERM. Prints TAP.
set -u

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() { # check DESCRIPTION COMMAND...
	d=$1; shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}

command -v coherentd >/dev/null && command -v cohctl >/dev/null || {
	echo "1..0 # SKIP coherentd or cohctl not in the VM (--bin)"
	exit 77
}

echo "1..10"
sock=/run/coherentd/io.coherentd
mkdir -p /run/coherentd
conf=$PWD/coherentd.conf
: >"$conf"

coherentd --config="$conf" --socket="$sock" >daemon.log 2>&1 &
pid=$!
i=0
while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "coherentd creates its socket" test -S "$sock"

cohctl status >status.out 2>&1
check "cohctl status succeeds" test $? -eq 0
cat status.out | sed 's/^/# /'
check "status reports the daemon's pid" grep -q "$pid" status.out

cohctl devices >devices.out 2>&1
check "cohctl devices succeeds" test $? -eq 0
sed 's/^/# /' devices.out
check "node1 (memory-only) is a numa device" grep -Eq '^ *node1 +numa +1 ' devices.out
if grep -Eq '^ *node0 ' devices.out; then
	not_ok "node0 (has CPUs) is not a device"
else
	ok "node0 (has CPUs) is not a device"
fi

cohctl --json devices >devices.json 2>&1
sed "s/^/# /" devices.json
total_kb=$(awk '/MemTotal/ { print $4 }' /sys/devices/system/node/node1/meminfo)
check "JSON total_bytes of node1 equals its MemTotal" \
	grep -q "\"total_bytes\": *$((total_kb * 1024))" devices.json
check "JSON names the kind" grep -q '"kind": *"numa"' devices.json

kill -TERM "$pid"
wait "$pid"
rc=$?
check "coherentd exits 0 on SIGTERM" test $rc -eq 0
check "socket removed or daemon gone" sh -c "! kill -0 $pid 2>/dev/null"
[ $failed -eq 0 ] || sed 's/^/# daemon: /' daemon.log
exit $((failed > 0))
