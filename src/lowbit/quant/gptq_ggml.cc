#include "lowbit/quant/gptq_ggml.h"

#include "lowbit/quant/ggml_grid.h"
#include "lowbit/quant/gptq_internal.h"
#include "lowbit/quant/quantize.h"

namespace lowbit {
namespace {

inline size_t Z(int64_t v) { return static_cast<size_t>(v); }

// A ggml block quantizer fixes the grid at each block's first column; the codes are GPTQ's.
class GgmlRounder {
 public:
  GgmlRounder(const GgmlGrid& grid, FromFloatFn quantize, const float* imatrix, int64_t rows, int64_t cols,
              uint8_t* out)
      : grid_(grid), quantize_(quantize), imatrix_(imatrix), out_(out),
        block_bytes_(TypeInfo(grid.type).block_bytes), row_bytes_(*RowBytes(grid.type, static_cast<uint64_t>(cols))),
        a_(Z(rows * grid.block_size)), b_(Z(rows * grid.block_size)), codes_(Z(rows * grid.block_size)) {}

  // Column i: its place in its block, and the block's byte offset in a row.
  struct Column {
    int64_t i;
    int j;
    size_t offset;
  };
  Column At(int64_t i) const {
    const int bs = grid_.block_size;
    return {i, static_cast<int>(i % bs), Z(i / bs) * block_bytes_};
  }

  float Quantize(const Column& col, int64_t r, const float* row) {
    const int bs = grid_.block_size;
    const int64_t i = col.i;
    const int j = col.j;
    uint8_t* block = out_ + Z(r) * row_bytes_ + col.offset;
    float* a = a_.data() + r * bs;
    float* b = b_.data() + r * bs;
    uint8_t* codes = codes_.data() + r * bs;
    if (j == 0) {
      quantize_(row + i, block, bs, imatrix_ + i);
      grid_.grid(block, a, b);
    }
    const int code = grid_.Nearest(row[i], a[j], b[j]);
    codes[j] = static_cast<uint8_t>(code);
    if (j == bs - 1) grid_.set_codes(block, codes);
    return GgmlGrid::Value(a[j], b[j], grid_.Level(code));
  }

 private:
  const GgmlGrid& grid_;
  FromFloatFn quantize_;
  const float* imatrix_;
  uint8_t* out_;
  size_t block_bytes_, row_bytes_;
  std::vector<float> a_, b_;     // [rows][block]: the current block's grid per row
  std::vector<uint8_t> codes_;   // [rows][block]
};

}  // namespace

namespace {

Expected<const GgmlGrid*> CheckType(int64_t cols, const GptqGgmlOptions& options, bool act_order, const char* name) {
  const GgmlGrid* grid = GgmlGridFor(options.type);
  if (grid == nullptr || FromFloatFor(options.type) == nullptr) {
    return Errorf("{}: GPTQ cannot round to {} (types with a code grid: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, "
                  "IQ4_NL, IQ4_XS, TQ2_0, and bitsandbytes' NF4 rows NF4G32 / NF4G64)",
                  name, TypeInfo(options.type).name);
  }
  if (act_order) {
    return Errorf("{}: act-order is not possible with {}: a GGUF keeps the input columns in order; drop --act-order",
                  name, TypeInfo(options.type).name);
  }
  if (cols % grid->block_size != 0) {
    return Errorf("{}: {} needs rows that are a multiple of {} columns (this one has {})", name,
                  TypeInfo(options.type).name, grid->block_size, cols);
  }
  if (options.block_size <= 0) return Errorf("{}: GPTQ block size must be positive (got {})", name, options.block_size);
  return grid;
}

}  // namespace

Expected<GptqGgmlResult> GptqQuantizeGgml(const float* w, int64_t rows, int64_t cols, const GptqHessianFactor& factor,
                                          const GptqGgmlOptions& options, ThreadPool* pool, const char* name) {
  LOWBIT_ASSIGN_OR_RETURN(const GgmlGrid* grid, CheckType(cols, options, !factor.perm.empty(), name));
  LOWBIT_ASSIGN_OR_RETURN(std::vector<float> work, gptq_internal::PrepareWeights(w, rows, cols, factor, name));
  GptqGgmlResult res;
  gptq_internal::FactorStats(factor, &res.stats);
  const gptq_internal::PhaseTimer timer;
  const float* imatrix = options.imatrix ? options.imatrix : factor.diag.data();
  const int64_t bs = grid->block_size;
  const int64_t block = (options.block_size + bs - 1) / bs * bs;  // a ggml block never straddles two
  const size_t row_bytes = *RowBytes(options.type, static_cast<uint64_t>(cols));
  res.data.assign(row_bytes * Z(rows), 0);
  GgmlRounder rounder(*grid, FromFloatFor(options.type), imatrix, rows, cols, res.data.data());
  res.stats.loss = gptq_internal::RunColumns(work.data(), rows, cols, factor.u.data(), block, rounder, pool, &res.stats);
  timer.AddTo(&res.stats.seconds_quantize, &res.stats.cpu_seconds_quantize);
  return res;
}

Expected<GptqGgmlResult> GptqQuantizeGgml(const float* w, int64_t rows, int64_t cols, std::vector<float> hessian,
                                          const GptqGgmlOptions& options, ThreadPool* pool, const char* name) {
  LOWBIT_RETURN_IF_ERROR(CheckType(cols, options, options.act_order, name).status());
  GptqOptions go;
  go.damp_percent = options.damp_percent;
  go.damp_increment = options.damp_increment;
  LOWBIT_ASSIGN_OR_RETURN(GptqHessianFactor f, GptqFactorHessian(std::move(hessian), cols, go, pool, name));
  return GptqQuantizeGgml(w, rows, cols, f, options, pool, name);
}

}  // namespace lowbit
