// MappedFile: a read-only view of a whole file in memory. Open() maps the file (tensor data is read
// through the mapping and never copied on load); Read() copies it into private anonymous memory in
// 2 MiB pages where the kernel has transparent huge pages, which the decode kernels stream faster on
// the machines measured (docs/PERFORMANCE.md, eleventh engine session). Either way the bytes are
// read-only. Move-only; unmaps on destruction. An empty file gives an empty span.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "lowbit/base/status.h"

namespace lowbit {

// How a model's file is held for inference: mapped (MappedFile::Open), read into memory
// (MappedFile::Read), or kAuto: read when the kernel offers transparent huge pages and the file
// takes at most half of the available memory, mapped otherwise.
enum class Residency { kAuto, kMapped, kInMemory };

// kMapped or kInMemory for a file of `file_size` bytes (`wanted` itself unless it is kAuto).
Residency ChooseResidency(Residency wanted, size_t file_size);

class MappedFile {
 public:
  static Expected<MappedFile> Open(const std::string& path);
  // The whole file read into anonymous memory, 2 MiB-aligned and advised MADV_HUGEPAGE, then made
  // read-only. Costs the file's size in memory (the page cache's copy stays reclaimable).
  static Expected<MappedFile> Read(const std::string& path);
  // Open or Read as `r` says (kAuto: ChooseResidency on the file's size).
  static Expected<MappedFile> Load(const std::string& path, Residency r);
  // A stand-in for a file of `size` bytes of which only the first `head.size()` are known (a
  // header, to plan from before any data exists): those bytes are a read-only copy, the rest is
  // reserved address space that faults if read (PROT_NONE, so it costs neither memory nor commit
  // charge). Pointers into it are real addresses, so views built from it can be checked and
  // measured but never read. `name` is used in messages.
  static Expected<MappedFile> Reserve(const std::string& name, std::span<const uint8_t> head, size_t size);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }
  // Whether the bytes are a Read() copy rather than the file's mapping.
  bool copied() const { return copied_; }
  // Whether this is a Reserve() stand-in (the bytes past the header cannot be read).
  bool reserved() const { return reserved_; }

  // Tells the kernel the pages wholly inside `range` will not be read again soon, so they stop
  // counting as resident (they are re-read from the page cache if touched). Ranges outside this
  // mapping are ignored, and so is a Read() copy (its pages have no file behind them). Used by
  // streaming conversion to keep memory at about one tensor.
  void DropPages(std::span<const uint8_t> range) const;

 private:
  // Open and Read on an open file of `size` bytes (Load opens it once for either).
  static Expected<MappedFile> Map(const std::string& path, int fd, size_t size);
  static Expected<MappedFile> Copy(const std::string& path, int fd, size_t size);
  void Reset();
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t map_len_ = 0;  // what munmap releases: size_, or the copy's 2 MiB-rounded length
  bool copied_ = false;
  bool reserved_ = false;
  std::string path_;
};

}  // namespace lowbit
