#!/usr/bin/env python3
"""Regenerates the broken-file corpus of the GPTQ / AWQ readers (standard library only):
tests/corpus/quant_tensors/*.{ok,bad} (safetensors files; __metadata__ "quantization_config" holds
the config each is read under, see tests/formats/corpus_test.cc) and tests/corpus/quant_config/*.
Each .bad file breaks one rule the reader checks; .ok files are valid layers. The packing here is
written from FORMATS.md B2/B3, independently of the C++ code it tests.

Usage: scripts/make_quant_corpus.py   (from the repository root)
"""
import json
import os
import random
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "corpus")
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def safetensors(tensors, config=None):
    """tensors: list of (name, dtype, shape, bytes). Returns the file's bytes."""
    header = {"__metadata__": {"format": "pt"}}
    if config is not None:
        header["__metadata__"]["quantization_config"] = config if isinstance(config, str) else json.dumps(config)
    offset = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors)


def f16(values):
    return b"".join(struct.pack("<e", v) for v in values)


def i32(values):
    return b"".join(struct.pack("<I", v & 0xFFFFFFFF) for v in values)


def pack_stream(values, bits):
    """LSB-first bit stream of `values` cut into 32-bit words (GPTQ's order, 3-bit included)."""
    acc, n = 0, 0
    for k, v in enumerate(values):
        acc |= (v & ((1 << bits) - 1)) << (k * bits)
        n += bits
    return [(acc >> (32 * w)) & 0xFFFFFFFF for w in range(n // 32)]


def gptq_layer(rng, bits=4, rows=16, cols=32, group=16, act_order=True, v1=True, sym=False, bias=True):
    maxq = (1 << bits) - 1
    groups = (cols + group - 1) // group
    codes = [[rng.randint(0, maxq) for _ in range(cols)] for _ in range(rows)]
    if sym:
        zeros = [[1 << (bits - 1)] * rows for _ in range(groups)]
    else:
        zeros = [[rng.randint(1, maxq) for _ in range(rows)] for _ in range(groups)]
    scales = [[rng.choice([0.0078125, 0.015625, 0.01171875, 0.0234375]) for _ in range(rows)] for _ in range(groups)]
    g_idx = [i // group for i in range(cols)]
    if act_order:
        rng.shuffle(g_idx)
    per_chunk = 32 if bits == 3 else 32 // bits
    words_per_chunk = 3 if bits == 3 else 1
    qweight_rows = cols * bits // 32
    qweight = [[0] * rows for _ in range(qweight_rows)]
    for o in range(rows):
        for c in range(cols // per_chunk):
            ws = pack_stream(codes[o][c * per_chunk:(c + 1) * per_chunk], bits)
            for k in range(words_per_chunk):
                qweight[c * words_per_chunk + k][o] = ws[k]
    qzeros = []
    for g in range(groups):
        stored = [z - 1 if v1 else z for z in zeros[g]]
        qzeros.append(pack_stream(stored, bits))
    tensors = [
        ("m.qweight", "I32", [qweight_rows, rows], i32([w for row in qweight for w in row])),
        ("m.qzeros", "I32", [groups, rows * bits // 32], i32([w for row in qzeros for w in row])),
        ("m.scales", "F16", [groups, rows], f16([s for row in scales for s in row])),
        ("m.g_idx", "I32", [cols], i32(g_idx)),
    ]
    if bias:
        tensors.append(("m.bias", "F16", [rows], f16([0.5] * rows)))
    return tensors


def awq_layer(rng, rows=16, cols=32, group=16):
    groups = cols // group
    codes = [[rng.randint(0, 15) for _ in range(cols)] for _ in range(rows)]
    zeros = [[rng.randint(0, 15) for _ in range(rows)] for _ in range(groups)]

    def pack_out(values):  # values indexed by output -> words along the output, AWQ order
        return [sum(values[8 * c + AWQ_ORDER[i]] << (4 * i) for i in range(8)) for c in range(rows // 8)]

    qweight = [w for i in range(cols) for w in pack_out([codes[o][i] for o in range(rows)])]
    qzeros = [w for g in range(groups) for w in pack_out(zeros[g])]
    return [
        ("m.qweight", "I32", [cols, rows // 8], i32(qweight)),
        ("m.qzeros", "I32", [groups, rows // 8], i32(qzeros)),
        ("m.scales", "F16", [groups, rows], f16([0.015625] * (groups * rows))),
    ]


GPTQ = {"bits": 4, "group_size": 16, "desc_act": True, "sym": False, "quant_method": "gptq", "checkpoint_format": "gptq"}
AWQ = {"quant_method": "awq", "bits": 4, "group_size": 16, "zero_point": True, "version": "gemm"}


def replace(tensors, name, dtype=None, shape=None, data=None):
    out = []
    for n, d, s, b in tensors:
        if n == name:
            d, s, b = dtype or d, shape if shape is not None else s, data if data is not None else b
        out.append((n, d, s, b))
    return out


def drop(tensors, name):
    return [t for t in tensors if t[0] != name]


def with_config(**changes):
    c = dict(GPTQ)
    c.update(changes)
    return c


def main():
    rng = random.Random(19)
    out = {}
    base = gptq_layer(rng)
    out["valid-gptq-v1.ok"] = safetensors(base, GPTQ)
    out["valid-gptq-v2-sym.ok"] = safetensors(gptq_layer(rng, v1=False, sym=True), with_config(sym=True, checkpoint_format="gptq_v2"))
    out["valid-gptq-3bit.ok"] = safetensors(gptq_layer(rng, bits=3, rows=32, cols=64, group=32), with_config(bits=3, group_size=32))
    out["valid-gptq-8bit-partial-group.ok"] = safetensors(gptq_layer(rng, bits=8, rows=16, cols=40, group=16),
                                                          with_config(bits=8))
    out["valid-gptq-default-config.ok"] = safetensors(gptq_layer(rng, group=128, cols=288))
    awq = awq_layer(rng)
    out["valid-awq.ok"] = safetensors(awq, AWQ)

    out["qzeros-missing.bad"] = safetensors(drop(base, "m.qzeros"), GPTQ)
    out["scales-missing.bad"] = safetensors(drop(base, "m.scales"), GPTQ)
    out["g_idx-missing-with-desc-act.bad"] = safetensors(drop(base, "m.g_idx"), GPTQ)
    out["qweight-f32.bad"] = safetensors(replace(base, "m.qweight", dtype="F32"), GPTQ)
    out["qweight-shape-for-8bit.bad"] = safetensors(base, with_config(bits=8))
    out["qweight-rows-short.bad"] = safetensors(replace(base, "m.qweight", shape=[2, 32]), GPTQ)
    out["qzeros-groups-for-group-8.bad"] = safetensors(base, with_config(group_size=8))
    out["qzeros-i16.bad"] = safetensors(replace(base, "m.qzeros", dtype="I16", shape=[2, 4]), GPTQ)
    out["scales-nan.bad"] = safetensors(replace(base, "m.scales", data=f16([float("nan")] * 32)), GPTQ)
    out["scales-int.bad"] = safetensors(replace(base, "m.scales", dtype="I16"), GPTQ)
    out["scales-too-few-groups.bad"] = safetensors(replace(base, "m.scales", shape=[1, 16], data=f16([0.5] * 16)), GPTQ)
    out["g_idx-out-of-range.bad"] = safetensors(replace(base, "m.g_idx", data=i32([5] + [0] * 15 + [1] * 16)), GPTQ)
    out["g_idx-negative.bad"] = safetensors(replace(base, "m.g_idx", data=i32([-1] + [0] * 15 + [1] * 16)), GPTQ)
    out["g_idx-uneven-groups.bad"] = safetensors(replace(base, "m.g_idx", data=i32([0] * 20 + [1] * 12)), GPTQ)
    out["g_idx-act-order-without-desc-act.bad"] = safetensors(base, with_config(desc_act=False))
    out["g_idx-i8.bad"] = safetensors(replace(base, "m.g_idx", dtype="I8", shape=[128]), GPTQ)
    out["bias-wrong-length.bad"] = safetensors(replace(base, "m.bias", shape=[8], data=f16([0.5] * 8)), GPTQ)
    out["sym-but-zeros-differ.bad"] = safetensors(base, with_config(sym=True))
    out["g_idx-longer-than-inputs.bad"] = safetensors(
        replace(base, "m.g_idx", shape=[36], data=i32([0] * 16 + [1] * 16 + [2] * 4)), GPTQ)
    out["3bit-qweight-rows-not-whole-runs.bad"] = safetensors(base, with_config(bits=3))
    out["empty-scales.bad"] = safetensors(drop(base, "m.scales") + [("m.scales", "F16", [0, 16], b"")], GPTQ)
    out["3bit-in-int16.bad"] = safetensors(base, with_config(bits=3, pack_dtype="int16"))
    out["config-not-json.bad"] = safetensors(base, "{bits: 4")
    out["config-marlin.bad"] = safetensors(base, with_config(checkpoint_format="marlin"))
    out["config-excludes-quantized-module.bad"] = safetensors(base, with_config(dynamic={"-:m": {}}))
    out["awq-with-g_idx.bad"] = safetensors(awq + [("m.g_idx", "I32", [32], i32([i // 16 for i in range(32)]))], AWQ)
    out["awq-gptq-tensors.bad"] = safetensors(drop(base, "m.g_idx"), AWQ)
    out["awq-scales-shape.bad"] = safetensors(replace(awq, "m.scales", shape=[1, 32]), AWQ)
    out["awq-gemv.bad"] = safetensors(awq, dict(AWQ, version="gemv"))
    out["awq-bits-8.bad"] = safetensors(awq, dict(AWQ, bits=8))
    out["awq-group-not-dividing.bad"] = safetensors(awq, dict(AWQ, group_size=12))
    write(os.path.join(ROOT, "quant_tensors"), out)

    cfg = {
        "autogptq.ok": {"bits": 4, "group_size": 128, "damp_percent": 0.01, "desc_act": True, "static_groups": False,
                        "sym": True, "true_sequential": True, "model_name_or_path": None,
                        "model_file_base_name": "model", "quant_method": "gptq", "checkpoint_format": "gptq"},
        "gptqmodel.ok": {"bits": 4, "dynamic": {"-:.*gate": {}, "+:.*down": {"bits": 8}}, "group_size": 128,
                         "desc_act": False, "sym": False, "lm_head": False, "quant_method": "gptq",
                         "checkpoint_format": "gptq_v2", "pack_dtype": "int32",
                         "meta": {"quantizer": ["gptqmodel:1.9.0"], "damp_percent": 0.01}},
        "config-json-awq.ok": {"architectures": ["LlamaForCausalLM"], "quantization_config": {
            "quant_method": "awq", "zero_point": True, "group_size": 128, "bits": 4, "version": "gemm",
            "modules_to_not_convert": None}},
        "autoawq-legacy.ok": {"zero_point": True, "q_group_size": 128, "w_bit": 4, "version": "GEMM"},
        "bits-missing.bad": {"group_size": 128},
        "bits-5.bad": {"bits": 5, "group_size": 128},
        "bits-string.bad": {"bits": "4", "group_size": 128},
        "group-zero.bad": {"bits": 4, "group_size": 0},
        "marlin.bad": {"bits": 4, "group_size": 128, "checkpoint_format": "marlin"},
        "is-marlin-format.bad": {"bits": 4, "group_size": 128, "is_marlin_format": True},
        "bitblas.bad": {"bits": 4, "group_size": 128, "quant_method": "bitblas"},
        "awq-gemv-fast.bad": {"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemv_fast"},
        "awq-llm-awq.bad": {"quant_method": "awq", "bits": 4, "group_size": 128, "backend": "llm-awq"},
        "awq-no-zero-point.bad": {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": False},
        "pack-dtype-uint.bad": {"bits": 4, "group_size": 128, "pack_dtype": "uint32"},
        "dynamic-pack-dtype.bad": {"bits": 4, "group_size": 128, "dynamic": {".*": {"pack_dtype": "int16"}}},
        "dynamic-bad-regex.bad": {"bits": 4, "group_size": 128, "dynamic": {"+:(((": {}}},
        "dynamic-not-object.bad": {"bits": 4, "group_size": 128, "dynamic": [1, 2]},
        "meta-quantizer-number.bad": {"bits": 4, "group_size": 128, "meta": {"quantizer": 1}},
        "synonym-conflict.bad": {"bits": 4, "w_bit": 3, "group_size": 128},
        "quant-method-fp8.bad": {"quant_method": "fp8", "weight_block_size": [128, 128]},
    }
    texts = {k: json.dumps(v, indent=2).encode() for k, v in cfg.items()}
    texts["not-json.bad"] = b"{\"bits\": 4, "
    texts["array.bad"] = b"[4, 128]"
    texts["deep.bad"] = b"{\"quantization_config\": " + b"[" * 5000 + b"]" * 5000 + b"}"
    write(os.path.join(ROOT, "quant_config"), texts)


def write(folder, files):
    os.makedirs(folder, exist_ok=True)
    for name, data in sorted(files.items()):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    print(f"{folder}: {len(files)} files")


if __name__ == "__main__":
    main()
