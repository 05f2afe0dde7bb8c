#!/usr/bin/env bash
# Builds llama.cpp's llama-bench and llama-perplexity on this machine, for side-by-side runs with
# lowbit on the same files (bench/vs_llamacpp.py). The machines we work on reach no source host but
# the Debian and npm registries; the npm package node-llama-cpp carries the llama.cpp release it
# binds as a git bundle (llama/gitRelease.bundle), which this script unpacks and builds natively
# (GGML_NATIVE: the CPU's own ISA, as a user building llama.cpp would).
#
# usage: bench/llamacpp.sh [DIR]      (default build/llama.cpp; the binaries land in DIR/build/bin)
# env:   NODE_LLAMA_CPP_VERSION (default 3.22.1, which carries llama.cpp v0.5.0)
set -euo pipefail
dir=${1:-build/llama.cpp}
version=${NODE_LLAMA_CPP_VERSION:-3.22.1}
for tool in npm git cmake; do
  command -v "$tool" >/dev/null || { echo "llamacpp.sh: needs $tool (Debian: apt-get install npm git cmake)" >&2; exit 1; }
done
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
if [ ! -d "$dir/src/.git" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-llama-cpp@$version" >/dev/null)
  tar -xzf "$tmp"/node-llama-cpp-*.tgz -C "$tmp" package/llama/gitRelease.bundle package/llama/llama.cpp.info.json
  git clone --quiet "$tmp/package/llama/gitRelease.bundle" "$dir/src"
  cp "$tmp/package/llama/llama.cpp.info.json" "$dir/"
fi
cmake -S "$dir/src" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >/dev/null
cmake --build "$dir/build" -j"$(nproc)" --target llama-bench llama-perplexity llama-quantize llama-imatrix \
  llama-completion llama-lookup llama-speculative >/dev/null
echo "llama.cpp $(cat "$dir/llama.cpp.info.json" | tr -d '\n ' ) built: $dir/build/bin/llama-bench"
