#!/usr/bin/env python3
"""Decode speed of the grouped-integer types (GPTQ / AWQ weights) beside Q4_0 / Q8_0 / Q4_K of the same
shape, as a fraction of the measured read bandwidth.

usage: bench/grouped_decode.py [BENCH_BINARY] [--rounds N] [--threads 1|2|both] [--isa avx2|avx512]

Runs lowbit_bench's BM_MatVec (a 256 MiB matrix of 4096 columns against one activation row, the
decode regime) for each type, alternating with BM_ReadBandwidth (the probe's loop: a 256 MiB buffer
summed with the kernels' prefetch), N rounds, and prints per type the median GB/s of weights streamed
and its median fraction of the probe (the best probe pass of each round, as `lowbit bench` takes the
best). Alternating rounds spread a shared machine's slow phases over every type. Default binary:
build/release/bin/lowbit_bench.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

TYPES = {'Q4_0': 3, 'Q8_0': 7, 'Q4_K': 10, 'W4G32': 15, 'W4G64': 16, 'W4G128': 17, 'W8G32': 18, 'W8G128': 20}
ISAS = {'avx2': 1, 'avx512': 2}


def run(binary, bench_filter):
    out = subprocess.run([binary, f'--benchmark_filter={bench_filter}', '--benchmark_format=json'],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)['benchmarks']


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument('binary', nargs='?', default=os.path.join(root, 'build/release/bin/lowbit_bench'))
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--threads', choices=['1', '2', 'both'], default='1')
    ap.add_argument('--isa', choices=list(ISAS), default='avx512')
    args = ap.parse_args()
    # A copy, so that a rebuild during the rounds does not pull the binary away from under them.
    tmp = tempfile.mkdtemp(prefix='grouped_decode.')
    args.binary = shutil.copy(args.binary, os.path.join(tmp, 'lowbit_bench'))
    suffixes = {'1': [''], '2': ['2T'], 'both': ['', '2T']}[args.threads]
    isa = ISAS[args.isa]
    for sfx in suffixes:
        gbps = {t: [] for t in TYPES}
        frac = {t: [] for t in TYPES}
        probes = []
        for _ in range(args.rounds):
            probe = max(b['bytes_per_second'] for b in run(args.binary, f'^BM_ReadBandwidth{sfx}/')) / 1e9
            for name, idx in TYPES.items():
                g = run(args.binary, f'^BM_MatVec{sfx}/{idx}/{isa}/')[0]['bytes_per_second'] / 1e9
                probe = max(probe, max(b['bytes_per_second'] for b in run(args.binary, f'^BM_ReadBandwidth{sfx}/')) / 1e9)
                gbps[name].append(g)
            for name in TYPES:
                frac[name].append(gbps[name][-1] / probe)
            probes.append(probe)
        threads = 2 if sfx else 1
        print(f'{threads} thread(s), {args.isa}, {args.rounds} rounds; probe median {statistics.median(probes):.1f} GB/s '
              f'(range {min(probes):.1f}-{max(probes):.1f})')
        print(f'{"type":8} {"GB/s":>6} {"of probe":>9}   (per round: fraction)')
        for name in TYPES:
            per = ' '.join(f'{f:.2f}' for f in frac[name])
            print(f'{name:8} {statistics.median(gbps[name]):6.1f} {statistics.median(frac[name]):8.0%}   ({per})')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
