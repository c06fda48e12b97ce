#!/bin/bash
# check-harness.sh - host-side self-test of tests/vm/run.  Prints TAP.
#
# Boots the VM five times and checks that the harness
#   1. passes a good run and counts passes and skips apart, with a dynamically
#      linked libnuma test (library copying, node 1 memory-only);
#   2. fails bad TAP: not ok, no plan, short plan, crash, non-zero exit,
#      Bail out!, a hanging test (per-test timeout), and keeps going after it;
#   3. fails a run whose TAP all passed but whose kernel WARNed (a module
#      built here from warn-module/ and loaded with --module);
#   4. fails a run whose kernel panicked before the end marker, showing the
#      tail of the console;
#   5. fails a run whose guest hangs, killing it after --timeout.
# Needs qemu-system-x86_64, busybox-static, a C compiler, libnuma-dev and the
# kernel headers; exits 77 (skip) when one of them is missing.
#
# Usage: check-harness.sh [--keep]   (--keep leaves the work directory)

set -u

here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd) || exit 99
vm=$(cd "$here/.." && pwd) || exit 99
keep=0
[ "${1:-}" != --keep ] || keep=1

skip_all() {
	echo "1..0 # SKIP $*"
	exit 77
}

command -v qemu-system-x86_64 >/dev/null || skip_all "qemu-system-x86_64 not installed"
command -v busybox >/dev/null || skip_all "busybox-static not installed"
cc=${CC:-cc}
command -v "$cc" >/dev/null || skip_all "no C compiler ($cc)"
[ -e /usr/include/numa.h ] || skip_all "libnuma-dev not installed"
abi=$("$vm/fetch-kernel" --print-abi 2>/dev/null) || skip_all "no kernel headers"
headers=/usr/src/linux-headers-$abi

work=$(mktemp -d "${TMPDIR:-/tmp}/coh-vm-check.XXXXXX") || exit 99
if [ "$keep" = 1 ]; then
	trap 'echo "# work directory: $work"' EXIT
else
	trap 'rm -rf "$work"' EXIT
fi

n=0
failures=0
tap() {
	# tap OK DESCRIPTION
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failures=$((failures + 1))
	fi
}

# case NAME: a guest test script from stdin.
case_script() {
	mkdir -p "$work/cases"
	cat >"$work/cases/$1"
	chmod +x "$work/cases/$1"
	printf '%s\n' "$work/cases/$1"
}

# vm_run NAME ARGS...: runs the harness, output in $work/NAME.out, status in rc.
vm_run() {
	local name=$1
	shift
	"$vm/run" --log-dir "$work/$name.logs" --keep-log "$@" >"$work/$name.out" 2>&1
	rc=$?
	sed "s/^/# $name: /" "$work/$name.out"
}

last_line() {
	tail -n 1 "$work/$1.out"
}

echo "1..12"

# --- 1. a good run ---------------------------------------------------------
"$cc" -std=gnu11 -Wall -Wextra -O2 -o "$work/numa-tap" "$here/numa-tap.c" -lnuma
tap $? "numa-tap.c builds against libnuma"
if ldd "$work/numa-tap" | grep -q libnuma; then
	echo "# numa-tap is dynamically linked against libnuma"
fi

skip77=$(case_script skip77.sh <<'EOF'
#!/bin/sh
echo "# no cohmem here"
exit 77
EOF
)
skipplan=$(case_script skip-plan.sh <<'EOF'
#!/bin/sh
echo "1..0 # SKIP nothing to test"
EOF
)
skippoint=$(case_script skip-point.sh <<'EOF'
#!/bin/sh
echo "1..2"
echo "ok 1 - runs"
echo "ok 2 - something optional # SKIP not available"
EOF
)
skip4=$(case_script skip4-after-plan.sh <<'EOF'
#!/bin/sh
echo "1..3"
echo "ok 1 - first"
exit 4
EOF
)

payload=$(case_script payload.sh <<'EOF'
#!/bin/sh
echo "1..3"
[ "$(command -v numa-tap)" = /coh/bin/numa-tap ] && r=ok || r="not ok"
echo "$r 1 - --bin puts numa-tap in /coh/bin, on PATH"
numa-tap >/dev/null && r=ok || r="not ok"
echo "$r 2 - numa-tap runs from /coh/bin"
cmp -s /etc/coh-extra/harness-tap.sh /coh/tests/harness-tap.sh && r=ok || r="not ok"
echo "$r 3 - --file copies a file to its destination"
EOF
)

vm_run good --bin "$work/numa-tap" --file "$here/harness-tap.sh:/etc/coh-extra/harness-tap.sh" \
	"$here/harness-tap.sh" "$work/numa-tap" "$payload" "$skip77" "$skipplan" "$skippoint" "$skip4"
tap "$rc" "a good run exits 0"
# harness-tap 12 + numa-tap 7 + payload 3 + skip-point 1 + skip4 1 passed;
# skip77 1 + skip-plan 1 + skip-point 1 + skip4 2 skipped.
[ "$(last_line good)" = "24 passed, 0 failed, 5 skipped" ]
tap $? "a good run counts skips apart from passes (24 passed, 0 failed, 5 skipped)"

