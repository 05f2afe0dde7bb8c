// The model `lowbit advise` is asked about, and the files it could be: the given GGUF as it is, or
// the model quantized to a candidate type, each planned from metadata only. A GGUF, a Hugging Face
// folder, a safetensors file or a llama2.c checkpoint is described by `lowbit convert`'s plan
// (metadata, tokenizer, tensor names, shapes and types: tensor data is mapped, never read); a named
// shape by `lowbit synth`'s file. A candidate's file is laid out exactly as `lowbit quantize` (or
// `lowbit synth`) would write it (GgufWriter: size and header), and the model is loaded from that
// header by the engine's own loader (GgufFile::FromHeader, LlamaModel::Load), so its shapes, its
// memory and its work per token are the engine's, not a second description of the model.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/formats/gguf_writer.h"
#include "lowbit/model/llama.h"
#include "lowbit/pipeline/convert.h"
#include "lowbit/pipeline/synth.h"

namespace lowbit {

// A model file as it is or as it would be written: its header parsed, the model loaded from it.
struct PlannedModel {
  std::string type;          // "Q4_K_M", "F16", or the given file's type ("as is")
  uint64_t file_bytes = 0;
  std::unique_ptr<GgufFile> file;  // the real file (mapped; only its header is read) or a header (FromHeader)
  LlamaModel model;                // views into `file`, never read
  uint64_t n_merges = 0;           // tokenizer merges in the metadata (BPE vocabularies)
  // A folder candidate (IsFolderCandidate): the folder's size on disk; `file_bytes` is then what the
  // loader holds in memory (the rows the kernels run), `file` the F16 plan its views were retyped from.
  uint64_t folder_bytes = 0;
  // Bytes of the file a forward pass never reads: the token embedding (one row per token is read),
  // unless it is also the classifier. A mapped file keeps these out of memory.
  uint64_t UnreadBytes() const;
};

// A GGUF file as it is (mapped; only its header is read).
Expected<PlannedModel> PlanGguf(const std::string& path);

class ModelSource {
 public:
  // A GGUF file, a Hugging Face folder, a safetensors file, a llama2.c checkpoint, or a shape name
  // (SynthShapes: tinyllama-1.1b, llama3-8b, ...).
  static Expected<ModelSource> Open(const std::string& arg);
  static ModelSource FromShape(const SynthShape& shape);

  const std::string& name() const { return name_; }
  const std::string& kind() const { return kind_; }  // "gguf", "huggingface", "safetensors", "llama2.c", "shape"
  // The given file as it is: the GGUF itself; for other inputs, what `lowbit convert` writes with
  // --outtype of the weights' own type (F32/F16/BF16); none for a shape.
  bool has_as_is() const { return kind_ != "shape"; }
  Expected<PlannedModel> AsIs() const;
  // The model quantized to `type` (a `lowbit quantize` TYPE), from this input (re-quantized when
  // the input is quantized already).
  Expected<PlannedModel> As(const std::string& type) const;

 private:
  // The tokenizer's metadata (tokenizer.* keys) is part of a file's size but not of the shapes a plan
  // loads; a plan carries one stand-in entry of the same serialized size, far cheaper to write and
  // parse than a vocabulary of 128k strings.
  struct TokenizerMeta {
    uint64_t bytes = 0;   // serialized size of the tokenizer.* entries
    uint64_t merges = 0;
  };

  std::string name_, kind_, path_;
  TokenizerMeta tokenizer_;
  std::shared_ptr<ConversionPlan> plan_;  // files
  SynthShape shape_{};                    // shapes
};

// The types `lowbit advise` weighs by default: F16, Q8_0, Q6_K, Q5_K_M, Q4_K_M, IQ4_XS, Q3_K_M, Q2_K,
// and the two folder formats below.
const std::vector<std::string>& DefaultCandidateTypes();

// Candidates that are Hugging Face folders rather than GGUF files, run natively by lowbit:
//  - "GPTQ-W4G128": a GPTQ (or AWQ) folder, 4-bit, group 128 (`lowbit quantize HF OUT --format gptq`):
//    qweight (4 bits), qzeros (4 bits per group), fp16 scales per group, g_idx (int32 per input
//    column); loaded as W4G128 rows (4.25 bits per weight).
//  - "NF4": a bitsandbytes NF4 folder with double quantization, block 64 (`load_in_4bit`'s default;
//    `lowbit quantize HF OUT --method nf4 --double-quant`): 4-bit codes, 8-bit absmax per block, an
//    fp32 absmax per 256 blocks; loaded as NF4G64x2 rows (NF4G64 where a width is not a multiple of
//    128; the absmax decoded: 4.5 bits per weight).
// The decoder's linear layers (attention, FFN, experts) take the format; the embedding, lm_head,
// router and norms stay 16-bit (the folder keeps them in the model's dtype; F16 is assumed).
bool IsFolderCandidate(const std::string& type);

}  // namespace lowbit
