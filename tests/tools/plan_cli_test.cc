// `lowbit plan`: one JSON object with a row per rank count, speeds that fall as the link slows, and
// one-line errors for a malformed --net.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "test_data.h"

namespace lowbit {
namespace {

std::pair<int, std::string> Cli(const std::string& args) {
  FILE* p = popen((std::string(LOWBIT_CLI_PATH) + " " + args + " 2>&1").c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(PlanCli, PredictsEveryRankCountAndSlowsWithTheLink) {
  LOWBIT_REQUIRE_SHARED();
  const std::string model = testing::SharedPath("models/stories5M/stories5M-f32.gguf");
  // Bandwidth and efficiency given: nothing is measured, the prediction is the model's alone.
  auto fast = Cli("plan -m " + model + " --tp 4 --net 5us,100gbit --mem-bw 10 --efficiency 0.8 --json");
  auto slow = Cli("plan -m " + model + " --tp 4 --net 200us,1gbit --mem-bw 10 --efficiency 0.8 --json");
  ASSERT_EQ(fast.first, 0) << fast.second;
  ASSERT_EQ(slow.first, 0) << slow.second;
  const auto f = nlohmann::json::parse(fast.second), s = nlohmann::json::parse(slow.second);
  ASSERT_EQ(f["ranks"].size(), 4u);
  EXPECT_EQ(f["ranks"][0]["allreduce_ms"], 0.0);
  EXPECT_DOUBLE_EQ(f["ranks"][0]["tok_per_s"].get<double>(), s["ranks"][0]["tok_per_s"].get<double>());  // no network on one rank
  for (int n = 1; n < 4; ++n) {
    EXPECT_LT(f["ranks"][n]["max_rank_bytes"].get<double>(), f["ranks"][0]["max_rank_bytes"].get<double>());
    EXPECT_GT(f["ranks"][n]["tok_per_s"].get<double>(), s["ranks"][n]["tok_per_s"].get<double>());
    // 12 all-reduces per token, each at least one round of 200 us.
    EXPECT_GT(s["ranks"][n]["allreduce_ms"].get<double>(), 12 * 0.2);
  }
}

TEST(PlanCli, MalformedNetworkIsOneLine) {
  LOWBIT_REQUIRE_SHARED();
  const std::string model = testing::SharedPath("models/stories5M/stories5M-f32.gguf");
  for (const char* net : {"50us", "fast,10gbit", "50us,10gbits"}) {
    auto r = Cli("plan -m " + model + " --tp 2 --net " + net + " --mem-bw 10 --efficiency 0.8");
    EXPECT_EQ(r.first, 1) << net;
    EXPECT_EQ(std::count(r.second.begin(), r.second.end(), '\n'), 1) << r.second;
    EXPECT_NE(r.second.find("lowbit plan: error:"), std::string::npos) << r.second;
  }
}

}  // namespace
}  // namespace lowbit
