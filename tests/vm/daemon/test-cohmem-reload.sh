#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# coherentd follows cohmem.ko: its pools become devices when it is loaded,
# disappear when it is unloaded (a move to such a pool is NoSuchDevice, exit 5)
# and come back when it is loaded again, without restarting the daemon.
# Needs, with tests/vm/run: --module cohmem.ko --bin coherentd --bin cohctl.
# Never skips. Prints TAP.
set -u

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
diag() { sed 's/^/# /' "$@"; }

echo "1..8"
for b in coherentd cohctl; do
	if ! command -v "$b" >/dev/null; then
		echo "Bail out! $b is not in the VM (tests/vm/run --bin)"
		exit 1
	fi
done
if [ ! -f "$COH_MODULE_DIR/cohmem.ko" ]; then
	echo "Bail out! cohmem.ko is not in the VM (tests/vm/run --module)"
	exit 1
fi

load() {
	insmod "$COH_MODULE_DIR/cohmem.ko" "pools=gpu0:$COH_POOL_SIZE@$COH_POOL_START:$COH_POOL_NID"
}
sock=/run/coh-reload.sock
C="cohctl --socket $sock"

# wait_for CONDITION...: up to 60 s (only a broken daemon takes that long).
wait_for() {
	i=0
	while ! "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -gt 600 ] && return 1
		sleep 0.1
	done
	return 0
}
has_gpu0() { $C devices --no-legend | grep -q "^gpu0 .*cohmem"; }
no_gpu0() { ! has_gpu0; }

if load; then ok "insmod cohmem.ko pools=gpu0"; else not_ok "insmod cohmem.ko"; fi

printf '[Daemon]\nTickSec=500ms\n' >coherentd.conf
coherentd --config="$PWD/coherentd.conf" --socket="$sock" >daemon.log 2>&1 &
D=$!
if wait_for $C status; then ok "coherentd answers"; else not_ok "coherentd answers"; diag daemon.log; fi

sleep 3600 &
S=$!

if has_gpu0; then ok "gpu0 is a device (kind cohmem)"; else not_ok "gpu0 is a device"; $C devices | diag /dev/stdin; fi

rmmod cohmem
if wait_for no_gpu0; then ok "gpu0 is gone after rmmod"; else not_ok "gpu0 is gone after rmmod"; fi

$C migrate --pid "$S" --all --to gpu0 >m.out 2>&1
rc=$?
if [ "$rc" -eq 5 ] && grep -q 'io.coherentd.NoSuchDevice {"name":"gpu0"}' m.out; then
	ok "a move to the pool that went away: NoSuchDevice, exit 5"
else
	not_ok "a move to the pool that went away: exit $rc"
	diag m.out
fi

load
if wait_for has_gpu0; then ok "gpu0 is back after insmod"; else not_ok "gpu0 is back after insmod"; fi

if $C migrate --json=short --pid "$S" --all --to gpu0 >m.out 2>&1 &&
   grep -q '"finished":true' m.out && ! grep -q '"migrated":0,' m.out; then
	ok "a move to the new pool moves pages"
else
	not_ok "a move to the new pool"
	diag m.out
fi

kill "$S"
wait "$S" 2>/dev/null
kill -TERM "$D"
if wait "$D"; then ok "coherentd exits 0"; else not_ok "coherentd exits 0"; diag daemon.log; fi
rmmod cohmem 2>/dev/null
[ "$failed" -eq 0 ]
