#!/bin/sh
# The coherentd demo, inside the emulated coherent node (tools/demo boots it):
# a 2-node machine whose node 1 has memory and no CPUs (a Grace-Hopper-style
# device node) and a 256 MiB firmware-reserved range that cohmem.ko turns into
# MEMORY_DEVICE_COHERENT pool "gpu0". A workload keeps checking its data while
# coherentd moves its memory between system RAM, node1 and gpu0. Then the
# placement loop: a hot: policy brings another workload's hot set to gpu0,
# and follows it when it moves.
#
# Every step is also a TAP assertion, so the demo fails loudly if coherentd
# does not do what it shows.
set -u

n=0
failed=0
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
check() { # check DESCRIPTION COMMAND...
	d=$1; shift
	n=$((n + 1))
	if "$@"; then echo "ok $n - $d"; else failed=$((failed + 1)); echo "not ok $n - $d"; fi
}

echo "1..17"

step "Load cohmem.ko: the reserved range becomes coherent device memory"
check "cohmem.ko loads with pool gpu0" \
	run insmod "$COH_MODULE_DIR/cohmem.ko" "pools=gpu0:$COH_POOL_SIZE@$COH_POOL_START:$COH_POOL_NID"

step "Start coherentd"
mkdir -p /run/coherentd
# A region is hot when 2 of the 16 pages sampled were touched in a tick, and
# leaves a device after 2 cold ticks (coherentd.conf(5)).
printf '[Daemon]\nTickSec=1s\n\n[Policy]\nHotThreshold=125\nColdDemoteTicks=2\n' >/tmp/coherentd.conf
run cat /tmp/coherentd.conf
coherentd --config=/tmp/coherentd.conf --state-dir=/tmp/coherentd-state >/tmp/coherentd.log 2>&1 &
daemon=$!
i=0
while [ ! -S /run/coherentd/io.coherentd ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "coherentd answers" run cohctl status

step "Devices: the CPU-less NUMA node and the cohmem pool"
run cohctl devices | tee /tmp/devices.out
check "node1 and gpu0 are listed" sh -c 'grep -q "^ *node1 " /tmp/devices.out && grep -q "^ *gpu0 " /tmp/devices.out'

step "A workload: 64 MiB that it rewrites and verifies, pass after pass"
echo '$ cohwork --size 64M --pause-ms 500 &'
cohwork --size 64M --pause-ms 500 --range-file /tmp/range --status /tmp/work.status >/tmp/work.out 2>&1 &
work=$!
i=0
while [ ! -s /tmp/range ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
check "workload running" kill -0 "$work"
run cohctl residency --pid "$work"

for to in gpu0 system node1 system; do
	step "Move the workload's memory to $to"
	check "migrate to $to" run cohctl migrate --pid "$work" --all --to "$to"
	run cohctl residency --pid "$work" | tee /tmp/res.out
done
check "memory back in system RAM" sh -c '! grep -Eq "^ *(gpu0|node1) +[1-9]" /tmp/res.out'

# wait_hot PHASE: until gups says 90% of that phase's hot set is on gpu0, or
# 40 of its ticks of that phase went by (ticks, not time: TCG is slow).
wait_hot() {
	while kill -0 "$hot" 2>/dev/null; do
		grep "^gups: tick=.* phase=$1 " /tmp/gups.out >/tmp/gups.phase
		f=$(tail -n 1 /tmp/gups.phase | sed -n 's/.* frac=\([0-9.]*\) .*/\1/p')
		if awk -v f="${f:-0}" 'BEGIN { exit !(f >= 0.9) }'; then
			tail -n 3 /tmp/gups.phase | cut -d' ' -f2-9
			return 0
		fi
		[ "$(wc -l </tmp/gups.phase)" -lt 40 ] || break
		sleep 0.5
	done
	tail -n 3 /tmp/gups.phase | cut -d' ' -f2-9
	return 1
}

step "The placement loop: 384 MiB of memory, 64 MiB of it hot, a hot: policy on gpu0"
echo '$ gups --size 384M --hot 64M --device pool &    # frac: hot set on gpu0, prec: hot share of gpu0'
rm -f /tmp/gups.range
gups --size 384M --hot 64M --thp off --device pool --range-file /tmp/gups.range >/tmp/gups.out 2>&1 &
hot=$!
i=0
while [ ! -s /tmp/gups.range ] && [ $i -lt 600 ] && kill -0 "$hot" 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
check "cohctl policy set hot:gpu0" run cohctl policy set --pid "$hot" hot:gpu0
check "coherentd brought the hot set to gpu0" wait_hot 0
run cohctl policy list

step "The hot set moves elsewhere in the workload: coherentd follows it"
kill -USR1 "$hot"
check "the new hot set reached gpu0" wait_hot 1
run cohctl policy list
run cohctl policy clear --pid "$hot"
kill -TERM "$hot"
wait "$hot"
rc=$?
grep -v '^gups: tick=' /tmp/gups.out
check "gups exits 0 (every word verified)" test "$rc" -eq 0

step "Statistics"
check "cohctl stats" run cohctl stats

step "The workload found its data intact all along"
kill -TERM "$work"
wait "$work"
rc=$?
cat /tmp/work.out
check "workload exits 0 (no data error)" test "$rc" -eq 0

kill -TERM "$daemon"
wait "$daemon"
check "coherentd exits cleanly" test $? -eq 0
check "cohmem.ko unloads" run rmmod cohmem
[ $failed -eq 0 ] || sed 's/^/# coherentd: /' /tmp/coherentd.log
exit $((failed > 0))
