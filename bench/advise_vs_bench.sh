#!/usr/bin/env bash
# Predicted (lowbit advise) against measured (lowbit bench) decode and prompt speed, per file, on
# this machine. Each file: `advise --no-cache` (measures the machine again, so that prediction and
# measurement see the same minutes of a shared machine), then `bench` for decode from an empty cache
# (-p 0 -n N: what advise's decode_tok_s means) and for one prompt batch (-p P -n 0; P is cut to the
# model's context, as advise cuts it).
# Usage: bench/advise_vs_bench.sh [-t THREADS] [-r REPS] [-n GEN] FILE[:PROMPT] ...   (PROMPT default 512)
# Prints a markdown table (docs/PERFORMANCE.md, "lowbit advise: predicted against measured"); ratio
# is measured / predicted.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LOWBIT:-build/release/bin/lowbit}
threads=2 reps=3 gen=128
while getopts "t:r:n:" o; do
  case $o in t) threads=$OPTARG ;; r) reps=$OPTARG ;; n) gen=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "usage: $0 [-t THREADS] [-r REPS] [-n GEN] FILE[:PROMPT] ..." >&2; exit 2; }
echo "| file | threads | probe GB/s | decode predicted | decode measured | ratio | prompt tokens | prompt predicted | prompt measured | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for arg in "$@"; do
  file=${arg%%:*}
  prompt=512
  [ "$arg" != "$file" ] && prompt=${arg#*:}
  adv=$("$bin" advise "$file" --json --no-cache -t "$threads" -n "$gen" -p "$prompt" --types F16)
  ctx=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["as_is"]["ctx"])' "$adv")
  prompt=$((prompt < ctx ? prompt : ctx))
  tg=$("$bin" bench -m "$file" -t "$threads" -p 0 -n "$gen" -r "$reps" --json)
  pp=$("$bin" bench -m "$file" -t "$threads" -p "$prompt" -n 0 -r "$reps" --json)
  python3 - "$file" "$threads" "$prompt" "$adv" "$tg" "$pp" <<'PY'
import json, os, sys
f, t, p = sys.argv[1], sys.argv[2], sys.argv[3]
adv, tg, pp = (json.loads(s) for s in sys.argv[4:7])
a = adv["as_is"]
print("| %s (%s) | %s | %.1f | %.1f | %.1f +- %.1f | %.2f | %s | %.1f | %.1f +- %.1f | %.2f |" % (
    os.path.basename(f), a["type"], t, adv["hardware"]["bandwidth_gbps"], a["decode_tok_s"], tg["tg"], tg["tg_std"],
    tg["tg"] / a["decode_tok_s"], p, a["prompt_tok_s"], pp["pp"], pp["pp_std"], pp["pp"] / a["prompt_tok_s"]))
PY
done
