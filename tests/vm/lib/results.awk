# results.awk - turn the VM's results channel into verdicts and counts.
#
# Input: the results channel written by tests/vm/init (see the protocol at the
# top of that file), carriage returns already removed.
# Variables: expected = number of tests the host put in the initramfs.
#
# Output: one line per test, "PASS name ...", "FAIL name: reason; ..." or
# "SKIP name: reason", a "FAIL" line per problem outside any test, and last
# "TOTALS <passed> <failed> <skipped> <done>" where done is 1 when the guest
# printed its COH-VM-DONE marker.
#
# Counting rules (tests/vm/README.md):
#   ok                      -> passed
#   ok ... # SKIP reason    -> skipped
#   not ok ...              -> failed (also with # TODO or # SKIP: strict)
#   exit 77 or 4, no points -> the whole test counts as 1 skipped
#   exit 77 or 4 after some points: the planned points not reported are skipped
#   1..0 [# SKIP why], no points -> 1 skipped
#   otherwise one more failure for a test that has no plan, more or fewer
#   points than planned, points out of order, "Bail out!", exit status
#   non-zero without any "not ok", a timeout, or no end record (VM died).

function reset_test() {
	in_test = 1
	plan = -1
	plan_skip = ""
	nres = 0
	t_pass = 0
	t_fail = 0
	t_skip = 0
	problems = ""
	first_failure = ""
}

function problem(msg) {
	problems = problems (problems == "" ? "" : "; ") msg
}

function signame(n) {
	if (n == 1) return "SIGHUP"
	if (n == 2) return "SIGINT"
	if (n == 4) return "SIGILL"
	if (n == 6) return "SIGABRT"
	if (n == 7) return "SIGBUS"
	if (n == 8) return "SIGFPE"
	if (n == 9) return "SIGKILL"
	if (n == 11) return "SIGSEGV"
	if (n == 13) return "SIGPIPE"
	if (n == 15) return "SIGTERM"
	return "signal " n
}

function describe_status(s) {
	if (s >= 128 && s < 128 + 64)
		return "killed by " signame(s - 128)
	return "exit status " s
}

# One line of test output, the "| " prefix removed.
function tap_line(line,    rest, num, word) {
	if (line ~ /^1\.\.[0-9]+/) {
		if (plan >= 0) {
			problem("more than one plan")
			return
		}
		rest = line
		sub(/^1\.\./, "", rest)
		plan = rest + 0
		if (plan == 0) {
			# "1..0 # SKIP reason": nothing was run.
			plan_skip = line
			if (tolower(line) ~ /#[ \t]*skip/)
				sub(/^[^#]*#[ \t]*[Ss][Kk][Ii][Pp][^ \t]*[ \t]*/, "", plan_skip)
			if (plan_skip == "" || plan_skip == line)
				plan_skip = "plan 1..0, no reason given"
		}
		return
	}
	if (line ~ /^Bail out!/) {
		problem(line)
		return
	}
	if (line !~ /^(not )?ok([ \t]|$)/)
		return

	nres++
	rest = line
	if (rest ~ /^not ok/) {
		word = "not ok"
		sub(/^not ok[ \t]*/, "", rest)
	} else {
		word = "ok"
		sub(/^ok[ \t]*/, "", rest)
	}
	if (rest ~ /^[0-9]+/) {
		num = rest
		sub(/[^0-9].*$/, "", num)
		if (num + 0 != nres)
			problem("point " num " out of order (expected " nres ")")
	}
	if (word == "not ok") {
		t_fail++
		if (first_failure == "")
			first_failure = line
	} else if (tolower(rest) ~ /#[ \t]*skip/) {
		t_skip++
	} else {
		t_pass++
	}
}

function end_test(status, timed_out,    missing, skipstatus, verdict, msg) {
	skipstatus = (status == 77 || status == 4)

	if (timed_out)
		problem("killed after the per-test timeout (" describe_status(status) ")")

	if (nres == 0 && problems == "" && (skipstatus || (plan == 0 && status == 0))) {
		msg = skipstatus ? "exit status " status " without results" : plan_skip
		print "SKIP " name ": " msg
		skipped++
		in_test = 0
		return
	}

	if (plan < 0) {
		problem("no TAP plan (1..N)")
	} else if (nres > plan) {
		problem("planned " plan " points, got " nres)
	} else if (nres < plan) {
		missing = plan - nres
		if (skipstatus && t_fail == 0) {
			t_skip += missing
		} else {
			problem("planned " plan " points, got " nres)
		}
	}
	if (status != 0 && !skipstatus && !timed_out && t_fail == 0)
		problem(describe_status(status) " without any 'not ok'")

	passed += t_pass
	failed += t_fail
	skipped += t_skip
	if (problems != "")
		failed++

	if (t_fail > 0 || problems != "") {
		msg = t_pass " ok, " t_fail " not ok, " t_skip " skipped"
		if (first_failure != "")
			msg = msg "; first failure: " first_failure
		if (problems != "")
			msg = msg "; " problems
		print "FAIL " name ": " msg
	} else {
		print "PASS " name ": " t_pass " ok, " t_skip " skipped"
	}
	in_test = 0
}

function field_value(key,    i) {
	for (i = 1; i <= NF; i++)
		if (index($i, key "=") == 1)
			return substr($i, length(key) + 2)
	return ""
}

BEGIN {
	passed = 0
	failed = 0
	skipped = 0
	done = 0
	started = 0
	in_test = 0
	in_dmesg = 0
}

{
	sub(/\r$/, "")
}

/^COH-VM-SETUP-ERROR / {
	msg = $0
	sub(/^COH-VM-SETUP-ERROR /, "", msg)
	print "FAIL vm-setup: " msg
	failed++
	next
}

/^COH-VM-BEGIN / {
	if (in_test)
		end_without_record()
	started++
	name = $3
	reset_test()
	next
}

/^COH-VM-END / {
	if (!in_test || $3 != name) {
		print "FAIL results: unexpected record: " $0
		failed++
		next
	}
	end_test(field_value("status") + 0, field_value("timeout") == "1")
	next
}

/^COH-VM-DMESG-BEGIN/ {
	in_dmesg = 1
	next
}

/^COH-VM-DMESG-END/ {
	in_dmesg = 0
	next
}

/^COH-VM-DONE/ {
	done = 1
	next
}

/^\| / || /^\|$/ {
	if (in_test && !in_dmesg) {
		line = $0
		sub(/^\| ?/, "", line)
		tap_line(line)
	}
	next
}

function end_without_record() {
	problem("did not finish (the VM died or hung while it ran)")
	passed += t_pass
	failed += t_fail + 1
	skipped += t_skip
	print "FAIL " name ": " t_pass " ok, " t_fail " not ok, " t_skip " skipped; " problems
	in_test = 0
}

END {
	if (in_test)
		end_without_record()
	if (done && started < expected) {
		# The guest skipped the tests on purpose (setup errors, reported above).
		print "FAIL not-run: " (expected - started) " of " expected " tests were not run"
		failed++
	} else if (!done && started < expected) {
		print "FAIL not-run: " (expected - started) " of " expected " tests never started"
		failed++
	}
	if (!done) {
		print "FAIL vm: the guest never printed its COH-VM-DONE marker"
		failed++
	}
	print "TOTALS " passed " " failed " " skipped " " done
}
