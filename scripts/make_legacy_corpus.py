#!/usr/bin/env python3
"""Regenerates the broken-file corpus of the legacy GGML reader (standard library only):
tests/corpus/ggml_legacy/*.{ok,bad}. Each .bad file breaks one rule the reader or the llama plan
checks (tests/formats/corpus_test.cc replays them through GgmlLegacyFile::Parse and PlanLegacyGgml);
.ok files are tiny valid llama models (one layer) in several versions and types. The layouts are
written from docs/DESIGN-NOTES.md ("Legacy GGML files"), independently of the C++ reader.

Usage: scripts/make_legacy_corpus.py   (from the repository root)
"""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "corpus", "ggml_legacy")
MAGIC = {"ggml": 0x67676d6c, "ggmf": 0x67676d66, "ggjt": 0x67676a74}
N_EMBD, N_HEAD, N_MULT, N_VOCAB = 32, 2, 4, 4
N_FF = (2 * 4 * N_EMBD // 3 + N_MULT - 1) // N_MULT * N_MULT  # 88


def block_bytes(t, version):
    old = version < 3
    return {0: 4, 1: 2, 2: 20 if old else 18, 3: 24 if old else 20, 6: 22, 7: 24, 8: 36 if old else 34}.get(t, 18)


def tensor(name, dims, t, version, aligned, offset, data=None, scales=None):
    head = struct.pack("<III", len(dims), len(name), t) + struct.pack("<%dI" % len(dims), *dims) + name.encode()
    pad = (-(offset + len(head)) % 32) if aligned else 0
    n = 1
    for d in dims:
        n *= d
    per = 1 if t in (0, 1) else 32
    if n > 1 << 20:
        n = 32  # a header that claims more than the data that follows
    if data is None:
        data = bytes((i * 7) % 256 for i in range(n // per * block_bytes(t, version)))
        if t in (2, 3, 8) and version < 3:  # F32 scales: make them finite numbers
            bb = block_bytes(t, version)
            data = bytearray(data)
            for b in range(len(data) // bb):
                data[b * bb:b * bb + 4] = struct.pack("<f", scales[b % len(scales)] if scales else 0.01 * (b % 5 + 1))
            data = bytes(data)
    return head + b"\0" * pad + data


def model(fmt="ggjt", version=3, qtype=2, hp=None, vocab=None, tensors=None, cut=0, extra=b"", scales=None):
    b = struct.pack("<I", MAGIC[fmt]) + (struct.pack("<I", version) if fmt != "ggml" else b"")
    hp = hp or [N_VOCAB, N_EMBD, N_MULT, N_HEAD, 1, N_EMBD // N_HEAD, 0]
    b += struct.pack("<7I", *hp)
    for i, tok in enumerate(vocab or [b" \xe2\x81\x87 ", b"", b"", b" a"]):
        b += struct.pack("<I", len(tok)) + tok + (struct.pack("<f", -float(i)) if fmt != "ggml" else b"")
    v = version if fmt == "ggjt" else 1
    specs = tensors or [("tok_embeddings.weight", [N_EMBD, N_VOCAB], qtype), ("norm.weight", [N_EMBD], 0),
                        ("output.weight", [N_EMBD, N_VOCAB], qtype),
                        ("layers.0.attention.wq.weight", [N_EMBD, N_EMBD], qtype),
                        ("layers.0.attention.wk.weight", [N_EMBD, N_EMBD], qtype),
                        ("layers.0.attention.wv.weight", [N_EMBD, N_EMBD], qtype),
                        ("layers.0.attention.wo.weight", [N_EMBD, N_EMBD], qtype),
                        ("layers.0.attention_norm.weight", [N_EMBD], 0),
                        ("layers.0.feed_forward.w1.weight", [N_EMBD, N_FF], qtype),
                        ("layers.0.feed_forward.w2.weight", [N_FF, N_EMBD], 1),
                        ("layers.0.feed_forward.w3.weight", [N_EMBD, N_FF], qtype),
                        ("layers.0.ffn_norm.weight", [N_EMBD], 0)]
    for name, dims, t in specs:
        b += tensor(name, dims, t, v, fmt == "ggjt", len(b), scales=scales)
    b += extra
    return b[:len(b) - cut] if cut else b


HEADER_AND_VOCAB = 8 + 28 + sum(8 + len(t) for t in [b" \xe2\x81\x87 ", b"", b"", b" a"])


def token_length_past_end():
    m = bytearray(model())
    m[36:40] = struct.pack("<I", 1 << 30)  # the first token's length
    return bytes(m)


TOKEN_LENGTH_PAST_END = token_length_past_end()


def main():
    os.makedirs(ROOT, exist_ok=True)
    files = {
        "ggjt-v3-q4_0.ok": model("ggjt", 3, 2),
        "ggjt-v2-q8_0.ok": model("ggjt", 2, 8),
        "ggjt-v1-q5_1.ok": model("ggjt", 1, 7),
        "ggmf-v1-q4_1.ok": model("ggmf", 1, 3),
        "ggml-f32.ok": model("ggml", 0, 0),
        # Old F32 block scales that are not finite (or overflow fp16): the blocks are requantized, and
        # a NaN reached ggml's (int8_t) casts in the quantizers (fuzz_ggml_legacy, UBSan).
        "ggmf-v1-q4_1-nonfinite-scales.ok": model("ggmf", 1, 3, scales=[float("nan"), float("inf"), -float("inf"), 3e38, 0.01]),
        "ggjt-v1-q4_0-nonfinite-scales.ok": model("ggjt", 1, 2, scales=[float("nan"), float("inf"), 1e30, 0.01]),
        "ggjt-v2-q8_0-nonfinite-scales.ok": model("ggjt", 2, 8, scales=[float("nan"), -float("inf"), 1e30, 0.01]),
        "empty.bad": b"",
        "magic-only.bad": struct.pack("<I", MAGIC["ggjt"]),
        "gguf-magic.bad": b"GGUF" + struct.pack("<I", 3) + b"\0" * 16,
        "unknown-magic.bad": b"ggml" + b"\0" * 40,
        "ggjt-version-9.bad": model("ggjt", 9),
        "ggmf-version-2.bad": model("ggmf", 2),
        "truncated-header.bad": model()[:20],
        "huge-n-vocab.bad": model(hp=[0xFFFFFFF0, N_EMBD, N_MULT, N_HEAD, 1, 16, 0]),
        "n-vocab-past-end.bad": model(hp=[1 << 20, N_EMBD, N_MULT, N_HEAD, 1, 16, 0]),
        "zero-n-head.bad": model(hp=[N_VOCAB, N_EMBD, N_MULT, 0, 1, 16, 0]),
        "n-head-not-dividing.bad": model(hp=[N_VOCAB, N_EMBD, N_MULT, 3, 1, 16, 0]),
        "zero-n-mult.bad": model(hp=[N_VOCAB, N_EMBD, 0, N_HEAD, 1, 16, 0]),
        "n-rot-wrong.bad": model(hp=[N_VOCAB, N_EMBD, N_MULT, N_HEAD, 1, 8, 0]),
        "n-mult-wrong.bad": model(hp=[N_VOCAB, N_EMBD, 64, N_HEAD, 1, 16, 0]),
        "more-layers-than-tensors.bad": model(hp=[N_VOCAB, N_EMBD, N_MULT, N_HEAD, 2, 16, 0]),
        "huge-n-layer.bad": model(hp=[N_VOCAB, N_EMBD, N_MULT, N_HEAD, 1 << 24, 16, 0]),
        "token-length-past-end.bad": TOKEN_LENGTH_PAST_END,
        "truncated-vocab.bad": model()[:50],
        "tensor-data-past-end.bad": model(cut=7),
        "truncated-tensor-header.bad": model(extra=struct.pack("<II", 2, 5)),
        "unknown-type.bad": model(tensors=[("norm.weight", [N_EMBD], 77)]),
        "removed-q4_2.bad": model(tensors=[("norm.weight", [N_EMBD], 4)]),
        "k-quant.bad": model(tensors=[("norm.weight", [256], 12)]),
        "three-dims.bad": model(extra=struct.pack("<IIIIII", 3, 1, 0, 1, 1, 1) + b"x"),
        "zero-dim.bad": model(tensors=[("norm.weight", [0], 0)]),
        "huge-dims.bad": model(tensors=[("tok_embeddings.weight", [0xFFFFFFFF, 0xFFFFFFFF], 0)]),
        "row-not-whole-blocks.bad": model(tensors=[("norm.weight", [30], 2)]),
        "zero-name.bad": model(extra=struct.pack("<IIII", 1, 0, 0, 4) + b"\0" * 16),
        "huge-name.bad": model(extra=struct.pack("<IIII", 1, 1 << 30, 0, 4)),
        "duplicate-tensor.bad": model(extra=tensor("norm.weight", [N_EMBD], 0, 3, True, len(model()))),
        "unexpected-tensor.bad": model(extra=tensor("lora.weight", [N_EMBD], 0, 3, True, len(model()))),
        "wrong-shape.bad": model(tensors=None, hp=[N_VOCAB + 1, N_EMBD, N_MULT, N_HEAD, 1, 16, 0],
                                 vocab=[b" \xe2\x81\x87 ", b"", b"", b" a", b"b"]),
        "norm-quantized.bad": model(tensors=[("tok_embeddings.weight", [N_EMBD, N_VOCAB], 0), ("norm.weight", [N_EMBD], 2)]),
        "no-tensors.bad": model(tensors=[("x", [1], 0)])[:HEADER_AND_VOCAB],
    }
    for name, data in files.items():
        with open(os.path.join(ROOT, name), "wb") as f:
            f.write(data)
    print("wrote %d files to %s" % (len(files), ROOT))


if __name__ == "__main__":
    main()
