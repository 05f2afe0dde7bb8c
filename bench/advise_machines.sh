#!/usr/bin/env bash
# `lowbit advise` on described machines (docs/PERFORMANCE.md, "lowbit advise on described machines"):
# the named shapes on a 16 GB AVX2 laptop, a 64 GB 16-core workstation and a 24 GB GPU, one markdown
# row per shape and type. A described CPU is scaled from this machine's one-core kernel speeds
# (advise --help), so rerun this on a quiet machine of the ISA described.
# Usage: bench/advise_machines.sh [SHAPE ...]   (default: the shapes below)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LOWBIT:-build/release/bin/lowbit}
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(tinyllama-1.1b llama2-7b llama3-8b llama2-13b qwen3-30b-a3b mixtral-8x7b llama2-70b)
types=F16,Q8_0,Q6_K,Q4_K_M,Q4_0,IQ4_XS,Q2_K,GPTQ-W4G128,NF4
declare -A machines=(
  [laptop]="--ram 16G --bandwidth 60GB/s --cores 8 --isa avx2"
  [workstation]="--ram 64G --bandwidth 60GB/s --cores 16 --isa avx2"
  [gpu24]="--vram 24G --gpu-bandwidth 1008GB/s"
)
echo "| machine | shape | type | file GiB | memory GiB (ctx 4096, F16 cache) | fits | decode tok/s | prompt tok/s (512) |"
echo "|---|---|---|---:|---:|---|---:|---:|"
for m in laptop workstation gpu24; do
  for s in "${shapes[@]}"; do
    # shellcheck disable=SC2086
    "$bin" advise "$s" ${machines[$m]} -c 4096 --cache-type f16 -n 128 -p 512 --types "$types" --json |
      python3 -c '
import json, sys
m, s = sys.argv[1], sys.argv[2]
a = json.load(sys.stdin)
for c in a["candidates"]:
    if c.get("error"):
        print("| %s | %s | %s | | | cannot: %s | | |" % (m, s, c["type"], c["error"])); continue
    p = "%.1f" % c["prompt_tok_s"] if c["prompt_tok_s"] else "-"
    print("| %s | %s | %s | %.2f | %.2f | %s | %.1f | %s |" % (m, s, c["type"], c["file_bytes"] / 2**30, c["memory_bytes"] / 2**30,
          "yes" if c["fits"] else "no", c["decode_tok_s"], p))
' "$m" "$s"
  done
done
