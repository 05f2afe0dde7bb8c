#include "lowbit/advise/quality.h"

#include <cctype>

namespace lowbit {
namespace {

#include "lowbit/advise/quality_stories5m.inc"

constexpr QualityRow kF32Row = {"F32", 0, kStories5mBasePpl, 1, 1, 19950944};
constexpr char kMeasureScript[] = "scripts/measure_quality.sh";

// The folder candidates, as docs/QUALITY.md records them on stories5M (same text, context and F32
// reference as kStories5mRows; top-1 agreement and the stories5M folder's size are not recorded: -1).
struct FolderRow {
  QualityRow row;
  const char* source;
};
constexpr FolderRow kFolderRows[] = {
    {{"GPTQ-W4G128", 0.007118, 6.2395, 6.2395 / kStories5mBasePpl, -1, -1},
     "docs/QUALITY.md, GPTQ and AWQ (issue 19): 4-bit asym g128 act-order, bench/issue19_quality.sh"},
    {{"NF4", 0.009153, 6.2879, 6.2879 / kStories5mBasePpl, -1, -1},
     "docs/QUALITY.md, bitsandbytes (issue 20): NF4 + double quant, block 64, bench/issue20_bnb.sh quality"},
};

// llama.cpp's tools/perplexity/README.md, "LLaMA 3 8b Scoreboard" (revision f364eb6f, CUDA, RTX 4090):
// mean KLD against FP16, rows without an importance matrix unless noted.
struct Published {
  const char* type;
  double kld;
  const char* note;
};
constexpr Published kLlama3_8b[] = {
    {"F16", 0.000551, "(FP16 logits stored as 16-bit: the floor of that measurement)"},
    {"Q8_0", 0.001355, ""},
    {"Q6_K", 0.005452, ""},
    {"Q5_K_M", 0.010762, ""},
    {"Q5_0", 0.022239, ""},
    {"Q4_K_M", 0.031273, ""},
    {"Q4_K_S", 0.043136, ""},
    {"Q4_0", 0.071940, ""},
    {"IQ4_XS", 0.036334, "(with a 10M-token wikitext importance matrix)"},
    {"Q3_K_M", 0.101913, ""},
    {"Q3_K_S", 0.228217, ""},
    {"Q2_K", 0.445132, ""},
};

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

Quality FindQuality(const std::string& type) {
  const std::string t = Upper(type);
  Quality q;
  q.source = kMeasureScript;
  if (t == "F32") {
    q.stories5m = &kF32Row;
    q.llama3_8b_kld = 0;
    return q;
  }
  for (const QualityRow& r : kStories5mRows) {
    if (t == r.type) q.stories5m = &r;
  }
  for (const FolderRow& f : kFolderRows) {
    if (t == Upper(f.row.type)) {
      q.stories5m = &f.row;
      q.source = f.source;
    }
  }
  for (const Published& p : kLlama3_8b) {
    if (t == p.type) {
      q.llama3_8b_kld = p.kld;
      q.llama3_8b_note = p.note;
    }
  }
  return q;
}

const char* QualitySource() {
  return "KLD: mean KL divergence from F32 measured by lowbit on stories5M (scripts/measure_quality.sh); "
         "GPTQ-W4G128 and NF4: docs/QUALITY.md (issues 19, 20; kld_source in --json); "
         "Llama-3-8B: llama.cpp's published scoreboard (tools/perplexity/README.md)";
}

double Stories5mBasePpl() { return kStories5mBasePpl; }

}  // namespace lowbit
