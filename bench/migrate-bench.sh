#!/bin/sh
# migrate-bench: throughput of `cohctl migrate` against the kernel's own
# movers, same pages, same boot. See bench/README.md.
#
# One idle cohwork buffer (MIGRATE_BENCH_MB MiB, default 128, 4 KiB pages) is
# moved there and back by each method, MIGRATE_BENCH_ROUNDS rounds (default
# 7), the order of the methods rotated every round:
#
#   cohctl       cohctl migrate --pid P --range BUF --to node1, then --to system
#   cohctl_all   cohctl migrate --pid P --all --to node1, then --to system
#   move_pages   cohprobe move P BUF 1, then 0 (move_pages(2), all pages in
#                one call, from another process, as the daemon does)
#   migratepages numactl's migratepages P 0 1, then P 1 0
#   cohctl_gpu0  cohctl migrate --pid P --range BUF --to gpu0, then --to system
#
# Every step is timed end to end around the command (cohprobe time: fork,
# exec, the move, exit), so every method pays for one process start; the
# time move_pages(2) itself took and the elapsed_usec coherentd reports are
# kept too. Throughput = pages moved there and back / median round time; the
# "best-round" ratios use each method's fastest round instead (on a shared
# host noise only ever adds time).
#
# TAP: the points say that every step moved every page and that the data
# survived, never how fast; figures and ratios are diagnostics
# ("# ratio cohctl_migrate/move_pages: 0.97").
#
# Needs, with tests/vm/run: --module cohmem.ko --bin coherentd --bin cohctl
# --bin cohwork --bin cohprobe --bin /usr/bin/migratepages.
set -u

mb=${MIGRATE_BENCH_MB:-128}
rounds=${MIGRATE_BENCH_ROUNDS:-7}
methods="cohctl cohctl_all move_pages migratepages cohctl_gpu0"

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() {
	d=$1; shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}

echo "1..10"
for b in coherentd cohctl cohwork cohprobe migratepages; do
	if ! command -v "$b" >/dev/null; then
		echo "Bail out! $b is not in the VM (tests/vm/run --bin)"
		exit 1
	fi
done

sock=/run/coherentd/io.coherentd
[ ! -d /sys/module/cohmem ] || rmmod cohmem 2>/dev/null
insmod "$COH_MODULE_DIR/cohmem.ko" "pools=gpu0:$COH_POOL_SIZE@$COH_POOL_START:$COH_POOL_NID"
check "cohmem.ko loads with pool gpu0" test -d /sys/module/cohmem
mkdir -p /run/coherentd
: >coherentd.conf
coherentd --config="$PWD/coherentd.conf" --socket="$sock" >daemon.log 2>&1 &
daemon=$!
i=0
while [ ! -S "$sock" ] && [ $i -lt 300 ] && kill -0 $daemon 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
cohctl status >/dev/null 2>&1
check "coherentd answers" test $? -eq 0

cohwork --size "${mb}M" --idle --seed 9 --range-file work.range --status work.status \
	>work.out 2>&1 &
work=$!
while [ ! -s work.range ] && kill -0 $work 2>/dev/null; do sleep 0.05; done
range=$(head -n 1 work.range)
npages=$(((${range#*-} - ${range%-*}) / 4096))
check "cohwork holds $npages pages on node0" \
	test "$(cohprobe nodes $work "$range" | awk '$1 == "node0" { print $2 }')" = $npages
echo "# $npages pages ($mb MiB), $rounds rounds, kernel $(uname -r), $(nproc) CPUs"

# placed NODE|pool: every page of the buffer where it should be.
placed() {
	if [ "$1" = pool ]; then
		[ "$(cohprobe pfns $work "$range" | awk '$1 == "in" { print $2 }')" = $npages ]
	else
		[ "$(cohprobe nodes $work "$range" | awk -v k="node$1" '$1 == k { print $2 }')" = $npages ]
	fi
}

# step METHOD DIRECTION: one timed move; appends "METHOD DIR WALL INNER" to
# times and returns non-zero unless the move succeeded and every page is where
# it should be.
step() {
	m=$1 dir=$2
	case $m-$dir in
	cohctl-there) set -- cohctl --json=short migrate --pid $work --range "$range" --to node1 ;;
	cohctl-back) set -- cohctl --json=short migrate --pid $work --range "$range" --to system ;;
	cohctl_all-there) set -- cohctl --json=short migrate --pid $work --all --to node1 ;;
	cohctl_all-back) set -- cohctl --json=short migrate --pid $work --all --to system ;;
	move_pages-there) set -- cohprobe move $work "$range" 1 ;;
	move_pages-back) set -- cohprobe move $work "$range" 0 ;;
	migratepages-there) set -- migratepages $work 0 1 ;;
	migratepages-back) set -- migratepages $work 1 0 ;;
	cohctl_gpu0-there) set -- cohctl --json=short migrate --pid $work --range "$range" --to gpu0 ;;
	cohctl_gpu0-back) set -- cohctl --json=short migrate --pid $work --range "$range" --to system ;;
	esac
	cohprobe time wall.out "$@" >step.out 2>&1
	rc=$?
	wall=$(cat wall.out 2>/dev/null)
	# The inner time: move_pages(2) calls, or what coherentd measured.
	case $m in
	move_pages) inner=$(sed -n 's/.* in \([0-9.]*\) s$/\1/p' step.out) ;;
	cohctl*) inner=$(cohprobe json elapsed_usec <step.out | awk '{ printf "%.6f", $1 / 1e6 }') ;;
	*) inner=$wall ;;
	esac
	echo "$m $dir ${wall:-0} ${inner:-0}" >>times
	if [ $rc -ne 0 ]; then
		echo "# $m $dir: exit status $rc"
		sed 's/^/#   /' step.out
		return 1
	fi
	case $m-$dir in
	cohctl_gpu0-there) placed pool ;;
	*-there) placed 1 ;;
	*) placed 0 ;;
	esac || {
		echo "# $m $dir: not every page moved"
		sed 's/^/#   /' step.out
		return 1
	}
}

