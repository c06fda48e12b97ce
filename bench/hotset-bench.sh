#!/bin/sh
# hotset-bench: hot-set capture figures of coherentd's hot: policies and of
# the kernel's own tiering, from the VM tests that measure them
# (tests/vm/daemon/test-policy.sh and test-peers.sh, gups.c). See
# bench/README.md.
#
# Run from a build directory (after make, make module, and for 6.12 the
# module built by make check-vm-6.12):
#
#   $SRCDIR/bench/hotset-bench.sh [6.1|6.12]...      (default: both)
#
# Boots each kernel once with both tests, keeps the logs in
# hotset-bench-logs/KERNEL/ and prints every figure table the tests wrote.
# Exits non-zero when a test failed (the figures are printed all the same).
set -u

src=$(cd "$(dirname "$0")/.." && pwd)
[ $# -gt 0 ] || set -- 6.1 6.12
rc=0
for k in "$@"; do
	case $k in
	6.1) module=kernel/cohmem/cohmem.ko ;;
	6.12) module=kernel-6.12/cohmem/cohmem.ko ;;
	*)
		echo "hotset-bench: unknown kernel '$k' (6.1 or 6.12)" >&2
		exit 2
		;;
	esac
	for f in "$module" coherentd cohctl tests/vm/workload/gups tests/vm/workload/cohprobe; do
		if [ ! -e "$f" ]; then
			echo "hotset-bench: $f is missing: run make (and make module / check-vm-6.12)" >&2
			exit 2
		fi
	done
	logs=hotset-bench-logs/$k
	rm -rf "$logs"
	"$src/tests/vm/run" --kernel "$k" --module "$module" --bin coherentd --bin cohctl \
		--bin tests/vm/workload/gups --bin tests/vm/workload/cohprobe \
		--file "$src/tests/vm/daemon/gups-lib.sh:/coh/share/gups-lib.sh" \
		--test-timeout 900 --timeout 2000 --log-dir "$logs" --keep-log \
		"$src/tests/vm/daemon/test-policy.sh" "$src/tests/vm/daemon/test-peers.sh" || rc=1
	echo "== kernel $k (full output in $logs/results.log)"
	# The tables and the per-scenario lines of both tests.
	sed -n 's/^| \(# \(hot-set capture\|scenario\|coherentd\|hot:\|DAMOS\|NUMA\|second\|eviction\|memory tiers\|node1\|first target\).*\)/\1/p' \
		"$logs/results.log"
done
exit $rc
