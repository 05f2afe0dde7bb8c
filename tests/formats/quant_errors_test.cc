// Every way a GPTQ / AWQ layer can disagree with its config, on read and on write: one line that
// names the tensor (or the layer) and the field.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>

#include "quant_test_util.h"

namespace lowbit {
namespace {

using testing::LinearSpec;
using testing::RandomLinear;

struct Entry {
  StDtype dtype;
  std::vector<uint64_t> shape;
  std::vector<uint8_t> bytes;
};
using Tensors = std::map<std::string, Entry>;

class QuantErrors : public ::testing::Test {
 protected:
  // A valid layer "m" of `spec` written with `cfg`, as editable tensors.
  Tensors Layer(const LinearSpec& spec, const QuantConfig& cfg) {
    std::mt19937 rng(21);
    layer_ = RandomLinear(rng, spec);
    SafetensorsWriter w;
    Status s = AddQuantizedLinear(w, "m", layer_, cfg);
    EXPECT_TRUE(s.ok()) << s.message();
    EXPECT_TRUE(w.Write(dir_.Path("base.safetensors")).ok());
    auto f = SafetensorsFile::Open(dir_.Path("base.safetensors"));
    Tensors out;
    for (const StTensor& t : f->tensors()) out[t.name] = {t.dtype, t.shape, {t.data.begin(), t.data.end()}};
    return out;
  }
  // Reads `t` back under `cfg` and expects an error holding every fragment.
  void ExpectReadError(const Tensors& t, const QuantConfig& cfg, int64_t rows, int64_t cols,
                       std::initializer_list<std::string> fragments) {
    SafetensorsWriter w;
    for (const auto& [name, e] : t) {
      ASSERT_TRUE(w.Add(name, e.dtype, e.shape, [&e](std::span<uint8_t> out) {
                     std::memcpy(out.data(), e.bytes.data(), out.size());
                     return OkStatus();
                   }).ok());
    }
    ASSERT_TRUE(w.Write(dir_.Path("bad.safetensors")).ok());
    auto f = SafetensorsFile::Open(dir_.Path("bad.safetensors"));
    ASSERT_TRUE(f.ok()) << f.status().message();
    auto q = ReadQuantizedLinear(*f, "m", cfg, rows, cols);
    ASSERT_FALSE(q.ok()) << "accepted a broken layer; expected: " << *fragments.begin();
    for (const std::string& frag : fragments) {
      EXPECT_NE(q.status().message().find(frag), std::string::npos) << q.status().message();
    }
    EXPECT_EQ(q.status().message().find('\n'), std::string::npos);
  }
  void ExpectWriteError(const IntQuantLinear& q, const QuantConfig& cfg, std::initializer_list<std::string> fragments) {
    SafetensorsWriter w;
    Status s = AddQuantizedLinear(w, "m", q, cfg);
    ASSERT_FALSE(s.ok()) << "wrote a layer that disagrees with its config; expected: " << *fragments.begin();
    for (const std::string& frag : fragments) EXPECT_NE(s.message().find(frag), std::string::npos) << s.message();
  }

