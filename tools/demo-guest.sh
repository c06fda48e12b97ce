#!/bin/sh
# The coherentd demo, inside the emulated coherent node (tools/demo boots it):
# a 2-node machine whose node 1 has memory and no CPUs (a Grace-Hopper-style
# device node) and a 256 MiB firmware-reserved range that cohmem.ko turns into
# MEMORY_DEVICE_COHERENT pool "gpu0". A workload keeps checking its data while
# coherentd moves its memory between system RAM, node1 and gpu0.
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

echo "1..13"

step "Load cohmem.ko: the reserved range becomes coherent device memory"
check "cohmem.ko loads with pool gpu0" \
	run insmod "$COH_MODULE_DIR/cohmem.ko" "pools=gpu0:$COH_POOL_SIZE@$COH_POOL_START:$COH_POOL_NID"

step "Start coherentd"
mkdir -p /run/coherentd
coherentd --config=/dev/null >/tmp/coherentd.log 2>&1 &
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
