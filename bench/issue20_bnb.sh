#!/bin/bash
# Issue 20 measurements. 1. Quality on stories5M: KLD vs F32 (TinyStoriesV2 valid first100, ctx 256)
# of bitsandbytes folders (NF4 + double quant block 64, NF4 block 64, FP4 + double quant, LLM.int8)
# beside llama.cpp's IQ4_NL, Q4_0 and Q8_0 files (LLM.int8 natively at thresholds 6, 0, 3, 2, 1, 0.5) (llama-quantize of the same F32 GGUF, no imatrix),
# and the calibrated rows (NF4 codes chosen by GPTQ, `--gptq`) beside llama.cpp's IQ4_NL with its imatrix and
# lowbit's GPTQ onto IQ4_NL, all on the same calibration text.
# 2. Decode speed on the tinyllama-1.1b synthetic shape: NF4 + DQ and int8 folders (random codes,
# lowbit_synth_bnb_folder) beside `lowbit synth` Q4_0 / Q8_0 GGUFs, alternating rounds, with the
# bandwidth fraction `lowbit bench` reports.
# Usage: bench/issue20_bnb.sh [quality|speed|all] [THREADS=1] [REPS=2]
set -u
what=${1:-all}; threads=${2:-1}; reps=${3:-2}
root="$(cd "$(dirname "$0")/.." && pwd)"
S=${LOWBIT_SHARED:-$root/../shared}; M=${LOWBIT:-$root/build/release/bin/lowbit}; B=$root/build/release/bin
L=${LLAMACPP_BIN:-/work/llama.cpp/build/bin}
TXT=$S/data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt
HF=$S/models/stories5M/hf-f32; GG=$S/models/stories5M/stories5M-f32.gguf
OUT=${OUT:-/tmp/m20}; mkdir -p $OUT
lscpu | grep 'Model name' || true
if [ "$what" = quality ] || [ "$what" = all ]; then
  [ -f $OUT/base.bin ] || $M perplexity -m $GG -f $TXT -c 256 -t 2 --save-logits $OUT/base.bin >/dev/null 2>&1
  kld() { $M perplexity -m "$1" -f $TXT -c 256 -t 2 --kl-divergence $OUT/base.bin --json 2>/dev/null | python3 -c "import json,sys;j=json.load(sys.stdin);print('%-28s ppl %.4f kld %.6f ppl_base %.4f' % (sys.argv[1], j['ppl'], j['kld_mean'], j['ppl_base']))" "$2"; }
  for t in IQ4_NL Q4_0 Q8_0; do
    [ -f $OUT/lcpp-$t.gguf ] || $L/llama-quantize $GG $OUT/lcpp-$t.gguf $t >/dev/null 2>&1
    kld $OUT/lcpp-$t.gguf "llama.cpp $t"
  done
  CAL=$S/data/tinystories/TinyStories-valid.hf-head.txt
  # llama.cpp's IQ4_NL with its own importance matrix from the calibration text (the calibrated rows
  # below compare with this one too).
  [ -f $OUT/lcpp-imatrix.gguf ] || $L/llama-imatrix -m $GG -f $CAL -c 256 -t 2 -o $OUT/lcpp-imatrix.gguf >/dev/null 2>&1
  [ -f $OUT/lcpp-IQ4_NL-imx.gguf ] || $L/llama-quantize --imatrix $OUT/lcpp-imatrix.gguf $GG $OUT/lcpp-IQ4_NL-imx.gguf IQ4_NL >/dev/null 2>&1
  kld $OUT/lcpp-IQ4_NL-imx.gguf "llama.cpp IQ4_NL imatrix"
  # The same with the embedding and the classifier kept in F32, as a bitsandbytes folder keeps them:
  # the linears alone, on equal terms with the folders.
  F32IO="--output-tensor-type f32 --token-embedding-type f32"
  [ -f $OUT/lcpp-IQ4_NL-lin.gguf ] || $L/llama-quantize $F32IO $GG $OUT/lcpp-IQ4_NL-lin.gguf IQ4_NL >/dev/null 2>&1
  kld $OUT/lcpp-IQ4_NL-lin.gguf "llama.cpp IQ4_NL linears"
  [ -f $OUT/lcpp-IQ4_NL-imx-lin.gguf ] || $L/llama-quantize --imatrix $OUT/lcpp-imatrix.gguf $F32IO $GG $OUT/lcpp-IQ4_NL-imx-lin.gguf IQ4_NL >/dev/null 2>&1
  kld $OUT/lcpp-IQ4_NL-imx-lin.gguf "llama.cpp IQ4_NL imatrix linears"
  G="--calib $CAL --nsamples 128 --seqlen 256 -t 2"
  [ -f $OUT/imatrix.dat ] || $M imatrix -m $GG -f $CAL -c 256 -o $OUT/imatrix.dat >/dev/null 2>&1
  for cfg in "nf4-dq-b64 --method nf4 --double-quant --block-size 64" "nf4-b64 --method nf4 --block-size 64" \
             "fp4-dq-b64 --method fp4 --double-quant --block-size 64" "nf4-dq-b32 --method nf4 --double-quant --block-size 32" \
             "nf4-dq-b64-search --method nf4 --double-quant --scale-search" \
             "nf4-dq-b64-imx --method nf4 --double-quant --imatrix $OUT/imatrix.dat" "int8 --method int8" \
             "nf4-dq-b64-gptq --method nf4 --double-quant --gptq $G" "nf4-b64-gptq --method nf4 --gptq $G" \
             "nf4-dq-b32-gptq --method nf4 --double-quant --block-size 32 --gptq $G"; do
    set -- $cfg; name=$1; shift
    rm -rf $OUT/$name
    $M quantize $HF $OUT/$name --format bnb "$@" -q --json > $OUT/$name.json || { echo "$name failed"; continue; }
    kld $OUT/$name "bnb $name"
  done
  # lowbit's GPTQ onto IQ4_NL itself (the same calibration), for the format beside the method.
  [ -f $OUT/gptq-IQ4_NL-lin.gguf ] || $M quantize $GG $OUT/gptq-IQ4_NL-lin.gguf IQ4_NL --pure --output-tensor-type F32 --token-embedding-type F32 --method gptq $G -q >/dev/null
  kld $OUT/gptq-IQ4_NL-lin.gguf "lowbit IQ4_NL gptq linears"
  # LLM.int8 runs natively (int8 x int8 with outliers in float); the folder's threshold is 6.
  for T in 6 0 3 2 1 0.5; do
    $M perplexity -m $OUT/int8 -f $TXT -c 256 -t 2 --int8-threshold $T --kl-divergence $OUT/base.bin --json 2>/dev/null |
      python3 -c "import json,sys;j=json.load(sys.stdin);print('%-28s ppl %.4f kld %.6f' % (sys.argv[1], j['ppl'], j['kld_mean']))" "bnb int8 T=$T"
  done
