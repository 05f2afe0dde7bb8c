// Writes a llama GGUF as a legacy llama.cpp file ('ggml', 'ggmf' v1, 'ggjt' v1-v3) with the tests'
// writer (tests/formats/ggml_legacy_writer.h, which follows 2023's layouts), for bench/legacy_ggml.sh.
// Usage: lowbit_write_legacy_ggml IN.gguf OUT.bin ggml|ggmf|ggjt VERSION
#include <cstdio>
#include <cstdlib>
#include <string>

#include "../tests/formats/ggml_legacy_writer.h"
#include "lowbit/base/atomic_file.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s IN.gguf OUT.bin ggml|ggmf|ggjt VERSION\n", argv[0]);
    return 2;
  }
  const std::string kind = argv[3];
  const auto format = kind == "ggml"   ? lowbit::GgmlLegacyFormat::kGgml
                      : kind == "ggmf" ? lowbit::GgmlLegacyFormat::kGgmf
                                       : lowbit::GgmlLegacyFormat::kGgjt;
  auto g = lowbit::GgufFile::Open(argv[1]);
  if (!g.ok()) {
    std::fprintf(stderr, "%s\n", g.status().message().c_str());
    return 1;
  }
  const std::vector<uint8_t> bytes =
      lowbit::testing::LegacyFileBytes(lowbit::testing::LegacyFileFromGguf(*g, format, static_cast<uint32_t>(std::atoi(argv[4]))));
  auto f = lowbit::AtomicFile::Create(argv[2]);
  lowbit::Status s = f.ok() ? f->Write(bytes.data(), bytes.size()) : f.status();
  if (s.ok()) s = f->Commit();
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.message().c_str());
    return 1;
  }
  return 0;
}
