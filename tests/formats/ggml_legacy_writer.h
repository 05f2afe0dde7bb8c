// A test writer of legacy llama.cpp files ('ggml', 'ggmf' v1, 'ggjt' v1-v3), written from the old
// layouts (docs/DESIGN-NOTES.md, "Legacy GGML files") independently of lowbit's reader: the header,
// the vocabulary as llama.cpp's convert.py of 2023 wrote it (spaces as ' ', byte tokens as the raw
// byte, <unk> as " \u2047 ", control tokens empty), the tensors, ggjt's 32-byte alignment, and the
// blocks of each version (F32 scales before ggjt v3, element pairs in a byte before ggjt v2).
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "lowbit/formats/ggml_legacy.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/numeric/half.h"

namespace lowbit::testing {

struct LegacyTensorOut {
  std::string name;
  std::vector<uint32_t> dims;  // ne[0] first
  uint32_t type = 0;           // ggml type id
  std::vector<uint8_t> bytes;  // in the file's layout
};

struct LegacyFileOut {
  GgmlLegacyFormat format = GgmlLegacyFormat::kGgjt;
  uint32_t version = 3;
  uint32_t hp[7] = {};  // n_vocab, n_embd, n_mult, n_head, n_layer, n_rot, ftype
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<LegacyTensorOut> tensors;

