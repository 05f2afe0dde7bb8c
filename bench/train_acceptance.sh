#!/usr/bin/env bash
# Issue 24's acceptance runs, with the figures docs/QUALITY.md and docs/PERFORMANCE.md report:
#  1. QAT on stories5M (defaults) for Q2_K and Q4_K_M against `lowbit quantize` of the same mix (RTN,
#     and for Q2_K GPTQ onto the same mix): mean KLD vs F32 on the visible test text, ctx 256
#     (`lowbit perplexity --kl-divergence`); training time and tokens/s from the run.
#  1b. (qat-w2) the same on the int grid, 2-bit asymmetric groups of 64 (GPTQ folders): RTN and GPTQ
#     folders from `lowbit quantize HF_DIR --format gptq`, QAT from `lowbit qat --format gptq`.
#  2. QLoRA: `lowbit finetune` (defaults) of llama.cpp's stories5M Q4_K_M on the first 80% of the lines
#     of wikitext-2 wiki.test.raw; perplexity on the other 20% (ctx 256) without and with the adapter,
#     by lowbit and, when llama.cpp is built, by llama-perplexity --lora.
#  3. `lowbit lora merge` against llama-export-lora for the same inputs (bench/compare_gguf.py).
# Usage: bench/train_acceptance.sh [qat|qat-w2|finetune|merge|all] [threads, default 2]
# Extra qat flags (tuning runs) go in QAT_FLAGS; the outputs then get the suffix in TAG. QAT_TYPES picks
# the mixes of `qat` (default "Q2_K Q4_K_M").
# Every run prints its exact command; wall and CPU time come from /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
threads="${2:-2}"
shared="${LOWBIT_SHARED:-$(pwd)/../shared}"
llama="${LLAMACPP_BIN:-/work/llama.cpp/build/bin}"
lb="${LOWBIT:-$(pwd)/build/release/bin/lowbit}"
work="${WORK:-$(pwd)/out/train_acceptance}"
mkdir -p "$work"
f32="$shared/models/stories5M/stories5M-f32.gguf"
hf="$shared/models/stories5M/hf-f32"
calib=(--calib "$shared/data/tinystories/TinyStories-valid.hf-head.txt" --nsamples 128 --seqlen 256)
qat_flags=(${QAT_FLAGS:-})
tag="${TAG:-}"
test_text="$shared/data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt"
train_text="$shared/data/tinystories/TinyStories-valid.hf-head.txt"
lscpu | grep 'Model name' || true
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs (a shared machine: compare CPU time, not only wall time)"

run() {  # prints and runs a command under /usr/bin/time
  echo "+ $*"
  /usr/bin/time -f "  [%e s wall, %U s user, %S s sys, %M KiB max RSS]" "$@"
}

qat_log() {  # the QAT run's schedule, step lines at the checkpoints, held-out evaluations, summary and time line
  grep -E "^step .*/[0-9]+ .*(checkpoint)|^lowbit qat|^QAT for|^the fake-quantized|^held out|^held-out KL|^writing the state|^\+|\[" || true
}

size_of() { du -b "$1/model.safetensors" 2>/dev/null | cut -f1 || stat -c %s "$1"; }

kld() {  # model -> mean KLD line
  "$lb" perplexity -m "$1" -f "$test_text" -c 256 -t "$threads" --kl-divergence "$work/f32.logits" 2>/dev/null | tail -2
}

[ -f "$work/f32.logits" ] || "$lb" perplexity -m "$f32" -f "$test_text" -c 256 -t "$threads" --save-logits "$work/f32.logits" 2>/dev/null | tail -1

if [ "$what" = qat ] || [ "$what" = all ]; then
  for type in ${QAT_TYPES:-Q2_K Q4_K_M}; do
    if [ -z "$tag" ]; then
      run "$lb" quantize "$f32" "$work/ptq-$type.gguf" "$type" -t "$threads" > /dev/null
      echo "PTQ (RTN) $type ($(stat -c %s "$work/ptq-$type.gguf") bytes):"
      kld "$work/ptq-$type.gguf"
      if [ "$type" = Q2_K ]; then
        run "$lb" quantize "$f32" "$work/gptq-$type.gguf" "$type" --method gptq "${calib[@]}" -t "$threads" -q > /dev/null
        echo "GPTQ $type ($(stat -c %s "$work/gptq-$type.gguf") bytes):"
        kld "$work/gptq-$type.gguf"
      fi
    fi
    rm -f "$work/qat-$type$tag.gguf.ckpt"
    run "$lb" qat -m "$f32" --type "$type" --train "$train_text" -o "$work/qat-$type$tag.gguf" -t "$threads" "${qat_flags[@]}" 2>&1 | qat_log
    echo "QAT $type$tag ($(stat -c %s "$work/qat-$type$tag.gguf") bytes):"
    kld "$work/qat-$type$tag.gguf"
  done
