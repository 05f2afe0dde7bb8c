// The advisor's memory prediction against the peak resident set of `lowbit run` (the VmHWM it
// reports on its last line), for stories5M and the tinyllama-1.1b synthetic in F32, Q8_0 and Q4_K_M, at contexts 256
// and 2048, with F32 and F16 caches, the file read into memory as run does by default, and a few
// runs with the file mapped. Acceptance (issue 23): within 5% or 20 MB.
//
// Time on a 2-core CI machine: the full tinyllama-1.1b synthetic is 4.4 GB in F32 and its Q4_K_M
// takes ~15 s of quantization, too slow to make and run twelve times in a test. The test uses the
// same shape cut to 2 of its 22 layers (same widths, heads, 32000-token vocabulary, embedding and
// classifier: every term of the prediction is exercised, the per-layer ones twice; 0.9 GB in F32),
// and generates 2 tokens after a short prompt. LOWBIT_MEMORY_TEST_LAYERS=22 runs the full model
// (docs/PERFORMANCE.md records both).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "lowbit/advise/memory.h"
#include "lowbit/advise/model_source.h"
#include "lowbit/base/memory_info.h"
#include "lowbit/pipeline/quantize.h"
#include "lowbit/pipeline/synth.h"
#include "test_data.h"

namespace lowbit {
namespace {

// Runs `lowbit run ARGS`; returns the peak resident set it reports (VmHWM of its own memory since
// exec), or -1. (wait4's ru_maxrss would not do: a child's maximum starts from the RSS the parent had
// when it forked, and this test process holds more than a small model needs.)
double PeakRss(const std::string& args) {
  const std::string cmd = std::string(LOWBIT_CLI_PATH) + " run " + args + " 2>&1 >/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  if (pclose(p) != 0) return -1;
  const size_t at = out.rfind("peak RSS ");
  if (at == std::string::npos) return -1;
  return std::atof(out.c_str() + at + 9) * (1 << 20);
}

struct Case {
  std::string file;
  int64_t ctx;
  bool f16;
  bool mapped;
};

class RunMemory : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    const char* env = std::getenv("LOWBIT_MEMORY_TEST_LAYERS");
    const int64_t layers = env != nullptr ? std::atoll(env) : 2;
    for (const char* type : {"F32", "Q8_0", "Q4_K_M"}) {
      SynthOptions o;
      o.shape = "tinyllama-1.1b";
      o.layers = layers;
      o.type = type;
      o.threads = 2;
      o.output = dir_->Path(std::string("tinyllama-") + type + ".gguf");
      ASSERT_TRUE(Synthesize(o).ok());
      files_.push_back(o.output);
    }
    if (testing::SharedDir().empty()) return;
    const std::string f32 = testing::SharedPath("models/stories5M/stories5M-f32.gguf");
    files_.push_back(f32);
    for (const char* type : {"Q8_0", "Q4_K_M"}) {
      QuantizeOptions q;
      q.input = f32;
      q.output = dir_->Path(std::string("stories5M-") + type + ".gguf");
      q.type = type;
      q.threads = 2;
      ASSERT_TRUE(QuantizeModel(q).ok());
      files_.push_back(q.output);
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
    files_.clear();
  }
  static testing::TempDir* dir_;
  static std::vector<std::string> files_;
};

testing::TempDir* RunMemory::dir_ = nullptr;
std::vector<std::string> RunMemory::files_;

TEST_F(RunMemory, PredictedPeakRssMatchesLowbitRun) {
  ASSERT_GE(files_.size(), 3u);
  if (files_.size() == 3) std::printf("shared data absent: stories5M cases skipped\n");
  std::vector<Case> cases;
  for (const std::string& f : files_) {
    for (int64_t ctx : {256, 2048}) {
      for (bool f16 : {false, true}) cases.push_back({f, ctx, f16, false});
    }
    cases.push_back({f, 2048, false, true});  // mapped
  }
  std::printf("%-28s %5s %4s %-6s %12s %12s %8s\n", "file", "ctx", "kv", "held", "predicted MB", "measured MB", "error");
  for (const Case& c : cases) {
    auto src = ModelSource::Open(c.file);
    ASSERT_TRUE(src.ok()) << src.status().message();
    auto plan = src->AsIs();
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    RunShape shape;
    shape.n_ctx = c.ctx;
    shape.threads = 2;
    shape.kv_f16 = c.f16;
    shape.in_memory = !c.mapped && ChooseResidency(Residency::kAuto, plan->file_bytes) == Residency::kInMemory;
    shape.huge_pages = TransparentHugePages();
    const double predicted = static_cast<double>(PredictRunMemory(*plan, shape).total());
    std::string args = fmt::format("-m {} -p Hi -n 2 -c {} -t 2 --seed 1 --cache-type {}", c.file, c.ctx, c.f16 ? "f16" : "f32");
    if (c.mapped) args += " --mmap";
    const double measured = PeakRss(args);
    ASSERT_GT(measured, 0) << "lowbit run failed on " << c.file;
    const double err = predicted - measured;
    std::printf("%-28s %5lld %4s %-6s %12.1f %12.1f %+7.1f%%\n", std::filesystem::path(c.file).filename().c_str(),
                static_cast<long long>(c.ctx), c.f16 ? "f16" : "f32", shape.in_memory ? "read" : "mapped", predicted / 1e6,
                measured / 1e6, 100 * err / measured);
    EXPECT_LE(std::abs(err), std::max(0.05 * measured, 20e6))
        << c.file << " ctx " << c.ctx << (c.f16 ? " f16" : " f32") << (shape.in_memory ? " read" : " mapped");
  }
}

}  // namespace
}  // namespace lowbit
