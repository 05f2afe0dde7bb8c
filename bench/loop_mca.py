#!/usr/bin/env python3
"""Static throughput of a kernel's hot loop, for a VM too noisy to time small changes.

usage: bench/loop_mca.py BINARY FUNCTION_REGEX [--mcpu icelake-server] [--detail] [--all] [--llvm-mca PATH]

For each function whose demangled name matches FUNCTION_REGEX, takes the innermost loop (a backward
jump) that contains an integer or float multiply-add (vpdpbusd, vpmaddubsw, vfmadd), drops its jumps
and no-ops, and runs llvm-mca on it: "Block RThroughput" is the cycles per iteration that the
execution ports allow (the bound when the loop is compute-bound), and the resource line is the
pressure per port. --detail prints llvm-mca's pressure per instruction. Needs objdump and llvm-mca
(Debian: binutils, llvm; znver4 and znver5 need LLVM 16+ / 19+, e.g. --llvm-mca llvm-mca-19).
"""
import argparse
import re
import subprocess
import sys


def functions(binary):
    out = subprocess.run(['objdump', '-d', '--no-show-raw-insn', '-C', binary], capture_output=True, text=True, check=True).stdout
    return re.split(r'\n(?=[0-9a-f]+ <)', out)


def instructions(body_lines):
    """(address, text) of each instruction line of objdump's listing of one function."""
    ins = []
    for line in body_lines:
        m = re.match(r'\s*([0-9a-f]+):\s+(.*)', line)
        if m:
            ins.append((int(m.group(1), 16), m.group(2).strip()))
    return ins


def hot_loops(body_lines):
    """Every innermost multiply-add loop (a backward jump whose range holds no smaller such loop)."""
    ins = instructions(body_lines)
    loops = []
    for idx, (addr, txt) in enumerate(ins):
        m = re.match(r'j\w+\s+([0-9a-f]+)', txt)
        if not m or int(m.group(1), 16) >= addr:
            continue
        start = next(i for i, (a, _) in enumerate(ins) if a >= int(m.group(1), 16))
        if any(re.search(r'vpdpbusd|vpdpwssd|vpmaddubsw|vfmadd|vdpbf16ps', t) for _, t in ins[start:idx + 1]):
            loops.append((start, idx + 1))
    inner = [l for l in loops if not any(o != l and l[0] <= o[0] and o[1] <= l[1] for o in loops)]
    return [[b for b in (re.sub(r'\s+<.*>', '', t) for _, t in ins[a:e]) if not b.startswith('nop') and not re.match(r'j\w+\s', b)]
            for a, e in inner]


def hot_loop(body_lines):
    """The smallest multiply-add loop of the function (the one-token pass of a kernel), or None."""
    loops = hot_loops(body_lines)
    return min(loops, key=len) if loops else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('binary')
    ap.add_argument('function')
    ap.add_argument('--mcpu', default='icelake-server')
    ap.add_argument('--detail', action='store_true')
    ap.add_argument('--all', action='store_true', help='every innermost multiply-add loop of the function (e.g. each token-count pass), not only the smallest')
    ap.add_argument('--llvm-mca', default='llvm-mca', help='the llvm-mca to run (default: the one on PATH)')
    args = ap.parse_args()
    found = False
    for f in functions(args.binary):
        head = f.split('\n')[0]
        if not re.search(args.function, head):
            continue
        found = True
        name = re.sub(r'\(unsigned.*', '', head.split('<', 1)[-1])
        loops = hot_loops(f.split('\n')[1:]) if args.all else [hot_loop(f.split('\n')[1:])]
        if not loops or loops[0] is None:
            print(f'{name}: no multiply-add loop')
            continue
        for loop in loops:
            report(args, name, loop)
    if not found:
        sys.exit(f'loop_mca: no function matches {args.function!r} in {args.binary}')


def report(args, name, loop):
    isa = 'vnni' if any(re.match(r'vpdp', b) for b in loop) else 'avx2'
    r = subprocess.run([args.llvm_mca, f'-mcpu={args.mcpu}', '-iterations=200'], input='\n'.join(loop) + '\n',
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f'{name}: llvm-mca failed: {r.stderr.strip().splitlines()[0]}')
        return
    rthr = re.search(r'Block RThroughput:\s+([0-9.]+)', r.stdout).group(1)
    total = int(re.search(r"Total Cycles:\s+([0-9]+)", r.stdout).group(1)) / 200
    print(f"{name} [{isa}] {len(loop)} instructions, {rthr} cycles per iteration by ports, {total:.1f} simulated")
    if args.detail:
        print(r.stdout[r.stdout.index('Resources:'):])


if __name__ == '__main__':
    main()
