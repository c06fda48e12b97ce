#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The SPANK plugin and the prolog/epilog scripts against a real Slurm: this
# test starts munged, slurmctld and slurmd (Debian's 22.05) on this machine with
# a one-node configuration of its own (temporary directory, free ports, its own
# munge key and socket), and the real coherentd from the build tree on a
# temporary socket on the host's own procfs and sysfs (--root /, node 0
# configured as device dev0), so it finds the jobs' processes.
#
#   srun/sbatch/salloc --coherent=POLICY: the job's policy is in `cohctl policy
#   list` while the job runs and gone once its epilog has run; a bad policy fails
#   the submission with the plugin's message; a job without --coherent sets none;
#   a policy coherentd refuses (unknown device) is logged and the job still runs,
#   or does not start with the plugin's strict argument; an unprivileged user's
#   (nobody's) job gets its policy too, since the plugin applies it as root.
#   Then without SPANK on the node: Prolog=/Epilog= are slurm/prolog and
#   slurm/epilog, and the policy comes from the job's comment (sbatch
#   --comment=coherent=POLICY) or, with the plugin on the login side only, from
#   sbatch --coherent through SPANK_COHERENT.
#
# Slurm tracks the jobs with proctrack/linuxproc: its cgroup/v2 plugin refuses
# hosts in the hybrid cgroup mode (as this test's machines are), so there is no
# job cgroup and coherentd finds a job's processes as the descendants of its
# slurmstepd processes (checked for srun and sbatch jobs); the cgroup layout is
# tests/unit/test-targets' business, on cgroup fixtures.
#
# Jobs wait for a file the test creates, never for a time. Prints TAP. Skips
# only when Slurm is not there (headers or packages: tools/install-deps installs
# them) or when not root (slurmd must be). Needs python3.
#
# Run by `make check`, or by hand as for tests/integration/test-daemon.sh.

set -u

: "${top_srcdir:?run through make check}"
: "${top_builddir:?run through make check}"
: "${FIXTURES:?run through make check}"

. "$top_srcdir/tests/integration/lib.sh"
PLUGIN="$top_builddir/slurm/.libs/coherent.so"
DEV=dev0  # node 0 of this host, configured as a device below

skip_all() {
	echo "1..0 # SKIP $*"
	exit 0
}

if ! grep -q '^#define HAVE_SLURM_SPANK_H 1' "$top_builddir/config.h"; then
	skip_all "slurm headers not installed (Debian: libslurm-dev; tools/install-deps)"
fi
for b in munged mungekey slurmctld slurmd srun sbatch salloc squeue sinfo scontrol; do
	if ! command -v "$b" >/dev/null 2>&1; then
		skip_all "Slurm packages not installed: no $b (tools/install-deps installs them)"
	fi
done
if [ "$(id -u)" -ne 0 ]; then
	skip_all "slurmd needs root"
fi
need_built "$COHERENTD" "$COHCTL" "$PLUGIN"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/coh-slurm.XXXXXX") || exit 1
# munged insists that everyone may reach its socket's directory.
chmod 755 "$tmp"
# What the jobs write, an unprivileged user's job too.
jobs="$tmp/jobs"
mkdir -m 1777 "$jobs"
SOCK="$tmp/coherentd.sock"
DPID=''
MUNGE_PID=''
CTLD_PID=''
SLURMD_PID=''
n=0
failures=0

