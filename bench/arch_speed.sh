#!/usr/bin/env bash
# Llama files' speed before and after the issue-25 architecture rows: two lowbit binaries (BASE, NEW)
# on stories5M Q4_K_M and a TinyLlama-1.1B Q4_0 synthetic, alternating rounds so that drift on a
# shared machine hits both. Usage: bench/arch_speed.sh BASE_LOWBIT NEW_LOWBIT [rounds] [threads]
set -euo pipefail
base="$1"; new="$2"; rounds="${3:-3}"; threads="${4:-2}"
cd "$(dirname "$0")/.."
tiny=/tmp/lowbit_arch_speed_tinyllama_q4_0.gguf
[ -f "$tiny" ] || "$new" synth --shape tinyllama-1.1b -o "$tiny" --type Q4_0
lscpu | grep 'Model name'
for model in ../shared/models/stories5M/llamacpp/stories5M-q4_k_m.gguf "$tiny"; do
  for r in $(seq "$rounds"); do
    for b in "$base" "$new"; do
      "$b" bench -m "$model" -p 64 -n 32 -t "$threads" -r 3 --json 2>/dev/null |
        python3 -c "import json,sys; j=json.load(sys.stdin); print('%-40s %-28s pp %8.1f +- %6.1f  tg %7.1f +- %5.1f tok/s' % ('$(basename "$model")', '$b'[-28:], j['pp'], j['pp_std'], j['tg'], j['tg_std']))"
    done
  done
done
