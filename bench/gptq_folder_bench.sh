#!/usr/bin/env bash
# Decode / prefill speed of a GPTQ w4 g128 folder run directly (native W4G128 rows) beside Q4_0 and
# Q4_K GGUFs of the same shape (docs/PERFORMANCE.md). Random weights: the speed does not depend on
# the values. The folder quantizes lm_head too (GPTQModel's lm_head: true), so every matrix but the
# embedding is 4-bit, like the ggml mixes (whose output.weight is Q6_K).
# Usage: bench/gptq_folder_bench.sh [WORKDIR=/tmp/lowbit-gptq-bench] [SHAPE=tinyllama-1.1b] [THREADS=1,2] [REPS=2]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/build/release/bin"
work="${1:-/tmp/lowbit-gptq-bench}"
shape="${2:-tinyllama-1.1b}"
threads="${3:-1,2}"
reps="${4:-2}"
case "$shape" in
  tinyllama-1.1b) dims=(2048 5632 22 32 4 32000 2048) ;;
  llama2-7b) dims=(4096 11008 32 32 32 32000 4096) ;;
  *) echo "shape must be tinyllama-1.1b or llama2-7b" >&2; exit 2 ;;
esac
mkdir -p "$work"
[ -d "$work/$shape-gptq-w4g128" ] || "$bin/lowbit_synth_gptq_folder" "$work/$shape-gptq-w4g128" "${dims[@]}" 4 128 1 0 1
for t in Q4_0 Q4_K; do
  [ -f "$work/$shape-$t.gguf" ] || "$bin/lowbit" synth --shape "$shape" --type "$t" -o "$work/$shape-$t.gguf"
done
lscpu | grep 'Model name' || true
# Alternate the models per round so a shared machine's slow phases fall on all of them.
for round in 1 2; do
  for m in "$work/$shape-gptq-w4g128" "$work/$shape-Q4_0.gguf" "$work/$shape-Q4_K.gguf"; do
    echo "== round $round: $(basename "$m")"
    "$bin/lowbit" bench -m "$m" -p 256 -n 64 -t "$threads" -r "$reps" --no-mmap 2>&1
  done
done
