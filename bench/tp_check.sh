#!/usr/bin/env bash
# Tensor-parallel agreement with one process, under mpirun on this machine, for each model given:
#  - greedy text (`run --temp 0`) on 1..N ranks: identical, or the first token where it differs;
#  - `perplexity` on 1..N ranks and its relative difference from one rank;
#  - the distributions of N ranks against one rank's (`--save-logits` / `--kl-divergence`): mean and
#    max KL-divergence and top-1 agreement, which show how far the logits moved where text differs.
# --reduce bf16|q8 runs the ranks with that all-reduce precision (--tp-reduce), to measure its effect.
# Usage: bench/tp_check.sh [-n MAX_RANKS] [-c CTX] [--chunks K] [--tokens T] [--reduce P] MODEL.gguf ...
# Environment: BUILD (default build/release), MPIRUN_ARGS (more mpirun options, e.g.
# "--mca mpi_yield_when_idle 1" on a machine busy with other work), TEXT (default ../shared's TinyStories first100).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD:-build/release}"
lowbit="$build/bin/lowbit"
shared="${LOWBIT_SHARED:-$(pwd)/../shared}"
text="${TEXT:-$shared/data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt}"
max=4 ctx=256 chunks=8 tokens=64 reduce=f32
while [ $# -gt 0 ]; do
  case "$1" in
    -n) max="$2"; shift 2 ;;
    -c) ctx="$2"; shift 2 ;;
    --chunks) chunks="$2"; shift 2 ;;
    --tokens) tokens="$2"; shift 2 ;;
    --reduce) reduce="$2"; shift 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [-n MAX_RANKS] [-c CTX] [--chunks K] [--tokens T] [--reduce P] MODEL.gguf ..." >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mpirun=(timeout -k 5 1800 mpirun --allow-run-as-root --oversubscribe --bind-to none ${MPIRUN_ARGS:-})
echo "# host: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) CPUs), $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
for model in "$@"; do
  echo "## $model (all-reduce in $reduce)"
  gen=(run -m "$model" -p "Once upon a time" -n "$tokens" --temp 0 -t 1)
  ppl=(perplexity -m "$model" -f "$text" -c "$ctx" --chunks "$chunks" -t 1 --json)
  "$lowbit" "${gen[@]}" > "$work/text1" 2>/dev/null
  "$lowbit" "${ppl[@]}" --save-logits "$work/base.logits" > "$work/ppl1.json" 2>/dev/null
  p1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ppl"])' "$work/ppl1.json")
  printf "%-6s %-34s %-16s %-10s %-12s %-12s %s\n" ranks "greedy text ($tokens tokens)" perplexity "rel. diff" "KLD mean" "KLD max" "top-1 agree"
  printf "%-6s %-34s %-16s\n" 1 "(reference)" "$p1"
  for n in $(seq 2 "$max"); do
    "${mpirun[@]}" -np "$n" "$lowbit" "${gen[@]}" --tp-reduce "$reduce" > "$work/text$n" 2>/dev/null
    if cmp -s "$work/text1" "$work/text$n"; then same="identical"
    else same="differs from byte $( (cmp "$work/text1" "$work/text$n" || true) | sed -n 's/.*byte \([0-9]*\).*/\1/p')"; fi
    "${mpirun[@]}" -np "$n" "$lowbit" "${ppl[@]}" --tp-reduce "$reduce" --kl-divergence "$work/base.logits" > "$work/ppl$n.json" 2>/dev/null
    python3 - "$work/ppl$n.json" "$p1" "$n" "$same" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1])); p1 = float(sys.argv[2])
print(f"{sys.argv[3]:<6} {sys.argv[4]:<34} {j['ppl']:<16.10g} {abs(j['ppl'] - p1) / p1:<10.2e} {j['kld_mean']:<12.3e} {j['kld_max']:<12.3e} {100 * j['top1_agreement']:.2f}%")
EOF
  done
done
