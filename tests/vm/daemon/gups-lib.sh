# Sourced by tests/vm/daemon/test-policy.sh and test-peers.sh: TAP helpers
# and a hot-set scenario around gups (tests/vm/workload/gups.c). In the VM
# it is /coh/share/gups-lib.sh (tests/vm/run --file, as make check-vm does).
#
# A scenario: gups runs with a moving hot set and reports, once a tick, how
# much of its hot set is on the device (frac) and how much of what it has on
# the device is hot (prec). Something (coherentd's hot: policy, DAMOS, NUMA
# balancing) is expected to bring the hot set there; the scenario waits for
# frac >= 0.9 in phase 0, moves the hot set (SIGUSR1), waits again, and
# stops gups, which replays its updates and checks every word. The waits
# count gups's ticks (at most GUPS_MAX_TICKS per phase), never time: the
# figures are reported, the data is asserted.

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
check() { # check DESCRIPTION COMMAND...
	d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}
diag() { sed 's/^/# /' "$@"; }

GUPS_MAX_TICKS=${GUPS_MAX_TICKS:-40}
# Ticks after a capture over which gups_scenario reports the means, and the
# mover's (coherentd's placement) ticks it first lets pass, so that what a
# policy does after a capture (cold demotion) has had its ticks: precision
# in the steady state, not in the middle of the move.
GUPS_SETTLE=${GUPS_SETTLE:-3}
GUPS_SETTLE_MOVER=${GUPS_SETTLE_MOVER:-0}
GUPS_GOAL=0.9

# gups_start NAME GUPS-ARGS...: runs gups in the background, output in
# NAME.out; sets NAME_pid and NAME_range once the buffer is filled. 1 when
# gups died first.
gups_start() {
	name=$1
	shift
	rm -f "$name.range" "$name.out"
	gups --range-file "$name.range" "$@" >"$name.out" 2>&1 &
	eval "${name}_pid=$!"
	while [ ! -s "$name.range" ]; do
		kill -0 $! 2>/dev/null || return 1
		sleep 0.1
	done
	eval "${name}_range=$(head -n 1 "$name.range")"
}

