#!/usr/bin/env bash
# Decode of a mixture of experts against a dense model, lowbit beside llama.cpp (issue 25):
# the `qwen3-30b-a3b` synthetic shape in Q4_K_M (~17 GB: 128 experts, 8 per token, so a token reads
# ~1.8 GB) and the dense `llama3.2-3b` shape in Q4_K_M (~2 GB, every byte read per token), both
# written by `lowbit synth`. For each file: lowbit bench (tok/s, the weight bytes a token reads, and
# the GB/s that makes) and llama-bench tg on the same threads. A MoE decode that reads only its
# experts streams them at the dense model's GB/s; tok/s then scale as the bytes per token.
# Usage: bench/moe_speed.sh [-n TOKENS] [-r REPS] [-t THREADS]
# Environment: BUILD (default build/release), LLAMA_BIN (default /work/llama.cpp/build/bin),
# WORK (default /tmp/lowbit-moe: the two files are written there once and reused).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD:-build/release}"
lowbit="$(pwd)/$build/bin/lowbit"
llama="${LLAMA_BIN:-/work/llama.cpp/build/bin}"
work="${WORK:-/tmp/lowbit-moe}"
ntok=64 reps=3 threads=2
while [ $# -gt 0 ]; do
  case "$1" in
    -n) ntok="$2"; shift 2 ;;
    -r) reps="$2"; shift 2 ;;
    -t) threads="$2"; shift 2 ;;
    *) echo "usage: $0 [-n TOKENS] [-r REPS] [-t THREADS]" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
for shape in qwen3-30b-a3b llama3.2-3b; do
  f="$work/$shape-Q4_K_M.gguf"
  [ -f "$f" ] || "$lowbit" synth --shape "$shape" --type Q4_K_M -t "$threads" -o "$f" >&2
done
lscpu | grep 'Model name' >&2
printf '%-26s %10s %12s %10s %14s\n' file "MB/token" "lowbit tg/s" "GB/s" "llama.cpp tg/s"
for shape in qwen3-30b-a3b llama3.2-3b; do
  f="$work/$shape-Q4_K_M.gguf"
  j=$("$lowbit" bench -m "$f" -p 0 -n "$ntok" -r "$reps" -t "$threads" --json)
  theirs=$("$llama/llama-bench" -m "$f" -p 0 -n "$ntok" -r "$reps" -t "$threads" -o json 2>/dev/null |
    python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)[0]["avg_ts"])')
  python3 - "$j" "$shape" "$theirs" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
r = r[0] if isinstance(r, list) else r
print("%-26s %10.1f %12.2f %10.2f %14s" % (sys.argv[2] + " Q4_K_M", r["bytes_per_token"] / 1e6, r["tg"], r["gbps"], sys.argv[3]))
EOF
done
