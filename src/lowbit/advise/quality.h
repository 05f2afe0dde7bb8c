// Expected quality loss per quantization type, with where each figure comes from:
//  - measured by lowbit on stories5M (scripts/measure_quality.sh writes quality_stories5m.inc:
//    `lowbit quantize` + `lowbit perplexity --kl-divergence` against the F32 model, TinyStories
//    validation text, context 256);
//  - llama.cpp's published LLaMA 3 8B scoreboard (tools/perplexity/README.md of llama.cpp: mean KLD
//    against FP16 on wikitext-2, no importance matrix except where noted), for a real model's size.
// A 5M-parameter model is not a 7B one: larger models lose less to the same type in PPL terms, and
// the Llama 3 figures show how much more a modern, densely trained 8B loses than the old rule of
// thumb says. Both are shown; the advisor ranks by the stories5M figure, which lowbit measured.
#pragma once

#include <string>

namespace lowbit {

struct QualityRow {
  const char* type;      // "Q4_K_M"
  double kld;            // mean KL divergence from the F32 model, nats per token
  double ppl;            // perplexity of the quantized model
  double ppl_ratio;      // PPL / PPL(F32)
  double top1;           // fraction of tokens whose most likely next token is unchanged
  double file_bytes;     // the quantized stories5M file
};

struct Quality {
  const QualityRow* stories5m = nullptr;  // lowbit's measurement
  const char* source = "";                // where the stories5M figure was measured (a script, a docs/QUALITY.md section)
  double llama3_8b_kld = -1;              // llama.cpp's published figure; -1 when none
  const char* llama3_8b_note = "";
};

// The figures for a type or mix name ("Q4_K_M", "F16"); F32 is the reference (KLD 0). Types not
// measured give an empty Quality.
Quality FindQuality(const std::string& type);

// Where the figures come from, for reports.
const char* QualitySource();
double Stories5mBasePpl();

}  // namespace lowbit
