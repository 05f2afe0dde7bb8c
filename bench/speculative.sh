#!/usr/bin/env bash
# Speculative decoding beside plain decoding and beside llama.cpp's llama-lookup / llama-speculative,
# on the same files, prompt, threads and token count (greedy).
#   1. prompt lookup on a repetitive task: a TinyStories story, then the story told again from its
#      first sentence (the model rewrites what it was given), stories5M F32 and Q8_0;
#   2. a draft model on stories5M: drafted by stories260K (the same tok512 vocabulary, 1/20 of the
#      weights) and by its own Q2_K copy;
#   3. with SYNTH=1 the same on a memory-bound model: tinyllama-1.1b-shaped random weights
#      (`lowbit synth`, Q4_0, drafted by prompt lookup and by a Q2_K copy of the same weights).
# lowbit's figures are `lowbit bench --lookup|--model-draft -f PROMPT -n N -r R --json`, which runs
# plain and speculative generation in alternation (mean of R runs each, after a warm-up) and checks
# that the texts are identical. llama.cpp's are the "decoded N tokens in S seconds" line of
# llama-lookup / llama-speculative and the eval line of llama-completion (plain).
# Usage: bench/speculative.sh [-n TOKENS] [-r REPS] [-t THREADS]
# Environment: BUILD (default build/release), LLAMA_BIN (default /work/llama.cpp/build/bin),
# SHARED (default ../shared), WORK (default /tmp/lowbit-spec), SYNTH=1.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD:-build/release}"
lowbit="$(pwd)/$build/bin/lowbit"
llama="${LLAMA_BIN:-/work/llama.cpp/build/bin}"
shared="${SHARED:-../shared}"
work="${WORK:-/tmp/lowbit-spec}"
ntok=128 reps=3 threads=1
while [ $# -gt 0 ]; do
  case "$1" in
    -n) ntok="$2"; shift 2 ;;
    -r) reps="$2"; shift 2 ;;
    -t) threads="$2"; shift 2 ;;
    *) echo "usage: $0 [-n TOKENS] [-r REPS] [-t THREADS]" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
m5="$shared/models/stories5M"
# The rewrite task (stories5M's context is 256 tokens): the first paragraph of the second story of the
# TinyStories GPT-4 validation head (~50 tokens), then its first sentence again.
story=$(awk 'BEGIN{RS="<\\|endoftext\\|>\n"} NR==2{print; exit}' "$shared/data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt" | sed -n 1p)
printf '%s\n\n%s' "$story" "$(printf '%s' "$story" | sed 's/\. .*/./')" > "$work/rewrite.txt"
# A plain story opening for the draft model.
printf 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.' > "$work/story.txt"

echo "# host: $(lscpu | sed -n 's/^Model name: *//p'), CPU family $(lscpu | sed -n 's/^CPU family: *//p') ($(nproc) CPUs), $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# -n $ntok -r $reps -t $threads"
row() {  # label, then lowbit bench arguments
  local label="$1"; shift
  local out; out=$("$lowbit" bench "$@" -n "$ntok" -r "$reps" -t "$threads" --json)
  OUT="$out" python3 - "$label" <<'PY'
import json, os, sys
j = json.loads(os.environ["OUT"])
print(f"{sys.argv[1]:<44} plain {j['tg_plain']:8.1f} +-{j['tg_plain_std']:5.1f}  spec {j['tg']:8.1f} +-{j['tg_std']:5.1f}"
      f"  x{j['speedup']:.2f}  accepted {j['accepted']}/{j['drafted']} ({100*j['accept_rate']:.0f}%)"
      f"  {j['n_gen']} tokens in {j['forwards']+1} steps  identical={j['identical']}"
      + (f"  (no lookup drafter passes x{j['lookup_bound_speedup']:.2f})" if j.get('mode') == 'lookup' else ""))
PY
}
lcpp() {  # label, tool, arguments: llama.cpp's decode speed and accept rate
  local label="$1" tool="$2"; shift 2
  local err; err=$("$llama/$tool" "$@" -n "$ntok" --temp 0 -t "$threads" 2>&1 >/dev/null || true)
  ERR="$err" python3 - "$label" <<'PY' || echo "$label: (no result)"
import os, re, sys
t = os.environ["ERR"]
lab = sys.argv[1]
m = re.search(r"decoded\s+(\d+) tokens in\s+([\d.]+) seconds, speed:\s+([\d.]+)", t)
a = re.search(r"n_accept\s+=\s+(\d+)", t); d = re.search(r"n_drafted\s+=\s+(\d+)", t)
e = re.search(r"\beval time =\s+([\d.]+) ms /\s+(\d+) runs", t)
if m:
    acc = f"  accepted {a.group(1)}/{d.group(1)}" if a and d else ""
    print(f"{lab:<44} {float(m.group(3)):8.1f} tok/s ({m.group(1)} tokens){acc}")
elif e:
    print(f"{lab:<44} {1000*int(e.group(2))/float(e.group(1)):8.1f} tok/s ({e.group(2)} tokens)")
else:
    raise SystemExit(1)
PY
}

