// How a llama model is cut over tensor-parallel ranks (Megatron's 1-D scheme), and the bytes each
// rank holds of it.
//
// Q/K/V and gate/up are column-parallel (a rank's output rows: its query heads with the KV heads
// they read, a slice of the FFN width; no communication); attention output and down are
// row-parallel (the matching input columns; partial outputs summed by an all-reduce); the
// classifier is split by vocabulary rows (logits all-gathered); embedding and norms are whole on
// every rank.
//
// Split rules (any rank count, uneven parts allowed):
// - A row-parallel cut must fall on a block of the weight's type, so the head unit is the fewest
//   query heads whose attn_output columns fill whole blocks (Q4_K: 256 / head_dim heads); while
//   there are at least as many units of whole KV groups as ranks, ranks take whole KV groups (no
//   K/V weight is held twice); with more ranks than that, ranks take query heads and hold the KV
//   heads those read (replicated K/V rows). With fewer head units than ranks some ranks hold no
//   attention at all (stories5M's Q4_K attn_output is one 256-column block: one rank does it).
// - The FFN width splits on the block size of ffn_down; the ranks with the most attention get the
//   least FFN where the parts are uneven. In a mixture of experts every expert's width splits so
//   (ffn_down_exps' block; each rank holds its slice of every expert, and routes every token itself,
//   the router being whole on each rank), and the shared expert's width likewise.
// - A rank that would hold nothing at all is an error that names the units.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/tensor_data.h"
#include "lowbit/numeric/grouped.h"
#include "lowbit/parallel/comm.h"

namespace lowbit {

struct LlamaConfig;

struct ShardPlan {
  int rank = 0, ranks = 1;
  ShardRange heads;     // query heads
  ShardRange kv_heads;  // KV heads held (whole groups, or those the query heads read)
  ShardRange ff;        // FFN columns (of each expert, in a mixture of experts)
  ShardRange ff_shexp;  // the shared expert's columns (qwen2moe), cut like the FFN
  ShardRange vocab;     // classifier rows
  bool kv_replicated = false;
  int64_t head_unit = 1, ff_unit = 1;  // query heads / FFN columns per indivisible part
};

Expected<ShardPlan> PlanShard(const GgufFile& g, const LlamaConfig& c, int rank, int ranks);
// The classifier rows of `rank` (what PlanShard puts in ShardPlan::vocab): parts of 16 rows.
ShardRange VocabRows(int64_t n_vocab, int rank, int ranks);

// A row-parallel shard of a grouped-integer weight stored with its columns regrouped (GPTQ
// act-order) or padded: the rank's input columns are scattered over the stored row, so its part is
// those columns repacked rather than a byte range (docs/DESIGN-NOTES.md, "GPTQ act-order shards").
// Every stored block keeps its (d, z): the columns it holds for the rank, in stored order, become
// runs of at most 32, each a block of 32 of its own (the smallest block: the least padding), so the
// shard is a plain grouped weight (W4G32 / W8G32) with its own input map over the rank's inputs,
// run by the same kernels.
struct GroupedPick {
  GroupedLayout from;               // the stored row, every block one group
  GroupedLayout to;                 // the rank's row
  std::vector<int32_t> columns;     // to's source columns, as stored columns of the tensor
  std::vector<int32_t> from_group;  // to's group g takes the (d, z) of from's group from_group[g]
  std::vector<int32_t> x_map;       // to's stored column -> the rank's input column (-1: padding)
};
// The pick of input columns `cs` of the grouped weight `t`, whose stored column j reads input column
// map[j] (-1: padding). An error names the tensor when t is not a grouped type or cs holds none of its
// columns.
Expected<GroupedPick> PickGroupedColumns(const GgufTensorInfo& t, const int32_t* map, ShardRange cs);
// One stored row (from.row_bytes() bytes) repacked into the rank's row (to.row_bytes()).
void RepackPickedRow(const GroupedPick& p, const uint8_t* in, uint8_t* out);

// One weight's part held by a rank: rows [row0, row0 + rows) of the tensor (a row = dims[0]
// elements, `row_bytes` bytes in the file) and of each row bytes [byte0, byte0 + bytes); or, with
// `pick`, each of those rows repacked into `bytes` = pick->to.row_bytes() (byte0 0).
struct TensorPiece {
  const GgufTensorInfo* tensor = nullptr;
  uint64_t row0 = 0, rows = 0, byte0 = 0, bytes = 0, row_bytes = 0;
  uint64_t image_offset = 0;  // where it lies in the rank's weight image (64-byte aligned)
  std::shared_ptr<const GroupedPick> pick;
  uint64_t stride = 0;  // image bytes from one row to the next (ShardImage::Add; 0: bytes, rows packed)
  uint64_t step() const { return stride != 0 ? stride : bytes; }
  uint64_t size() const { return rows * step(); }
};

// The image's row step for rows of `bytes` bytes: `bytes`, or one cache line more where `bytes` is a
// multiple of 4 KiB. The 8-row kernels read 8 rows side by side; rows a multiple of 4 KiB apart put
// all 8 in the same set of a 32 KiB 8-way L1 (where the activations also sit): on AMD Zen 4 the F16
// 8-row kernel read 25 GB/s on rows 4096 bytes apart against 29 with one line between them, and
// TinyLlama-shape F16 decode gained 10-25% (docs/PERFORMANCE.md, "Rows 4 KiB apart"). Power-of-two
// widths of F16 / BF16 / F32 hit this; block-quantized rows almost never do.
uint64_t ImageRowStep(uint64_t bytes);

// A rank's weights laid end to end: the bytes it reads or receives.
struct ShardImage {
  std::vector<TensorPiece> pieces;
  uint64_t bytes = 0;
  void Add(TensorPiece p);
};

// Copies bytes [begin, begin + n) of the image into dst (dst = image + begin); the bytes between
// pieces are left alone, those between a piece's rows (TensorPiece::stride) are zeroed.
Status FillImage(const ShardImage& img, const TensorDataReader& reader, uint64_t begin, uint64_t n, uint8_t* dst);

// Streaming a rank's image from rank 0 (--tp-send-weights): windows of kStreamWindow bytes, each
// after an 8-byte header that says whether rank 0 could read it.
inline constexpr uint64_t kStreamWindow = uint64_t{16} << 20;
// Rank 0: reads each other rank's image and sends it (images[r] for r >= 1). At a read error, or
// when `failed` is already an error (reader null), it tells every rank not yet served instead, and
// returns the error.
Status SendImages(Comm* comm, const std::vector<ShardImage>& images, const TensorDataReader* reader, Status failed);
// Other ranks: receives this rank's image into dst.
Status ReceiveImage(Comm* comm, const ShardImage& img, uint8_t* dst);

}  // namespace lowbit
