// QLoRA fine-tuning on a frozen quantized base: the adapter written (GGUF and PEFT) lowers the
// loss it was trained on, and applied at run time it lowers the perplexity of that text; the two
// file forms hold the same adapter.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "lowbit/eval/perplexity.h"
#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/train/finetune.h"
#include "lowbit/train/lora_file.h"
#include "test_data.h"

namespace lowbit::train {
namespace {

TEST(Finetune, AdapterOnAQuantizedBaseLowersThePerplexity) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  // A small text, out of the model's domain, learned quickly.
  std::string text;
  for (int i = 0; i < 60; ++i) text += "The quick brown fox jumps over the lazy dog " + std::to_string(i % 7) + ". ";
  { std::ofstream(dir.Path("train.txt")) << text; }
  const std::string base = testing::SharedPath("models/stories260K/stories260K-q8_0-mix.gguf");  // Q8_0 + F16
  FinetuneOptions o;
  o.model = base;
  o.train_text = dir.Path("train.txt");
  o.output = dir.Path("adapter.gguf");
  o.rank = 4;
  o.alpha = 8;
  o.threads = 2;
  o.train.steps = 30;
  o.train.batch = 4;
  o.train.micro_batch = 2;
  o.train.ctx = 64;
  o.train.lr = 3e-3f;
  o.train.warmup = 3;
  auto rep = RunFinetune(o, {});
  ASSERT_TRUE(rep.ok()) << rep.status().message();
  EXPECT_EQ(rep->adapted, 5 * 7);
  EXPECT_LT(rep->last_loss, 0.7 * rep->first_loss) << rep->first_loss << " -> " << rep->last_loss;
  o.output = dir.Path("peft");
  auto rep2 = RunFinetune(o, {});
  ASSERT_TRUE(rep2.ok()) << rep2.status().message();
  EXPECT_TRUE(rep2->peft);

  auto g = GgufFile::Open(base);
  ASSERT_TRUE(g.ok());
  auto vocab = VocabFromGguf(*g);
  ASSERT_TRUE(vocab.ok());
  PerplexityOptions po{.ctx = 64, .threads = 2};
  auto ppl = [&](const std::string& adapter) {
    auto m = LlamaModel::Load(*g);
    EXPECT_TRUE(m.ok());
    std::vector<LoraSpec> specs;
    if (!adapter.empty()) specs.push_back({adapter, 1.0f});
    auto set = AttachLoraAdapters(&*m, *g, specs);
    EXPECT_TRUE(set.ok()) << set.status().message();
    auto r = Perplexity(*m, *vocab, text, po);
    EXPECT_TRUE(r.ok());
    return r->ppl;
  };
  const double before = ppl(""), gguf = ppl(dir.Path("adapter.gguf")), peft = ppl(dir.Path("peft"));
  EXPECT_LT(gguf, 0.5 * before) << before << " -> " << gguf;
  EXPECT_NEAR(peft, gguf, 1e-6 * gguf);  // the same training run, the same adapter in another file
}

TEST(Finetune, TargetsAreChecked) {
  EXPECT_TRUE(ParseLoraTargets({"q", "v_proj", "lm_head"}).ok());
  EXPECT_EQ(ParseLoraTargets({"q", "q_proj"})->size(), 1u);
  auto r = ParseLoraTargets({"attn"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("unknown projection 'attn'"), std::string::npos);
}

}  // namespace
}  // namespace lowbit::train
