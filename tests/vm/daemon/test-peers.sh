#!/bin/sh
# The kernel's own tiering as peers of coherentd's hot: policy, on the
# memory-only NUMA node 1, with the same gups scenario (gups-lib.sh): a
# 384 MiB footprint, a 64 MiB hot set that moves once, every word verified.
#
#  - coherentd, [Daemon] TickSec=1s, cohctl policy set --pid PID hot:node1;
#  - DAMOS through DAMON's sysfs interface (paddr: the migrate_hot and
#    migrate_cold actions of 6.12 work on physical address ranges): one
#    kdamond watches node 0 and moves hot regions (accessed in 4 of the 20
#    samples of an aggregation interval) to node 1 (target_nid 1), another
#    watches node 1 and moves regions idle for 5 s back to node 0;
#  - NUMA balancing in memory-tiering mode (kernel.numa_balancing=2), which
#    promotes hot pages from a lower memory tier to a higher one. In this VM
#    nodes 0 and 1 are both DRAM in the same memory tier, so the kernel has
#    nothing to promote between them: the point is skipped with that reason
#    (the tiers are read from /sys/devices/virtual/memory_tiering).
#
# Each prints its figures (ticks after a phase change until 90% of the hot
# set is on node 1, the mean fraction and precision after that) and a table
# puts them side by side. What is asserted is placement and data: coherentd
# brought 90% of the hot set there, each peer some of it (how much is its
# figure), and gups lost no word.
#
# Needs DAMON (Debian's 6.12; the 6.1 kernel has none: the test skips),
# tests/vm/run --bin coherentd --bin cohctl --bin gups --bin cohprobe and
# --file .../gups-lib.sh:/coh/share/gups-lib.sh. Prints TAP.
set -u

. "${COH_GUPS_LIB:-/coh/share/gups-lib.sh}"

damon=/sys/kernel/mm/damon/admin
if [ ! -d $damon/kdamonds ]; then
	echo "1..0 # SKIP no DAMON in kernel $(uname -r)"
	exit 0
fi
echo "1..17"

for b in coherentd cohctl gups cohprobe; do
	if ! command -v "$b" >/dev/null; then
		echo "Bail out! $b is not in the VM (tests/vm/run --bin)"
		exit 1
	fi
done

# Explicit settings: no NUMA balancing unless the scenario is NUMA
# balancing; THP only where asked (gups --thp off).
echo 0 >/proc/sys/kernel/numa_balancing
echo madvise >/sys/kernel/mm/transparent_hugepage/enabled
GUPS_ARGS="--size 384M --hot 64M --cold-ppm 100 --thp off --tick-ms 1000 --tlb-flush-ms 100"
# The same wall time for every row: the means over 6 of gups's ticks after
# each capture (DAMOS has no ticks of its own to wait for).
GUPS_SETTLE=6
: >figures.txt

# ------------------------------------------------------------ coherentd
# The precision settings of coherentd.conf(5) (cold regions leave, as DAMOS
# migrate_cold sends them back), so that the rows compare like with like.
printf '[Daemon]\nTickSec=1s\n\n[Policy]\nHotThreshold=125\nColdDemoteTicks=2\n' >coherentd.conf
coherentd_start
gups_start ours $GUPS_ARGS --device node:1
cohctl policy set --pid "$ours_pid" hot:node1 >policy.out 2>&1
check "cohctl policy set --pid PID hot:node1" test $? -eq 0
diag policy.out
gups_scenario ours "coherentd hot:node1"
cohctl policy list >policy.out 2>&1
diag policy.out
check "coherentd hot:node1: gups verified every word (0 errors)" gups_stop ours
kill -TERM $daemon
wait $daemon
check "coherentd exits 0 on SIGTERM" test $? -eq 0
unset -f mover_ticks