fi
if [ "$what" = speed ] || [ "$what" = all ]; then
  dims="2048 5632 22 32 4 32000 2048"
  [ -d $OUT/tl-nf4-dq ] || $B/lowbit_synth_bnb_folder $OUT/tl-nf4-dq $dims nf4 1 64 >/dev/null
  [ -d $OUT/tl-int8 ] || $B/lowbit_synth_bnb_folder $OUT/tl-int8 $dims int8 0 >/dev/null
  for t in Q4_0 Q8_0; do [ -f $OUT/tl-$t.gguf ] || $M synth --shape tinyllama-1.1b --type $t -o $OUT/tl-$t.gguf -q; done
  for round in 1 2; do
    for m in $OUT/tl-nf4-dq $OUT/tl-Q4_0.gguf $OUT/tl-int8 $OUT/tl-Q8_0.gguf; do
      echo "== round $round: $(basename $m)"
      $M bench -m $m -p 32 -n 32 -t $threads -r $reps --no-mmap 2>&1 | tail -6
    done
    echo "== round $round: tl-int8 --int8-threshold 0 (plain int8 x int8)"
    $M bench -m $OUT/tl-int8 -p 32 -n 32 -t $threads -r $reps --no-mmap --int8-threshold 0 2>&1 | tail -6
  done
  # The kernels alone: Q8_0 (index 7) and I8R256 (21), AVX-512 table (2), in L2 and streaming from DRAM.
  $B/lowbit_bench --benchmark_filter='BM_ReadBandwidth/|BM_MatVec/(7|21)/2/|BM_MatVecL2/(7|21)/2/' 2>&1 | grep -E '^BM_'
fi
