#!/bin/bash
# GPTQ onto ggml types (stories5M), regenerated with the current main, KLD beside llama.cpp's imatrix files.
S=${LOWBIT_SHARED:-$(dirname "$0")/../../shared}; M=${LOWBIT:-$(dirname "$0")/../build/release/bin/lowbit}
TXT=$S/data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt; CAL=$S/data/tinystories/TinyStories-valid.hf-head.txt
GG=$S/models/stories5M/stories5M-f32.gguf; OUT=/tmp/m19
for t in Q4_K_M Q3_K_M Q2_K; do
  rm -f $OUT/gptq-$t.gguf
  /usr/bin/time -f "  gptq $t: %e s wall, %U s user, %M KB peak" $M quantize $GG $OUT/gptq-$t.gguf $t --method gptq --calib $CAL --nsamples 128 --seqlen 256 -t 2 -q --json > /dev/null 2> $OUT/gptq-$t.time
  tail -1 $OUT/gptq-$t.time
  $M perplexity -m $OUT/gptq-$t.gguf -f $TXT -c 256 -t 2 --kl-divergence $OUT/base.bin --json 2>/dev/null | python3 -c "import json,sys;j=json.load(sys.stdin);print('gptq %s ppl %.4f kld %.6f' % (sys.argv[1], j['ppl'], j['kld_mean']))" $t
  ls -l $OUT/gptq-$t.gguf | awk '{print "  bytes", $5}'
done