# ------------------------------------------------------------ DAMOS
# node_range NODE: "START END" physical bytes spanned by the node's memory blocks.
node_range() {
	bs=$((0x$(cat /sys/devices/system/memory/block_size_bytes)))
	set -- $(for f in /sys/devices/system/node/node$1/memory[0-9]*; do
		echo "${f##*memory}"
	done | sort -n | sed -n '1p;$p')
	echo $(($1 * bs)) $((${2:-$1} * bs + bs))
}
# w VALUE FILE: writes a DAMON sysfs file, says which one failed.
w() { echo "$1" 2>/dev/null >"$2" || { echo "echo $1 >$2 failed" >&2; return 1; }; }
# kdamond IDX NODE ACTION TARGET_NID NR_MIN NR_MAX AGE_MIN: a paddr context
# over NODE's range with one scheme (intervals: 5 ms samples, 100 ms
# aggregation, so nr_accesses is 0..20 and age counts 100 ms).
kdamond() {
	d=$damon/kdamonds/$1
	c=$d/contexts/0
	s=$c/schemes/0
	set -- "$@" $(node_range "$2")
	w 1 $d/contexts/nr_contexts &&
		w paddr $c/operations &&
		w 5000 $c/monitoring_attrs/intervals/sample_us &&
		w 100000 $c/monitoring_attrs/intervals/aggr_us &&
		w 1000000 $c/monitoring_attrs/intervals/update_us &&
		w 100 $c/monitoring_attrs/nr_regions/min &&
		w 2000 $c/monitoring_attrs/nr_regions/max &&
		w 1 $c/targets/nr_targets &&
		w 1 $c/targets/0/regions/nr_regions &&
		w "$9" $c/targets/0/regions/0/end &&
		w "$8" $c/targets/0/regions/0/start &&
		w 1 $c/schemes/nr_schemes &&
		w "$3" $s/action &&
		w "$4" $s/target_nid &&
		w 4096 $s/access_pattern/sz/min &&
		w 18446744073709551615 $s/access_pattern/sz/max &&
		w "$5" $s/access_pattern/nr_accesses/min &&
		w "$6" $s/access_pattern/nr_accesses/max &&
		w "$7" $s/access_pattern/age/min &&
		w 4294967295 $s/access_pattern/age/max &&
		w on $d/state
}
# applied IDX: bytes the kdamond's scheme applied its action to.
applied() {
	echo update_schemes_stats >$damon/kdamonds/$1/state
	cat $damon/kdamonds/$1/contexts/0/schemes/0/stats/sz_applied
}

# coherentd's own DAMON tracker may have left kdamonds behind: off with them.
for st in $damon/kdamonds/[0-9]*/state; do
	[ ! -e "$st" ] || echo off >"$st" 2>/dev/null
done
echo 0 >$damon/kdamonds/nr_kdamonds
echo 2 >$damon/kdamonds/nr_kdamonds
gups_start damos $GUPS_ARGS --device node:1
kdamond 0 0 migrate_hot 1 4 20 0 2>damon.err &&
	kdamond 1 1 migrate_cold 0 0 0 50 2>>damon.err
rc=$?
check "DAMON: two paddr kdamonds, migrate_hot to node 1 and migrate_cold to node 0, on" \
	test $rc -eq 0
diag damon.err
for k in 0 1; do
	echo "# kdamond $k: $(cat $damon/kdamonds/$k/contexts/0/schemes/0/action) to node" \
		"$(cat $damon/kdamonds/$k/contexts/0/schemes/0/target_nid), region" \
		"$(cat $damon/kdamonds/$k/contexts/0/targets/0/regions/0/start)-$(cat \
		$damon/kdamonds/$k/contexts/0/targets/0/regions/0/end)"
done
gups_scenario damos "DAMOS migrate_hot/migrate_cold" peer
check "DAMOS migrate_hot/migrate_cold: gups verified every word (0 errors)" gups_stop damos
hot_b=$(applied 0)
cold_b=$(applied 1)
echo "# DAMOS applied migrate_hot to $hot_b bytes, migrate_cold to $cold_b bytes"
check "DAMOS: migrate_hot was applied (sz_applied > 0)" test "${hot_b:-0}" -gt 0
for k in 0 1; do
	[ "$(cat $damon/kdamonds/$k/state)" = off ] || w off $damon/kdamonds/$k/state
done
w 0 $damon/kdamonds/nr_kdamonds

# ------------------------------------------------------------ NUMA balancing
# tier_of NODE: the memory_tierN whose nodelist holds NODE.
tier_of() {
	for t in /sys/devices/virtual/memory_tiering/memory_tier*; do
		awk -v n="$1" -F, '{
			for (i = 1; i <= NF; i++) {
				split($i, r, "-"); if (r[2] == "") r[2] = r[1]
				if (n >= r[1] && n <= r[2]) found = 1
			}
		} END { exit !found }' "$t/nodelist" && echo "${t##*/}"
	done
}
t0=$(tier_of 0)
t1=$(tier_of 1)
echo "# memory tiers: node 0 in ${t0:-none}, node 1 in ${t1:-none}"
if [ -n "$t0" ] && [ "$t0" = "$t1" ]; then
	why="not applicable: nodes 0 and 1 are both in $t0, so memory-tiering mode has no lower tier to promote from"
	echo "NUMA balancing tiering|$why" >>figures.txt
	skip "NUMA balancing (numa_balancing=2): the hot set reached $GUPS_GOAL on node 0" "$why"
	skip "NUMA balancing: the moved hot set reached $GUPS_GOAL" "$why"
	skip "NUMA balancing: the hot set moves" "$why"
	skip "NUMA balancing: gups verified every word" "$why"
else
	# Promotion goes up the tiers: the pages start on node 1 (the lower
	# tier) and the hot set is expected on node 0.
	echo 2 >/proc/sys/kernel/numa_balancing
	gups_start nb $GUPS_ARGS --device node:0 --fill-node 1
	gups_scenario nb "NUMA balancing tiering (to node 0)" peer
check "NUMA balancing tiering (to node 0): gups verified every word (0 errors)" gups_stop nb
	echo 0 >/proc/sys/kernel/numa_balancing
fi

figures_table
[ $failed -eq 0 ] || diag daemon.log
exit $((failed > 0))
