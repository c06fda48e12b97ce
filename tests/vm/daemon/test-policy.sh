#!/bin/sh
# coherentd's placement loop in Debian's kernel: hot: policies set with
# cohctl policy on gups workloads (tests/vm/workload/gups.c) whose footprint
# (384 MiB) exceeds the pool (256 MiB) and whose hot set (64 MiB) fits and
# moves once. gups reports every tick how much of its hot set is on the
# device (move_pages(2): -ENOENT for a present page is a cohmem pool page,
# checked here against the page frames) and how much of what it has there is
# hot; the test waits for 90% (gups-lib.sh), reports the ticks it took, and
# asserts placement and data, never time.
#
# First with cold demotion on ([Policy] HotThreshold=125, ColdDemoteTicks=2:
# a page touched once in a while is not hot, a region cold for 2 ticks
# leaves), the setting for precision:
#  - hot:gpu0 (the cohmem pool): the hot set is captured, then captured
#    again after it moved; cohctl policy list shows the target; clear.
#  - hot:node1 (the memory-only NUMA node, with watermarks leaving room for
#    176 MiB): the same.
# Then coherentd restarts with ColdDemoteTicks=0, HotThreshold=1 and room
# for 448 MiB on node1 (cold regions leave only to make room, a stray update
# brings a cold page in, and the whole footprint fits: nothing is swapped at
# the watermark, so node1's free memory holds still), which the eviction
# scenario needs:
#  - hot:node1 again, captured twice, so that its old hot set and cold
#    pages are on node1; a second target, hot:node1,priority=10, filled on
#    node1 itself, takes node1 below its low watermark: the first target's
#    cold pages are evicted until the pressure ends, its hot set stays, and
#    the second target keeps all of its own.
#  - every gups replays its updates at the end: no word lost.
#
# NUMA balancing off, THP only where asked (gups --thp off). [Daemon]
# TickSec=1s.
#
# Needs tests/vm/run --module cohmem.ko --bin coherentd --bin cohctl --bin
# gups --bin cohprobe --file .../gups-lib.sh:/coh/share/gups-lib.sh. Prints TAP.
set -u

. "${COH_GUPS_LIB:-/coh/share/gups-lib.sh}"

echo "1..35"

for b in coherentd cohctl gups cohprobe; do
	if ! command -v "$b" >/dev/null; then
		echo "Bail out! $b is not in the VM (tests/vm/run --bin)"
		exit 1
	fi
done
if [ ! -e "$COH_MODULE_DIR/cohmem.ko" ]; then
	echo "Bail out! no cohmem.ko in $COH_MODULE_DIR (tests/vm/run --module)"
	exit 1
fi

echo 0 >/proc/sys/kernel/numa_balancing
echo madvise >/sys/kernel/mm/transparent_hugepage/enabled
: >figures.txt

[ ! -d /sys/module/cohmem ] || rmmod cohmem 2>/dev/null
insmod "$COH_MODULE_DIR/cohmem.ko" "pools=gpu0:$COH_POOL_SIZE@$COH_POOL_START:$COH_POOL_NID" \
	>insmod.out 2>&1
check "cohmem.ko loads with pool gpu0" test -d /sys/module/cohmem
diag insmod.out

# node1_pcp: bytes of node1's free pages held in per-CPU lists, not in
# MemFree (tens of MiB here right after pages left the node).
node1_pcp() {
	awk '$1 == "Node" { node = $2 + 0 } node == 1 && $1 == "count:" { n += $2 }
		END { print n * 4096 }' /proc/zoneinfo
}
# node1_free: what coherentd counts as free on node1, MemFree and those.
node1_free() {
	echo $(($(awk '$3 == "MemFree:" { print $4 * 1024 }' /sys/devices/system/node/node1/meminfo) +
		$(node1_pcp)))
}
free1=$(node1_free)
# write_conf HOT-THRESHOLD COLD-DEMOTE-TICKS ROOM-MIB: coherentd.conf, with
# node1's high watermark ROOM-MIB below what is free now (nothing running),
# the low one 16 MiB under it.
write_conf() {
	high=$((free1 - ($3 << 20)))
	low=$((high - (16 << 20)))
	cat >coherentd.conf <<EOF
[Daemon]
TickSec=1s

[Policy]
HotThreshold=$1
HysteresisTicks=1
MinResidenceSec=1s
ColdDemoteTicks=$2

[Device node1]
Node=1
LowWatermark=$low
HighWatermark=$high
EOF
}
write_conf 125 2 176
diag coherentd.conf
coherentd_start
cohctl devices >devices.out 2>&1
diag devices.out
check "devices: gpu0 (cohmem) and node1 (numa)" \
	sh -c 'grep -Eq "^ *gpu0 +cohmem " devices.out && grep -Eq "^ *node1 +numa " devices.out'

