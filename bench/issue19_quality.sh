#!/bin/bash
# Issue 19 acceptance measurements on stories5M (KLD vs F32, TinyStoriesV2 valid first100, ctx 256):
# GPTQ onto ggml mixes beside llama.cpp's imatrix files, then GPTQ / AWQ / RTN folders on the int grid.
set -u
S=${LOWBIT_SHARED:-$(dirname "$0")/../../shared}; M=${LOWBIT:-$(dirname "$0")/../build/release/bin/lowbit}; F=$M  # run -m FOLDER
L=${LLAMACPP_BIN:-/work/llama.cpp/build/bin}
TXT=$S/data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt
CAL=$S/data/tinystories/TinyStories-valid.hf-head.txt
HF=$S/models/stories5M/hf-f32; GG=$S/models/stories5M/stories5M-f32.gguf
OUT=/tmp/m19; mkdir -p $OUT
# The F32 reference distributions, and llama.cpp's importance matrix from the same calibration text.
[ -f $OUT/base.bin ] || $M perplexity -m $GG -f $TXT -c 256 -t 2 --save-logits $OUT/base.bin >/dev/null 2>&1
[ -f $OUT/llama-imatrix.gguf ] || $L/llama-imatrix -m $GG -f $CAL -c 256 -o $OUT/llama-imatrix.gguf >/dev/null 2>&1
kld() { "$1" perplexity -m "$2" -f $TXT -c 256 -t 2 --kl-divergence $OUT/base.bin --json 2>/dev/null | python3 -c "import json,sys;j=json.load(sys.stdin);print('%s ppl %.4f kld %.6f ppl_base %.4f' % (sys.argv[1], j['ppl'], j['kld_mean'], j['ppl_base']))" "$3"; }
for t in Q4_K_M Q3_K_M Q2_K; do
  [ -f $OUT/lcpp-imx-$t.gguf ] || $L/llama-quantize --imatrix $OUT/llama-imatrix.gguf $GG $OUT/lcpp-imx-$t.gguf $t >/dev/null 2>&1
  kld $M $OUT/lcpp-imx-$t.gguf "llama.cpp imatrix $t"
  ls -l $OUT/lcpp-imx-$t.gguf | awk '{print "  bytes", $5}'
  # lowbit's GPTQ onto the same mix (each tensor's ggml type as the rounding step)
  rm -f $OUT/gptq-$t.gguf
  /usr/bin/time -f "  gptq $t: %e s wall, %U s user, %M KB peak" $M quantize $GG $OUT/gptq-$t.gguf $t --method gptq --calib $CAL \
     --nsamples 128 --seqlen 256 -t 2 -q --json > /dev/null 2> $OUT/gptq-$t.time || { echo "gptq $t failed"; cat $OUT/gptq-$t.time; continue; }
  tail -1 $OUT/gptq-$t.time
  kld $M $OUT/gptq-$t.gguf "lowbit gptq $t"
  ls -l $OUT/gptq-$t.gguf | awk '{print "  bytes", $5}'
done
for cfg in "rtn-w4 --method rtn --bits 4 --asym" "gptq-w4 --method gptq --bits 4 --asym --act-order" "awq-w4 --method awq --bits 4" \
           "rtn-w3 --method rtn --bits 3 --asym" "gptq-w3 --method gptq --bits 3 --asym --act-order" \
           "gptq-w3-mse --method gptq --bits 3 --asym --act-order --range mse"; do
  set -- $cfg; name=$1; shift
  rm -rf $OUT/$name
  /usr/bin/time -f "  $name: %e s wall, %U s user, %M KB peak" $M quantize $HF $OUT/$name --format $( [ "${name%%-*}" = awq ] && echo awq || echo gptq ) --group-size 128 "$@" \
     --calib $CAL --nsamples 128 --seqlen 256 -t 2 -q --json > $OUT/$name.json 2> $OUT/$name.time || { echo "$name failed"; cat $OUT/$name.time; continue; }
  tail -1 $OUT/$name.time
  kld $F $OUT/$name "$name g128"
done
