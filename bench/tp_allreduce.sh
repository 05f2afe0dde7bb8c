#!/usr/bin/env bash
# All-reduce latency for tensor-parallel vector sizes, over shared memory (Open MPI's vader BTL) and
# over TCP on this machine's loopback, with Open MPI's defaults and with the settings lowbit's
# MpiComm applies (the shared-memory eager limit raised to 64 KiB; see docs/PERFORMANCE.md,
# "Tensor parallelism"). Prints one table per setting (bench/tp_allreduce.cc).
# Usage: bench/tp_allreduce.sh [build dir, default build/release] [ranks, default 2] [iterations, default 2000]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build/release}"
ranks="${2:-2}"
iters="${3:-2000}"
bin="$build/bin/lowbit_tp_allreduce"
[ -x "$bin" ] || { echo "no $bin: build with MPI (scripts/build.sh release)" >&2; exit 1; }
mpirun=(timeout -k 5 600 mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$ranks")
echo "# host: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) CPUs), $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
run() {
  echo "## $1"
  shift
  "${mpirun[@]}" "$@" "$bin" --iters "$iters"
}
run "shared memory, Open MPI defaults (LOWBIT_MPI_DEFAULTS=1)" -x LOWBIT_MPI_DEFAULTS=1 --mca btl self,vader
run "shared memory, lowbit's settings" --mca btl self,vader
run "TCP over loopback, Open MPI defaults" -x LOWBIT_MPI_DEFAULTS=1 --mca btl self,tcp
run "TCP over loopback, lowbit's settings" --mca btl self,tcp
