#!/usr/bin/env bash
# Builds lowbit with a CMake preset (default: release). Usage: scripts/build.sh [release|debug|asan|fuzz]
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
extra=()
# CI (and anyone who asks with LOWBIT_WERROR=1) builds with -Werror.
if [ "${CI:-}" = "true" ] || [ "${LOWBIT_WERROR:-0}" = "1" ]; then extra+=(-DLOWBIT_WERROR=ON); fi
cmake --preset "$preset" "${extra[@]}"
cmake --build --preset "$preset" -j "$(nproc)"