fi

if [ "$what" = qat-w2 ] || [ "$what" = all ]; then
  grid=(--format gptq --bits 2 --group-size 64 --asym)
  if [ -z "$tag" ]; then
    rm -rf "$work/rtn-w2g64" "$work/gptq-w2g64"
    run "$lb" quantize "$hf" "$work/rtn-w2g64" "${grid[@]}" --method rtn -t "$threads" -q > /dev/null
    echo "RTN w2 g64 asym ($(size_of "$work/rtn-w2g64") bytes):"
    kld "$work/rtn-w2g64"
    run "$lb" quantize "$hf" "$work/gptq-w2g64" "${grid[@]}" --method gptq "${calib[@]}" -t "$threads" -q > /dev/null
    echo "GPTQ w2 g64 asym ($(size_of "$work/gptq-w2g64") bytes):"
    kld "$work/gptq-w2g64"
  fi
  rm -rf "$work/qat-w2g64$tag" "$work/qat-w2g64$tag.ckpt"
  run "$lb" qat -m "$hf" "${grid[@]}" --train "$train_text" -o "$work/qat-w2g64$tag" -t "$threads" "${qat_flags[@]}" 2>&1 | qat_log
  echo "QAT w2 g64 asym$tag ($(size_of "$work/qat-w2g64$tag") bytes):"
  kld "$work/qat-w2g64$tag"
fi

if [ "$what" = finetune ] || [ "$what" = all ]; then
  wiki="$shared/data/wikitext-2-raw/wiki.test.raw"
  base="$shared/models/stories5M/llamacpp/stories5M-q4_k_m.gguf"
  lines=$(wc -l < "$wiki")
  head -n $((lines * 8 / 10)) "$wiki" > "$work/wiki-train80.txt"
  tail -n +$((lines * 8 / 10 + 1)) "$wiki" > "$work/wiki-test20.txt"
  echo "base, lowbit:"
  "$lb" perplexity -m "$base" -f "$work/wiki-test20.txt" -c 256 -t "$threads" 2>/dev/null | tail -1
  run "$lb" finetune -m "$base" --train "$work/wiki-train80.txt" -o "$work/adapter.gguf" -t "$threads" 2>&1 \
    | grep -E "^step .*(checkpoint)|^lowbit finetune|^\+|\[" || true
  echo "with the adapter, lowbit:"
  "$lb" perplexity -m "$base" --lora "$work/adapter.gguf" -f "$work/wiki-test20.txt" -c 256 -t "$threads" 2>/dev/null | tail -1
  if [ -x "$llama/llama-perplexity" ]; then
    echo "base and with the adapter, llama.cpp:"
    "$llama/llama-perplexity" -m "$base" -f "$work/wiki-test20.txt" -c 256 -b 256 -t "$threads" 2>&1 | grep -E "Final estimate"
    "$llama/llama-perplexity" -m "$base" --lora "$work/adapter.gguf" -f "$work/wiki-test20.txt" -c 256 -b 256 -t "$threads" 2>&1 \
      | grep -E "Final estimate"
  else
    echo "llama.cpp not built at $llama: llama-perplexity --lora skipped"
  fi
fi

if [ "$what" = merge ] || [ "$what" = all ]; then
  [ -f "$work/adapter.gguf" ] || { echo "run '$0 finetune' first (it makes the adapter)"; exit 1; }
  for base in "$f32" "$shared/models/stories5M/llamacpp/stories5M-q4_k_m.gguf"; do
    name=$(basename "$base" .gguf)
    run "$lb" lora merge -m "$base" --lora "$work/adapter.gguf" -o "$work/merged-$name-lowbit.gguf" -t "$threads"
    if [ -x "$llama/llama-export-lora" ]; then
      run "$llama/llama-export-lora" -m "$base" --lora "$work/adapter.gguf" -o "$work/merged-$name-llamacpp.gguf" -t "$threads" > /dev/null
      python3 bench/compare_gguf.py "$work/merged-$name-lowbit.gguf" "$work/merged-$name-llamacpp.gguf" | tail -4
    else
      echo "llama.cpp not built at $llama: llama-export-lora comparison skipped"
    fi
  done
fi