# Slurm's clients read this; nothing from a surrounding job may leak in.
for v in $(env | sed -n 's/^\(SLURM_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export SLURM_CONF="$tmp/slurm.conf"

stop_pid() {
	if [ -n "$1" ]; then
		kill -TERM "$1" 2>/dev/null
		wait "$1" 2>/dev/null
	fi
}

cleanup() {
	if [ -n "$CTLD_PID" ]; then
		scancel --full --signal=KILL --partition=debug >/dev/null 2>&1
		# Let slurmd reap the steps before it goes (bounded: a stuck one stays behind).
		i=0
		while [ -n "$(squeue -h -o %i 2>/dev/null)" ] && [ "$i" -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
	fi
	stop_pid "$SLURMD_PID"
	stop_pid "$CTLD_PID"
	stop_pid "$MUNGE_PID"
	stop_pid "$DPID"
	if [ "$failures" -gt 0 ] || [ -n "${KEEP_TMP:-}" ]; then
		for f in slurmctld.log slurmd.log coherentd.log; do
			echo "# ---- $f (last 40 lines)"
			tail -n 40 "$tmp/$f" 2>/dev/null | sed 's/^/# /'
		done
	fi
	if [ -z "${KEEP_TMP:-}" ]; then
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# wait_for DESCRIPTION COMMAND...: until COMMAND succeeds. The bound (120 s) only
# stops a hang; no result depends on how fast this happens.
wait_for() {
	desc=$1
	shift
	i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt 1200 ]; then
			ok "$desc" 1
			return 1
		fi
		sleep 0.1
	done
	return 0
}

# free_ports N: N TCP ports on 127.0.0.1 that nothing listens on now.
free_ports() {
	python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# plugstack LINE: plugstack.conf becomes LINE, atomically (slurmd and every
# slurmstepd read it anew, an epilog still running included).
plugstack() {
	echo "$1" >"$tmp/plugstack.conf.new" && mv "$tmp/plugstack.conf.new" "$tmp/plugstack.conf"
}

# pids_of JOB: how many processes coherentd found for job JOB ("-" when not listed).
pids_of() {
	cohctl policy list --json >"$tmp/list.json" 2>"$tmp/list.err" || {
		echo "cohctl-failed"
		return
	}
	python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
p = [e["n_pids"] for e in j["policies"] if e.get("job") == int(sys.argv[2])]
print(p[0] if len(p) == 1 else "-")' "$tmp/list.json" "$1"
}

# job_has_pids JOB: coherentd has found at least one process of JOB.
job_has_pids() {
	npids=$(pids_of "$1")
	[ "$npids" != "-" ] && [ "$npids" != "cohctl-failed" ] && [ "$npids" -ge 1 ]
}

# policy_of JOB: the policy coherentd lists for job JOB, "-" when none.
policy_of() {
	cohctl policy list --json >"$tmp/list.json" 2>"$tmp/list.err" || {
		echo "cohctl-failed"
		return
	}
	python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
p = [e["policy"] for e in j["policies"] if e.get("job") == int(sys.argv[2])]
print(p[0] if len(p) == 1 else ("-" if not p else "several: %s" % p))' "$tmp/list.json" "$1"
}

# job_gone JOB: Slurm is done with JOB (not pending, running, completing...).
job_gone() {
	[ -z "$(squeue -h -j "$1" -t PD,CF,R,S,CG -o %i 2>/dev/null)" ]
}

# expect_fail DESCRIPTION COMMAND...: passes when COMMAND exits non-zero (Slurm's
# clients exit 1 or 255 for a bad option, depending on where it is seen).
expect_fail() {
	desc=$1
	shift
	if "$@" >"$tmp/out" 2>"$tmp/err"; then
		cat "$tmp/out" "$tmp/err" >"$tmp/detail"
		ok "$desc" 1 "$tmp/detail"
		return 1
	fi
	ok "$desc" 0
}

# A job body: record the job id and environment, then wait for the test.
# $1: a name for the files.
job_body() {
	echo "echo \$SLURM_JOB_ID >$jobs/$1.id.tmp; env >$jobs/$1.env;" \
		"mv $jobs/$1.id.tmp $jobs/$1.id;" \
		"while [ ! -e $jobs/$1.release ]; do sleep 0.1; done"
}

# run_job NAME (srun|sbatch|salloc) POLICY-OPTION...: starts a job running
# job_body NAME and waits until it runs; sets JOB.
run_job() {
	name=$1
	how=$2
	shift 2
	BG=
	case $how in
	srun)
		srun --job-name="$name" "$@" sh -c "$(job_body "$name")" \
			>"$tmp/$name.out" 2>&1 &
		BG=$!
		;;
	sbatch)
		printf '#!/bin/sh\n%s\n' "$(job_body "$name")" >"$tmp/$name.sh"
		sbatch --job-name="$name" -o "$tmp/$name.out" "$@" "$tmp/$name.sh" \
			>"$tmp/$name.submit" 2>&1 || {
			ok "$name: sbatch submits" 1 "$tmp/$name.submit"
			return 1
		}
		;;
	salloc)
		salloc --job-name="$name" "$@" srun sh -c "$(job_body "$name")" \
			>"$tmp/$name.out" 2>&1 &
		BG=$!
		;;
	srun-nobody)
		runuser -u nobody -- srun --job-name="$name" --chdir="$jobs" "$@" \
			sh -c "$(job_body "$name")" \
			>"$tmp/$name.out" 2>&1 &
		BG=$!
		;;
	esac
	wait_for "$name: the job starts" test -e "$jobs/$name.id" || return 1
	JOB=$(cat "$jobs/$name.id")
	return 0
}

