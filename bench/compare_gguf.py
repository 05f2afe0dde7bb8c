#!/usr/bin/env python3
"""Compares the tensors of two GGUF files by name (standard library only).

F32 and F16 tensors are compared value by value (max absolute difference, and how many values
differ); the block types byte by byte. Prints one line per tensor and a summary; exit code 1 if a name
or type is missing or differs. Used by bench/train_acceptance.sh to compare `lowbit lora merge`
with llama.cpp's `llama-export-lora`.

Usage: bench/compare_gguf.py A.gguf B.gguf
"""
import struct
import sys

TYPE_NAMES = {0: "F32", 1: "F16"}
# Other types compared byte for byte: (elements, bytes) per block.
BLOCKS = {2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 10: (256, 84), 11: (256, 110),
          12: (256, 144), 13: (256, 176), 14: (256, 210), 20: (32, 18), 23: (256, 136), 30: (1, 2)}
SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


class Reader:
    def __init__(self, path):
        self.data = open(path, "rb").read()
        self.pos = 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take("Q")
        s = self.data[self.pos:self.pos + n].decode("utf-8", "replace")
        self.pos += n
        return s

    def value(self, t):
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.take("I"), self.take("Q")
            return [self.value(et) for _ in range(n)]
        return self.take(SCALAR[t])


def tensors(path):
    r = Reader(path)
    if r.take("4s") != b"GGUF":
        sys.exit(f"{path}: not a GGUF file")
    _version, n_tensors, n_kv = r.take("I"), r.take("Q"), r.take("Q")
    kv = {}
    for _ in range(n_kv):
        key = r.string()
        kv[key] = r.value(r.take("I"))
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        dims = [r.take("Q") for _ in range(r.take("I"))]
        infos.append((name, dims, r.take("I"), r.take("Q")))
    align = kv.get("general.alignment", 32)
    start = (r.pos + align - 1) // align * align
    out = {}
    for name, dims, t, off in infos:
        n = 1
        for d in dims:
            n *= d
        if t in TYPE_NAMES:
            size = n * (4 if t == 0 else 2)
            raw = r.data[start + off:start + off + size]
            out[name] = (t, dims, struct.unpack("<%d%s" % (n, "f" if t == 0 else "e"), raw))
        elif t in BLOCKS:
            per, size = BLOCKS[t]
            out[name] = (t, dims, r.data[start + off:start + off + n // per * size])
        else:
            out[name] = (t, dims, None)
    return out


def main():
    a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
    bad = False
    worst = 0.0
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            print(f"{name}: only in {'A' if name in a else 'B'}")
            bad = True
            continue
        (ta, da, va), (tb, db, vb) = a[name], b[name]
        if ta != tb or da != db:
            print(f"{name}: type/shape {ta} {da} vs {tb} {db}")
            bad = True
            continue
        if va is None or vb is None:
            print(f"{name}: type {ta} (not compared)")
            continue
        if isinstance(va, bytes):
            same = va == vb
            bad = bad or not same
            print(f"{name}: type {ta} {len(va)} bytes, {'identical' if same else 'DIFFERENT'}")
            continue
        diffs = [abs(x - y) for x, y in zip(va, vb)]
        mx = max(diffs) if diffs else 0.0
        worst = max(worst, mx)
        print(f"{name}: {TYPE_NAMES[ta]} {len(va)} values, {sum(d > 0 for d in diffs)} differ, max |diff| {mx:.3g}")
    print(f"summary: {len(a)} tensors, largest difference {worst:.3g}{', MISMATCH' if bad else ''}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
