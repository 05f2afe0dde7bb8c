#include "lowbit/model/shard.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "lowbit/base/check.h"
#include "lowbit/model/llama.h"
#include "lowbit/numeric/ggml_type.h"

namespace lowbit {
namespace {

// The largest block size among the tensors named blk.<l>.<suffix> (1 when none is there).
int64_t LargestBlock(const GgufFile& g, int64_t layers, const std::string& suffix) {
  int64_t b = 1;
  for (int64_t l = 0; l < layers; ++l) {
    const std::string name = "blk." + std::to_string(l) + "." + suffix;
    if (const GgufTensorInfo* t = g.FindTensor(name)) {
      // A weight with an input map is repacked for any column range (GroupedPick): parts of 32.
      b = std::max<int64_t>(b, g.FindTensor(name + ".x_map") != nullptr ? 32 : TypeInfo(t->type).block_size);
    }
  }
  return b;
}

}  // namespace

Expected<ShardPlan> PlanShard(const GgufFile& g, const LlamaConfig& c, int rank, int ranks) {
  if (ranks < 1 || rank < 0 || rank >= ranks) return Errorf("rank {} of {} is invalid", rank, ranks);
  ShardPlan p;
  p.rank = rank;
  p.ranks = ranks;
  const int64_t group = c.n_head / c.n_head_kv;
  // Query heads whose attn_output columns fill whole blocks.
  const int64_t wo_block = LargestBlock(g, c.n_layer, "attn_output.weight");
  const int64_t block_heads = wo_block / std::gcd(wo_block, c.head_dim);
  const int64_t group_unit = std::lcm(group, block_heads);  // whole KV groups and whole blocks
  const int64_t group_units = c.n_head / group_unit, head_units = c.n_head / block_heads;
  p.kv_replicated = group_units < ranks && head_units > group_units;
  p.head_unit = p.kv_replicated ? block_heads : group_unit;
  LOWBIT_ASSIGN_OR_RETURN(p.heads, SplitUnits(c.n_head, p.head_unit, rank, ranks, /*extra_first=*/true));
  if (p.heads.count > 0) {
    const int64_t kv0 = p.heads.begin / group, kv1 = (p.heads.begin + p.heads.count + group - 1) / group;
    p.kv_heads = {kv0, kv1 - kv0};
  } else {
    p.kv_heads = {p.heads.begin / group, 0};
  }
  p.ff_unit = LargestBlock(g, c.n_layer, c.moe() ? "ffn_down_exps.weight" : "ffn_down.weight");
  LOWBIT_ASSIGN_OR_RETURN(p.ff, SplitUnits(c.ff_width(), p.ff_unit, rank, ranks));
  if (c.n_ff_shexp > 0) {
    LOWBIT_ASSIGN_OR_RETURN(p.ff_shexp, SplitUnits(c.n_ff_shexp, LargestBlock(g, c.n_layer, "ffn_down_shexp.weight"), rank, ranks));
  }
  p.vocab = VocabRows(c.n_vocab, rank, ranks);
  if (p.heads.count == 0 && p.ff.count == 0) {
    // Holding only classifier rows would leave a rank streaming the embedding for a sliver of work.
    return Errorf("{}: cannot split over {} ranks: rank {} would hold no attention and no FFN (attention splits into {} "
                  "part(s) of {} heads, as attn_output's blocks of {} columns and head dim {} require; the FFN into {} "
                  "part(s) of {} columns, ffn_down's block); use fewer ranks",
                  g.name(), ranks, rank, p.kv_replicated ? head_units : group_units, p.head_unit, wo_block, c.head_dim,
                  c.ff_width() / p.ff_unit, p.ff_unit);
  }
  return p;
}

ShardRange VocabRows(int64_t n_vocab, int rank, int ranks) {
  // Parts of 16 rows (the last one shorter when n_vocab is not a multiple): the decode and prefill
  // kernels take rows 8 or 16 at a time, so every classifier row meets the kernel it meets on one
  // rank, and gives the same bits.
  constexpr int64_t kUnit = 16;
  const int64_t units = (n_vocab + kUnit - 1) / kUnit;
  const ShardRange u = *SplitUnits(units, 1, rank, ranks);
  const int64_t begin = std::min(n_vocab, u.begin * kUnit), end = std::min(n_vocab, (u.begin + u.count) * kUnit);
  return {begin, end - begin};
}

Expected<GroupedPick> PickGroupedColumns(const GgufTensorInfo& t, const int32_t* map, ShardRange cs) {
  if (!IsGroupedType(t.type)) {
    return Errorf("tensor '{}' ({}) has regrouped or padded columns and cannot be split over ranks: only grouped-integer "
                  "weights can be repacked", t.name, TypeInfo(t.type).name);
  }
  constexpr int64_t kRun = 32;
  const int bits = GroupedContainerBits(t.type);
  const int64_t block = GroupedBlockSize(t.type), stored = static_cast<int64_t>(t.dims[0]);
  GroupedPick p;
  LOWBIT_ASSIGN_OR_RETURN(p.from, PlanGrouped(bits, stored, block));
  std::vector<int64_t> runs;
  for (int64_t b = 0; b < stored / block; ++b) {
    int64_t run = 0;
    for (int64_t j = b * block; j < (b + 1) * block; ++j) {
      if (map[j] < cs.begin || map[j] >= cs.begin + cs.count) continue;  // padding (-1) too
      if (run == kRun) {
        runs.push_back(run);
        p.from_group.push_back(static_cast<int32_t>(b));
        run = 0;
      }
      p.columns.push_back(static_cast<int32_t>(j));
      ++run;
    }
    if (run > 0) {
      runs.push_back(run);
      p.from_group.push_back(static_cast<int32_t>(b));
    }
  }
  if (static_cast<int64_t>(p.columns.size()) != cs.count) {
    return Errorf("tensor '{}': its input map holds {} of input columns [{}, {}), expected each once", t.name, p.columns.size(),
                  cs.begin, cs.begin + cs.count);
  }
  LOWBIT_ASSIGN_OR_RETURN(p.to, PlanGrouped(bits, runs, kRun));
  const std::vector<int32_t> source = p.to.ColumnMap();
  p.x_map.resize(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    p.x_map[i] = source[i] < 0 ? -1 : map[p.columns[static_cast<size_t>(source[i])]] - static_cast<int32_t>(cs.begin);
  }
  return p;
}

void RepackPickedRow(const GroupedPick& p, const uint8_t* in, uint8_t* out) {
  const size_t from_groups = p.from.group_cols.size(), to_groups = p.to.group_cols.size();
  std::vector<uint8_t> codes(static_cast<size_t>(p.from.cols)), picked(p.columns.size());
  std::vector<uint16_t> d(from_groups), d_to(to_groups);
  std::vector<int32_t> z(from_groups), z_to(to_groups);
  UnpackGroupedRows(p.from, in, 1, codes.data(), d.data(), z.data());
  for (size_t i = 0; i < p.columns.size(); ++i) picked[i] = codes[static_cast<size_t>(p.columns[i])];
  for (size_t g = 0; g < to_groups; ++g) {
    d_to[g] = d[static_cast<size_t>(p.from_group[g])];
    z_to[g] = z[static_cast<size_t>(p.from_group[g])];
  }
  // The codes came out of blocks of the same container and the zero points are int16: nothing to refuse.
  LOWBIT_CHECK(PackGroupedRows(p.to, picked.data(), d_to.data(), z_to.data(), 1, out).ok());
}

uint64_t ImageRowStep(uint64_t bytes) { return bytes > 0 && bytes % 4096 == 0 ? bytes + 64 : bytes; }

void ShardImage::Add(TensorPiece p) {
  if (p.rows > 1) p.stride = ImageRowStep(p.bytes);
  p.image_offset = (bytes + 63) / 64 * 64;
  bytes = p.image_offset + p.size();
  pieces.push_back(p);
}

Status FillImage(const ShardImage& img, const TensorDataReader& reader, uint64_t begin, uint64_t n, uint8_t* dst) {
  const uint64_t end = begin + n;
  for (const TensorPiece& p : img.pieces) {
    const uint64_t p0 = p.image_offset, p1 = p.image_offset + p.size();
    if (p1 <= begin || p0 >= end || p.size() == 0) continue;
    const uint64_t a = std::max(p0, begin), b = std::min(p1, end);
    const uint64_t step = p.step();
    const bool whole = p.bytes == p.row_bytes && p.pick == nullptr;  // rows as the file holds them
    if (whole && step == p.bytes) {  // packed: one contiguous range of the tensor
      LOWBIT_RETURN_IF_ERROR(reader.Read(*p.tensor, p.row0 * p.row_bytes + (a - p0), b - a, dst + (a - begin)));
      continue;
    }
    // Row by row: row i's bytes at [i step, i step + bytes) of the piece, then its padding (zeroed).
    // Whole rows are read several at a time into a buffer (one read for many rows); a picked row is
    // read whole and repacked; a column range is read on its own.
    constexpr uint64_t kBufferBytes = uint64_t{1} << 20;
    const uint64_t batch = whole ? std::max<uint64_t>(1, kBufferBytes / p.row_bytes) : 1;
    std::vector<uint8_t> src(whole || p.pick != nullptr ? batch * p.row_bytes : 0), row(p.pick != nullptr ? p.bytes : 0);
    uint64_t have0 = 0, have1 = 0;  // rows [have0, have1) are in src
    for (uint64_t i = (a - p0) / step; i < p.rows && p0 + i * step < b; ++i) {
      const uint64_t row_at = p0 + i * step;
      const uint64_t r0 = std::max(a, row_at), r1 = std::min(b, row_at + p.bytes);
      if (r0 < r1) {
        const uint64_t in_row = r0 - row_at;
        if (p.pick != nullptr) {
          LOWBIT_RETURN_IF_ERROR(reader.Read(*p.tensor, (p.row0 + i) * p.row_bytes, p.row_bytes, src.data()));
          RepackPickedRow(*p.pick, src.data(), row.data());
          std::memcpy(dst + (r0 - begin), row.data() + in_row, r1 - r0);
        } else if (whole) {
          if (i < have0 || i >= have1) {
            have0 = i;
            have1 = std::min(p.rows, i + batch);
            LOWBIT_RETURN_IF_ERROR(reader.Read(*p.tensor, (p.row0 + have0) * p.row_bytes, (have1 - have0) * p.row_bytes, src.data()));
          }
          std::memcpy(dst + (r0 - begin), src.data() + (i - have0) * p.row_bytes + in_row, r1 - r0);
        } else {
          LOWBIT_RETURN_IF_ERROR(reader.Read(*p.tensor, (p.row0 + i) * p.row_bytes + p.byte0 + in_row, r1 - r0, dst + (r0 - begin)));
        }
      }
      const uint64_t g0 = std::max(a, row_at + p.bytes), g1 = std::min(b, row_at + step);
      if (g0 < g1) std::memset(dst + (g0 - begin), 0, g1 - g0);
    }
  }
  return OkStatus();
}

namespace {

struct WindowHeader {
  int32_t ok;
  int32_t reserved;
};

}  // namespace

Status SendImages(Comm* comm, const std::vector<ShardImage>& images, const TensorDataReader* reader, Status failed) {
  LOWBIT_CHECK(comm->rank() == 0 && static_cast<int>(images.size()) == comm->size());
  LOWBIT_CHECK(reader != nullptr || !failed.ok());
  std::vector<uint8_t> window;
  for (int r = 1; r < comm->size(); ++r) {
    const ShardImage& img = images[r];
    if (!failed.ok()) {
      const WindowHeader bad{0, 0};
      comm->Send(&bad, sizeof(bad), r);
      continue;
    }
    for (uint64_t at = 0; at < img.bytes; at += kStreamWindow) {
      const uint64_t n = std::min(kStreamWindow, img.bytes - at);
      window.assign(n, 0);
      failed = FillImage(img, *reader, at, n, window.data());
      const WindowHeader h{failed.ok() ? 1 : 0, 0};
      comm->Send(&h, sizeof(h), r);
      if (!h.ok) break;  // the receiver stops at the first bad window
      comm->Send(window.data(), n, r);
    }
  }
  return failed;
}

Status ReceiveImage(Comm* comm, const ShardImage& img, uint8_t* dst) {
  for (uint64_t at = 0; at < img.bytes; at += kStreamWindow) {
    const uint64_t n = std::min(kStreamWindow, img.bytes - at);
    WindowHeader h{};
    comm->Recv(&h, sizeof(h), 0);
    if (!h.ok) return Errorf("rank 0 could not read this rank's weights to send them");
    comm->Recv(dst + at, n, 0);
  }
  return OkStatus();
}

}  // namespace lowbit
