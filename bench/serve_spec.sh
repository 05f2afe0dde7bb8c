#!/usr/bin/env bash
# Speculative decoding in the server (issue 26): aggregate decode tok/s of a repetitive task (a
# given text to be written again; greedy; every stream decodes exactly --tokens tokens) at 1 and 4
# concurrent streams, for lowbit serve without and with --lookup and llama-server without and with
# its n-gram drafting (--spec-type ngram-cache, llama-lookup's cache; ngram-simple with its defaults),
# one server at a time, each started by bench/serve_bench.py with the same client.
#   bench/serve_spec.sh MODEL.gguf [-t THREADS] [--reps R] [--tokens N] [--streams 1,4]
# Environment: LOWBIT (default build/release/bin/lowbit), LLAMA_SERVER (default
# /work/llama.cpp/build/bin/llama-server; bench/llamacpp.sh builds it), DRAFT (a draft model with
# the same vocabulary: adds lowbit serve --model-draft DRAFT and llama-server -md DRAFT).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
model="${1:?usage: bench/serve_spec.sh MODEL.gguf [-t THREADS] [--reps R] [--tokens N] [--streams 1,4]}"
shift
threads=2 reps=3 tokens=96 streams=1,4
while [ $# -gt 0 ]; do
  case "$1" in
    -t) threads="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --tokens) tokens="$2"; shift 2 ;;
    --streams) streams="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
lowbit="${LOWBIT:-$here/../build/release/bin/lowbit}"
common=(--compare "$model" -t "$threads" --reps "$reps" --tokens "$tokens" --streams "$streams" --np 4 -c 4096
        --task repeat --temperature 0 --lowbit "$lowbit")
echo "== $(basename "$model"), $threads threads, $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg)"
port=$((18126 + RANDOM % 1000))
run() {
  local name="$1"; shift
  echo "-- $name"
  port=$((port + 1))  # a port of its own: the previous server may still hold its one
  python3 "$here/serve_bench.py" "${common[@]}" --port "$port" "$@" | sed 1d
}
run "lowbit serve" --only lowbit
run "lowbit serve --lookup" --only lowbit --lowbit-args=--lookup
run "llama-server" --only llama-server
run "llama-server --spec-type ngram-cache" --only llama-server --llama-args="--spec-type ngram-cache"
run "llama-server --spec-type ngram-simple" --only llama-server --llama-args="--spec-type ngram-simple"
if [ -n "${DRAFT:-}" ]; then
  run "lowbit serve --model-draft $(basename "$DRAFT")" --only lowbit --lowbit-args="--model-draft $DRAFT"
  run "llama-server -md $(basename "$DRAFT")" --only llama-server --llama-args="-md $DRAFT"
fi
echo "== done, load $(cut -d' ' -f1-3 /proc/loadavg)"
