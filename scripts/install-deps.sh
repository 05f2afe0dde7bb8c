#!/usr/bin/env bash
# Installs every build and test dependency of lowbit from Debian/Ubuntu packages.
# Idempotent: packages already present are not reinstalled; apt is only touched when one is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libfmt-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libpcre2-dev libopenmpi-dev openmpi-bin
  libcpp-httplib-dev
  clang libclang-rt-14-dev
  curl ca-certificates
  chromium
)
# Node.js and npm for the tests of `lowbit serve` (tests/js): Debian's, unless a node is already there.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then PACKAGES+=(nodejs npm); fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# The npm packages of tests/js (openai, @huggingface/jinja, playwright-core), as its lock file pins them.
npm_install() {
  local js
  js="$(dirname "$0")/../tests/js"
  if [ -d "$js/node_modules/openai" ] && [ -d "$js/node_modules/@huggingface/jinja" ] && [ -d "$js/node_modules/playwright-core" ] &&
     [ "$js/node_modules/.package-lock.json" -nt "$js/package-lock.json" ]; then
    return 0
  fi
  echo "install-deps: npm ci in tests/js"
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  npm_install
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
npm_install
