#!/bin/sh
# check-results.sh - unit test of tests/vm/lib/results.awk, the parser of the
# VM's results channel, on hand-written logs.  No VM is booted.  Prints TAP.

here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd) || exit 99
awk_script=$here/../lib/results.awk

n=0
failures=0
log=$(mktemp) || exit 99
trap 'rm -f "$log"' EXIT

# check DESCRIPTION EXPECTED-TESTS EXPECTED-TOTALS [PATTERN], on the log in $log
# PATTERN is an extended regular expression one output line must match.
check() {
	desc=$1
	out=$(tr -d '\r' <"$log" | awk -v expected="$2" -f "$awk_script")
	n=$((n + 1))
	totals=$(printf '%s\n' "$out" | tail -n 1)
	if [ "$totals" = "TOTALS $3" ] &&
		{ [ -z "${4:-}" ] || printf '%s\n' "$out" | grep -E -q -e "$4"; }; then
		echo "ok $n - $desc"
	else
		echo "not ok $n - $desc"
		printf '%s\n' "$out" | sed 's/^/# got: /'
		echo "# expected: TOTALS $3${4:+ and a line matching \"$4\"}"
		failures=$((failures + 1))
	fi
}

# rec NAME STATUS [TIMEOUT]: a test record around the TAP lines on stdin.
rec() {
	echo "COH-VM-BEGIN 1 $1"
	sed 's/^/| /'
	echo "COH-VM-END 1 $1 status=$2 timeout=${3:-0} elapsed=1"
}

echo "1..16"

printf '1..2\nok 1 - a\nok 2 - b\n' | rec t 0 |
	{ cat; echo COH-VM-DONE tests=1; } >"$log"
check "all ok passes" 1 "2 0 0 1" '^PASS t: 2 ok, 0 skipped$'

printf '1..2\nok 1 - a\r\nok 2 - b # skip later\r\n' | rec t 0 |
	{ cat; echo COH-VM-DONE tests=1; } >"$log"
check "carriage returns are ignored; skip directives are case-insensitive" 1 "1 0 1 1"

printf 'ok 1\nok 2\n1..2\n' | rec t 0 | { cat; echo COH-VM-DONE; } >"$log"
check "a trailing plan and points without descriptions are fine" 1 "2 0 0 1" '^PASS'

printf '1..2\nok 2 - b\nok 1 - a\n' | rec t 0 | { cat; echo COH-VM-DONE; } >"$log"
check "points out of order fail" 1 "2 1 0 1" 'out of order'

printf '1..1\nok 1\nok 2\n' | rec t 0 | { cat; echo COH-VM-DONE; } >"$log"
check "more points than planned fail" 1 "2 1 0 1" 'planned 1 points, got 2'

printf '1..1\n1..1\nok 1\n' | rec t 0 | { cat; echo COH-VM-DONE; } >"$log"
check "two plans fail" 1 "1 1 0 1" 'more than one plan'

printf '1..1\nnot ok 1 - x # TODO later\n' | rec t 1 | { cat; echo COH-VM-DONE; } >"$log"
check "not ok with TODO fails" 1 "0 1 0 1" '^FAIL t:'

printf '1..2\n    not ok 1 - subtest\nok 1\n# not ok 5\nok 2\n' | rec t 0 |
	{ cat; echo COH-VM-DONE; } >"$log"
check "indented subtests and comments are not points" 1 "2 0 0 1"

printf '1..2\nnot ok 1\n' | rec t 77 | { cat; echo COH-VM-DONE; } >"$log"
check "exit 77 after a not ok fails" 1 "0 2 0 1"

printf '1..0\n' | rec t 0 | { cat; echo COH-VM-DONE; } >"$log"
check "a bare 1..0 is a skip, not a pass" 1 "0 0 1 1" '^SKIP t:'

printf '1..0 # SKIP why\n' | rec t 1 | { cat; echo COH-VM-DONE; } >"$log"
check "1..0 with a failing exit status fails" 1 "0 1 0 1"

printf '' | rec t 0 | { cat; echo COH-VM-DONE; } >"$log"
check "no output at all fails" 1 "0 1 0 1" 'no TAP plan'

printf '1..3\nok 1\n' | rec t 4 | { cat; echo COH-VM-DONE; } >"$log"
check "exit 4 after some points skips the rest" 1 "1 0 2 1"

{ echo "COH-VM-BEGIN 1 t"; echo "| 1..1"; echo "| ok 1"; } >"$log"
check "a test without an end record fails, and so does a missing marker" 1 "1 2 0 0" \
	'did not finish'

{ echo "COH-VM-SETUP-ERROR NUMA node 1 missing"; echo "COH-VM-DONE tests=0"; } >"$log"
check "setup errors fail and tests not run are counted" 3 "0 2 0 1" \
	'^FAIL not-run: 3 of 3'

printf '1..1\nok 1\n' | rec t 0 |
	{ cat; echo COH-VM-DMESG-BEGIN; echo "| not ok 7 - from dmesg"; echo COH-VM-DMESG-END;
	  echo COH-VM-DONE; } >"$log"
check "the dmesg dump is not parsed as TAP" 1 "1 0 0 1"

[ "$failures" = 0 ]