  LegacyBlockLayout layout() const {
    if (format != GgmlLegacyFormat::kGgjt || version == 1) return LegacyBlockLayout::kV1;
    return version == 2 ? LegacyBlockLayout::kV2 : LegacyBlockLayout::kV3;
  }
};

// resize + memcpy (GCC 12 at -O3 warns, wrongly, about vector::insert of a few bytes).
inline void Append(std::vector<uint8_t>& b, const void* p, size_t n) {
  if (n == 0) return;
  const size_t at = b.size();
  b.resize(at + n);
  std::memcpy(b.data() + at, p, n);
}
inline void PutU32(std::vector<uint8_t>& b, uint32_t v) { Append(b, &v, 4); }
inline void PutF32(std::vector<uint8_t>& b, float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  PutU32(b, u);
}

inline std::vector<uint8_t> LegacyFileBytes(const LegacyFileOut& f) {
  std::vector<uint8_t> b;
  switch (f.format) {
    case GgmlLegacyFormat::kGgml: PutU32(b, 0x67676d6c); break;
    case GgmlLegacyFormat::kGgmf: PutU32(b, 0x67676d66); PutU32(b, f.version); break;
    case GgmlLegacyFormat::kGgjt: PutU32(b, 0x67676a74); PutU32(b, f.version); break;
  }
  for (uint32_t v : f.hp) PutU32(b, v);
  for (size_t i = 0; i < f.tokens.size(); ++i) {
    PutU32(b, static_cast<uint32_t>(f.tokens[i].size()));
    Append(b, f.tokens[i].data(), f.tokens[i].size());
    if (f.format != GgmlLegacyFormat::kGgml) PutF32(b, f.scores[i]);
  }
  for (const LegacyTensorOut& t : f.tensors) {
    PutU32(b, static_cast<uint32_t>(t.dims.size()));
    PutU32(b, static_cast<uint32_t>(t.name.size()));
    PutU32(b, t.type);
    for (uint32_t d : t.dims) PutU32(b, d);
    Append(b, t.name.data(), t.name.size());
    if (f.format == GgmlLegacyFormat::kGgjt) {
      while (b.size() % 32 != 0) b.push_back(0);
    }
    Append(b, t.bytes.data(), t.bytes.size());
  }
  return b;
}

// Today's blocks of a legacy type, re-laid out as `layout` stored them.
inline std::vector<uint8_t> ToLegacyBlocks(GgmlType type, LegacyBlockLayout layout, const uint8_t* src, size_t n_blocks) {
  std::vector<uint8_t> out;
  const bool f32_scales = layout != LegacyBlockLayout::kV3;
  const bool pairs = layout == LegacyBlockLayout::kV1;
  auto nibbles = [&](const uint8_t* qs) {  // today: element j low, j + 16 high
    uint8_t e[32];
    for (int j = 0; j < 16; ++j) {
      e[j] = qs[j] & 15;
      e[j + 16] = qs[j] >> 4;
    }
    for (int i = 0; i < 16; ++i) {
      out.push_back(pairs ? static_cast<uint8_t>(e[2 * i] | (e[2 * i + 1] << 4)) : qs[i]);
    }
  };
  auto scale = [&](const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    if (f32_scales) PutF32(out, Fp16ToFp32(h));
    else out.insert(out.end(), p, p + 2);
  };
  const size_t bb = TypeInfo(type).block_bytes;
  for (size_t b = 0; b < n_blocks; ++b) {
    const uint8_t* s = src + b * bb;
    switch (type) {
      case GgmlType::kQ4_0: scale(s); nibbles(s + 2); break;
      case GgmlType::kQ4_1: scale(s); scale(s + 2); nibbles(s + 4); break;
      case GgmlType::kQ8_0: scale(s); out.insert(out.end(), s + 2, s + 34); break;
      case GgmlType::kQ5_0: out.insert(out.end(), s, s + 6); nibbles(s + 6); break;  // F16 d and qh as today
      case GgmlType::kQ5_1: out.insert(out.end(), s, s + 8); nibbles(s + 8); break;
      default: out.insert(out.end(), s, s + bb);
    }
  }
  return out;
}

// GGUF llama names -> the names of 2023's llama.cpp files.
inline std::string LegacyName(const std::string& gguf) {
  static const std::map<std::string, std::string> kWhole = {
      {"token_embd.weight", "tok_embeddings.weight"}, {"output_norm.weight", "norm.weight"}, {"output.weight", "output.weight"}};
  static const std::map<std::string, std::string> kLayer = {
      {"attn_q.weight", "attention.wq.weight"},       {"attn_k.weight", "attention.wk.weight"},
      {"attn_v.weight", "attention.wv.weight"},       {"attn_output.weight", "attention.wo.weight"},
      {"attn_norm.weight", "attention_norm.weight"},  {"ffn_gate.weight", "feed_forward.w1.weight"},
      {"ffn_down.weight", "feed_forward.w2.weight"},  {"ffn_up.weight", "feed_forward.w3.weight"},
      {"ffn_norm.weight", "ffn_norm.weight"}};
  if (auto it = kWhole.find(gguf); it != kWhole.end()) return it->second;
  const size_t dot = gguf.find('.', 4);  // "blk.N."
  return "layers." + gguf.substr(4, dot - 4) + "." + kLayer.at(gguf.substr(dot + 1));
}

// The vocabulary as 2023's convert.py wrote it from a SentencePiece model, recovered from a GGUF's.
inline void LegacyVocabFromGguf(const GgufFile& g, LegacyFileOut* f) {
  const GgufValue* tokens = g.Find("tokenizer.ggml.tokens");
  const GgufValue* scores = g.Find("tokenizer.ggml.scores");
  const GgufValue* types = g.Find("tokenizer.ggml.token_type");
  for (size_t i = 0; i < tokens->elements().size(); ++i) {
    const std::string t = *tokens->elements()[i].AsString();
    const int64_t type = *types->elements()[i].AsInt();
    std::string raw;
    if (type == 2) {
      raw = " \xe2\x81\x87 ";
    } else if (type == 3) {
      raw = "";
    } else if (type == 6) {
      raw = std::string(1, static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
    } else {
      for (size_t p = 0; p < t.size();) {
        if (t.compare(p, 3, "\xe2\x96\x81") == 0) {
          raw += ' ';
          p += 3;
        } else {
          raw += t[p++];
        }
      }
    }
    f->tokens.push_back(raw);
    f->scores.push_back(static_cast<float>(*scores->elements()[i].AsFloat()));
  }
}

inline uint64_t FileType(const GgufFile& g) {
  auto t = g.GetUInt("general.file_type");
  return t.ok() ? *t : 0;
}

// The smallest n_mult from which the old loader derives this n_ff.
inline uint32_t NMultFor(uint32_t n_embd, uint32_t n_ff) {
  const uint32_t raw = 2 * (4 * n_embd) / 3;
  for (uint32_t m = 1; m <= n_ff; ++m) {
    if ((raw + m - 1) / m * m == n_ff) return m;
  }
  return 0;
}

// A legacy file holding the tensors of a llama GGUF (same types; blocks re-laid out for the version).
inline LegacyFileOut LegacyFileFromGguf(const GgufFile& g, GgmlLegacyFormat format, uint32_t version) {
  LegacyFileOut f;
  f.format = format;
  f.version = version;
  LegacyVocabFromGguf(g, &f);
  const auto n_embd = static_cast<uint32_t>(*g.GetUInt("llama.embedding_length"));
  const auto n_head = static_cast<uint32_t>(*g.GetUInt("llama.attention.head_count"));
  const auto n_ff = static_cast<uint32_t>(*g.GetUInt("llama.feed_forward_length"));
  f.hp[0] = static_cast<uint32_t>(f.tokens.size());
  f.hp[1] = n_embd;
  f.hp[2] = NMultFor(n_embd, n_ff);
  f.hp[3] = n_head;
  f.hp[4] = static_cast<uint32_t>(*g.GetUInt("llama.block_count"));
  f.hp[5] = n_embd / n_head;
  f.hp[6] = static_cast<uint32_t>(FileType(g));
  for (const GgufTensorInfo& t : g.tensors()) {
    LegacyTensorOut o;
    o.name = LegacyName(t.name);
    for (uint32_t d = 0; d < t.n_dims; ++d) o.dims.push_back(static_cast<uint32_t>(t.dims[d]));
    o.type = static_cast<uint32_t>(t.type);
    const GgmlTypeInfo& info = TypeInfo(t.type);
    if (info.quantized) o.bytes = ToLegacyBlocks(t.type, f.layout(), t.data, t.n_elements / info.block_size);
    else o.bytes.assign(t.data, t.data + t.n_bytes);
    f.tensors.push_back(std::move(o));
  }
  return f;
}

}  // namespace lowbit::testing