# --- 2. bad TAP ------------------------------------------------------------
bad=()
bad+=("$(case_script notok.sh <<'EOF'
#!/bin/sh
echo "1..3"
echo "ok 1 - fine"
echo "not ok 2 - deliberate failure"
echo "ok 3 - fine"
exit 1
EOF
)")
bad+=("$(case_script noplan.sh <<'EOF'
#!/bin/sh
echo "ok 1 - fine but no plan"
EOF
)")
bad+=("$(case_script short.sh <<'EOF'
#!/bin/sh
echo "1..3"
echo "ok 1 - fine"
EOF
)")
bad+=("$(case_script segv.sh <<'EOF'
#!/bin/sh
echo "1..2"
echo "ok 1 - fine"
kill -SEGV $$
EOF
)")
bad+=("$(case_script exit3.sh <<'EOF'
#!/bin/sh
echo "1..1"
echo "ok 1 - fine, but the exit status says otherwise"
exit 3
EOF
)")
bad+=("$(case_script bail.sh <<'EOF'
#!/bin/sh
echo "1..2"
echo "ok 1 - fine"
echo "Bail out! cannot go on"
EOF
)")
bad+=("$(case_script notok-skip.sh <<'EOF'
#!/bin/sh
echo "1..1"
echo "not ok 1 - failing and skipping at once # SKIP no"
EOF
)")
bad+=("$(case_script hang.sh <<'EOF'
#!/bin/sh
echo "1..1"
sleep 100000
EOF
)")
bad+=("$(case_script after-hang.sh <<'EOF'
#!/bin/sh
echo "1..1"
echo "ok 1 - the run goes on after a test timed out"
EOF
)")

vm_run bad --test-timeout 5 "${bad[@]}"
[ "$rc" = 1 ]
tap $? "a run with bad TAP exits 1 (got $rc)"
# passed: notok 2, noplan 1, short 1, segv 1, exit3 1, bail 1, after-hang 1;
# failed: one for each of the eight bad tests.
[ "$(last_line bad)" = "8 passed, 8 failed, 0 skipped" ]
tap $? "bad TAP is counted exactly (8 passed, 8 failed, 0 skipped)"
grep -q '^FAIL hang.sh: .*per-test timeout' "$work/bad.out" &&
	grep -q '^FAIL segv.sh: .*SIGSEGV' "$work/bad.out" &&
	grep -q '^FAIL noplan.sh: .*no TAP plan' "$work/bad.out" &&
	grep -q '^PASS after-hang.sh' "$work/bad.out"
tap $? "the verdicts name the timeout, the crash and the missing plan"

# --- 3. a kernel WARNING ---------------------------------------------------
mkdir -p "$work/warn-module"
cp "$here/warn-module/Kbuild" "$here/warn-module/coh_vm_warn.c" "$work/warn-module/"
make -s -C "$headers" M="$work/warn-module" modules >"$work/warn-module/build.log" 2>&1
tap $? "the WARN module builds against $headers"
warn=$(case_script warn.sh <<'EOF'
#!/bin/sh
echo "1..1"
insmod "$COH_MODULE_DIR/coh_vm_warn.ko"
echo "ok 1 - loaded the module (status $?), every point passes"
EOF
)
vm_run warn --module "$work/warn-module/coh_vm_warn.ko" "$warn"
[ "$rc" = 1 ] && [ "$(last_line warn)" = "1 passed, 1 failed, 0 skipped" ]
tap $? "a kernel WARNING fails a run whose TAP passed (1 passed, 1 failed)"
grep -q 'coh_vm_warn: deliberate warning' "$work/warn.out"
tap $? "the WARNING is shown"

# --- 4. a kernel panic -----------------------------------------------------
panic=$(case_script panic.sh <<'EOF'
#!/bin/sh
echo "1..1"
echo "ok 1 - about to crash the kernel"
echo c >/proc/sysrq-trigger
EOF
)
vm_run panic "$panic"
[ "$rc" = 1 ] && grep -q 'never printed its COH-VM-DONE marker' "$work/panic.out"
tap $? "a kernel panic fails the run: no end marker (exit $rc)"
grep -q 'Kernel panic' "$work/panic.out" && grep -q 'Last lines of the serial console' "$work/panic.out"
tap $? "the tail of the console with the panic is shown"

# --- 5. a guest that never finishes ----------------------------------------
stuck=$(case_script stuck.sh <<'EOF'
#!/bin/sh
echo "1..1"
echo "# sleeping past the VM timeout"
sleep 100000
EOF
)
# The per-test timeout is far beyond the VM timeout: only the latter can end
# this run, however fast or slow the host is.
vm_run stuck --timeout 25 --test-timeout 3000 "$stuck"
[ "$rc" = 1 ] && grep -q 'killed after the VM timeout of 25s' "$work/stuck.out" &&
	grep -q '^FAIL stuck.sh: .*did not finish' "$work/stuck.out"
tap $? "a guest that hangs is killed by the VM timeout and fails the run (exit $rc)"

[ "$failures" = 0 ]
