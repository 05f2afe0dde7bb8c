#!/usr/bin/env python3
"""Writes tokenizer vectors for text with special-token strings in it, as llama.cpp encodes them.

llama.cpp's own vectors (ggml-vocab-*.gguf.inp/.out) hold no special-token text. These cover it: for
a vocabulary, strings that embed its control, user-defined and unknown tokens (the ones llama.cpp
re-marks as control by name too), each encoded by llama.cpp's llama-tokenize without BOS, once with
special tokens left as text (--no-parse-special) and once parsed.

usage: tests/data/vocab/special_vectors.py LLAMA_TOKENIZE VOCAB.gguf OUT_PREFIX
writes OUT_PREFIX.inp (strings, each followed by "\\n__ggml_vocab_test__\\n"), OUT_PREFIX.out (ids,
special text not parsed) and OUT_PREFIX.parsed.out (parsed). Needs only python3 and llama.cpp's
llama-tokenize (bench/llamacpp.sh builds llama.cpp; add the llama-tokenize target).
"""
import struct
import subprocess
import sys
import tempfile

EOG = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>", "</s>", "<end_of_turn>", "<eos>", "<turn|>",
       "<|tool_response>", "<|end_of_text|>", "<|eom_id|>"}


def read_gguf_vocab(path):
    """tokenizer.ggml.tokens and token_type of a GGUF file (metadata only)."""
    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    with open(path, "rb") as f:
        def rd(fmt):
            return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))[0]

        def rs():
            return f.read(rd("Q")).decode("utf-8", "surrogateescape")

        def value(t):
            if t == 8:
                return rs()
            if t == 9:
                et, n = rd("I"), rd("Q")
                return [value(et) for _ in range(n)]
            return rd(scalar[t])

        if f.read(4) != b"GGUF":
            sys.exit(f"{path}: not a GGUF file")
        rd("I")
        rd("Q")
        meta = {}
        for _ in range(rd("Q")):
            key = rs()
            meta[key] = value(rd("I"))
    return meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"]


def prompts_for(tokens, types):
    special = [(i, t) for i, (t, ty) in enumerate(zip(tokens, types)) if t and (ty in (2, 3, 4) or t in EOG)]
    picked = [t for _, t in special if t in EOG]
    picked += [t for i, t in special if types[i] == 4 and t not in EOG][:4]
    picked += [t for i, t in special if types[i] == 3 and t not in EOG][:4]
    picked += [t for i, t in special if types[i] == 2 and t not in EOG][:1]
    out = ["Hello world", " \n\n x", "a  b\t\tc"]
    for t in dict.fromkeys(picked):
        out += ["Hello" + t + " world", " " + t + "\n" + t + "x"]
    return out


def tokenize(tool, vocab, text, parse_special):
    with tempfile.NamedTemporaryFile("wb", suffix=".txt") as f:
        f.write(text.encode("utf-8"))
        f.flush()
        args = [tool, "-m", vocab, "-f", f.name, "--ids", "--no-bos", "--log-disable"]
        if not parse_special:
            args.append("--no-parse-special")
        r = subprocess.run(args, capture_output=True, check=True, timeout=300)
    ids = r.stdout.decode().strip().split("\n")[-1].strip("[]")
    return " " + " ".join(x.strip() for x in ids.split(",") if x.strip())


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    tool, vocab, prefix = sys.argv[1:]
    prompts = prompts_for(*read_gguf_vocab(vocab))
    with open(prefix + ".inp", "w", encoding="utf-8", newline="") as f:
        for p in prompts:
            f.write(p + "\n__ggml_vocab_test__\n")
    for parsed, suffix in ((False, ".out"), (True, ".parsed.out")):
        with open(prefix + suffix, "w", encoding="utf-8", newline="") as f:
            for p in prompts:
                f.write(tokenize(tool, vocab, p, parsed) + "\n")


if __name__ == "__main__":
    main()
