#!/usr/bin/env bash
# lowbit's main job on the default model: install dependencies, build a release build, convert the
# model to GGUF, show what `lowbit inspect` sees, quantize it to Q4_K_M, print the perplexity of both
# and let both tell a story. The model is stories5M from ../shared/models
# when present; otherwise Karpathy's stories15M (llama2.c checkpoint + tokenizer) is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
scripts/install-deps.sh
scripts/build.sh release
lowbit="$root/build/release/bin/lowbit"
out="$root/out"
mkdir -p "$out"

shared="${LOWBIT_SHARED:-$root/../shared}"
if [ -f "$shared/models/stories5M/stories5M.bin" ]; then
  model="$shared/models/stories5M/stories5M.bin"
  vocab="$shared/models/stories260K/tok512.bin"
  name=stories5M
else
  name=stories15M
  model="$out/stories15M.bin"
  vocab="$out/tokenizer.bin"
  download() {  # url file: fetch once, atomically
    [ -f "$2" ] && return 0
    curl -fL --retry 3 -o "$2.part" "$1" && mv -f "$2.part" "$2"
  }
  download "https://huggingface.co/karpathy/tinyllamas/resolve/main/stories15M.bin" "$model" &&
    download "https://raw.githubusercontent.com/karpathy/llama2.c/master/tokenizer.bin" "$vocab" ||
    { echo "demo: could not download $name and its tokenizer; check the network" >&2; exit 1; }
fi

echo "== lowbit info"
"$lowbit" info
echo
echo "== lowbit convert $name -> $out/$name-f32.gguf"
"$lowbit" convert "$model" --vocab "$vocab" -o "$out/$name-f32.gguf"
echo
echo "== lowbit inspect $out/$name-f32.gguf"
"$lowbit" inspect "$out/$name-f32.gguf"
echo
echo "== lowbit quantize $name -> $out/$name-Q4_K_M.gguf (llama.cpp's Q4_K_M mix)"
"$lowbit" quantize "$out/$name-f32.gguf" "$out/$name-Q4_K_M.gguf" Q4_K_M
ls -l "$out/$name-f32.gguf" "$out/$name-Q4_K_M.gguf"

text="$shared/data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt"
if [ -f "$text" ]; then
  # The whole text, as llama.cpp's reference figures (stories5M F32: 6.2446 over all 159 chunks).
  for m in f32 Q4_K_M; do
    echo
    echo "== lowbit perplexity ($name $m, all chunks of 256 tokens)"
    "$lowbit" perplexity -m "$out/$name-$m.gguf" -f "$text" -c 256 2>/dev/null
  done
fi
for m in f32 Q4_K_M; do
  echo
  echo "== lowbit run ($name $m)"
  "$lowbit" run -m "$out/$name-$m.gguf" -p "Once upon a time" -n 120 --seed 7
done