: >times
bad=""
r=0
while [ $r -lt "$rounds" ]; do
	# Rotate the order: round r starts with method r mod 5.
	set -- $methods
	k=0
	while [ $k -lt $((r % 5)) ]; do
		first=$1
		shift
		set -- "$@" "$first"
		k=$((k + 1))
	done
	for m in "$@"; do
		step $m there && step $m back || bad="$bad $m"
	done
	r=$((r + 1))
done
for m in $methods; do
	case " $bad " in
	*" $m "*) not_ok "$m: every round moved every page there and back" ;;
	*) ok "$m: every round moved every page there and back" ;;
	esac
done

kill -USR1 $work
kill -TERM $work
wait $work
rc=$?
sed 's/^/# /' work.out
check "the data survived every move (cohwork exits 0)" test $rc -eq 0

# Medians per method of the round times (there + back), wall and inner.
awk -v pages=$npages -v rounds=$rounds '
function best(list,    a, k, i, m) {
	k = split(list, a, " ")
	m = a[1]
	for (i = 2; i <= k; i++)
		if (a[i] + 0 < m + 0)
			m = a[i]
	return m
}
function median(list,    a, k, i, j, t) {
	k = split(list, a, " ")
	for (i = 1; i <= k; i++)
		for (j = i + 1; j <= k; j++)
			if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
{
	# Lines come in there/back pairs per method and round.
	if ($2 == "there") { w[$1] = $3; in_[$1] = $4; next }
	W[$1] = W[$1] " " (w[$1] + $3)
	I[$1] = I[$1] " " (in_[$1] + $4)
}
END {
	for (m in W) {
		mw[m] = median(W[m])
		mi[m] = median(I[m])
		bw[m] = best(W[m])
		printf "# %s: %.0f pages/s end to end (median %.3f s there and back, best %.3f s), inner %.0f pages/s\n",
		       m, 2 * pages / mw[m], mw[m], bw[m], 2 * pages / mi[m]
	}
	printf "# ratio cohctl_migrate/move_pages: %.2f\n", mw["move_pages"] / mw["cohctl"]
	printf "# ratio cohctl_migrate/migratepages: %.2f\n", mw["migratepages"] / mw["cohctl_all"]
	printf "# ratio cohctl_migrate_range/migratepages: %.2f\n", mw["migratepages"] / mw["cohctl"]
	printf "# ratio cohctl_gpu0/move_pages: %.2f\n", mw["move_pages"] / mw["cohctl_gpu0"]
	printf "# ratio coherentd_elapsed/move_pages_syscall: %.2f\n", mi["move_pages"] / mi["cohctl"]
	printf "# ratio cohctl_migrate/move_pages_syscall: %.2f\n", mi["move_pages"] / mw["cohctl"]
	printf "# best-round ratio cohctl_migrate/move_pages: %.2f\n", bw["move_pages"] / bw["cohctl"]
	printf "# best-round ratio cohctl_migrate/migratepages: %.2f\n", bw["migratepages"] / bw["cohctl_all"]
	printf "# best-round ratio cohctl_gpu0/move_pages: %.2f\n", bw["move_pages"] / bw["cohctl_gpu0"]
}' times >figures
cat figures
sed 's/^/# step: /' times
g1=$(sed -n 's/^# ratio cohctl_migrate\/move_pages: //p' figures)
g2=$(sed -n 's/^# ratio cohctl_migrate\/migratepages: //p' figures)
echo "# goal cohctl_migrate/move_pages >= 0.95: $(awk -v r="$g1" 'BEGIN { print (r >= 0.95 ? "met" : "NOT met") }')"
echo "# goal cohctl_migrate/migratepages >= 1.0: $(awk -v r="$g2" 'BEGIN { print (r >= 1.0 ? "met" : "NOT met") }')"

kill -TERM $daemon
wait $daemon
check "coherentd exits 0" test $? -eq 0
rmmod cohmem
[ $failed -eq 0 ] || sed 's/^/# coherentd: /' daemon.log
exit $((failed > 0))
