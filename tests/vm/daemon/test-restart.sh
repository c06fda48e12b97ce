#!/bin/sh
# coherentd keeps its policies and its counters over a restart, in Debian's
# kernel: --state-dir holds targets.json and stats.json (state.h).
#
#  - policies for a pid (a cohwork), a cgroup made here under /sys/fs/cgroup
#    with a cohwork moved into it, another pid (a sleep) and a Slurm job
#    whose cgroup does not exist yet;
#  - SIGTERM, start again: cohctl policy list --json shows the same targets
#    with the same policy, owner and time set, and they apply again (the
#    cgroup's process is found, the bound workload stays on node1);
#  - the same after SIGKILL (what was saved last is what comes back);
#  - GetStats continues: gpu0's counters, moved only by Migrate requests
#    here, are exactly what they were; node1's (the placement loop's) never
#    go back; after SIGKILL they are what stats.json held when it was killed;
#  - a target whose process exited while the daemon was down is dropped (and
#    targets.json rewritten without it);
#  - a corrupt targets.json (and stats.json) is set aside as
#    NAME.corrupt-<usec>, byte for byte, and the daemon starts without it;
#  - the cohwork workloads end with "0 errors" and exit 0.
#
# No assertion depends on elapsed time: waits are for daemon ticks and end
# in the per-test timeout.
#
# Needs tests/vm/run --module cohmem.ko --bin coherentd --bin cohctl --bin
# cohwork --bin cohprobe. Prints TAP.
set -u

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() { # check DESCRIPTION COMMAND...
	d=$1; shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}
diag() { sed 's/^/# /' "$@"; }
is_eq() {
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1"
		echo "#   got '$2', expected '$3'"
	fi
}
is_ge() {
	if [ -n "$2" ] && [ -n "$3" ] && [ "$2" -ge "$3" ] 2>/dev/null; then
		ok "$1"
	else
		not_ok "$1"
		echo "#   got '$2', expected at least '$3'"
	fi
}

echo "1..74"

for b in coherentd cohctl cohwork cohprobe; do
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
sock=/run/coherentd/io.coherentd
state=$PWD/state
cg=/sys/fs/cgroup/coh-restart

jget() { cohprobe json "$2" <"$1" 2>/dev/null; }

