#!/usr/bin/env bash
# Conversion streams: peak memory of `lowbit convert` against the input size and the largest tensor.
# Makes a synthetic llama2.c checkpoint (default: dim 2048, hidden 5632, 6 layers, 32000 vocab, the
# TinyLlama-1.1B layer shape, ~0.9 GB) and converts it to F32 and F16, printing max RSS.
# Usage: bench/convert_memory.sh [build dir, default build/release]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build/release}"
shared="${LOWBIT_SHARED:-$(pwd)/../shared}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$build/bin/lowbit_synth_llama2c" "$work/m.bin" 2048 5632 6 32 4 32000 2048
ls -l "$work/m.bin"
for t in f32 f16; do
  /usr/bin/time -f "convert --outtype $t: %e s wall, max RSS %M KiB" \
    "$build/bin/lowbit" convert "$work/m.bin" --vocab "$shared/models/llama2c-tokenizer/tokenizer.bin" \
    -o "$work/m-$t.gguf" --outtype "$t" -q
  ls -l "$work/m-$t.gguf"
  rm -f "$work/m-$t.gguf"
done
