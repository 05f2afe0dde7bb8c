#!/usr/bin/env python3
"""lowbit against llama.cpp on one GGUF file, same machine, same thread count, alternating rounds.

usage: bench/vs_llamacpp.py MODEL [-t THREADS] [-r ROUNDS] [-p PROMPT] [-n GEN]
                            [--lowbit build/release/bin/lowbit] [--llama-bench build/llama.cpp/build/bin/llama-bench]
                            [--lowbit-args "--mmap"]

Each round runs llama-bench (-p PROMPT -n GEN -r 2 -o json) and then `lowbit bench` with the same
settings, so that both see the same phase of a noisy machine; prints every round and the medians,
with lowbit's tok/s as a ratio of llama.cpp's. Build llama-bench first with bench/llamacpp.sh. Each
engine holds the file its default way (llama.cpp maps it; lowbit reads it into 2 MiB pages where it
can); --lowbit-args "--mmap" maps it in lowbit too.
"""
import argparse
import json
import statistics
import subprocess
import sys


def run_json(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"vs_llamacpp: {' '.join(cmd)} failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('model')
    ap.add_argument('-t', '--threads', default='2')
    ap.add_argument('-r', '--rounds', type=int, default=3)
    ap.add_argument('-p', '--prompt', default='128')
    ap.add_argument('-n', '--gen', default='32')
    ap.add_argument('--lowbit', default='build/release/bin/lowbit')
    ap.add_argument('--llama-bench', default='build/llama.cpp/build/bin/llama-bench')
    ap.add_argument('--lowbit-args', default='', help='extra flags for lowbit bench, e.g. "--mmap"')
    a = ap.parse_args()
    llama = {'pp': [], 'tg': []}
    ours = {'pp': [], 'tg': []}
    for r in range(a.rounds):
        for e in run_json([a.llama_bench, '-m', a.model, '-p', a.prompt, '-n', a.gen, '-t', a.threads, '-r', '2', '-o', 'json']):
            llama['pp' if e['n_prompt'] > 0 else 'tg'].append(e['avg_ts'])
        j = run_json([a.lowbit, 'bench', '-m', a.model, '-p', a.prompt, '-n', a.gen, '-t', a.threads, '-r', '2', '--json'] + a.lowbit_args.split())
        tests = [k for k, n in (('pp', a.prompt), ('tg', a.gen)) if int(n) > 0]
        for k in tests:
            ours[k].append(j[k])
        print(f"round {r + 1}: " + ' | '.join(f"{k}{a.prompt if k == 'pp' else a.gen} llama.cpp {llama[k][-1]:7.2f} lowbit {ours[k][-1]:7.2f}"
                                             for k in tests), flush=True)
    med = statistics.median
    print(f"median ({a.rounds} rounds, {a.threads} threads): " +
          ' | '.join(f"{k} llama.cpp {med(llama[k]):.2f} lowbit {med(ours[k]):.2f} ({med(ours[k]) / med(llama[k]):.2f}x)" for k in tests))


if __name__ == '__main__':
    main()