# ------------------------------------------------------------ the daemon
daemon=
starts=0
# start: a new coherentd on the same state directory, answering cohctl.
start() {
	starts=$((starts + 1))
	echo "--- start $starts" >>daemon.log
	coherentd --config="$PWD/coherentd.conf" --socket="$sock" --state-dir="$state" \
		>>daemon.log 2>&1 &
	daemon=$!
	while kill -0 "$daemon" 2>/dev/null; do
		cohctl status >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
# stop SIGNAL: the daemon ends; its exit status in $stopped.
stop() {
	kill "-$1" "$daemon"
	wait "$daemon"
	stopped=$?
}
# policies FILE: each policy as "target policy owner set_realtime_usec", sorted.
policies() {
	cohctl --json=short policy list >"$1" 2>&1 || return 1
	count=$(jget "$1" policies.#)
	i=0
	while [ "$i" -lt "${count:-0}" ]; do
		echo "$(jget "$1" policies.$i.target) $(jget "$1" policies.$i.policy)" \
			"$(jget "$1" policies.$i.owner) $(jget "$1" policies.$i.set_realtime_usec)"
		i=$((i + 1))
	done | sort
}
# ticks TARGET: ticks the daemon planned TARGET in (empty when not listed).
ticks() {
	cohctl --json=short policy list >ticks.json 2>/dev/null
	jget ticks.json "policies.target=$1.ticks"
}
# wait_ticks TARGET N: TARGET was planned in N more ticks than now (or the daemon died).
wait_ticks() {
	t0=$(ticks "$1")
	while kill -0 "$daemon" 2>/dev/null; do
		t=$(ticks "$1")
		[ -n "$t" ] && [ -n "$t0" ] && [ "$t" -ge $((t0 + $2)) ] && return 0
		sleep 0.2
	done
	return 1
}
# stat_of FILE DEVICE FIELD: a counter from GetStats (cohctl stats) or stats.json.
stat_of() {
	v=$(jget "$1" "devices.name=$2.$3")
	echo "${v:-0}"
}
stats_now() { cohctl --json=short stats >"$1" 2>&1; }

# ------------------------------------------------------------ set-up
[ ! -d /sys/module/cohmem ] || rmmod cohmem 2>/dev/null
insmod "$COH_MODULE_DIR/cohmem.ko" "pools=gpu0:$COH_POOL_SIZE@$COH_POOL_START:$COH_POOL_NID" \
	>insmod.out 2>&1
check "cohmem.ko loads with pool gpu0" test -d /sys/module/cohmem
diag insmod.out

mkdir -p /run/coherentd
printf '[Daemon]\nTickSec=1s\n' >coherentd.conf
check "coherentd starts with --state-dir" start

# w0: moved by hand only (gpu0's counters); w1: a pid target; w2: in a cgroup.
cohwork --size 8 --pause-ms 20 --range-file w0.range --status w0.status >w0.out 2>&1 &
w0=$!
cohwork --size 8 --pause-ms 20 --status w1.status >w1.out 2>&1 &
w1=$!
mkdir -p "$cg/app"
sh -c "echo \$\$ >'$cg/app/cgroup.procs' && exec cohwork --size 4 --pause-ms 20 \
	--status w2.status" >w2.out 2>&1 &
w2=$!
sleep 1000 &
w3=$!
# Each has written its status file once it verified its buffer a first time.
for w in 0 1 2; do
	eval pid=\$w$w
	while [ ! -s "w$w.status" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
done
check "the cgroup workload runs in $cg/app" grep -qx "$w2" "$cg/app/cgroup.procs"

# gpu0 counters that only Migrate requests change: there and back.
cohctl migrate --pid=$w0 --all --to=gpu0 >m1.out 2>&1
check "migrate w0 to gpu0" test $? -eq 0
cohctl migrate --pid=$w0 --all --to=system >m2.out 2>&1
check "migrate w0 back to system RAM" test $? -eq 0
stats_now stats0.json
gpu0_in=$(stat_of stats0.json gpu0 bytes_in)
gpu0_out=$(stat_of stats0.json gpu0 bytes_out)
gpu0_mig=$(stat_of stats0.json gpu0 migrations)
is_ge "gpu0 bytes_in counted" "$gpu0_in" $((8 << 20))
is_eq "gpu0 migrations counted" "$gpu0_mig" 2

cohctl policy set --pid=$w1 bind:node1 --quota=4M --priority=3 >p1.out 2>&1
check "policy set --pid (bind:node1, quota, priority)" test $? -eq 0
cohctl policy set --cgroup=/coh-restart system >p2.out 2>&1
check "policy set --cgroup /coh-restart" test $? -eq 0
cohctl policy set --pid=$w3 bind:node1 >p3.out 2>&1
check "policy set --pid of a sleep" test $? -eq 0
cohctl policy set --job=4242 bind:node1,quota=1G >p4.out 2>&1
check "policy set --job before the job's cgroup exists (root)" test $? -eq 0
diag p1.out p2.out p3.out p4.out

check "the daemon ticks the pid target" wait_ticks "pid:$w1" 3
policies list0.json >before.txt
is_eq "four policies listed" "$(wc -l <before.txt)" 4
diag before.txt
check "the state directory is made, mode 0700" \
	test "$(stat -c %a "$state" 2>/dev/null)" = 700
check "targets.json is written, mode 0600" \
	test "$(stat -c %a "$state/targets.json" 2>/dev/null)" = 600
is_eq "the cgroup target covers its workload" \
	"$(jget list0.json policies.target=cgroup:/coh-restart.n_pids)" 1
n1=$(jget list0.json "policies.target=pid:$w1.device_bytes")
is_ge "the bound workload has memory on node1" "${n1:-0}" 1
is_ge "within its quota of 4M" $((4 << 20)) "${n1:-0}"
stats_now stats1.json
node1_in=$(stat_of stats1.json node1 bytes_in)
is_ge "node1 bytes_in counts the placement's moves" "$node1_in" 1
echo "# w1: $n1 bytes on node1 by the policy list; node1 bytes_in $node1_in"

# ------------------------------------------------------------ SIGTERM
stop TERM
is_eq "SIGTERM: coherentd exits 0" "$stopped" 0
check "stats.json is written at exit" test -s "$state/stats.json"
check "SIGTERM: coherentd starts again" start
policies list1.json >after1.txt
check "after SIGTERM: the same policies, owners and times" cmp -s before.txt after1.txt
diag after1.txt
check "the log says the policies were restored" grep -q "Restored 4 polic" daemon.log
stats_now stats2.json
is_eq "after SIGTERM: gpu0 bytes_in continues" "$(stat_of stats2.json gpu0 bytes_in)" "$gpu0_in"
is_eq "after SIGTERM: gpu0 bytes_out continues" "$(stat_of stats2.json gpu0 bytes_out)" "$gpu0_out"
is_eq "after SIGTERM: gpu0 migrations continue" "$(stat_of stats2.json gpu0 migrations)" "$gpu0_mig"
is_ge "after SIGTERM: node1 bytes_in is not reset" "$(stat_of stats2.json node1 bytes_in)" "$node1_in"
check "after SIGTERM: the pid target is planned again" wait_ticks "pid:$w1" 2
policies list2.json >/dev/null
is_eq "after SIGTERM: the cgroup target finds its workload" \
	"$(jget list2.json policies.target=cgroup:/coh-restart.n_pids)" 1
is_ge "after SIGTERM: the bound workload is still on node1" \
	"$(jget list2.json "policies.target=pid:$w1.device_bytes")" 1

# ------------------------------------------------------------ SIGKILL
# A Migrate request, ticks, then a crash.
cohctl migrate --pid=$w0 --all --to=gpu0 >m3.out 2>&1
check "migrate w0 to gpu0 again" test $? -eq 0
check "the daemon ticks after that migration" wait_ticks "pid:$w1" 2
stop KILL
is_eq "SIGKILL: coherentd is killed" "$stopped" 137
cp "$state/stats.json" stats-at-kill.json
check "SIGKILL: coherentd starts again (stale socket)" start
policies list3.json >after2.txt
check "after SIGKILL: the same policies, owners and times" cmp -s before.txt after2.txt
diag after2.txt
stats_now stats4.json
# What was saved last comes back (coherentd(8): after a tick that moved
# something, and at exit; a Migrate request in between is counted from then on).
for f in bytes_in bytes_out migrations failures; do
	is_eq "after SIGKILL: gpu0 $f is what stats.json held" \
		"$(stat_of stats4.json gpu0 $f)" "$(stat_of stats-at-kill.json gpu0 $f)"
done
is_ge "after SIGKILL: gpu0 migrations are not reset" "$(stat_of stats4.json gpu0 migrations)" \
	"$gpu0_mig"
is_ge "after SIGKILL: node1 bytes_in is what stats.json held, or more" \
	"$(stat_of stats4.json node1 bytes_in)" "$(stat_of stats-at-kill.json node1 bytes_in)"
is_ge "after SIGKILL: node1 bytes_in is not reset" \
	"$(stat_of stats4.json node1 bytes_in)" "$node1_in"

# A migration after the restarts adds to the counters it continued.
cohctl migrate --pid=$w0 --all --to=system >m4.out 2>&1
check "migrate w0 back after the restarts" test $? -eq 0
stats_now stats5.json
is_eq "gpu0 migrations go on from where they were" "$(stat_of stats5.json gpu0 migrations)" \
	$(($(stat_of stats4.json gpu0 migrations) + 1))
is_ge "gpu0 bytes_out goes on from where it was" "$(stat_of stats5.json gpu0 bytes_out)" \
	$((gpu0_out + (8 << 20)))

# ------------------------------------------------------------ gone while down
stop TERM
is_eq "SIGTERM again: exit 0" "$stopped" 0
kill $w3
wait $w3 2>/dev/null
check "the sleep target has exited" sh -c "! kill -0 $w3 2>/dev/null"
check "its policy is still in targets.json" grep -q "\"pid\": $w3," "$state/targets.json"
check "coherentd starts with a target that is gone" start
check "the daemon ticks after the restart" wait_ticks "pid:$w1" 2
policies list4.json >after3.txt
grep -v "^pid:$w3 " before.txt >expected3.txt
check "the exited process's target is dropped, the others stay" cmp -s expected3.txt after3.txt
diag after3.txt
check "targets.json no longer has it" sh -c "! grep -q '\"pid\": $w3,' '$state/targets.json'"
is_eq "targets.json keeps the other three" "$(grep -c '"kind"' "$state/targets.json")" 3

# ------------------------------------------------------------ corrupt files
stop TERM
is_eq "SIGTERM before corrupting: exit 0" "$stopped" 0
printf '{ "version": 1, "targets": [ { "kind": "pid", "pi' >"$state/targets.json"
printf 'not json at all\n' >"$state/stats.json"
check "coherentd starts with a corrupt targets.json and stats.json" start
aside=$(ls "$state" | grep '^targets\.json\.corrupt-[0-9][0-9]*$' | head -1)
check "targets.json is set aside as targets.json.corrupt-<usec>" test -n "$aside"
check "the file set aside is the corrupt one, byte for byte" \
	sh -c "printf '{ \"version\": 1, \"targets\": [ { \"kind\": \"pid\", \"pi' | cmp -s - '$state/$aside'"
check "stats.json is set aside as well" sh -c "ls '$state' | grep -q '^stats\.json\.corrupt-'"
check "the log says why" grep -q "corrupt" daemon.log
grep -i "corrupt\|set aside" daemon.log | diag
policies list5.json >after4.txt
is_eq "no policies after a corrupt targets.json" "$(wc -l <after4.txt)" 0
stats_now stats6.json
is_eq "counters start again from 0 after a corrupt stats.json" \
	"$(stat_of stats6.json gpu0 migrations)" 0
cohctl policy set --pid=$w1 system >p5.out 2>&1
check "a policy can be set again" test $? -eq 0
check "targets.json is valid again" grep -q "\"pid\": $w1" "$state/targets.json"
check "the daemon still answers" cohctl status

# ------------------------------------------------------------ the end
stop TERM
is_eq "coherentd exits 0 at the end" "$stopped" 0
for w in 0 1 2; do
	eval pid=\$w$w
	kill -TERM "$pid"
	wait "$pid"
	is_eq "workload w$w exits 0" $? 0
	check "workload w$w: 0 errors through the restarts" grep -q ", 0 errors" "w$w.out"
done
rmdir "$cg/app" "$cg" 2>/dev/null
check "the test cgroup is removed" test ! -d "$cg"
rmmod cohmem 2>/dev/null
check "no warnings in the daemon log" sh -c "! grep -q 'Assertion\|BUG' daemon.log"

if [ "$failed" -gt 0 ]; then
	echo "# daemon.log:"
	diag daemon.log
	echo "# targets.json:"
	diag "$state/targets.json" 2>/dev/null
fi
exit 0