# gups_field LINE KEY: the value of KEY=VALUE in a gups tick line.
gups_field() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# gups_capture NAME PHASE: waits until a tick of PHASE has frac >= 0.9, or
# GUPS_MAX_TICKS ticks went by, or gups died. The ticks are the mover's when
# the test defines mover_ticks (coherentd's placement ticks of the target:
# under TCG one takes longer than its 1 s TickSec), else gups's own; ten
# times as many of gups's ticks end the wait in any case (a mover that
# stopped ticking). Sets cap_ticks (the gups tick's "since", ticks after the
# phase change, or "none"), cap_mticks (mover ticks since the wait began, or
# "-") and cap_line (that tick, or the last one of the phase).
gups_capture() {
	cap_ticks=none
	cap_mticks=-
	cap_line=
	m0=
	! command -v mover_ticks >/dev/null || m0=$(mover_ticks "$1")
	while :; do
		m=
		[ -z "$m0" ] || m=$(mover_ticks "$1")
		if [ -n "$m0" ] && [ -n "$m" ]; then
			max=$((GUPS_MAX_TICKS * 10))
			[ $((m - m0)) -lt "$GUPS_MAX_TICKS" ] || max=0
		else
			max=$GUPS_MAX_TICKS
		fi
		cap_line=$(awk -v p="phase=$2" -v goal=$GUPS_GOAL -v max=$max '
			$1 == "gups:" && $2 ~ /^tick=/ && $3 == p {
				k++; last = $0
				f = $7; sub(/^frac=/, "", f)
				if (f + 0 >= goal) { print "hit " $0; done = 1; exit }
				if (max > 0 && k >= max) { print "max " $0; done = 1; exit }
			}
			END { if (!done && max == 0) print "max " last }' "$1.out")
		[ -z "$m" ] || cap_mticks=$((m - m0))
		case $cap_line in
		hit*)
			cap_line=${cap_line#hit }
			cap_ticks=$(gups_field "$cap_line" since)
			return 0
			;;
		max*)
			cap_line=${cap_line#max }
			return 1
			;;
		esac
		eval "kill -0 \$${1}_pid" 2>/dev/null || return 1
		sleep 0.2
	done
}

# gups_settle NAME PHASE K: waits for K more ticks of PHASE, then sets
# steady_frac and steady_prec to the means over those ticks.
gups_settle() {
	from=$(grep -c "^gups: tick=.* phase=$2 " "$1.out")
	while [ "$(grep -c "^gups: tick=.* phase=$2 " "$1.out")" -lt $((from + $3)) ]; do
		eval "kill -0 \$${1}_pid" 2>/dev/null || return 1
		sleep 0.2
	done
	set -- $(grep "^gups: tick=.* phase=$2 " "$1.out" | sed -n "$((from + 1)),$((from + $3))p" |
		awk '{ f = $7; p = $9; sub(/^frac=/, "", f); sub(/^prec=/, "", p)
			sf += f; sp += p; k++ } END { printf "%.3f %.3f\n", sf / k, sp / k }')
	steady_frac=$1
	steady_prec=$2
}

# gups_wait_mover NAME N: waits until the mover's ticks of NAME's target
# went up by N (nothing without mover_ticks); gups's ticks bound the wait
# (GUPS_MAX_TICKS * 10). 1 when that bound was reached or gups died.
gups_wait_mover() {
	command -v mover_ticks >/dev/null || return 0
	wm0=$(mover_ticks "$1")
	[ -n "$wm0" ] || return 0
	wk0=$(grep -c '^gups: tick=' "$1.out")
	while :; do
		wm=$(mover_ticks "$1")
		[ -z "$wm" ] || [ $((wm - wm0)) -lt "$2" ] || return 0
		[ $(($(grep -c '^gups: tick=' "$1.out") - wk0)) -lt $((GUPS_MAX_TICKS * 10)) ] ||
			return 1
		eval "kill -0 \$${1}_pid" 2>/dev/null || return 1
		sleep 0.2
	done
}

# gups_phase NAME: moves the hot set (SIGUSR1) and waits until gups says so.
gups_phase() {
	before=$(grep -c '^gups: phase=' "$1.out")
	eval "kill -USR1 \$${1}_pid"
	while [ "$(grep -c '^gups: phase=' "$1.out")" -le "$before" ]; do
		eval "kill -0 \$${1}_pid" 2>/dev/null || return 1
		sleep 0.1
	done
}

# gups_stop NAME: SIGTERM, then gups replays its updates and checks every
# word; 0 when it exits 0 and says "0 errors".
gups_stop() {
	eval "p=\$${1}_pid"
	kill -TERM "$p"
	wait "$p"
	rc=$?
	grep -v '^gups: tick=' "$1.out" | diag
	[ $rc -eq 0 ] && grep -q '^gups: verified [0-9]* words, 0 errors' "$1.out"
}

# gups_scenario NAME LABEL [peer]: the two captures (phase 0, then phase 1
# after the hot set moved) of a running gups NAME, 3 points: that 90% of the
# hot set reached the device, or for a peer (the kernel's own tiering) that
# some of it did, the rest being its figures; the figures go to
# figures.txt as "LABEL|ticks0|frac0|prec0|ticks1|frac1|prec1".
gups_scenario() {
	fig=$2
	for ph in 0 1; do
		what="the hot set"
		if [ $ph = 1 ]; then
			check "$2: the hot set moves (SIGUSR1)" gups_phase "$1"
			what="the moved hot set"
		fi
		gups_capture "$1" $ph
		c=$cap_ticks
		if [ -z "${3:-}" ]; then
			check "$2: $what reached $GUPS_GOAL on the device (phase $ph)" test "$c" != none
		else
			# A peer: that it works at all is asserted, how well is reported.
			best=$(sed -n "s/^gups: tick=.* phase=$ph .* frac=\([0-9.]*\) .*/\1/p" "$1.out" |
				sort -n | tail -n 1)
			echo "# $2, phase $ph: at most ${best:-0} of $what on the device"
			check "$2: part of $what reached the device (phase $ph)" \
				awk -v f="${best:-0}" 'BEGIN { exit !(f > 0) }'
		fi
		echo "# $2, phase $ph ($cap_mticks mover ticks): $cap_line"
		fig="$fig|$c/$cap_mticks"
		steady_frac=- steady_prec=-
		[ "$GUPS_SETTLE_MOVER" -eq 0 ] || gups_wait_mover "$1" "$GUPS_SETTLE_MOVER" &&
			gups_settle "$1" $ph "$GUPS_SETTLE"
		echo "# $2, phase $ph, $GUPS_SETTLE ticks from $GUPS_SETTLE_MOVER mover ticks on:" \
			"mean frac $steady_frac, mean precision $steady_prec"
		fig="$fig|$steady_frac|$steady_prec"
	done
	echo "$fig" >>figures.txt
}

# coherentd_start: coherentd on $sock with ./coherentd.conf, its state in
# ./state, its log in daemon.log; sets daemon. 1 point.
sock=/run/coherentd/io.coherentd
coherentd_start() {
	mkdir -p /run/coherentd state
	coherentd --config="$PWD/coherentd.conf" --socket="$sock" --state-dir="$PWD/state" \
		>daemon.log 2>&1 &
	daemon=$!
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 300 ] && kill -0 $daemon 2>/dev/null; do
		sleep 0.1
		i=$((i + 1))
	done
	check "coherentd answers cohctl status" sh -c 'cohctl status >/dev/null'
}

# mover_ticks NAME: coherentd's placement ticks of gups NAME's target (see
# gups_capture; a test whose mover is not coherentd unsets it).
mover_ticks() {
	eval "p=\$${1}_pid"
	cohctl --json=short policy list 2>/dev/null | cohprobe json "policies.pid=$p.ticks"
}

# figures_table: what every scenario of this run reported, side by side.
figures_table() {
	echo "# hot-set capture (goal: frac >= $GUPS_GOAL within 3 ticks of a phase change," \
		"precision >= 0.9); ticks G/M: gups's 1 s ticks / the mover's ticks (- without)"
	printf '# %-34s %8s %6s %6s | %8s %6s %6s\n' scenario "ticks0" frac0 prec0 \
		"ticks1" frac1 prec1
	while IFS='|' read -r l a b c d e f; do
		printf '# %-34s %8s %6s %6s | %8s %6s %6s\n' "$l" "$a" "$b" "$c" "$d" "$e" "$f"
	done <figures.txt
}
