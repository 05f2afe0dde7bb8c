#!/usr/bin/env bash
# GPTQ's phases in GFLOP/s against the FMA peak (docs/PERFORMANCE.md, "GPTQ and AWQ in quant/"):
# stories5M and tinyllama-1.1b shapes on 1 and 2 threads, with the host named. Optional comparison
# with a LAPACK/BLAS library: LAPACK=/path/to/libopenblas.so bench/gptq_phases.sh
# (Debian's OpenBLAS without installing it: apt-get download libopenblas0-pthread && dpkg -x *.deb o/
#  then LAPACK=o/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblasp-r0.3.21.so).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/release/bin/lowbit_gptq_bench
[ -x "$bin" ] || { echo "build first: scripts/build.sh release" >&2; exit 1; }
echo "host: $(lscpu | grep 'Model name' | sed 's/.*: *//'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
extra=()
[ -n "${LAPACK:-}" ] && extra=(--lapack "$LAPACK")
for threads in 1 2; do
  "$bin" --model stories5M --threads "$threads"
  "$bin" --model tinyllama --threads "$threads" "${extra[@]}"
done
