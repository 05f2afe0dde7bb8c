#include "lowbit/formats/llama2c.h"

#include <cstring>

#include "lowbit/formats/byte_reader.h"

namespace lowbit {

Expected<Llama2cCheckpoint> Llama2cCheckpoint::Open(const std::string& path) {
  LOWBIT_ASSIGN_OR_RETURN(MappedFile map, MappedFile::Open(path));
  Llama2cCheckpoint c;
  c.name_ = path;
  c.map_ = std::move(map);
  LOWBIT_RETURN_IF_ERROR(c.ParseAll(c.map_.bytes()));
  return c;
}

Expected<Llama2cCheckpoint> Llama2cCheckpoint::Parse(std::span<const uint8_t> bytes, const std::string& name) {
  Llama2cCheckpoint c;
  c.name_ = name;
  LOWBIT_RETURN_IF_ERROR(c.ParseAll(bytes));
  return c;
}

Status Llama2cCheckpoint::ParseAll(std::span<const uint8_t> bytes) {
  bytes_ = bytes;
  ByteReader r(bytes, name_);
  uint32_t magic = 0;
  if (bytes.size() >= 4) std::memcpy(&magic, bytes.data(), 4);
  if (magic == 0x616b3432) {
    return r.ErrorAt(0, "this is a llama2.c 'ak42' (version 1+) export; lowbit reads the legacy "
                     "(version 0) format written by export.py --version 0");
  }
  int32_t h[7];
  LOWBIT_RETURN_IF_ERROR(r.Read(&h, "llama2.c header (7 x int32)"));
  Llama2cConfig& c = config_;
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.shared_classifier = h[5] > 0;
  c.vocab_size = h[5] == INT32_MIN ? 0 : (h[5] < 0 ? -h[5] : h[5]);
  c.seq_len = h[6];
  static const char* kNames[] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
  const int32_t vals[] = {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len};
  for (int i = 0; i < 7; ++i) {
    if (vals[i] <= 0 || vals[i] > (1 << 24)) {
      return r.ErrorAt(4 * i, "header field {} = {} is out of range; not a llama2.c checkpoint?",
                       kNames[i], h[i]);
    }
  }
  if (c.dim % c.n_heads != 0) {
    return r.ErrorAt(0, "dim {} is not a multiple of n_heads {}", c.dim, c.n_heads);
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    return r.ErrorAt(0, "n_heads {} is not a multiple of n_kv_heads {}", c.n_heads, c.n_kv_heads);
  }
  const uint64_t dim = c.dim, hid = c.hidden_dim, L = c.n_layers, V = c.vocab_size, kv = c.kv_dim();
  const uint64_t f = 4;
  const uint64_t per_layer[12] = {0, dim * f, dim * dim * f, kv * dim * f, kv * dim * f, dim * dim * f,
                                  dim * f, hid * dim * f, dim * hid * f, hid * dim * f, 0, 0};
  const uint64_t whole[12] = {V * dim * f, 0, 0, 0, 0, 0, 0, 0, 0, 0, dim * f, 0};
  uint64_t off = 28;
  for (int i = 0; i <= static_cast<int>(Llama2cWeight::kRmsFinal); ++i) {
    offsets_[i] = off;
    per_layer_[i] = per_layer[i];
    off += whole[i] + per_layer[i] * L;
  }
  off += static_cast<uint64_t>(c.seq_len) * c.head_dim() * f;  // legacy freq_cis, unused
  offsets_[static_cast<int>(Llama2cWeight::kClassifier)] =
      c.shared_classifier ? offsets_[0] : off;
  const uint64_t expected = c.shared_classifier ? off : off + V * dim * f;
  if (bytes.size() != expected) {
    return Errorf("{}: file is {} bytes, but a llama2.c v0 checkpoint with dim={} hidden_dim={} "
                  "n_layers={} n_heads={} n_kv_heads={} vocab_size={} seq_len={} has {} bytes{}",
                  name_, bytes.size(), c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, h[5],
                  c.seq_len, expected, bytes.size() < expected ? " (truncated?)" : "");
  }
  return OkStatus();
}

std::span<const uint8_t> Llama2cCheckpoint::Weight(Llama2cWeight w, int layer) const {
  const int i = static_cast<int>(w);
  const uint64_t dim = config_.dim, V = config_.vocab_size;
  uint64_t size = per_layer_[i];
  uint64_t off = offsets_[i] + per_layer_[i] * static_cast<uint64_t>(layer);
  if (w == Llama2cWeight::kTokenEmbedding || w == Llama2cWeight::kClassifier) size = V * dim * 4;
  if (w == Llama2cWeight::kRmsFinal) size = dim * 4;
  return bytes_.subspan(off, size);
}

Expected<Vocab> ParseLlama2cTokenizer(std::span<const uint8_t> bytes, int32_t n_vocab, const std::string& name) {
  ByteReader r(bytes, name);
  uint32_t max_len = 0;
  LOWBIT_RETURN_IF_ERROR(r.Read(&max_len, "max_token_length"));
  if (n_vocab <= 0 || static_cast<uint64_t>(n_vocab) > r.remaining() / 8) {
    return Errorf("{}: cannot hold {} tokens in {} bytes; is this the model's tokenizer?", name,
                  n_vocab, bytes.size());
  }
  Vocab v;
  v.tokens.resize(n_vocab);
  v.scores.resize(n_vocab);
  for (int32_t i = 0; i < n_vocab; ++i) {
    int32_t len = 0;
    LOWBIT_RETURN_IF_ERROR(r.Read(&v.scores[i], "token score"));
    const uint64_t at = r.offset();
    LOWBIT_RETURN_IF_ERROR(r.Read(&len, "token length"));
    if (len < 0 || static_cast<uint64_t>(len) > r.remaining()) {
      return r.ErrorAt(at, "token {} has length {}, but {} bytes are left", i, len, r.remaining());
    }
    std::span<const uint8_t> text;
    LOWBIT_RETURN_IF_ERROR(r.ReadBytes(len, &text, "token text"));
    v.tokens[i].assign(reinterpret_cast<const char*>(text.data()), text.size());
  }
  if (r.remaining() != 0) {
    return r.ErrorHere("{} bytes follow the {} tokens the model needs; this tokenizer has a larger "
                       "vocabulary than the model", r.remaining(), n_vocab);
  }
  return v;
}

Expected<Vocab> LoadLlama2cTokenizer(const std::string& path, int32_t n_vocab) {
  LOWBIT_ASSIGN_OR_RETURN(MappedFile map, MappedFile::Open(path));
  LOWBIT_ASSIGN_OR_RETURN(Vocab v, ParseLlama2cTokenizer(map.bytes(), n_vocab, path));
  v.model = "llama";
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  v.token_types.resize(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    std::string& t = v.tokens[i];
    TokenType type = TokenType::kNormal;
    unsigned byte = 0;
    char tail = 0;
    if (i == 0) {
      t = "<unk>";
      type = TokenType::kUnknown;
    } else if (i == 1) {
      t = "<s>";
      type = TokenType::kControl;
    } else if (i == 2) {
      t = "</s>";
      type = TokenType::kControl;
    } else if (t.empty()) {
      type = TokenType::kControl;
    } else if (t.size() == 6 && std::sscanf(t.c_str(), "<0x%2X%c", &byte, &tail) == 2 && tail == '>') {
      type = TokenType::kByte;
    }
    std::string escaped;
    for (char ch : t) {
      if (ch == ' ') escaped += "\xe2\x96\x81";  // U+2581
      else escaped += ch;
    }
    t = std::move(escaped);
    v.token_types[i] = static_cast<int32_t>(type);
  }
  return v;
}

}  // namespace lowbit
