// Writes a llama2.c (legacy v0) checkpoint with deterministic pseudo-random weights, streamed, for
// conversion speed and memory measurements on shapes larger than the shared models.
// Usage: lowbit_synth_llama2c OUT dim hidden_dim n_layers n_heads n_kv_heads vocab seq_len
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "lowbit/base/atomic_file.h"

int main(int argc, char** argv) {
  if (argc != 9) {
    std::fprintf(stderr, "usage: %s OUT dim hidden_dim n_layers n_heads n_kv_heads vocab seq_len\n", argv[0]);
    return 2;
  }
  int32_t h[7];
  for (int i = 0; i < 7; ++i) h[i] = std::atoi(argv[2 + i]);
  const uint64_t dim = h[0], hid = h[1], L = h[2], kv = dim / h[3] * h[4], V = h[5], seq = h[6];
  const uint64_t floats = V * dim + L * (2 * dim + 2 * dim * dim + 2 * kv * dim + 3 * dim * hid) + dim +
                          seq * (dim / h[3]);
  auto f = lowbit::AtomicFile::Create(argv[1]);
  if (!f.ok()) {
    std::fprintf(stderr, "%s\n", f.status().message().c_str());
    return 1;
  }
  (void)f->Write(h, sizeof(h));
  std::vector<float> chunk(1 << 20);
  uint32_t state = 12345;
  for (uint64_t done = 0; done < floats;) {
    const uint64_t n = std::min<uint64_t>(chunk.size(), floats - done);
    for (uint64_t i = 0; i < n; ++i) {
      state = state * 1664525u + 1013904223u;
      chunk[i] = (static_cast<float>(state >> 8) / 16777216.0f - 0.5f) * 0.04f;
    }
    if (!f->Write(chunk.data(), n * 4).ok()) return 1;
    done += n;
  }
  if (!f->Commit().ok()) return 1;
  std::printf("%s: %llu floats\n", argv[1], static_cast<unsigned long long>(floats));
  return 0;
}
