#include "lowbit/formats/sentencepiece_model.h"

#include <cstring>

#include "lowbit/base/mapped_file.h"
#include "lowbit/formats/byte_reader.h"

namespace lowbit {
namespace {

Status ReadVarint(ByteReader& r, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    uint8_t b = 0;
    LOWBIT_RETURN_IF_ERROR(r.Read(&b, "protobuf varint"));
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *out = v;
      return OkStatus();
    }
  }
  return r.ErrorHere("protobuf varint longer than 10 bytes");
}

struct Field {
  uint32_t number = 0;
  uint32_t wire = 0;
  uint64_t varint = 0;                 // wire 0
  uint32_t fixed32 = 0;                // wire 5
  std::span<const uint8_t> bytes;      // wire 2
};

// Reads one field; skips fixed64 values.
Status ReadField(ByteReader& r, Field* f) {
  uint64_t key = 0;
  const uint64_t at = r.offset();
  LOWBIT_RETURN_IF_ERROR(ReadVarint(r, &key));
  f->number = static_cast<uint32_t>(key >> 3);
  f->wire = static_cast<uint32_t>(key & 7);
  switch (f->wire) {
    case 0: return ReadVarint(r, &f->varint);
    case 1: return r.Skip(8, "protobuf fixed64");
    case 2: {
      uint64_t len = 0;
      LOWBIT_RETURN_IF_ERROR(ReadVarint(r, &len));
      if (len > r.remaining()) {
        return r.ErrorAt(at, "protobuf field {} has length {} but {} bytes are left", f->number, len, r.remaining());
      }
      return r.ReadBytes(len, &f->bytes, "protobuf bytes");
    }
    case 5: return r.Read(&f->fixed32, "protobuf fixed32");
    default: return r.ErrorAt(at, "protobuf wire type {} is not valid here; not a SentencePiece model?", f->wire);
  }
}

Status ParsePiece(std::span<const uint8_t> bytes, const std::string& name, Vocab* v) {
  ByteReader r(bytes, name + " (piece " + std::to_string(v->tokens.size()) + ")");
  std::string piece;
  float score = 0;
  int32_t type = 1;
  while (r.remaining() > 0) {
    Field f;
    LOWBIT_RETURN_IF_ERROR(ReadField(r, &f));
    if (f.number == 1 && f.wire == 2) piece.assign(reinterpret_cast<const char*>(f.bytes.data()), f.bytes.size());
    else if (f.number == 2 && f.wire == 5) std::memcpy(&score, &f.fixed32, 4);
    else if (f.number == 3 && f.wire == 0) type = static_cast<int32_t>(f.varint);
  }
  if (type < 1 || type > 6) return r.ErrorAt(0, "piece type {} is not a SentencePiece type (1-6)", type);
  v->tokens.push_back(std::move(piece));
  v->scores.push_back(score);
  v->token_types.push_back(type);
  return OkStatus();
}

}  // namespace

Expected<Vocab> ParseSentencePieceModel(std::span<const uint8_t> bytes, const std::string& name) {
  ByteReader r(bytes, name);
  Vocab v;
  v.model = "llama";
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  v.add_space_prefix = 1;
  while (r.remaining() > 0) {
    Field f;
    LOWBIT_RETURN_IF_ERROR(ReadField(r, &f));
    if (f.wire != 2) continue;
    if (f.number == 1) {
      LOWBIT_RETURN_IF_ERROR(ParsePiece(f.bytes, name, &v));
    } else if (f.number == 2 || f.number == 3) {
      ByteReader sub(f.bytes, name);
      while (sub.remaining() > 0) {
        Field g;
        LOWBIT_RETURN_IF_ERROR(ReadField(sub, &g));
        if (g.wire != 0) continue;
        const auto value = static_cast<int64_t>(static_cast<int32_t>(g.varint));
        if (f.number == 2) {
          if (g.number == 3 && g.varint != 1 && g.varint != 2) {
            return Errorf("{}: SentencePiece model type {} is not supported (only BPE and unigram)", name, g.varint);
          }
          if (g.number == 40) v.unk_id = value;
          if (g.number == 41) v.bos_id = value;
          if (g.number == 42) v.eos_id = value;
          if (g.number == 43) v.pad_id = value;
        } else if (g.number == 3) {
          v.add_space_prefix = g.varint != 0;
        }
      }
    }
  }
  if (v.tokens.empty()) return Errorf("{}: no vocabulary pieces found; not a SentencePiece model", name);
  const auto n = static_cast<int64_t>(v.tokens.size());
  for (int64_t* id : {&v.unk_id, &v.bos_id, &v.eos_id, &v.pad_id}) {
    if (*id >= n) return Errorf("{}: special token id {} is outside the {}-token vocabulary", name, *id, n);
  }
  return v;
}

Expected<Vocab> LoadSentencePieceModel(const std::string& path) {
  LOWBIT_ASSIGN_OR_RETURN(MappedFile map, MappedFile::Open(path));
  return ParseSentencePieceModel(map.bytes(), path);
}

}  // namespace lowbit
