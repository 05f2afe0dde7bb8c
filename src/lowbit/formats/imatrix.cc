#include "lowbit/formats/imatrix.h"

#include <cmath>
#include <cstring>

#include "lowbit/base/atomic_file.h"
#include "lowbit/base/mapped_file.h"
#include "lowbit/formats/byte_reader.h"
#include "lowbit/formats/gguf_reader.h"

namespace lowbit {

const ImatrixEntry* Imatrix::Find(std::string_view name) const {
  for (const ImatrixEntry& e : entries) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

Expected<Imatrix> ParseImatrixDat(std::span<const uint8_t> bytes, const std::string& name) {
  ByteReader r(bytes, name);
  int32_t n = 0;
  LOWBIT_RETURN_IF_ERROR(r.Read(&n, "entry count"));
  if (n < 0 || static_cast<uint64_t>(n) > r.remaining() / 12) {
    return r.ErrorAt(0, "entry count {} does not fit in the file; not an imatrix .dat file?", n);
  }
  Imatrix m;
  m.entries.resize(n);
  for (ImatrixEntry& e : m.entries) {
    int32_t len = 0, nval = 0;
    const uint64_t at = r.offset();
    LOWBIT_RETURN_IF_ERROR(r.Read(&len, "name length"));
    if (len <= 0 || len > 4096 || static_cast<uint64_t>(len) > r.remaining()) {
      return r.ErrorAt(at, "entry name length {} is invalid", len);
    }
    std::span<const uint8_t> text;
    LOWBIT_RETURN_IF_ERROR(r.ReadBytes(len, &text, "entry name"));
    e.name.assign(reinterpret_cast<const char*>(text.data()), text.size());
    LOWBIT_RETURN_IF_ERROR(r.Read(&e.ncall, "call count"));
    LOWBIT_RETURN_IF_ERROR(r.Read(&nval, "value count"));
    if (e.ncall < 0 || nval <= 0 || static_cast<uint64_t>(nval) > r.remaining() / 4) {
      return r.ErrorAt(at, "entry '{}' has call count {} and {} values; the file is corrupt or truncated",
                       e.name, e.ncall, nval);
    }
    e.values.resize(nval);
    std::span<const uint8_t> raw;
    LOWBIT_RETURN_IF_ERROR(r.ReadBytes(static_cast<uint64_t>(nval) * 4, &raw, "values"));
    std::memcpy(e.values.data(), raw.data(), raw.size());
    for (float& v : e.values) {
      if (!std::isfinite(v) || v < 0) {
        return r.ErrorAt(at, "entry '{}' holds {} ; importance values are sums of squares (finite, >= 0)",
                         e.name, v);
      }
      if (e.ncall > 0) v /= static_cast<float>(e.ncall);
    }
    if (m.Find(e.name) != &e) return r.ErrorAt(at, "entry '{}' appears twice", e.name);
  }
  if (r.remaining() >= 8) {  // optional trailer
    int32_t len = 0;
    LOWBIT_RETURN_IF_ERROR(r.Read(&m.last_call, "last call"));
    LOWBIT_RETURN_IF_ERROR(r.Read(&len, "dataset name length"));
    if (len < 0 || static_cast<uint64_t>(len) > r.remaining()) return r.ErrorHere("dataset name length {} is invalid", len);
    std::span<const uint8_t> text;
    LOWBIT_RETURN_IF_ERROR(r.ReadBytes(len, &text, "dataset name"));
    m.dataset.assign(reinterpret_cast<const char*>(text.data()), text.size());
  }
  return m;
}

namespace {

Expected<Imatrix> FromGguf(const GgufFile& g) {
  Imatrix m;
  for (const GgufTensorInfo& t : g.tensors()) {
    if (!t.name.ends_with(".in_sum2")) continue;
    const std::string base = t.name.substr(0, t.name.size() - 8);
    const GgufTensorInfo* counts = g.FindTensor(base + ".counts");
    if (counts == nullptr || t.type != GgmlType::kF32 || counts->type != GgmlType::kF32) {
      return Errorf("{}: '{}' needs an F32 '{}.counts' beside it", g.name(), t.name, base);
    }
    const uint64_t n_per_row = t.dims[0], n_mat = t.n_dims > 1 ? t.dims[1] : 1;
    if (counts->n_elements != n_mat) {
      return Errorf("{}: '{}.counts' has {} values, expected {}", g.name(), base, counts->n_elements, n_mat);
    }
    ImatrixEntry e;
    e.name = base;
    const auto* sums = reinterpret_cast<const float*>(t.data);
    const auto* cnt = reinterpret_cast<const float*>(counts->data);
    e.values.resize(n_per_row * n_mat);
    for (uint64_t k = 0; k < n_mat; ++k) {
      for (uint64_t i = 0; i < n_per_row; ++i) {
        e.values[k * n_per_row + i] = cnt[k] > 0 ? sums[k * n_per_row + i] / cnt[k] : 0.0f;
      }
      // The count is a float from the file: NaN, negative or past INT32_MAX must not reach the cast.
      const float c = cnt[k];
      e.ncall = std::max(e.ncall, c >= 2147483520.0f ? INT32_MAX : c >= 1.0f ? static_cast<int32_t>(c) : 0);
    }
    m.entries.push_back(std::move(e));
  }
  if (m.entries.empty()) return Errorf("{}: a GGUF without '<name>.in_sum2' tensors is not an imatrix", g.name());
  return m;
}

}  // namespace

Expected<Imatrix> LoadImatrix(const std::string& path) {
  LOWBIT_ASSIGN_OR_RETURN(MappedFile map, MappedFile::Open(path));
  if (map.size() >= 4 && std::memcmp(map.data(), "GGUF", 4) == 0) {
    LOWBIT_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(path));
    return FromGguf(g);
  }
  return ParseImatrixDat(map.bytes(), path);
}

Status WriteImatrixDat(const std::string& path, const Imatrix& m) {
  LOWBIT_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::Create(path));
  auto put_i32 = [&](int32_t v) { return f.Write(&v, 4); };
  LOWBIT_RETURN_IF_ERROR(put_i32(static_cast<int32_t>(m.entries.size())));
  for (const ImatrixEntry& e : m.entries) {
    LOWBIT_RETURN_IF_ERROR(put_i32(static_cast<int32_t>(e.name.size())));
    LOWBIT_RETURN_IF_ERROR(f.Write(e.name.data(), e.name.size()));
    LOWBIT_RETURN_IF_ERROR(put_i32(e.ncall));
    LOWBIT_RETURN_IF_ERROR(put_i32(static_cast<int32_t>(e.values.size())));
    for (float v : e.values) {
      const float sum = e.ncall > 0 ? v * static_cast<float>(e.ncall) : v;
      LOWBIT_RETURN_IF_ERROR(f.Write(&sum, 4));
    }
  }
  LOWBIT_RETURN_IF_ERROR(put_i32(m.last_call));
  LOWBIT_RETURN_IF_ERROR(put_i32(static_cast<int32_t>(m.dataset.size())));
  LOWBIT_RETURN_IF_ERROR(f.Write(m.dataset.data(), m.dataset.size()));
  return f.Commit();
}

}  // namespace lowbit
