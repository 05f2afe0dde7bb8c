#!/usr/bin/env bash
# Installs dependencies, builds (release, -Werror) and runs the whole test suite with ctest.
# Usage: scripts/test.sh [preset]   (preset: release (default) or asan)
# Tests that need ../shared (models, golden files) skip with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
scripts/install-deps.sh
LOWBIT_WERROR=1 scripts/build.sh "$preset"
ctest --preset "$preset" -j "$(nproc)"
