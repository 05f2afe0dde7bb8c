// GPTQ (AutoGPTQ / GPTQModel) linear layers: quant_checkpoint.h has the layout.
#include <algorithm>
#include <cstring>

#include "lowbit/formats/int_pack.h"
#include "lowbit/formats/quant_checkpoint.h"
#include "lowbit/formats/quant_tensors.h"

namespace lowbit {
namespace {

using namespace quant_detail;  // NOLINT

constexpr int64_t kMaxDim = int64_t{1} << 32;

// What the layout needs from a module's shape, as one line.
struct Geometry {
  int bits, word_bits;
  int64_t rows, cols, group_size, groups, per_chunk;
  std::string packing;  // "4-bit values in int32 words"
};

Expected<Geometry> MakeGeometry(const std::string& prefix, const ModuleQuant& m, int word_bits, int64_t rows,
                                int64_t cols) {
  if (rows <= 0 || cols <= 0 || rows > kMaxDim || cols > kMaxDim) {
    return Errorf("{}: out_features {} x in_features {} is not a layer shape", prefix, rows, cols);
  }
  if (!PackingSupported(m.bits, word_bits)) {
    return Errorf("{}: {}-bit values cannot be packed in int{} words (3-bit needs int32)", prefix, m.bits, word_bits);
  }
  // A group wider than the layer is one group (AutoGPTQ's ceil(in / group_size) gives 1).
  Geometry g{m.bits, word_bits, rows, cols, m.group_size == -1 ? cols : std::min(m.group_size, cols), 0,
             ValuesPerChunk(m.bits, word_bits),
             fmt::format("{}-bit values in int{} words", m.bits, word_bits)};
  g.groups = (cols + g.group_size - 1) / g.group_size;
  const std::string unit = m.bits == 3 ? "32 values per 3 int32 words" : fmt::format("{} values per word", g.per_chunk);
  if (cols % g.per_chunk != 0) {
    return Errorf("{}: in_features {} is not a multiple of {} ({}): no GPTQ checkpoint holds this layer; keep it "
                  "in float", prefix, cols, g.per_chunk, unit);
  }
  if (rows % g.per_chunk != 0) {
    return Errorf("{}: out_features {} is not a multiple of {} ({}), which qzeros needs: no GPTQ checkpoint holds "
                  "this layer; keep it in float", prefix, rows, g.per_chunk, unit);
  }
  return g;
}

// A hint when qweight's shape fits another bit width or the transposed layer.
std::string QweightHint(const StTensor& t, const Geometry& g) {
  if (t.shape.size() != 2) return "";
  if (t.shape[1] == static_cast<uint64_t>(g.rows) && (t.shape[0] * g.word_bits) % g.cols == 0) {
    const uint64_t b = t.shape[0] * g.word_bits / g.cols;
    if (b == 2 || b == 3 || b == 4 || b == 8) return fmt::format(" (the shape fits {}-bit codes: check \"bits\")", b);
  }
  if (t.shape[1] == static_cast<uint64_t>(g.cols)) {
    return " (the shape fits the transposed layer: check in/out features)";
  }
  return "";
}

// Effective zero points [groups][rows] from qzeros under the config's zero convention.
std::vector<int32_t> DecodeZeros(const StTensor& t, const Geometry& g, CheckpointFormat format, V1Zeros rule,
                                 QuantReadNotes* notes) {
  const int64_t row_bytes = g.rows * g.bits / 8;
  const int maxq = (1 << g.bits) - 1;
  std::vector<int32_t> zeros(g.groups * g.rows);
  std::vector<uint8_t> words(row_bytes);
  const bool carry = format == CheckpointFormat::kGptq && rule == V1Zeros::kGptqModel && g.bits != 3;
  const uint64_t ones = OnesPerField(g.bits, g.word_bits);
  const uint64_t mask = g.word_bits == 64 ? ~uint64_t{0} : (uint64_t{1} << g.word_bits) - 1;
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    std::memcpy(words.data(), t.data.data() + grp * row_bytes, row_bytes);
    int32_t* z = zeros.data() + grp * g.rows;
    if (format == CheckpointFormat::kGptq) {  // count the fields the v1 readers disagree on
      std::vector<int32_t> raw(g.rows);
      UnpackRow(words.data(), g.rows, g.bits, g.word_bits, raw.data());
      if (notes) notes->v1_all_ones_zero_fields += std::count(raw.begin(), raw.end(), maxq);
    }
    if (carry) {  // GPTQModel: word + 0x11..1 with carry across fields
      const int wb = g.word_bits / 8;
      for (int64_t k = 0; k < row_bytes / wb; ++k) {
        StoreWord(words.data() + k * wb, g.word_bits, (LoadWord(words.data() + k * wb, g.word_bits) + ones) & mask);
      }
    }
    UnpackRow(words.data(), g.rows, g.bits, g.word_bits, z);
    if (format != CheckpointFormat::kGptq || carry) continue;
    for (int64_t r = 0; r < g.rows; ++r) z[r] = rule == V1Zeros::kGptqModel ? (z[r] + 1) & maxq : z[r] + 1;
  }
  return zeros;
}

// g_idx from the file (or the monotone default), checked against the groups and desc_act.
Expected<std::vector<int32_t>> LoadGIdx(const TensorSet& ts, const std::string& prefix, const Geometry& g,
                                        const ModuleQuant& m) {
  const StTensor* t = ts.Find(prefix + ".g_idx");
  if (t == nullptr) {
    if (m.desc_act) {
      return Errorf("{}.g_idx: tensor is missing, but desc_act is true (act-order needs the column -> group map)",
                    prefix);
    }
    return MonotoneGIdx(g.cols, g.group_size);
  }
  LOWBIT_RETURN_IF_ERROR(ExpectDtype(*t, {StDtype::kI32, StDtype::kI64}));
  LOWBIT_RETURN_IF_ERROR(ExpectShape(*t, {static_cast<uint64_t>(g.cols)}, "one group index per input"));
  std::vector<int32_t> out(g.cols);
  std::vector<int64_t> count(g.groups, 0);
  for (int64_t c = 0; c < g.cols; ++c) {
    int64_t v;
    if (t->dtype == StDtype::kI32) {
      int32_t v32;
      std::memcpy(&v32, t->data.data() + 4 * c, 4);
      v = v32;
    } else {
      std::memcpy(&v, t->data.data() + 8 * c, 8);
    }
    if (v < 0 || v >= g.groups) {
      return Errorf("{}: g_idx[{}] = {} is outside 0..{} ({} groups of {} over {} inputs)", t->name, c, v,
                    g.groups - 1, g.groups, g.group_size, g.cols);
    }
    if (!m.desc_act && v != c / g.group_size) {
      return Errorf("{}: g_idx[{}] = {}, but desc_act is false, which means group {} (input / group_size); "
                    "kernels that trust desc_act would read this layer differently", t->name, c, v, c / g.group_size);
    }
    out[c] = static_cast<int32_t>(v);
    ++count[v];
  }
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    const int64_t want = grp + 1 < g.groups ? g.group_size : g.cols - (g.groups - 1) * g.group_size;
    if (count[grp] != want) {
      return Errorf("{}: g_idx puts {} inputs in group {}, but group_size {} over {} inputs gives it {}", t->name,
                    count[grp], grp, g.group_size, g.cols, want);
    }
  }
  return out;
}

