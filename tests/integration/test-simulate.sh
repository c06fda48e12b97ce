#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# cohctl simulate and trace-generate, with no daemon anywhere (the socket points
# nowhere): generated traces are deterministic for a seed; on them the oracle's
# hits bound every policy's, ours stays within the project's goals (hit ratio
# >= 0.95 of the oracle's and bytes moved <= 1.5x on hotset and zipf) and does
# not ping-pong; bad traces, configs and options fail with their exit code and
# the offending line. Prints TAP; exits 1 when any check failed. Needs python3.

set -u

: "${top_srcdir:?run through make check}"
: "${top_builddir:?run through make check}"

. "$top_srcdir/tests/integration/lib.sh"
need_built "$COHCTL"

COHCTL_SOCKET=/nonexistent/coherentd.sock
export COHCTL_SOCKET
tmp=$(mktemp -d "${TMPDIR:-/tmp}/coh-simulate.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

n=0
failures=0

# ---- generation
for k in hotset zipf scan; do
	check "trace-generate --kind=$k" "$COHCTL" trace-generate --kind "$k" -o "$tmp/$k.trace"
	check "$k: same seed, same trace" sh -c "'$COHCTL' trace-generate --kind $k -o - | cmp -s - '$tmp/$k.trace'"
	check "$k: other seed, other trace" sh -c "! '$COHCTL' trace-generate --kind $k --seed 2 -o - | cmp -s - '$tmp/$k.trace'"
	check "$k: versioned header" sh -c "head -n1 '$tmp/$k.trace' | grep -qx '# coherentd-trace v1'"
done
expect_rc "trace-generate without --kind" 2 "$COHCTL" trace-generate -o "$tmp/x"
expect_rc "trace-generate --kind=bogus" 2 "$COHCTL" trace-generate --kind bogus -o "$tmp/x"
expect_rc "trace-generate hot set larger than the regions" 2 \
	"$COHCTL" trace-generate --kind hotset --regions 10 --hot-regions 11 -o "$tmp/x"
expect_rc "trace-generate --regions=0" 2 "$COHCTL" trace-generate --kind zipf --regions 0 -o "$tmp/x"
expect_rc "trace-generate without -o" 2 "$COHCTL" trace-generate --kind zipf

# ---- simulate: the relations that must hold
for k in hotset zipf scan; do
	check "simulate $k --json" "$COHCTL" simulate --trace "$tmp/$k.trace" --json
	cp "$tmp/out" "$tmp/$k.json"
done
check "simulate text output: header and four labelled rows" sh -c "
	'$COHCTL' simulate --trace '$tmp/zipf.trace' > '$tmp/text' &&
	grep -q '^POLICY' '$tmp/text' && grep -q '^oracle (per-tick optimum)' '$tmp/text' &&
	grep -q '^baseline: memtierd-style heat' '$tmp/text' && grep -q '^baseline: LRU / hint-fault' '$tmp/text' &&
	grep -q '^coherentd hot: policy' '$tmp/text'"

relation() { # description, trace kind, python expression over r (policy -> result)
	if python3 - "$tmp/$2.json" "$3" >"$tmp/py" 2>&1 <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
r = {x["policy"]: x for x in d["results"]}
ok = eval(sys.argv[2])
print({k: (round(v["hit_ratio"], 4), v["bytes_moved"], round(v["pingpong_fraction"], 4)) for k, v in r.items()})
sys.exit(0 if ok else 1)
PY
	then ok "$1" 0; else ok "$1" 1 "$tmp/py"; fi
}

for k in hotset zipf scan; do
	relation "$k: the oracle's hits bound every policy's" $k \
		'all(v["hits"] <= r["oracle"]["hits"] for v in r.values())'
	relation "$k: every policy saw every access" $k \
		'len(set(v["accesses"] for v in r.values())) == 1 and r["ours"]["accesses"] == 4000000'
done
for k in hotset zipf; do
	relation "$k: ours hit ratio >= 0.95 of the oracle's" $k \
		'r["ours"]["hit_ratio"] >= 0.95 * r["oracle"]["hit_ratio"]'
	relation "$k: ours bytes moved <= 1.5x the oracle's" $k \
		'r["ours"]["bytes_moved"] <= 1.5 * r["oracle"]["bytes_moved"]'
	relation "$k: ours ping-pong below 5%" $k 'r["ours"]["pingpong_fraction"] < 0.05'
done
relation "hotset: ours beats the memtierd-style heat baseline on hits" hotset \
	'r["ours"]["hit_ratio"] > r["heat"]["hit_ratio"]'
relation "hotset: ours ping-pongs less than LRU and moves fewer bytes" hotset \
	'r["ours"]["pingpong_fraction"] < r["lru"]["pingpong_fraction"] and r["ours"]["bytes_moved"] < r["lru"]["bytes_moved"]'
relation "scan: ours keeps the hot set and moves less than LRU" scan \
	'r["ours"]["hit_ratio"] >= 0.9 and r["ours"]["bytes_moved"] < r["lru"]["bytes_moved"]'

# A device as large as the footprint: nothing is ever missed after the first tick.
check "simulate --device-size=4G (everything fits)" "$COHCTL" simulate --trace "$tmp/hotset.trace" --device-size 4G --json
cp "$tmp/out" "$tmp/big.json"
relation "device holding everything: ours misses only the first ticks, moves each region once at most" big \
	'r["ours"]["bytes_moved"] <= 1024 * 2 * 2**20 and r["ours"]["pingpong_fraction"] == 0 and r["ours"]["hit_ratio"] > 0.98'

# --config: a rate limit caps the bytes moved per tick.
printf '[Daemon]\nTickSec=1s\n[Policy]\nRateLimitMiB=64\n' > "$tmp/rate.conf"
check "simulate --config with RateLimitMiB=64" "$COHCTL" simulate --trace "$tmp/hotset.trace" --config "$tmp/rate.conf" --json
cp "$tmp/out" "$tmp/rate.json"
relation "rate limit: ours moved at most 64 MiB per tick" rate \
	'r["ours"]["bytes_moved"] <= 200 * 64 * 2**20 and r["lru"]["bytes_moved"] <= 200 * 64 * 2**20'

# ---- errors
printf '# coherentd-trace v1\nregion 0 0 4096\ntick 1\naccess 3 1\n' > "$tmp/bad.trace"
expect_rc "simulate: an access to an undeclared region is exit 2" 2 "$COHCTL" simulate --trace "$tmp/bad.trace"
err_has "simulate: the message names the file and line" "bad.trace:4:"
printf '# coherentd-trace v9\n' > "$tmp/v9.trace"
expect_rc "simulate: an unknown version is exit 2" 2 "$COHCTL" simulate --trace "$tmp/v9.trace"
err_has "simulate: ... at line 1" "v9.trace:1:"
expect_rc "simulate: a missing file is exit 1" 1 "$COHCTL" simulate --trace "$tmp/none.trace"
expect_rc "simulate: no --trace is exit 2" 2 "$COHCTL" simulate
expect_rc "simulate: --device-size=0 is exit 2" 2 "$COHCTL" simulate --trace "$tmp/zipf.trace" --device-size 0
printf '[Policy]\nHotThreshold=1\nNoSuchKey=1\n' > "$tmp/bad.conf"
expect_rc "simulate: an unknown [Policy] key is exit 2" 2 "$COHCTL" simulate --trace "$tmp/zipf.trace" --config "$tmp/bad.conf"
err_has "simulate: ... naming its line" "bad.conf:3:"

echo "1..$n"
[ "$failures" -eq 0 ]
