#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for a while, seeded from the real
# files in ../shared and the broken-file corpus in tests/corpus. A crash is saved under
# out/fuzz/<target>/crashes; copy it into tests/corpus/<parser>/ (named *.bad if the parser must
# reject it) so the normal test suite replays it forever.
# Usage: scripts/fuzz.sh [seconds per target, default 60] [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
secs="${1:-60}"
shift || true
scripts/install-deps.sh
scripts/build.sh fuzz
shared="${LOWBIT_SHARED:-$root/../shared}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf gguf_header safetensors llama2c llama2c_tokenizer hf_config tokenizer_json sentencepiece safetensors_index imatrix bpe_encode
                                       jinja openai_request quant_config quant_tensors peft_config lora_gguf train_checkpoint advise_inputs ggml_legacy
                                       tokenizer_special bnb_state bnb_tensors)

seed() {  # target dir: copy the seeds it should start from
  local t=$1 d=$2
  cp -f "$root/tests/corpus/$t"/* "$d/" 2>/dev/null || true
  [ -d "$shared" ] || return 0
  case "$t" in
    gguf) find "$shared" -name '*.gguf' -size -3M -exec cp -f {} "$d/" \; ;;
    gguf_header) cp -f "$root/tests/corpus/gguf_header"/* "$d/" ;;  # file size + header, as rank 0 sends them
    safetensors) find "$shared" -name '*.safetensors' -size -2M -exec cp -f {} "$d/" \; ;;
    llama2c) cp -f "$shared/models/stories260K/stories260K.bin" "$d/" ;;
    llama2c_tokenizer) cp -f "$shared/models/stories260K/tok512.bin" "$d/" ;;
    hf_config) find "$shared/models" -name 'config.json' -exec sh -c 'cp -f "$1" "$2/$(echo "$1" | md5sum | cut -c1-8).json"' _ {} "$d" \; ;;
    tokenizer_json) cp -f "$shared/models/stories260K/hf-f32/tokenizer.json" "$d/" ;;
    sentencepiece) cp -f "$shared/models/stories260K/tok512.model" "$d/" ;;
    imatrix) cp -f "$shared/models/stories5M/llamacpp/stories5M-imatrix.dat" "$d/" ;;
    bpe_encode) awk 'BEGIN{RS="\n__ggml_vocab_test__\n"} {f=sprintf("%s/inp%03d.txt", d, NR); printf "%s", $0 > f; close(f)}' d="$d" \
                  "$shared/vocab/ggml-vocab-deepseek-llm.gguf.inp" ;;
    tokenizer_special) awk 'BEGIN{RS="\n__ggml_vocab_test__\n"} {f=sprintf("%s/inp%03d.txt", d, NR); printf "%s", $0 > f; close(f)}' d="$d" \
                         "$root/tests/data/vocab/special-phi-3.inp" ;;
    advise_inputs) printf '16G' > "$d/ram"; printf '60GB/s' > "$d/bw"; printf '50us,10Gbit' > "$d/net"
                   printf '{"threads":2,"bandwidth_gbps":20,"attention_gflops":9,"attention_f16_gflops":8,"handoff_us":2,"llc_bytes":33554432,"types":{"Q4_K":{"stream_gbps":17,"gemm_gops":90,"stream1_gbps":9,"cached_gbps":30}}}' > "$d/cache.json" ;;
    jinja) "$root/build/release/bin/lowbit" template --list 2>/dev/null | python3 -c 'import json,sys
for n,t in json.load(sys.stdin).items(): open(sys.argv[1]+"/"+n+".jinja","w").write(t["source"])' "$d" || true ;;
    openai_request) printf '{"messages":[{"role":"user","content":"hi"}],"stream":true,"stop":["a"],"max_tokens":5}' > "$d/chat.json"
                    printf '{"prompt":[1,2,3],"logprobs":2,"seed":4}' > "$d/completion.json" ;;
    quant_config) find "$shared/models" -name 'config.json' -exec sh -c 'cp -f "$1" "$2/$(echo "$1" | md5sum | cut -c1-8).json"' _ {} "$d" \; ;;
    peft_config|lora_gguf|train_checkpoint|ggml_legacy|bnb_state|bnb_tensors|quant_tensors) ;;  # tests/corpus holds their seeds
    safetensors_index) printf '{"weight_map":{"a":"model-00001-of-00002.safetensors"}}' > "$d/index.json" ;;
  esac
}

status=0
for t in "${targets[@]}"; do
  work="$root/out/fuzz/$t"
  mkdir -p "$work/corpus" "$work/crashes"
  seed "$t" "$work/corpus"
  echo "== fuzz_$t for ${secs}s"
  if ! LOWBIT_SHARED="$shared" "$root/build/fuzz/fuzz/fuzz_$t" "$work/corpus" -max_total_time="$secs" -max_len=1048576 \
       -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$work/crashes/" -print_final_stats=1 2>"$work/log.txt"; then
    echo "fuzz_$t FOUND A PROBLEM: see $work/log.txt and $work/crashes/" >&2
    status=1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$work/log.txt" | sed "s/^/  /" || true
done
exit $status