Status CheckSymZeros(const std::vector<int32_t>& zeros, const Geometry& g, const std::string& what) {
  const int32_t mid = 1 << (g.bits - 1);
  for (size_t i = 0; i < zeros.size(); ++i) {
    if (zeros[i] != mid) {
      return Errorf("{}: zero point of group {} output {} is {}, but sym is true, which means {} everywhere "
                    "(kernels such as Marlin ignore the stored zeros)", what, i / g.rows, i % g.rows, zeros[i], mid);
    }
  }
  return OkStatus();
}

}  // namespace

Expected<IntQuantLinear> ReadGptqLinear(const TensorSet& ts, const std::string& prefix, const QuantConfig& cfg,
                                        int64_t expect_rows, int64_t expect_cols, QuantReadNotes* notes) {
  if (cfg.method != QuantMethod::kGptq) return Errorf("{}: the quantization config is AWQ, not GPTQ", prefix);
  LOWBIT_ASSIGN_OR_RETURN(ModuleQuant m, ModuleSettings(cfg, prefix));
  LOWBIT_ASSIGN_OR_RETURN(Geometry g, MakeGeometry(prefix, m, cfg.pack_bits, expect_rows, expect_cols));
  const StDtype word = IntDtype(g.word_bits);
  const uint64_t rows = g.rows, cols = g.cols, groups = g.groups;

  LOWBIT_ASSIGN_OR_RETURN(const StTensor* qweight, Require(ts, prefix + ".qweight"));
  LOWBIT_RETURN_IF_ERROR(ExpectDtype(*qweight, {word}));
  if (qweight->shape != std::vector<uint64_t>{cols * g.bits / g.word_bits, rows}) {
    return Errorf("{}: shape {}, but {} of {} inputs x {} outputs need {}{}", qweight->name,
                  ShapeString(qweight->shape), g.packing, cols, rows,
                  ShapeString({cols * g.bits / g.word_bits, rows}), QweightHint(*qweight, g));
  }
  LOWBIT_ASSIGN_OR_RETURN(const StTensor* qzeros, Require(ts, prefix + ".qzeros"));
  LOWBIT_RETURN_IF_ERROR(ExpectDtype(*qzeros, {word}));
  LOWBIT_RETURN_IF_ERROR(ExpectShape(*qzeros, {groups, rows * g.bits / g.word_bits},
                                     fmt::format("{} of {} outputs as {}", Groups(groups), rows, g.packing)));
  LOWBIT_ASSIGN_OR_RETURN(const StTensor* scales, Require(ts, prefix + ".scales"));
  LOWBIT_ASSIGN_OR_RETURN(ScaleDtype sd, ScaleDtypeOf(*scales));
  LOWBIT_RETURN_IF_ERROR(ExpectShape(*scales, {groups, rows},
                                     fmt::format("{} (group_size {} over {} inputs) x {} outputs", Groups(groups),
                                                 m.group_size, cols, rows)));
  const StTensor* bias = ts.Find(prefix + ".bias");
  if (bias != nullptr) LOWBIT_RETURN_IF_ERROR(ExpectShape(*bias, {rows}, "one bias per output"));

  IntQuantLinear q;
  q.bits = g.bits;
  q.rows = g.rows;
  q.cols = g.cols;
  q.group_size = g.group_size;
  q.scale_dtype = sd;
  LOWBIT_ASSIGN_OR_RETURN(q.g_idx, LoadGIdx(ts, prefix, g, m));
  LOWBIT_ASSIGN_OR_RETURN(q.scales, LoadFloats(*scales));
  if (bias != nullptr) {
    LOWBIT_ASSIGN_OR_RETURN(q.bias, LoadFloats(*bias));
  }
  q.zeros = DecodeZeros(*qzeros, g, cfg.format, cfg.v1_zeros, notes);
  if (m.sym) LOWBIT_RETURN_IF_ERROR(CheckSymZeros(q.zeros, g, qzeros->name));
  q.codes.resize(rows * cols);
  UnpackColumns(qweight->data.data(), g.rows, g.cols, g.bits, g.word_bits, q.codes.data());
  return q;
}