# end_job NAME: lets the job finish and waits until Slurm is done with it,
# epilog included (the job stays COMPLETING until the epilog has run).
end_job() {
	touch "$jobs/$1.release"
	wait_for "$1: job $JOB ends" job_gone "$JOB"
	# srun and salloc in the background end with the job.
	if [ -n "$BG" ]; then
		wait "$BG"
		ok "$1: job $JOB exits 0" $? "$tmp/$1.out"
	fi
}

# ------------------------------------------------------------ coherentd
mkdir -p "$tmp/state"
cat >"$tmp/coherentd.conf" <<EOF
[Daemon]
TickSec=500ms

[Policy]
Tracker=none

[Device $DEV]
Node=0
EOF
"$COHERENTD" --root / --socket "$SOCK" --config "$tmp/coherentd.conf" \
	--state-dir "$tmp/state" >"$tmp/coherentd.log" 2>&1 &
DPID=$!
wait_for "coherentd answers" "$COHCTL" --socket "$SOCK" --timeout 5s status || exit 1
ok "coherentd answers on $SOCK" 0

# ------------------------------------------------------------ munged
mkdir -p "$tmp/munge"
chmod 700 "$tmp/munge"
mkdir -p "$tmp/munge-run"
chmod 755 "$tmp/munge-run"
mungekey --create --keyfile="$tmp/munge/munge.key" >"$tmp/mungekey.log" 2>&1
ok "mungekey creates a key" $? "$tmp/mungekey.log"
MUNGE_SOCK="$tmp/munge-run/munge.socket"
munged --foreground --key-file="$tmp/munge/munge.key" --socket="$MUNGE_SOCK" \
	--pid-file="$tmp/munge-run/munged.pid" --seed-file="$tmp/munge/munged.seed" \
	--log-file="$tmp/munged.log" >"$tmp/munged.out" 2>&1 &
MUNGE_PID=$!
wait_for "munged starts" test -S "$MUNGE_SOCK" || exit 1
ok "munged listens on its own socket" 0

# ------------------------------------------------------------ slurmctld and slurmd
read -r CTLD_PORT SLURMD_PORT <<<"$(free_ports 2)"
mkdir -p "$tmp/ctld" "$tmp/spool"
# slurm_conf PLUGSTACK EXTRA-LINES
slurm_conf() {
	cat >"$SLURM_CONF" <<EOF
ClusterName=coherent-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
CredType=cred/munge
StateSaveLocation=$tmp/ctld
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
SlurmctldDebug=debug
SlurmdDebug=debug
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
PlugStackConfig=$1
$2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}
# A copy that nobody's srun can load wherever the build tree is.
cp "$PLUGIN" "$tmp/coherent.so"
PLUGIN="$tmp/coherent.so"
plugstack "required $PLUGIN cohctl=$COHCTL socket=$SOCK"
slurm_conf "$tmp/plugstack.conf" ""

slurmctld -D -i -f "$SLURM_CONF" >"$tmp/slurmctld.out" 2>&1 &
CTLD_PID=$!
slurmd -D -N localhost -f "$SLURM_CONF" >"$tmp/slurmd.out" 2>&1 &
SLURMD_PID=$!
node_idle() {
	[ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ]
}
if ! wait_for "slurmctld and slurmd bring node localhost up" node_idle; then
	cat "$tmp/slurmctld.out" "$tmp/slurmd.out" >"$tmp/detail"
	ok "slurmctld and slurmd start" 1 "$tmp/detail"
	exit 1
fi
ok "slurmctld and slurmd bring node localhost up" 0

srun --help >"$tmp/out" 2>&1
grep -q -- "--coherent=POLICY" "$tmp/out"
ok "srun --help shows --coherent=POLICY" $? "$tmp/out"
sbatch --help >"$tmp/out" 2>&1
grep -q -- "--coherent=POLICY" "$tmp/out"
ok "sbatch --help shows --coherent=POLICY" $? "$tmp/out"

