#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# simulate-bench: decision quality of the policy engine against the per-tick
# oracle and the two labelled baselines, on the three synthetic trace kinds.
# No daemon, no VM, no root: cohctl trace-generate + cohctl simulate.
# See bench/README.md ("simulate-bench") for the method.
#
#   bench/simulate-bench.sh [COHCTL]      (default: ./cohctl, else cohctl on PATH)
#
# Environment: SIM_BENCH_SEEDS (default "1 2 3"), SIM_BENCH_DEVICE (default 512M,
# a quarter of the 2 GiB footprint), SIM_BENCH_CONFIG (a [Policy] file).
# Prints, per kind and seed, "ratio hit/oracle" and "ratio bytes_moved/oracle"
# for ours and each baseline, then per kind the minimum over seeds for ours, and
# whether the goals (hit >= 0.95, bytes <= 1.5) are met. Exit 0 when it ran.

set -eu

COHCTL=${1:-}
if [ -z "$COHCTL" ]; then
	if [ -x ./cohctl ]; then COHCTL=./cohctl; else COHCTL=cohctl; fi
fi
SEEDS=${SIM_BENCH_SEEDS:-1 2 3}
DEVICE=${SIM_BENCH_DEVICE:-512M}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

cfg=
if [ -n "${SIM_BENCH_CONFIG:-}" ]; then cfg="--config $SIM_BENCH_CONFIG"; fi

for kind in hotset zipf scan; do
	for seed in $SEEDS; do
		"$COHCTL" trace-generate --kind "$kind" --seed "$seed" -o "$T/t"
		# shellcheck disable=SC2086
		"$COHCTL" simulate --trace "$T/t" --device-size "$DEVICE" $cfg --json > "$T/$kind-$seed.json"
	done
done

python3 - "$T" "$SEEDS" <<'PY'
import json, sys
d, seeds = sys.argv[1], sys.argv[2].split()
for kind in ("hotset", "zipf", "scan"):
    worst_hit, worst_bytes = 9.0, 0.0
    for seed in seeds:
        r = {x["policy"]: x for x in json.load(open(f"{d}/{kind}-{seed}.json"))["results"]}
        o = r["oracle"]
        print(f"{kind} seed {seed}: oracle hit {o['hit_ratio']:.4f} moved {o['bytes_moved'] >> 20} MiB "
              f"ping-pong {o['pingpong_fraction']:.3f}")
        for p in ("ours", "heat", "lru"):
            x = r[p]
            print(f"  {kind} {p:5s} ratio hit/oracle: {x['hit_ratio_vs_oracle']:.3f}  "
                  f"ratio bytes_moved/oracle: {x['bytes_moved_vs_oracle']:.3f}  "
                  f"ping-pong: {x['pingpong_fraction']:.3f}  ({x['label']})")
        worst_hit = min(worst_hit, r["ours"]["hit_ratio_vs_oracle"])
        worst_bytes = max(worst_bytes, r["ours"]["bytes_moved_vs_oracle"])
    met = "met" if worst_hit >= 0.95 and worst_bytes <= 1.5 else "NOT met"
    print(f"{kind} ours worst over seeds: ratio hit/oracle: {worst_hit:.3f} "
          f"ratio bytes_moved/oracle: {worst_bytes:.3f} -> goals {met}")
PY
