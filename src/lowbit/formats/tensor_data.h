// TensorDataReader: copies byte ranges of a GgufFile's tensors into memory the caller owns.
//
// From the file by pread when the GgufFile was opened from one, so that nothing else of the file
// becomes resident (a tensor-parallel rank reads only its own rows and columns); from memory when
// the tensors live there (a model assembled in memory, with no file offsets); an error when the data
// is not in this process at all (ParseHeader: a rank that receives its weights from rank 0).
#pragma once

#include <cstdint>
#include <string>

#include "lowbit/base/status.h"
#include "lowbit/formats/gguf_reader.h"

namespace lowbit {

class TensorDataReader {
 public:
  static Expected<TensorDataReader> For(const GgufFile& g);

  TensorDataReader(TensorDataReader&& o) noexcept;
  TensorDataReader& operator=(TensorDataReader&& o) noexcept;
  TensorDataReader(const TensorDataReader&) = delete;
  TensorDataReader& operator=(const TensorDataReader&) = delete;
  ~TensorDataReader();

  // Bytes [offset, offset + bytes) of tensor t's data into dst.
  Status Read(const GgufTensorInfo& t, uint64_t offset, uint64_t bytes, uint8_t* dst) const;
  bool from_file() const { return fd_ >= 0; }

 private:
  TensorDataReader() = default;
  int fd_ = -1;
  uint64_t data_offset_ = 0;
  std::string name_;
};

}  // namespace lowbit
