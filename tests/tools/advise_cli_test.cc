// `lowbit advise` end to end (the JSON the issue asks for, the per-boot cache), its bad input (one
// line, exit 1, before any measurement), and the memory guard of `run` and `perplexity`.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "lowbit/base/memory_info.h"
#include "lowbit/formats/gguf_writer.h"
#include "lowbit/pipeline/llama_metadata.h"
#include "test_data.h"
#include "advise/zero_llama.h"

namespace lowbit {
namespace {

struct Result {
  int code;
  std::string out;  // stdout + stderr
};

Result Shell(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  Result r{-1, ""};
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

Result Lowbit(const std::string& args) { return Shell(std::string(LOWBIT_CLI_PATH) + " " + args); }

int Lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

using testing::WriteZeroLlama;

TEST(AdviseCli, BadInputIsOneLineAndExitOne) {
  testing::TempDir dir;
  std::filesystem::create_directory(dir.Path("empty"));
  // 3 heads do not divide a width of 128: inconsistent metadata.
  const std::string odd = WriteZeroLlama(dir.Path("odd.gguf"), 128, 3, 1, 256);
  for (const std::string& args : std::vector<std::string>{"advise " + dir.Path("empty"), "advise no-such-model", "advise " + odd, "advise llama2-7b --ram 0", "advise llama2-7b --ram 16X",
        "advise llama2-7b --bandwidth fast", "advise llama2-7b --nodes 2", "advise llama2-7b --vram 24G",
        "advise llama2-7b --net 50us --nodes 2", "advise llama2-7b --types Q9_K", "advise llama2-7b --gpu-efficiency 2 --vram 8G --gpu-bandwidth 100GB/s"}) {
    SCOPED_TRACE(args);
    const Result r = Lowbit(args);
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_EQ(Lines(r.out), 1) << r.out;
  }
  EXPECT_EQ(Lowbit("advise llama2-7b --cache-type q4").code, 2);
  const Result list = Lowbit("advise --list-shapes");
  EXPECT_EQ(list.code, 0);
  EXPECT_NE(list.out.find("llama3-8b"), std::string::npos);
}

TEST(AdviseCli, JsonForAFileAndThePerBootCache) {
  LOWBIT_REQUIRE_SHARED();
  testing::TempDir dir;
  const std::string cmd = "XDG_CACHE_HOME=" + dir.path().string() + " " + LOWBIT_CLI_PATH + " advise " +
                          testing::SharedPath("models/stories5M/stories5M-f32.gguf") + " -c 256 -t 1 --json";
  Result r = Shell(cmd);
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out.substr(0, 300);
  for (const char* key : {"hardware", "as_is", "candidates", "recommendation"}) ASSERT_TRUE(j.contains(key)) << key;
  const auto& as_is = j["as_is"];
  EXPECT_EQ(as_is["type"], "F32");
  EXPECT_EQ(as_is["file_bytes"], std::filesystem::file_size(testing::SharedPath("models/stories5M/stories5M-f32.gguf")));
  for (const char* key : {"memory_bytes", "decode_tok_s", "prompt_tok_s", "fits"}) EXPECT_TRUE(as_is.contains(key)) << key;
  EXPECT_TRUE(as_is["fits"].get<bool>());
  EXPECT_GT(as_is["decode_tok_s"].get<double>(), 0);
  EXPECT_EQ(j["candidates"].size(), 10u);  // F16 .. Q2_K, GPTQ-W4G128, NF4
  for (const auto& c : j["candidates"]) {
    for (const char* key : {"type", "file_bytes", "kld", "memory_bytes", "decode_tok_s", "prompt_tok_s", "fits"}) EXPECT_TRUE(c.contains(key)) << key;
  }
  EXPECT_FALSE(j["recommendation"]["type"].is_null());
  EXPECT_FALSE(j["hardware"]["from_cache"].get<bool>());
  EXPECT_TRUE(std::filesystem::exists(dir.Path("lowbit/machine.json")));
  // The second time, this boot's measurement.
  r = Shell(cmd);
  ASSERT_EQ(r.code, 0) << r.out;
  j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_TRUE(j["hardware"]["from_cache"].get<bool>());
  // A corrupt cache is measured over, not trusted.
  testing::WriteFileBytes(dir.Path("lowbit/machine.json"), {'{', '"', 'x'});
  r = Shell(cmd);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_FALSE(nlohmann::json::parse(r.out)["hardware"]["from_cache"].get<bool>());
}

TEST(AdviseCli, RunAndPerplexityRefuseWhatDoesNotFit) {
  testing::TempDir dir;
  // 64 layers of width 128 trained at 1M positions: a 15 MB file whose F32 cache at that context is 64 GiB.
  const std::string wide = WriteZeroLlama(dir.Path("wide.gguf"), 128, 2, 64, 1u << 20);
  if (ReadMemoryInfo().available > (uint64_t{70} << 30)) GTEST_SKIP() << "this machine has more than 70 GiB available";
  for (const std::string& args : std::vector<std::string>{"run -m " + wide + " -p hi -n 1", "perplexity -m " + wide + " -f " + wide}) {
    SCOPED_TRACE(args);
    const Result r = Lowbit(args);
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_EQ(Lines(r.out), 1) << r.out;
    EXPECT_NE(r.out.find("is available"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("it would fit with -c "), std::string::npos) << r.out;
  }
}

}  // namespace
}  // namespace lowbit
