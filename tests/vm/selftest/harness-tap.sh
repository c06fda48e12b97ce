#!/bin/sh
# harness-tap.sh - in-guest checks that the VM is the machine the tests expect.
# Runs inside tests/vm/run; prints TAP.

n=0
failures=0

check() {
	# check DESCRIPTION COMMAND...
	desc=$1
	shift
	n=$((n + 1))
	if "$@"; then
		echo "ok $n - $desc"
	else
		echo "not ok $n - $desc"
		failures=$((failures + 1))
	fi
}

node_count() {
	set -- /sys/devices/system/node/node[0-9]*
	[ "$#" = 2 ]
}

node0_has_cpus() {
	[ -n "$(cat /sys/devices/system/node/node0/cpulist)" ]
}

node1_memory_only() {
	[ -d /sys/devices/system/node/node1 ] || return 1
	cpus=$(cat /sys/devices/system/node/node1/cpulist)
	[ -z "$cpus" ] || { echo "# node1 cpulist: '$cpus'"; return 1; }
	# ... and it has memory: about 1 GiB minus the 256 MiB reservation.
	kb=$(sed -n 's/^Node 1 MemTotal: *\([0-9]*\) kB/\1/p' \
		/sys/devices/system/node/node1/meminfo)
	echo "# node1 MemTotal: ${kb:-?} kB"
	[ -n "$kb" ] && [ "$kb" -gt 524288 ]
}

pool_reserved() {
	# memmap=256M$0x60000000 -> exactly 60000000-6fffffff : Reserved
	grep -q '^60000000-6fffffff : Reserved$' /proc/iomem ||
		{ grep -i reserved /proc/iomem | sed 's/^/# /'; return 1; }
}

pool_not_ram() {
	! awk -F' : ' '$2 == "System RAM" {
		split($1, r, "-")
		s = r[1]; e = r[2]
		# the range overlaps 0x60000000-0x6fffffff when s <= 6fffffff
		# and e >= 60000000 (same-width hex compares as strings).
		while (length(s) < 16) s = "0" s
		while (length(e) < 16) e = "0" e
		if (s <= "000000006fffffff" && e >= "0000000060000000") found = 1
	} END { exit !found }' /proc/iomem
}

pool_env() {
	[ "$COH_POOL_START" = 0x60000000 ] && [ "$COH_POOL_SIZE" = 256M ] &&
		[ "$COH_POOL_NID" = 1 ] && [ -d "$COH_MODULE_DIR" ]
}

cmdline_dollar() {
	# shellcheck disable=SC2016 # a literal '$'
	grep -q 'memmap=256M\$0x60000000' /proc/cmdline
}

numa_balancing_off() {
	[ "$(cat /proc/sys/kernel/numa_balancing)" = 0 ]
}

thp_always() {
	grep -q '\[always\]' /sys/kernel/mm/transparent_hugepage/enabled
}

mounted() {
	grep -q " $1 $2 " /proc/mounts
}

nobody_works() {
	[ "$(su -s /bin/sh nobody -c 'id -u')" = 65534 ] || return 1
	# ... and nobody really is unprivileged.
	! su -s /bin/sh nobody -c 'echo 1 >/proc/sys/kernel/numa_balancing' 2>/dev/null
}

echo "1..12"
check "two NUMA nodes" node_count
check "node 0 has the CPUs" node0_has_cpus
check "node 1 is memory-only" node1_memory_only
check "memmap= reserved 256M at 0x60000000" pool_reserved
check "the reserved range is not System RAM" pool_not_ram
check "the '\$' of memmap= reached the kernel" cmdline_dollar
check "COH_POOL_* and COH_MODULE_DIR are set" pool_env
check "numa_balancing is 0" numa_balancing_off
check "THP enabled=always" thp_always
check "debugfs is mounted" mounted /sys/kernel/debug debugfs
check "/tmp is a tmpfs" mounted /tmp tmpfs
check "su to nobody gives an unprivileged uid 65534" nobody_works
[ "$failures" = 0 ]
