#include "lowbit/pipeline/folder_write.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "lowbit/formats/safetensors.h"

namespace lowbit {
namespace fs = std::filesystem;

namespace {

Status CopyFile(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) return Errorf("cannot copy {} to {}: {}", from.string(), to.string(), ec.message());
  return OkStatus();
}

Status WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) return Errorf("{}: cannot write", path.string());
  return OkStatus();
}

// Removes the temporary folder unless released.
class TempFolder {
 public:
  explicit TempFolder(fs::path p) : path_(std::move(p)) {}
  ~TempFolder() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  const fs::path& path() const { return path_; }
  void Release() { path_.clear(); }

 private:
  fs::path path_;
};

}  // namespace

Status WriteFolderFiles(const std::string& input, const std::string& output, const std::vector<PackedTensor>& packed,
                            const std::vector<std::pair<std::string, std::string>>& texts) {
  std::error_code ec;
  // The folder, beside OUT until it is complete.
  const fs::path out(output);
  const fs::path tmp_path = out.parent_path() / (out.filename().string() + fmt::format(".tmp-{}", static_cast<long>(::getpid())));
  fs::remove_all(tmp_path, ec);
  if (!fs::create_directories(tmp_path, ec) || ec) return Errorf("{}: cannot create: {}", tmp_path.string(), ec.message());
  TempFolder tmp(tmp_path);
  SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  w.SetMetadata("quantized_by", "lowbit");
  for (const PackedTensor& p : packed) {
    LOWBIT_RETURN_IF_ERROR(w.Add(p.name, p.dtype, p.shape, [&p](std::span<uint8_t> dst) -> Status {
      if (dst.size() != p.bytes.size()) return Errorf("{}: {} bytes, expected {}", p.name, p.bytes.size(), dst.size());
      std::memcpy(dst.data(), p.bytes.data(), dst.size());
      return OkStatus();
    }));
  }
  LOWBIT_RETURN_IF_ERROR(w.Write((tmp_path / "model.safetensors").string()));
  const fs::path in(input);
  for (const auto& [name, text] : texts) LOWBIT_RETURN_IF_ERROR(WriteText(tmp_path / name, text));
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                           "generation_config.json", "vocab.json", "merges.txt"}) {
    if (fs::exists(in / name, ec)) LOWBIT_RETURN_IF_ERROR(CopyFile(in / name, tmp_path / name));
  }
  fs::rename(tmp_path, out, ec);
  if (ec) return Errorf("{}: cannot rename the finished folder into place: {}", output, ec.message());
  tmp.Release();
  return OkStatus();
}

}  // namespace lowbit
