#!/usr/bin/env python3
"""Writes tests/corpus/bnb_state and tests/corpus/bnb_tensors: small bitsandbytes quant states and
safetensors files, valid ones (.ok) and ones broken in exactly one field (.bad). Standard library only."""
import json
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "corpus")
NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
       -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
       0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
       0.7229568362236023, 1.0]
FP4 = [v / 12.0 for v in [0, 0.0625, 8, 12, 4, 6, 2, 3, -0.0, -0.0625, -8, -12, -4, -6, -2, -3]]


def f32(vals):
    return b"".join(struct.pack("<f", v) for v in vals)


def safetensors(tensors):
    """tensors: list of (name, dtype, shape, bytes)."""
    header, data, off = {}, b"", 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        data += raw
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def bnb4(prefix="m", qtype="nf4", rows=2, cols=64, bs=64, nested=True, state=None, drop=(), override=None):
    rnd = random.Random(1)
    n = rows * cols
    blocks = (n + bs - 1) // bs
    st = {"quant_type": qtype, "blocksize": bs, "dtype": "bfloat16", "shape": [rows, cols]}
    if nested:
        st.update({"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.0123})
    if state is not None:
        st = state
    t = {
        "weight": ("U8", [(n + 1) // 2, 1], bytes(rnd.randrange(256) for _ in range((n + 1) // 2))),
        "weight.absmax": ("U8", [blocks], bytes(rnd.randrange(256) for _ in range(blocks))) if nested
        else ("F32", [blocks], f32([0.05 + 0.01 * i for i in range(blocks)])),
        "weight.quant_map": ("F32", [16], f32(NF4 if qtype == "nf4" else FP4)),
    }
    if nested:
        nb = (blocks + 255) // 256
        t["weight.nested_absmax"] = ("F32", [nb], f32([0.02] * nb))
        t["weight.nested_quant_map"] = ("F32", [256], f32([-1 + 2 * i / 255 for i in range(256)]))
    js = (st if isinstance(st, str) else json.dumps(st)).encode()
    t["weight.quant_state.bitsandbytes__" + ("nf4" if qtype not in ("nf4", "fp4") else qtype)] = ("U8", [len(js)], js)
    for k, v in (override or {}).items():
        t[k] = v
    return safetensors([(prefix + "." + k, *v) for k, v in t.items() if k not in drop])


def bnb8(prefix="m", rows=3, cols=32, override=None, drop=()):
    rnd = random.Random(2)
    t = {
        "weight": ("I8", [rows, cols], bytes(rnd.randrange(256) for _ in range(rows * cols))),
        "SCB": ("F32", [rows], f32([0.5 + i for i in range(rows)])),
        "weight_format": ("U8", [], b"\x00"),
    }
    for k, v in (override or {}).items():
        t[k] = v
    return safetensors([(prefix + "." + k, *v) for k, v in t.items() if k not in drop])


def main():
    tensors = {
        "nf4-double-quant.ok": bnb4(),
        "fp4-plain-block-32.ok": bnb4(qtype="fp4", nested=False, bs=32),
        "nf4-block-4096-spans-rows.ok": bnb4(rows=3, cols=96, bs=4096, nested=False),
        "int8.ok": bnb8(),
        "state-not-json.bad": bnb4(state="{quant_type: nf4"),
        "state-quant-type-af4.bad": bnb4(state={"quant_type": "af4", "blocksize": 64, "dtype": "float16", "shape": [2, 64]}),
        "state-type-disagrees-with-name.bad": bnb4(override={"weight.quant_map": ("F32", [16], f32(NF4))},
                                                   state={"quant_type": "fp4", "blocksize": 64, "dtype": "float16", "shape": [2, 64]}),
        "state-blocksize-100.bad": bnb4(nested=False, state={"quant_type": "nf4", "blocksize": 100, "dtype": "float16", "shape": [2, 64]}),
        "state-missing-shape.bad": bnb4(nested=False, state={"quant_type": "nf4", "blocksize": 64, "dtype": "float16"}),
        "weight-bytes-disagree-with-shape.bad": bnb4(nested=False, override={"weight": ("U8", [32, 1], bytes(32))}),
        "nested-absmax-missing.bad": bnb4(drop=("weight.nested_absmax",)),
        "nested-tensors-without-nested-state.bad": bnb4(nested=False, override={"weight.nested_absmax": ("F32", [1], f32([1.0]))}),
        "absmax-wrong-length.bad": bnb4(nested=False, override={"weight.absmax": ("F32", [3], f32([1, 1, 1]))}),
        "absmax-nan.bad": bnb4(nested=False, override={"weight.absmax": ("F32", [2], f32([1.0, float("nan")]))}),
        "absmax-f16.bad": bnb4(nested=False, override={"weight.absmax": ("F16", [2], b"\x00\x3c\x00\x3c")}),
        "quant-map-not-nf4.bad": bnb4(override={"weight.quant_map": ("F32", [16], f32([i / 15 for i in range(16)]))}),
        "nested-quant-map-short.bad": bnb4(override={"weight.nested_quant_map": ("F32", [128], f32([0.0] * 128))}),
        "int8-scb-wrong-length.bad": bnb8(override={"SCB": ("F32", [2], f32([1, 1]))}),
        "int8-weight-format-col.bad": bnb8(override={"weight_format": ("U8", [], b"\x01")}),
        "int8-weight-uint8.bad": bnb8(override={"weight": ("U8", [3, 32], bytes(96))}),
        "int8-scb-negative.bad": bnb8(override={"SCB": ("F32", [3], f32([1, -1, 1]))}),
    }
    for name, raw in tensors.items():
        with open(os.path.join(OUT, "bnb_tensors", name), "wb") as f:
            f.write(raw)
    states = {
        "nf4-nested.ok": '{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [2048, 5632], '
                         '"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.0123}',
        "fp4.ok": '{"quant_type": "fp4", "blocksize": 4096, "dtype": "float16", "shape": [4096, 4096]}',
        "not-an-object.bad": '[1, 2]',
        "nested-offset-string.bad": '{"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [2, 64], '
                                    '"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": "0.1"}',
        "nested-dtype-float16.bad": '{"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [2, 64], '
                                    '"nested_blocksize": 256, "nested_dtype": "float16", "nested_offset": 0.1}',
        "nested-blocksize-missing.bad": '{"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [2, 64], '
                                        '"nested_dtype": "float32", "nested_offset": 0.1}',
        "shape-negative.bad": '{"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [-2, 64]}',
        "shape-huge.bad": '{"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [2000000000, 2000000000]}',
        "dtype-int8.bad": '{"quant_type": "nf4", "blocksize": 64, "dtype": "int8", "shape": [2, 64]}',
        "blocksize-float.bad": '{"quant_type": "nf4", "blocksize": 64.5, "dtype": "float16", "shape": [2, 64]}',
        "quant-type-missing.bad": '{"blocksize": 64, "dtype": "float16", "shape": [2, 64]}',
        "truncated.bad": '{"quant_type": "nf4", "blocksize": 64, "dtyp',
    }
    for name, text in states.items():
        with open(os.path.join(OUT, "bnb_state", name), "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
