#!/usr/bin/env python3
"""Splits a model's mean KL-divergence on a text into the tokens inside document separators
("<|endoftext|>" and the newline after it, which TinyStoriesV2's files hold between stories and the
QAT training text does not) and the rest (standard library only).

Reads `lowbit perplexity --save-logits` files: the reference (F32) and one or more quantized models'
files made on the same text and context; the vocabulary comes from a tokenizer.json. Scored positions
are those `lowbit perplexity` scores (the second half of each chunk). Prints per file the mean KLD and
its two parts (each part's sum divided by all scored tokens, so the parts add up to the mean), then
the positions of the largest KLDs with the text before them. Used for docs/QUALITY.md "QAT and QLoRA".

Usage: bench/kld_split.py TOKENIZER_JSON F32.logits Q1.logits [Q2.logits ...]
"""
import array
import json
import math
import re
import struct
import sys


def load(path):
    with open(path, "rb") as f:
        head = f.read(48)
        if head[:8] != b"LBLOGP01":
            sys.exit(f"{path}: not a lowbit --save-logits file")
        ctx, vocab, chunks, scored, n_tokens = struct.unpack("<5q", head[8:])
        tokens = array.array("i")
        tokens.frombytes(f.read(n_tokens * 4))
        logp = array.array("f")
        logp.frombytes(f.read(scored * vocab * 4))
    if len(logp) != scored * vocab:
        sys.exit(f"{path}: truncated")
    return ctx, vocab, chunks, tokens, logp


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    pieces = {v: k for k, v in json.load(open(sys.argv[1]))["model"]["vocab"].items()}

    def text(t):
        s = pieces.get(t, "?").replace("\u2581", " ")
        return "\n" if s == "<0x0A>" else ("" if s in ("<s>", "</s>") else s)

    ctx, vocab, chunks, tokens, base = load(sys.argv[2])
    spans, pos = [], 0
    for t in tokens:
        n = len(text(t))
        spans.append((pos, pos + n))
        pos += n
    full = "".join(text(t) for t in tokens)
    marker = [False] * len(tokens)
    for m in re.finditer(r"<\|endoftext\|>\n?", full):
        for i, (a, b) in enumerate(spans):
            if b > a and b > m.start() and a < m.end():
                marker[i] = True
    first = ctx // 2
    for path in sys.argv[3:]:
        c2, v2, ch2, t2, q = load(path)
        if (c2, v2, ch2) != (ctx, vocab, chunks) or t2 != tokens:
            sys.exit(f"{path}: made on another text, context or vocabulary than {sys.argv[2]}")
        k, sums, counts, top = 0, [0.0, 0.0], [0, 0], []
        for c in range(chunks):
            for j in range(first, ctx - 1):
                o = k * vocab
                kl = sum(math.exp(base[o + v]) * (base[o + v] - q[o + v]) for v in range(vocab))
                p = c * ctx + j
                part = 0 if marker[p + 1] else 1  # the token predicted at p is p + 1
                sums[part] += kl
                counts[part] += 1
                top.append((kl, p))
                k += 1
        n = counts[0] + counts[1]
        print(f"{path}: mean KLD {(sums[0] + sums[1]) / n:.6f} = separator tokens {sums[0] / n:.6f} "
              f"({counts[0]} tokens, their mean {sums[0] / max(counts[0], 1):.4f}) + the rest {sums[1] / n:.6f} "
              f"({counts[1]} tokens, their mean {sums[1] / max(counts[1], 1):.6f})")
        top.sort(reverse=True)
        print(f"  the 100 largest carry {sum(x for x, _ in top[:100]) / (sums[0] + sums[1]):.1%} of the sum; the 5 largest:")
        for kl, p in top[:5]:
            print(f"  {kl:.3f} at token {p}, predicting {text(tokens[p + 1])!r} after {''.join(text(t) for t in tokens[p - 6:p + 1])!r}")


if __name__ == "__main__":
    main()