# ------------------------------------------------------------ bad policies fail the submission
expect_fail "srun --coherent=bogus fails" srun --coherent=bogus true
grep -q "coherent: invalid --coherent=bogus: unknown policy kind" "$tmp/err"
ok "srun --coherent=bogus: the plugin says why" $? "$tmp/err"
expect_fail "sbatch --coherent=bind: fails" sbatch --coherent=bind: --wrap=true
grep -q "coherent: invalid --coherent=bind:: missing device name" "$tmp/err"
ok "sbatch --coherent=bind: the plugin says why" $? "$tmp/err"
expect_fail "salloc --coherent=hot:$DEV,quota=lots fails" salloc --coherent="hot:$DEV,quota=lots" true
grep -q "coherent: invalid --coherent=hot:$DEV,quota=lots" "$tmp/err"
ok "salloc --coherent=...quota=lots: the plugin says why" $? "$tmp/err"
same "no job was submitted for a bad policy" "$(squeue -h -o %i)" ""

# ------------------------------------------------------------ srun
if run_job srun-a srun --coherent="bind:$DEV,quota=1G"; then
	same "srun: job $JOB has policy bind:$DEV,quota=1G while it runs" \
		"$(policy_of "$JOB")" "bind:$DEV,quota=1G"
	grep -q "^SLURM_COHERENT=bind:$DEV,quota=1G$" "$jobs/srun-a.env"
	ok "srun: SLURM_COHERENT is in the job's environment" $?
	# No job cgroup here (proctrack/linuxproc): the descendants of its slurmstepd.
	wait_for "srun: coherentd finds job $JOB's processes" job_has_pids "$JOB" &&
		ok "srun: coherentd finds job $JOB's processes ($(pids_of "$JOB") of them)" 0
	end_job srun-a
	same "srun: job $JOB's policy is gone after its epilog" "$(policy_of "$JOB")" "-"
fi

# ------------------------------------------------------------ sbatch (and a step inside it)
if run_job sbatch-a sbatch --coherent="bind:$DEV,priority=5"; then
	same "sbatch: job $JOB has policy bind:$DEV,priority=5 while it runs" \
		"$(policy_of "$JOB")" "bind:$DEV,priority=5"
	wait_for "sbatch: coherentd finds job $JOB's processes" job_has_pids "$JOB" &&
		ok "sbatch: coherentd finds job $JOB's processes ($(pids_of "$JOB") of them)" 0
	end_job sbatch-a
	same "sbatch: job $JOB's policy is gone after its epilog" "$(policy_of "$JOB")" "-"
fi

# ------------------------------------------------------------ salloc
if run_job salloc-a salloc --coherent=system; then
	same "salloc: job $JOB has policy system while it runs" "$(policy_of "$JOB")" "system"
	end_job salloc-a
	same "salloc: job $JOB's policy is gone after its epilog" "$(policy_of "$JOB")" "-"
fi

# ------------------------------------------------------------ an unprivileged user's job
# Users are not root: the plugin applies the policy as root on the node all the same.
if run_job user-a srun-nobody --coherent="bind:$DEV,quota=512M"; then
	grep -q "^SLURM_JOB_USER=nobody$" "$jobs/user-a.env"
	ok "nobody's job runs as nobody" $? "$jobs/user-a.env"
	same "nobody's job $JOB has policy bind:$DEV,quota=512M while it runs" \
		"$(policy_of "$JOB")" "bind:$DEV,quota=512M"
	end_job user-a
	same "nobody's job $JOB's policy is gone after its epilog" "$(policy_of "$JOB")" "-"
fi

# ------------------------------------------------------------ no --coherent: nothing set
if run_job plain srun; then
	same "a job without --coherent has no policy" "$(policy_of "$JOB")" "-"
	! grep -q "^SLURM_COHERENT=" "$jobs/plain.env"
	ok "a job without --coherent has no SLURM_COHERENT" $?
	end_job plain
fi
cohctl policy list --json >"$tmp/out" 2>&1
json_ok "no policies left behind" "j['policies'] == []"

# ------------------------------------------------------------ a policy coherentd refuses
expect_rc "srun --coherent=bind:nosuchdev runs the job anyway" 0 \
	srun --coherent=bind:nosuchdev sh -c 'echo $SLURM_JOB_ID'
JOB=$(cat "$tmp/out")
wait_for "job $JOB ends" job_gone "$JOB"
grep -q "coherent: job $JOB: policy bind:nosuchdev not applied (cohctl exit 5)" "$tmp/slurmd.log"
ok "slurmd's log says why bind:nosuchdev was not applied (cohctl exit 5)" $?
same "job $JOB has no policy" "$(policy_of "$JOB")" "-"

