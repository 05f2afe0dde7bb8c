#!/usr/bin/env bash
# Tensor-parallel decode speed and memory on one machine, for each model given:
#   1 rank x 1 thread, 1 rank x 2 threads, 2 ranks x 1 thread (mpirun, shared memory),
# each `lowbit bench -p 0 -n N -r R --json` (generated tokens per second, mean of R repetitions), in
# alternating order over several rounds so that a shared machine's drift hits all three alike; then
# the peak RSS of every rank for 1, 2 and 4 ranks (`run`, GNU time's %M).
# Usage: bench/tp_speed.sh [--rounds K] [-n TOKENS] [-r REPS] MODEL.gguf ...
# Environment: BUILD (default build/release), MPIRUN_ARGS (more mpirun options, e.g.
# "--mca mpi_yield_when_idle 1" on a machine busy with other work).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD:-build/release}"
lowbit="$(pwd)/$build/bin/lowbit"
rounds=3 ntok=64 reps=3
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    -n) ntok="$2"; shift 2 ;;
    -r) reps="$2"; shift 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--rounds K] [-n TOKENS] [-r REPS] MODEL.gguf ..." >&2; exit 2; }
mpirun=(timeout -k 5 1800 mpirun --allow-run-as-root --oversubscribe --bind-to none ${MPIRUN_ARGS:-})
tg() { python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["tg"])'; }
echo "# host: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) CPUs), $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
for model in "$@"; do
  echo "## $model"
  bench=(bench -m "$model" -p 0 -n "$ntok" -r "$reps" --json)
  printf "%-6s %12s %12s %12s %10s %10s\n" round "1x1 tok/s" "1x2 tok/s" "2x1 tok/s" "2x1/1x1" "2x1/1x2"
  for i in $(seq "$rounds"); do
    a=$("$lowbit" "${bench[@]}" -t 1 | tg)
    b=$("$lowbit" "${bench[@]}" -t 2 | tg)
    c=$("${mpirun[@]}" -np 2 "$lowbit" "${bench[@]}" -t 1 | tg)
    python3 -c "import sys; a,b,c=map(float,sys.argv[1:4]); print(f'{int(sys.argv[4]):<6} {a:12.2f} {b:12.2f} {c:12.2f} {c/a:10.2f} {c/b:10.2f}')" "$a" "$b" "$c" "$i"
  done
  for n in 1 2 4; do
    if [ "$n" = 1 ]; then
      /usr/bin/time -f "1 rank: peak RSS %M KiB" "$lowbit" run -m "$model" -p "Once upon a time" -n 8 -t 1 2>&1 >/dev/null | grep 'peak RSS'
    else
      "${mpirun[@]}" -np "$n" /usr/bin/time -f "$n ranks: a rank's peak RSS %M KiB" "$lowbit" run -m "$model" -p "Once upon a time" -n 8 -t 1 \
        2>&1 >/dev/null | grep 'peak RSS' | sort
    fi
  done
done
