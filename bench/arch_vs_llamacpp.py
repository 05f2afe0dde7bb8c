#!/usr/bin/env python3
"""lowbit and llama.cpp on the same synthetic file of each model family (issue 25).

For each tiny family shape (`lowbit synth --shape tiny-<family>`), runs llama.cpp's llama-perplexity
with --kl-divergence-base (which saves every scored position's log-probabilities, 16-bit) and
lowbit's perplexity with --save-logits on the same file, text, context and chunks, and prints both
perplexities, their relative difference, and how many positions have the same top-1 token.

With --write-reference it stores llama.cpp's perplexity and, per scored position, its top-1 token
and the gap to the second (in logits) in tests/data/arch_llamacpp/<shape>.txt, which
tests/model/arch_llamacpp_test.cc compares lowbit against (so CI needs no llama.cpp build).

Usage: bench/arch_vs_llamacpp.py [--lowbit build/release/bin/lowbit]
           [--llamacpp /work/llama.cpp/build/bin] [--write-reference] [shape ...]
"""
import argparse
import os
import re
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = ["tiny-llama3", "tiny-qwen", "tiny-qwen2", "tiny-qwen3", "tiny-phi3", "tiny-gemma2", "tiny-gemma3",
          "tiny-qwen3moe", "tiny-qwen2moe", "tiny-mixtral"]
CTX, CHUNKS = 64, 4


def read_llamacpp_logits(path):
    """llama-perplexity's --kl-divergence-base file: '_logits_', i32 n_ctx, n_vocab, n_chunk,
    i32 tokens[n_chunk * n_ctx], then per scored position (n_ctx - 1 - n_ctx/2 per chunk)
    nv = 2 * ((n_vocab + 1) / 2) + 4 uint16: float scale, float min_log_prob, then n_vocab codes
    (log-prob = min_log_prob + scale * code). Returns [(top1, gap)] per position."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"_logits_", path
    n_ctx, n_vocab, n_chunk = struct.unpack_from("<iii", data, 8)
    off = 20 + 4 * n_ctx * n_chunk
    nv = 2 * ((n_vocab + 1) // 2) + 4
    per_chunk = n_ctx - 1 - n_ctx // 2
    out = []
    for _ in range(n_chunk * per_chunk):
        scale, _ = struct.unpack_from("<ff", data, off)
        codes = struct.unpack_from("<%dH" % n_vocab, data, off + 8)
        off += 2 * nv
        order = sorted(range(n_vocab), key=lambda i: -codes[i])
        out.append((order[0], (codes[order[0]] - codes[order[1]]) * scale))
    return out


def read_lowbit_logits(path):
    """lowbit's --save-logits file: 'LBLOGP01', i64 ctx, n_vocab, n_chunks, n_scored, n_tokens,
    i32 tokens[n_tokens], f32 log-probabilities [n_scored][n_vocab]. Returns [top1] per position."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"LBLOGP01", path
    ctx, n_vocab, n_chunks, n_scored, n_tokens = struct.unpack_from("<5q", data, 8)
    off = 48 + 4 * n_tokens
    out = []
    for _ in range(n_scored):
        row = struct.unpack_from("<%df" % n_vocab, data, off)
        off += 4 * n_vocab
        out.append(max(range(n_vocab), key=lambda i: row[i]))
    return out


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), p.stderr[-2000:]))
    return p.stdout + p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lowbit", default=os.path.join(ROOT, "build/release/bin/lowbit"))
    ap.add_argument("--llamacpp", default="/work/llama.cpp/build/bin")
    ap.add_argument("--text", default=os.path.join(ROOT, "../shared/data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt"))
    ap.add_argument("--write-reference", action="store_true")
    ap.add_argument("shapes", nargs="*", default=SHAPES)
    a = ap.parse_args()
    print("%-12s %12s %12s %10s %s" % ("shape", "llama.cpp", "lowbit", "rel diff", "same top-1"))
    with tempfile.TemporaryDirectory() as tmp:
        for shape in a.shapes:
            model = os.path.join(tmp, shape + ".gguf")
            run([a.lowbit, "synth", "--shape", shape, "-o", model])
            theirs = os.path.join(tmp, shape + ".kld")
            # The running estimate after the last chunk ("[4]520.1896,") is the final PPL. llama.cpp
            # prints it through its asynchronous log, which sometimes loses the last lines at exit: retry.
            for _ in range(5):
                out = run([os.path.join(a.llamacpp, "llama-perplexity"), "-m", model, "-f", a.text, "-c", str(CTX), "--chunks",
                           str(CHUNKS), "-b", str(CTX), "-t", "2", "--kl-divergence-base", theirs])
                m = re.findall(r"\[%d\]([0-9.]+)," % CHUNKS, out)
                if m:
                    break
            if not m:
                sys.exit("no PPL in llama-perplexity's output for %s:\n%s" % (shape, out[-3000:]))
            ppl_theirs = float(m[-1])
            ref = read_llamacpp_logits(theirs)
            # llama-perplexity prints 4 decimals (~1e-6 relative here): that is the reference.
            ours = os.path.join(tmp, shape + ".lbl")
            out = run([a.lowbit, "perplexity", "-m", model, "-f", a.text, "-c", str(CTX), "--chunks", str(CHUNKS), "-t", "2",
                       "--save-logits", ours, "--json"])
            ppl_ours = float(re.search(r'"ppl":\s*([0-9.eE+-]+)', out).group(1))
            top = read_lowbit_logits(ours)
            same = sum(1 for (t, _), u in zip(ref, top) if t == u)
            print("%-12s %12.4f %12.4f %10.2e %d / %d" % (shape, ppl_theirs, ppl_ours, abs(ppl_ours - ppl_theirs) / ppl_theirs, same,
                                                       len(ref)))
            if a.write_reference:
                d = os.path.join(ROOT, "tests/data/arch_llamacpp")
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, shape + ".txt"), "w") as f:
                    f.write("# llama.cpp (llama-perplexity -c %d --chunks %d --kl-divergence-base) on `lowbit synth --shape %s`,\n"
                            % (CTX, CHUNKS, shape))
                    f.write("# text ../shared/data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt; bench/arch_vs_llamacpp.py\n")
                    f.write("ctx %d chunks %d ppl %.4f\n" % (CTX, CHUNKS, ppl_theirs))
                    f.write("top1 %s\n" % " ".join("%d:%.4f" % (t, g) for t, g in ref))


if __name__ == "__main__":
    main()