Expected<std::vector<PackedTensor>> PackGptqLinear(const std::string& prefix, const IntQuantLinear& q,
                                                   const QuantConfig& cfg) {
  if (cfg.method != QuantMethod::kGptq) return Errorf("{}: the quantization config is AWQ, not GPTQ", prefix);
  LOWBIT_RETURN_IF_ERROR(CheckWritableConfig(cfg).WithContext(prefix));
  LOWBIT_ASSIGN_OR_RETURN(ModuleQuant m, ModuleSettings(cfg, prefix));
  LOWBIT_RETURN_IF_ERROR(CheckIntQuantLinear(q, prefix));
  LOWBIT_ASSIGN_OR_RETURN(Geometry g, MakeGeometry(prefix, m, cfg.pack_bits, q.rows, q.cols));
  if (q.bits != m.bits) return Errorf("{}: the codes are {}-bit, but the config says bits {}", prefix, q.bits, m.bits);
  if (q.group_size != g.group_size) {
    return Errorf("{}: the layer has group_size {}, but the config says {}", prefix, q.group_size, m.group_size);
  }
  const int32_t maxq = (1 << g.bits) - 1;
  for (size_t i = 0; i < q.zeros.size(); ++i) {
    if (q.zeros[i] > maxq) {  // 2^bits: an all-ones v1 field read the per-field way
      return Errorf("{}: zero point {} of group {} row {} does not fit a {}-bit field; GPTQ writers store zeros "
                    "0..{} (a zero of {} only comes from reading an all-ones GPTQ v1 field per field, and no "
                    "encoding makes GPTQModel and vLLM read it alike)", prefix, q.zeros[i], i / q.rows, i % q.rows,
                    g.bits, maxq, maxq + 1);
    }
  }
  if (m.sym) LOWBIT_RETURN_IF_ERROR(CheckSymZeros(q.zeros, g, prefix));
  if (!m.desc_act && !q.monotone()) {
    return Errorf("{}: g_idx is not input / group_size (act-order), but the config says desc_act false", prefix);
  }
  LOWBIT_RETURN_IF_ERROR(CheckScalesRepresentable(q, prefix));

  const uint64_t rows = g.rows, cols = g.cols, groups = g.groups;
  const StDtype word = IntDtype(g.word_bits);
  std::vector<uint8_t> qweight(cols * g.bits / 8 * rows);
  PackColumns(q.codes.data(), g.rows, g.cols, g.bits, g.word_bits, qweight.data());

  const int64_t row_bytes = g.rows * g.bits / 8;
  const int wb = g.word_bits / 8;
  const uint64_t ones = OnesPerField(g.bits, g.word_bits);
  const uint64_t mask = g.word_bits == 64 ? ~uint64_t{0} : (uint64_t{1} << g.word_bits) - 1;
  std::vector<uint8_t> qzeros(groups * row_bytes);
  std::vector<int32_t> fields(g.rows);
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    const int32_t* z = q.zeros.data() + grp * g.rows;
    uint8_t* out = qzeros.data() + grp * row_bytes;
    const bool v1 = cfg.format == CheckpointFormat::kGptq;
    for (int64_t r = 0; r < g.rows; ++r) fields[r] = v1 && g.bits == 3 ? (z[r] - 1) & maxq : z[r];
    PackRow(fields.data(), g.rows, g.bits, g.word_bits, out);
    if (!v1 || g.bits == 3) continue;
    for (int64_t k = 0; k < row_bytes / wb; ++k) {  // sum((z - 1) << shift): the word minus 0x11..1
      StoreWord(out + k * wb, g.word_bits, (LoadWord(out + k * wb, g.word_bits) - ones) & mask);
    }
  }
  std::vector<uint8_t> gidx(cols * 4);
  std::memcpy(gidx.data(), q.g_idx.data(), gidx.size());

  const uint64_t word_rows = cols * g.bits / g.word_bits, word_cols = rows * g.bits / g.word_bits;
  std::vector<PackedTensor> out;
  out.push_back({prefix + ".qweight", word, {word_rows, rows}, std::move(qweight)});
  out.push_back({prefix + ".qzeros", word, {groups, word_cols}, std::move(qzeros)});
  out.push_back({prefix + ".scales", StDtypeOf(q.scale_dtype), {groups, rows}, EncodeFloats(q.scales, q.scale_dtype)});
  out.push_back({prefix + ".g_idx", StDtype::kI32, {cols}, std::move(gidx)});
  if (!q.bias.empty()) {
    out.push_back({prefix + ".bias", StDtypeOf(q.scale_dtype), {rows}, EncodeFloats(q.bias, q.scale_dtype)});
  }
  return out;
}

Status AddGptqLinear(SafetensorsWriter& w, const std::string& prefix, const IntQuantLinear& q,
                     const QuantConfig& cfg) {
  LOWBIT_ASSIGN_OR_RETURN(std::vector<PackedTensor> tensors, PackGptqLinear(prefix, q, cfg));
  return AddPacked(w, std::move(tensors));
}

}  // namespace lowbit
