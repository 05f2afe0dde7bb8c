#!/usr/bin/env python3
"""The batch-invariant decode step (rows8 kernels) at 1, 2, 4 and 8 tokens, one or more builds side by side.

Runs lowbit_bench's BM_MatVecInvariant (TinyLlama's 2048 x 2048 product, one thread, MatMulArgs::
batch_invariant) for each binary in turn, `--rounds` times alternating, and keeps each case's best
wall time (a shared machine's noise only slows a run down). Prints microseconds per step, tokens/s
and, per binary, tokens/s relative to the first binary; and per build the step time of T tokens
over T times the 1-token step (1.0 = no sharing, 1/T = the whole step shared).

  bench/rows8_tokens.py build/release/bin/lowbit_bench                      # one build
  bench/rows8_tokens.py /tmp/bench-before build/release/bin/lowbit_bench    # before / after
"""
import argparse
import json
import subprocess
import sys


def run(binary, filt, min_time):
    out = subprocess.run([binary, f"--benchmark_filter={filt}", "--benchmark_format=json", f"--benchmark_min_time={min_time}"],
                         check=True, capture_output=True, text=True).stdout
    res = {}
    for b in json.loads(out)["benchmarks"]:
        label = b.get("label", b["name"])  # TYPE/ISA/Ntok
        us = b["real_time"] * {"us": 1.0, "ms": 1e3, "ns": 1e-3}[b["time_unit"]]
        res[label] = us
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--types", default="3|7|10|11|12", help="kTypes indices in kernels_bench.cc (Q4_0|Q8_0|Q4_K|Q5_K|Q6_K)")
    ap.add_argument("--tokens", default="1|2|4|8")
    ap.add_argument("--min-time", default="0.2")
    ap.add_argument("--invariant", default="1", help="1: batch-invariant products (serving steps), 0: plain ones (prefill, speculative checks), '1|0': both")
    a = ap.parse_args()
    filt = f"BM_MatVecInvariant/({a.types})/[0-9]+/({a.tokens})/({a.invariant})/"
    best = [dict() for _ in a.binaries]
    for _ in range(a.rounds):
        for i, b in enumerate(a.binaries):
            for k, v in run(b, filt, a.min_time).items():
                best[i][k] = min(v, best[i].get(k, float("inf")))
    labels = list(best[0].keys())
    head = "case".ljust(22) + "".join(f"{'us/step':>10}{'tok/s':>9}{'x':>6}{'T-cost':>8}" for _ in a.binaries)
    print(head)
    for lab in labels:
        typ, isa, tok = lab.split("/")
        ntok = int(tok.rstrip("tok"))
        row = lab.ljust(22)
        for i in range(len(a.binaries)):
            us = best[i].get(lab)
            if us is None:
                row += " " * 33
                continue
            tps = ntok * 1e6 / us
            base = ntok * 1e6 / best[0][lab]
            one = best[i].get(f"{typ}/{isa}/1tok")
            tcost = us / (ntok * one) if one else float("nan")
            row += f"{us:10.0f}{tps:9.0f}{tps / base:6.2f}{tcost:8.2f}"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