echo "## prompt lookup, rewrite task ($(wc -w < "$work/rewrite.txt") words)"
for f in stories5M-f32.gguf llamacpp/stories5M-q8_0.gguf; do
  row "lowbit lookup $(basename "$f")" -m "$m5/$f" --lookup -f "$work/rewrite.txt"
done
for f in llamacpp/stories5M-q8_0.gguf; do
  for i in 1 2; do
    lcpp "llama.cpp plain (completion) $(basename "$f")" llama-completion -no-cnv -m "$m5/$f" -f "$work/rewrite.txt"
    lcpp "llama.cpp llama-lookup $(basename "$f")" llama-lookup -m "$m5/$f" -f "$work/rewrite.txt" --spec-draft-n-max 8
  done
done

echo "## draft model, story continuation"
m260="$shared/models/stories260K/stories260K-f32.gguf"
row "lowbit f32 drafted by stories260K" -m "$m5/stories5M-f32.gguf" --model-draft "$m260" -f "$work/story.txt"
row "lowbit q8_0 drafted by stories260K" -m "$m5/llamacpp/stories5M-q8_0.gguf" --model-draft "$m260" -f "$work/story.txt"
row "lowbit f32 drafted by q2_k" -m "$m5/stories5M-f32.gguf" --model-draft "$m5/llamacpp/stories5M-q2_k.gguf" -f "$work/story.txt"
for i in 1 2; do
  lcpp "llama.cpp plain (completion) q8_0" llama-completion -no-cnv -m "$m5/llamacpp/stories5M-q8_0.gguf" -f "$work/story.txt"
  lcpp "llama.cpp llama-speculative q8_0 / 260K" llama-speculative -m "$m5/llamacpp/stories5M-q8_0.gguf" \
    -md "$m260" -f "$work/story.txt" --spec-draft-n-max 8 -td "$threads"
done

if [ "${SYNTH:-0}" = 1 ]; then
  t4="$work/tinyllama-q4_0.gguf" t2="$work/tinyllama-q2_k.gguf"
  [ -f "$t4" ] || "$lowbit" synth --shape tinyllama-1.1b --type Q4_0 -o "$t4" -q
  [ -f "$t2" ] || "$lowbit" synth --shape tinyllama-1.1b --type Q2_K -o "$t2" -q
  echo "## tinyllama-1.1b shape, random weights (memory-bound decode)"
  row "lowbit lookup tinyllama q4_0" -m "$t4" --lookup -f "$work/rewrite.txt"
  row "lowbit tinyllama q4_0 drafted by q2_k" -m "$t4" --model-draft "$t2" -f "$work/story.txt"
  lcpp "llama.cpp plain (completion) tinyllama q4_0" llama-completion -no-cnv -m "$t4" -f "$work/rewrite.txt"
  lcpp "llama.cpp llama-lookup tinyllama q4_0" llama-lookup -m "$t4" -f "$work/rewrite.txt" --spec-draft-n-max 8
  lcpp "llama.cpp llama-speculative tinyllama q4_0 / q2_k" llama-speculative -m "$t4" -md "$t2" -f "$work/story.txt" \
    --spec-draft-n-max 8 -td "$threads"
fi