# ------------------------------------------------------------ plugstack.conf arguments
# srun, slurmd and slurmstepd read plugstack.conf anew for each job.
plugstack "required $PLUGIN cohctl=$COHCTL socket=$SOCK timeout=soon"
expect_fail "a bad plugstack.conf argument fails srun" srun true
grep -q "coherent: plugstack.conf: timeout= needs seconds in 1..3600, got 'soon'" "$tmp/err"
ok "a bad plugstack.conf argument: the plugin says which" $? "$tmp/err"
plugstack "required $PLUGIN cohctl=$COHCTL socket=$SOCK strict"
# srun's own exit status stays 0 when its only task cannot be launched.
srun --coherent=bind:nosuchdev touch "$tmp/strict-ran" >"$tmp/out" 2>&1
grep -q "launch failed: Plugin initialization failed" "$tmp/out"
ok "strict: a job whose policy coherentd refuses does not start" $? "$tmp/out"
test ! -e "$tmp/strict-ran"
ok "strict: its task never ran" $?
expect_rc "strict: a job with a good policy runs" 0 srun --coherent="bind:$DEV" true
no_jobs() {
	[ -z "$(squeue -h -o %i)" ]
}
# Not before its epilog has run: the job epilog reads plugstack.conf too, and
# one it read half-written would not load the plugin that clears the policy.
wait_for "strict jobs end" no_jobs
plugstack "required $PLUGIN cohctl=$COHCTL socket=$SOCK"
cohctl policy list --json >"$tmp/out" 2>&1
json_ok "strict: no policies left behind" "j['policies'] == []"

# ------------------------------------------------------------ without SPANK: prolog and epilog
# The scripts take COHCTL and COHCTL_SOCKET from a defaults file.
printf 'COHCTL=%s\nCOHCTL_SOCKET=%s\n' "$COHCTL" "$SOCK" >"$tmp/coherentd-slurm.defaults"
for s in prolog epilog; do
	printf '#!/bin/sh\nCOHERENT_SLURM_DEFAULTS=%s exec %s\n' \
		"$tmp/coherentd-slurm.defaults" "$top_srcdir/slurm/$s" >"$tmp/$s"
	chmod 755 "$tmp/$s"
done
: >"$tmp/plugstack-empty.conf"
slurm_conf "$tmp/plugstack-empty.conf" "Prolog=$tmp/prolog
Epilog=$tmp/epilog"
scontrol reconfigure >"$tmp/out" 2>&1
ok "scontrol reconfigure: Prolog and Epilog scripts, no SPANK" $? "$tmp/out"
prolog_set() {
	scontrol show config | grep -q "^Prolog *= $tmp/prolog"
}
wait_for "the new configuration is in force" prolog_set
expect_fail "without SPANK srun has no --coherent" srun --coherent=system true
if run_job comment sbatch --comment="coherent=bind:$DEV,quota=2G"; then
	same "prolog: job $JOB has policy bind:$DEV,quota=2G from its comment" \
		"$(policy_of "$JOB")" "bind:$DEV,quota=2G"
	end_job comment
	same "epilog: job $JOB's policy is gone" "$(policy_of "$JOB")" "-"
fi
# The plugin on the login node only: sbatch checks --coherent and hands it to the
# prolog as SPANK_COHERENT.
sed "s|^PlugStackConfig=.*|PlugStackConfig=$tmp/plugstack.conf|" "$SLURM_CONF" \
	>"$tmp/slurm-login.conf"
expect_fail "plugin on the login node: sbatch --coherent=bogus fails" \
	env SLURM_CONF="$tmp/slurm-login.conf" sbatch --coherent=bogus --wrap=true
if SLURM_CONF="$tmp/slurm-login.conf" run_job login sbatch --coherent="bind:$DEV,priority=7"; then
	same "prolog: job $JOB has policy bind:$DEV,priority=7 from SPANK_COHERENT" \
		"$(policy_of "$JOB")" "bind:$DEV,priority=7"
	end_job login
	same "epilog: job $JOB's policy is gone" "$(policy_of "$JOB")" "-"
fi

kill -0 "$DPID" 2>/dev/null
ok "coherentd still runs" $? "$tmp/coherentd.log"

echo "1..$n"
if [ "$failures" -gt 0 ]; then
	echo "# $failures of $n checks failed"
	exit 1
fi
exit 0