# last_tick NAME: the last tick line of gups NAME.
last_tick() { grep '^gups: tick=' "$1.out" | tail -n 1; }
# next_tick NAME: waits for one more tick line of gups NAME.
next_tick() {
	nt=$(grep -c '^gups: tick=' "$1.out")
	while [ "$(grep -c '^gups: tick=' "$1.out")" -le "$nt" ]; do
		eval "kill -0 \$${1}_pid" 2>/dev/null || return 1
		sleep 0.1
	done
}

# ------------------------------------------------------------ hot:gpu0
# Precision is measured once cold demotion had its ticks (ColdDemoteTicks
# and one to move): the means over 3 of gups's ticks from 3 placement ticks
# after the capture on.
GUPS_SETTLE=3
GUPS_SETTLE_MOVER=3
GUPS_ARGS="--size 384M --hot 64M --cold-ppm 100 --thp off --tick-ms 1000 --tlb-flush-ms 100"
gups_start pool $GUPS_ARGS --seed 3 --device pool
cohctl policy set --pid "$pool_pid" hot:gpu0 >policy.out 2>&1
check "cohctl policy set --pid PID hot:gpu0 exits 0" test $? -eq 0
diag policy.out
gups_scenario pool "coherentd hot:gpu0"
cohctl --json=short policy list >list.json 2>&1
diag list.json
check "cohctl policy list shows pid:$pool_pid with hot:gpu0" \
	grep -q "\"target\": *\"pid:$pool_pid\".*\"policy\": *\"hot:gpu0\"" list.json
cohctl policy clear --pid "$pool_pid" >policy.out 2>&1
check "cohctl policy clear --pid PID exits 0" test $? -eq 0
diag policy.out
# Nothing moves the pages now: what gups counts as in the pool (-ENOENT from
# move_pages) must be what the page frames say.
next_tick pool
next_tick pool
in_pool=$(cohprobe pfns "$pool_pid" "$pool_range" | awk '$1 == "in" { print $2 }')
next_tick pool
dev=$(gups_field "$(last_tick pool)" dev)
echo "# gups: $dev pages in the pool by move_pages, pagemap: $in_pool"
check "gups's pool count (move_pages -ENOENT) is the pagemap's ($in_pool pages)" \
	test "$dev" = "$in_pool" -a "${in_pool:-0}" -gt 0
check "hot:gpu0: gups verified every word (0 errors)" gups_stop pool

# ------------------------------------------------------------ hot:node1
gups_start sel $GUPS_ARGS --seed 7 --device node:1
cohctl policy set --pid "$sel_pid" hot:node1 >policy.out 2>&1
check "cohctl policy set --pid PID hot:node1 exits 0" test $? -eq 0
diag policy.out
gups_scenario sel "coherentd hot:node1"
cohctl policy clear --pid "$sel_pid" >policy.out 2>&1
check "cohctl policy clear --pid PID exits 0 (hot:node1)" test $? -eq 0
diag policy.out
check "hot:node1: gups verified every word (0 errors)" gups_stop sel

# ------------------------------------------- restart: no cold demotion
kill -TERM $daemon
wait $daemon
check "coherentd exits 0 on SIGTERM (to restart without cold demotion)" test $? -eq 0
write_conf 1 0 448
diag coherentd.conf
coherentd_start
gups_start low $GUPS_ARGS --seed 5 --device node:1
cohctl policy set --pid "$low_pid" hot:node1 >policy.out 2>&1
check "cohctl policy set --pid PID hot:node1 exits 0 (ColdDemoteTicks=0)" test $? -eq 0
diag policy.out
GUPS_SETTLE=3
GUPS_SETTLE_MOVER=0
gups_scenario low "hot:node1, ColdDemoteTicks=0"

