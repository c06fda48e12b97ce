# Shared by the host integration tests and tests/slurm/test-slurm.sh (sourced,
# not run, once top_srcdir and top_builddir are set). The caller sets $tmp (a
# scratch directory) and $SOCK, and n=0 failures=0 before the first check.

# The programs under test, and the raw varlink client.
COHERENTD="$top_builddir/coherentd"
COHCTL="$top_builddir/cohctl"
RAW="python3 $top_srcdir/tests/integration/varlink-raw.py"

# need_built PROGRAM...: bails out unless every PROGRAM was built, or without
# python3 (varlink-raw.py and the tests' own checks are Python).
need_built() {
	for f in "$@"; do
		if [ ! -x "$f" ]; then
			echo "Bail out! $f not built"
			exit 1
		fi
	done
	if ! command -v python3 >/dev/null; then
		echo "Bail out! python3 is needed (Debian: python3)"
		exit 1
	fi
}

# ok DESCRIPTION STATUS [DETAIL-FILE]: one TAP point; the detail file is shown on failure.
ok() {
	n=$((n + 1))
	if [ "$2" -eq 0 ]; then
		echo "ok $n - $1"
	else
		echo "not ok $n - $1"
		failures=$((failures + 1))
		if [ -n "${3:-}" ] && [ -s "$3" ]; then
			sed 's/^/# /' "$3"
		fi
	fi
}

# expect_rc DESCRIPTION STATUS COMMAND...: passes when COMMAND exits STATUS;
# its output stays in $tmp/out and $tmp/err for later checks.
expect_rc() {
	desc=$1
	want=$2
	shift 2
	"$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		{ echo "exit status $rc, want $want"; cat "$tmp/out" "$tmp/err"; } >"$tmp/detail"
		ok "$desc" 1 "$tmp/detail"
		return 1
	fi
	ok "$desc" 0
}

# check DESCRIPTION COMMAND...: passes when COMMAND exits 0; its output stays in
# $tmp/out and $tmp/err (so COMMAND must not read those) and is shown if it fails.
check() {
	desc=$1
	shift
	"$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	cat "$tmp/out" "$tmp/err" >"$tmp/detail"
	ok "$desc" "$rc" "$tmp/detail"
}

# same DESCRIPTION GOT WANT
same() {
	if [ "$2" = "$3" ]; then
		ok "$1" 0
	else
		printf 'got:  %s\nwant: %s\n' "$2" "$3" >"$tmp/detail"
		ok "$1" 1 "$tmp/detail"
	fi
}

# json_ok DESCRIPTION EXPR: EXPR (Python, the JSON bound to j) holds for the JSON in $tmp/out.
json_ok() {
	cp "$tmp/out" "$tmp/json"
	$RAW assert "$2" <"$tmp/json" >"$tmp/detail" 2>&1
	ok "$1" $? "$tmp/detail"
}

cohctl() {
	"$COHCTL" --socket "$SOCK" "$@"
}

# skip DESCRIPTION REASON: a TAP point that did not run, and why.
skip() {
	n=$((n + 1))
	echo "ok $n - $1 # SKIP $2"
}

# err_has DESCRIPTION TEXT: the last command's stderr ($tmp/err) contains TEXT.
err_has() {
	grep -qF -- "$2" "$tmp/err"
	ok "$1" $? "$tmp/err"
}

# wait_became PID UID COMM: waits (a minute at most) until PID runs as UID
# and is COMM: a process started through setpriv or runuser is root for a moment.
wait_became() {
	i=0
	while [ "$(awk '$1 == "Uid:" { print $2 }' "/proc/$1/status" 2>/dev/null)" != "$2" ] ||
	      [ "$(cat "/proc/$1/comm" 2>/dev/null)" != "$3" ]; do
		i=$((i + 1))
		[ "$i" -gt 600 ] && return 1
		sleep 0.1
	done
}
