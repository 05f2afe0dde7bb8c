#include "lowbit/formats/gguf_vocab.h"

namespace lowbit {
namespace {

Status ArrayOf(const GgufFile& g, const char* key, GgufValueType want, bool required, const GgufValue** out) {
  *out = g.Find(key);
  if (*out == nullptr) return required ? Errorf("{}: metadata '{}' is missing (no tokenizer?)", g.name(), key) : OkStatus();
  if (!(*out)->is_array() || (*out)->element_type() != want) {
    return Errorf("{}: metadata '{}' should be an array of {}", g.name(), key, GgufValueTypeName(want));
  }
  return OkStatus();
}

}  // namespace

Expected<Vocab> VocabFromGguf(const GgufFile& g) {
  Vocab v;
  LOWBIT_ASSIGN_OR_RETURN(v.model, g.GetString("tokenizer.ggml.model"));
  if (const GgufValue* pre = g.Find("tokenizer.ggml.pre"); pre && pre->AsString()) v.pre = *pre->AsString();
  if (const GgufValue* name = g.Find("general.name"); name && name->AsString()) v.name = *name->AsString();
  const GgufValue *tokens, *scores, *types, *merges;
  LOWBIT_RETURN_IF_ERROR(ArrayOf(g, "tokenizer.ggml.tokens", GgufValueType::kString, true, &tokens));
  LOWBIT_RETURN_IF_ERROR(ArrayOf(g, "tokenizer.ggml.scores", GgufValueType::kF32, false, &scores));
  LOWBIT_RETURN_IF_ERROR(ArrayOf(g, "tokenizer.ggml.token_type", GgufValueType::kI32, false, &types));
  LOWBIT_RETURN_IF_ERROR(ArrayOf(g, "tokenizer.ggml.merges", GgufValueType::kString, false, &merges));
  const size_t n = tokens->elements().size();
  if (n == 0) return Errorf("{}: tokenizer.ggml.tokens is empty", g.name());
  for (const GgufValue& t : tokens->elements()) v.tokens.push_back(*t.AsString());
  if (scores) {
    if (scores->elements().size() != n) return Errorf("{}: {} scores for {} tokens", g.name(), scores->elements().size(), n);
    for (const GgufValue& s : scores->elements()) v.scores.push_back(static_cast<float>(*s.AsFloat()));
  }
  if (types) {
    if (types->elements().size() != n) return Errorf("{}: {} token types for {} tokens", g.name(), types->elements().size(), n);
    for (const GgufValue& t : types->elements()) v.token_types.push_back(static_cast<int32_t>(*t.AsInt()));
  }
  if (merges) {
    for (const GgufValue& m : merges->elements()) v.merges.push_back(*m.AsString());
  }
  auto id = [&](const char* key, int64_t* out) -> Status {
    const GgufValue* x = g.Find(key);
    if (x == nullptr) return OkStatus();
    auto u = x->AsUInt();
    if (!u) return Errorf("{}: '{}' should be a token id", g.name(), key);
    *out = *u < n ? static_cast<int64_t>(*u) : -1;  // llama.cpp writes 4294967295 for "none"
    return OkStatus();
  };
  LOWBIT_RETURN_IF_ERROR(id("tokenizer.ggml.bos_token_id", &v.bos_id));
  LOWBIT_RETURN_IF_ERROR(id("tokenizer.ggml.eos_token_id", &v.eos_id));
  LOWBIT_RETURN_IF_ERROR(id("tokenizer.ggml.unknown_token_id", &v.unk_id));
  LOWBIT_RETURN_IF_ERROR(id("tokenizer.ggml.padding_token_id", &v.pad_id));
  auto flag = [&](const char* key, int* out) {
    const GgufValue* x = g.Find(key);
    if (x != nullptr && x->type() == GgufValueType::kBool) *out = x->raw() != 0;
  };
  flag("tokenizer.ggml.add_bos_token", &v.add_bos);
  flag("tokenizer.ggml.add_eos_token", &v.add_eos);
  flag("tokenizer.ggml.add_space_prefix", &v.add_space_prefix);
  if (v.model == "llama" && v.add_space_prefix < 0) v.add_space_prefix = 1;  // llama.cpp's default for SPM
  if (v.model == "llama" && v.add_bos < 0) v.add_bos = 1;
  return v;
}

}  // namespace lowbit