# Watermark pressure: a second target with a higher priority, hot:node1,
# priority=10, filled on node1 itself, takes node1's free memory below the
# low watermark. Eviction must take the lowest priority's coldest pages
# first: the first target's cold pages (its old hot set, cold pages a stray
# update made hot once), not its hot set, and nothing of the second target.
# The second target's size is measured, not guessed: it leaves node1 short
# of the high watermark by half the first target's cold bytes there, so that
# evicting cold pages alone ends the pressure however much else node1 holds.
next_tick low
next_tick low
before=$(last_tick low)
cold_before=$(($(gups_field "$before" dev) - $(gups_field "$before" hot_on)))
free_before=$(node1_free)
short=$((cold_before * 4096 / 2 >> 20 << 20))
[ $short -le $((64 << 20)) ] || short=$((64 << 20))
fill=$(((free_before - high + short) >> 20))
echo "# first target before the second: $before"
echo "# node1: free $free_before bytes (pcp $(node1_pcp)), low $low, high $high;" \
	"the first target's cold bytes there $((cold_before * 4096)): second target ${fill} MiB"
check "the first target has at least 48 MiB of cold pages on node1 to evict" \
	test $((cold_before * 4096)) -ge $((48 << 20))
[ $fill -ge 32 ] || fill=32
gups_start high --size ${fill}M --hot $((fill / 2))M --cold-ppm 100 --thp off --seed 9 \
	--device node:1 --fill-node 1
cohctl policy set --pid "$high_pid" hot:node1,priority=10 >policy.out 2>&1
check "cohctl policy set --pid PID hot:node1,priority=10 exits 0" test $? -eq 0
diag policy.out
next_tick high
high_first=$(last_tick high)
echo "# second target, first tick: $high_first"
echo "# node1 free $(node1_free) bytes (pcp $(node1_pcp)) once the second target is filled"
# Until node1's free memory is back above the low watermark, or
# GUPS_MAX_TICKS placement ticks of the first target (ten times as many
# ticks of gups at most).
k=0
mt0=$(mover_ticks low)
mt=0
while [ "$(node1_free)" -lt $low ] && [ $k -lt $((GUPS_MAX_TICKS * 10)) ] && next_tick low; do
	k=$((k + 1))
	m=$(mover_ticks low)
	[ -z "$m" ] || [ -z "$mt0" ] || mt=$((m - mt0))
	echo "# pressure: free $(node1_free) pcp $(node1_pcp) $(last_tick low | cut -d' ' -f4,9)"
	[ $mt -lt "$GUPS_MAX_TICKS" ] || break
done
echo "# node1 free $(node1_free) bytes after $k ticks of gups, $mt placement ticks"
check "the pressure ended: node1's free memory is above the low watermark" \
	test "$(node1_free)" -ge $low
next_tick low
next_tick high
after=$(last_tick low)
high_after=$(last_tick high)
cold_after=$(($(gups_field "$after" dev) - $(gups_field "$after" hot_on)))
echo "# first target after: $after"
echo "# second target after: $high_after"
echo "# first target's cold pages on node1: $cold_before before, $cold_after after"
echo "eviction: ticks until above low|$k/$mt|$(gups_field "$after" frac)|$(gups_field "$after" prec)|-|-|-" \
	>>figures.txt
check "the first target's cold pages left node1 (fewer than before)" \
	test "$cold_after" -lt "$cold_before"
check "the second target (priority 10) kept its hot set on node1: frac >= $GUPS_GOAL" \
	awk -v f="$(gups_field "$high_after" frac)" -v g=$GUPS_GOAL 'BEGIN { exit !(f >= g) }'
check "the first target's hot set stayed: frac >= $GUPS_GOAL" \
	awk -v f="$(gups_field "$after" frac)" -v g=$GUPS_GOAL 'BEGIN { exit !(f >= g) }'
check "the second target kept every page it had on node1 ($(gups_field "$high_first" dev))" \
	test "$(gups_field "$high_after" dev)" -ge "$(gups_field "$high_first" dev)"
check "hot:node1: the first gups verified every word (0 errors)" gups_stop low
check "priority 10: the second gups verified every word (0 errors)" gups_stop high

figures_table
cohctl stats >stats.out 2>&1
diag stats.out
cohctl --json=short stats >stats.json 2>&1
ev=$(cohprobe json "devices.name=node1.evicted_bytes" <stats.json)
pr=$(cohprobe json "devices.name=gpu0.promoted_bytes" <stats.json)
check "cohctl stats: node1's evicted bytes ($ev) and gpu0's promoted bytes ($pr) counted" \
	test "${ev:-0}" -gt 0 -a "${pr:-0}" -gt 0
kill -TERM $daemon
wait $daemon
check "coherentd exits 0 on SIGTERM" test $? -eq 0
rmmod cohmem
check "cohmem.ko unloads (no page left in the pool)" test ! -d /sys/module/cohmem
[ $failed -eq 0 ] || diag daemon.log
exit $((failed > 0))