  testing::TempDir dir_;
  IntQuantLinear layer_;
};

QuantConfig Gptq4(bool desc_act = true, bool sym = false) {
  QuantConfig c;
  c.group_size = 32;
  c.desc_act = desc_act;
  c.sym = sym;
  return c;
}

LinearSpec Spec(bool act_order = true) {
  LinearSpec s;
  s.rows = 32;
  s.cols = 64;
  s.group_size = 32;
  s.act_order = act_order;
  s.bias = true;
  return s;
}

template <typename T>
void Put(Entry& e, size_t index, T v) {
  std::memcpy(e.bytes.data() + index * sizeof(T), &v, sizeof(T));
}

TEST_F(QuantErrors, GptqMissingTensors) {
  const QuantConfig cfg = Gptq4();
  for (const char* name : {"m.qweight", "m.qzeros", "m.scales"}) {
    Tensors t = Layer(Spec(), cfg);
    t.erase(name);
    ExpectReadError(t, cfg, 32, 64, {name, "missing"});
  }
  Tensors t = Layer(Spec(), cfg);
  t.erase("m.g_idx");
  ExpectReadError(t, cfg, 32, 64, {"m.g_idx", "missing", "desc_act is true"});
}

TEST_F(QuantErrors, GptqMissingGIdxIsFineWithoutActOrder) {
  const QuantConfig cfg = Gptq4(false);
  Tensors t = Layer(Spec(false), cfg);
  t.erase("m.g_idx");
  SafetensorsWriter w;
  for (const auto& [name, e] : t) {
    ASSERT_TRUE(w.Add(name, e.dtype, e.shape, [&e](std::span<uint8_t> out) {
                   std::memcpy(out.data(), e.bytes.data(), out.size());
                   return OkStatus();
                 }).ok());
  }
  ASSERT_TRUE(w.Write(dir_.Path("nog.safetensors")).ok());
  auto f = SafetensorsFile::Open(dir_.Path("nog.safetensors"));
  auto q = ReadGptqLinear(*f, "m", cfg, 32, 64);
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(q->g_idx, MonotoneGIdx(64, 32));
}

TEST_F(QuantErrors, GptqShapesAndDtypes) {
  const QuantConfig cfg = Gptq4();
  const Tensors base = Layer(Spec(), cfg);
  Tensors t = base;
  t["m.qweight"].dtype = StDtype::kU32;
  ExpectReadError(t, cfg, 32, 64, {"m.qweight", "dtype U32", "I32"});
  // The same words read as 8-bit: qweight [8, 32] fits 4-bit, the config says 8.
  QuantConfig eight = cfg;
  eight.bits = 8;
  ExpectReadError(base, eight, 32, 64, {"m.qweight", "shape [8, 32]", "[16, 32]", "fits 4-bit codes"});
  // Transposed layer: rows and cols swapped.
  ExpectReadError(base, cfg, 64, 32, {"m.qweight", "transposed"});
  t = base;
  t["m.qzeros"].shape = {4, 2};
  t["m.qzeros"].bytes.resize(32);
  ExpectReadError(t, cfg, 32, 64, {"m.qzeros", "shape [4, 2]", "[2, 4]"});
  t = base;
  t["m.scales"].shape = {1, 32};
  t["m.scales"].bytes.resize(64);
  ExpectReadError(t, cfg, 32, 64, {"m.scales", "shape [1, 32]", "2 groups"});
  t = base;
  t["m.scales"].dtype = StDtype::kI16;
  ExpectReadError(t, cfg, 32, 64, {"m.scales", "dtype I16", "F16, BF16 or F32"});
  t = base;
  t["m.g_idx"].dtype = StDtype::kF32;
  ExpectReadError(t, cfg, 32, 64, {"m.g_idx", "dtype F32"});
  t = base;
  t["m.g_idx"].shape = {16, 4};
  ExpectReadError(t, cfg, 32, 64, {"m.g_idx", "shape [16, 4]", "[64]"});
  t = base;
  t["m.bias"].shape = {16, 2};
  ExpectReadError(t, cfg, 32, 64, {"m.bias", "[32]"});
  t = base;
  t["m.bias"].dtype = StDtype::kI16;
  ExpectReadError(t, cfg, 32, 64, {"m.bias", "dtype I16"});
}

TEST_F(QuantErrors, GptqValues) {
  const QuantConfig cfg = Gptq4();
  const Tensors base = Layer(Spec(), cfg);
  Tensors t = base;
  Put<uint16_t>(t["m.scales"], 5, 0x7E00);  // fp16 NaN
  ExpectReadError(t, cfg, 32, 64, {"m.scales", "value [0, 5] is nan"});
  t = base;
  Put<uint16_t>(t["m.bias"], 3, 0x7C00);  // +inf
  ExpectReadError(t, cfg, 32, 64, {"m.bias", "value [3] is inf"});
  t = base;
  Put<int32_t>(t["m.g_idx"], 7, 2);
  ExpectReadError(t, cfg, 32, 64, {"m.g_idx", "g_idx[7] = 2", "outside 0..1"});
  t = base;
  Put<int32_t>(t["m.g_idx"], 7, -1);
  ExpectReadError(t, cfg, 32, 64, {"m.g_idx", "g_idx[7] = -1"});
  t = base;
  for (int c = 0; c < 64; ++c) Put<int32_t>(t["m.g_idx"], c, c < 40 ? 0 : 1);
  ExpectReadError(t, cfg, 32, 64, {"m.g_idx", "puts 40 inputs in group 0", "gives it 32"});
  // A non-monotone g_idx under desc_act false disagrees with the config.
  ExpectReadError(base, Gptq4(false), 32, 64, {"m.g_idx", "desc_act is false"});
}

TEST_F(QuantErrors, GptqSymZeros) {
  const QuantConfig asym = Gptq4();
  QuantConfig sym = asym;
  sym.sym = true;
  ExpectReadError(Layer(Spec(), asym), sym, 32, 64, {"m.qzeros", "sym is true", "means 8"});
}

TEST_F(QuantErrors, GptqLayerShapesThatNoCheckpointHolds) {
  const QuantConfig cfg = Gptq4();
  const Tensors base = Layer(Spec(), cfg);
  ExpectReadError(base, cfg, 32, 60, {"in_features 60 is not a multiple of 8"});
  ExpectReadError(base, cfg, 36, 64, {"out_features 36 is not a multiple of 8"});
  QuantConfig three = cfg;
  three.bits = 3;
  ExpectReadError(base, three, 32, 48, {"in_features 48 is not a multiple of 32", "3 int32 words"});
  QuantConfig wide = cfg;
  wide.bits = 3;
  wide.pack_bits = 16;
  ExpectReadError(base, wide, 32, 64, {"3-bit values cannot be packed in int16"});
  ExpectReadError(base, cfg, 0, 64, {"not a layer shape"});
}

TEST_F(QuantErrors, ConfigAndModuleMismatches) {
  const QuantConfig cfg = Gptq4();
  const Tensors base = Layer(Spec(), cfg);
  QuantConfig awq;
  awq.method = QuantMethod::kAwq;
  awq.format = CheckpointFormat::kAwqGemm;
  awq.group_size = 32;
  // GPTQ tensors read as AWQ: g_idx gives it away.
  ExpectReadError(base, awq, 32, 64, {"m.g_idx", "AWQ GEMM has no g_idx"});
  Tensors t = base;
  t.erase("m.g_idx");
  ExpectReadError(t, awq, 32, 64, {"m.qweight", "GPTQ's packing along the inputs"});
  QuantConfig skip = cfg;
  skip.modules_to_not_convert = {"m"};
  ExpectReadError(base, skip, 32, 64, {"m: the quantization config leaves this module unquantized"});
  QuantConfig dyn = cfg;
  auto rule = MakeDynamicRule("+:m", R"({"bits": 8})", "test");
  ASSERT_TRUE(rule.ok());
  dyn.dynamic.push_back(*rule);
  ExpectReadError(base, dyn, 32, 64, {"m.qweight", "8-bit values"});
}

QuantConfig Awq32() {
  QuantConfig c;
  c.method = QuantMethod::kAwq;
  c.format = CheckpointFormat::kAwqGemm;
  c.group_size = 32;
  c.sym = false;
  c.desc_act = false;
  return c;
}

TEST_F(QuantErrors, AwqTensors) {
  const QuantConfig cfg = Awq32();
  const Tensors base = Layer(Spec(false), cfg);
  for (const char* name : {"m.qweight", "m.qzeros", "m.scales"}) {
    Tensors t = base;
    t.erase(name);
    ExpectReadError(t, cfg, 32, 64, {name, "missing"});
  }
  Tensors t = base;
  t["m.qweight"].dtype = StDtype::kF32;
  ExpectReadError(t, cfg, 32, 64, {"m.qweight", "dtype F32"});
  t = base;
  t["m.qzeros"].shape = {4, 2};
  ExpectReadError(t, cfg, 32, 64, {"m.qzeros", "[2, 4]"});
  t = base;
  t["m.scales"].shape = {1, 64};
  ExpectReadError(t, cfg, 32, 64, {"m.scales", "[2, 32]"});
  ExpectReadError(base, cfg, 32, 48, {"in_features 48 is not a multiple of group_size 32"});
  ExpectReadError(base, cfg, 28, 64, {"out_features 28 is not a multiple of 8"});
  QuantConfig gptq = Gptq4(false);
  ExpectReadError(base, gptq, 32, 64, {"m.qweight", "shape [64, 4]"});
  QuantConfig dyn = cfg;
  dyn.dynamic.push_back(*MakeDynamicRule("m", R"({"bits": 3})", "test"));
  ExpectReadError(base, dyn, 32, 64, {"m: AWQ GEMM holds 4-bit values", "3 bits"});
}

TEST_F(QuantErrors, WriterRefusesLayersThatDisagree) {
  std::mt19937 rng(5);
  const IntQuantLinear good = RandomLinear(rng, Spec());
  const QuantConfig cfg = Gptq4();
  IntQuantLinear q = good;
  q.codes[70] = 16;
  ExpectWriteError(q, cfg, {"m: code 16 at row 1 column 6 does not fit 4 bits"});
  q = good;
  q.zeros[3] = 17;
  ExpectWriteError(q, cfg, {"zero point 17", "outside 0..16"});
  q = good;
  q.bits = 8;
  ExpectWriteError(q, cfg, {"codes are 8-bit", "bits 4"});
  q = good;
  q.group_size = 64;
  q.g_idx = MonotoneGIdx(64, 64);
  q.scales.resize(32);
  q.zeros.resize(32);
  ExpectWriteError(q, cfg, {"group_size 64", "config says 32"});
  ExpectWriteError(good, Gptq4(false), {"act-order", "desc_act false"});
  QuantConfig sym = cfg;
  sym.sym = true;
  ExpectWriteError(good, sym, {"sym is true"});
  q = good;
  q.scales[2] = 0.1f;  // not an fp16 value
  ExpectWriteError(q, cfg, {"scale 0.1 of group 0 row 2 is not exactly representable in F16"});
  q = good;
  q.g_idx[0] = q.g_idx[0] == 0 ? 1 : 0;
  ExpectWriteError(q, cfg, {"g_idx puts"});
  q = good;
  q.scales[0] = NAN;
  ExpectWriteError(q, cfg, {"scale of group 0 row 0 is nan"});
  QuantConfig damp = cfg;
  damp.damp_percent = 1.5;
  ExpectWriteError(good, damp, {"damp_percent"});
  QuantConfig three = cfg;
  three.bits = 3;
  IntQuantLinear q3 = RandomLinear(rng, [] { LinearSpec s = Spec(); s.bits = 3; s.cols = 48; s.group_size = 16; return s; }());
  three.group_size = 16;
  ExpectWriteError(q3, three, {"in_features 48 is not a multiple of 32"});
  // AWQ: fp16 scales only, contiguous groups only, 4-bit only.
  IntQuantLinear a = RandomLinear(rng, Spec(false));
  a.scale_dtype = ScaleDtype::kBF16;
  ExpectWriteError(a, Awq32(), {"AutoAWQ stores fp16 scales", "BF16"});
  ExpectWriteError(good, Awq32(), {"act-order"});
  IntQuantLinear a8 = RandomLinear(rng, [] { LinearSpec s = Spec(false); s.bits = 8; return s; }());
  QuantConfig awq8 = Awq32();
  awq8.bits = 8;
  ExpectWriteError(a8, awq8, {"AWQ GEMM holds 4-bit values only"});
}

}  // namespace
}  // namespace lowbit
