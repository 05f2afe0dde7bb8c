// Tensor parallelism for the commands that run a model (run, perplexity, bench): started by an MPI
// launcher (`mpirun -np N lowbit run ...`), each process is one rank and loads its shard; otherwise
// there is one rank and everything is as without MPI.
//
// Under MPI: ranks other than 0 write nothing to stdout (it is sent to /dev/null), errors are one
// line on each rank naming the rank, and the ranks agree after every step that can fail on one of
// them (opening the file, loading, the model's identity), so all stop together.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <string>

#include "lowbit/base/mapped_file.h"
#include "lowbit/base/status.h"
#include "lowbit/formats/gguf_reader.h"
#include "lowbit/model/llama.h"
#include "lowbit/parallel/comm.h"
#include "lowbit/tokenizer/vocab.h"
#include "lowbit/train/lora_file.h"

namespace lowbit::tools {

struct TpFlags {
  bool send_weights = false;
  std::string reduce = "f32";
  // How the model is opened (not tensor parallelism, but it travels with these to ModelContext::Open):
  // --int8-threshold for bitsandbytes 8-bit folders; < 0: the folder's llm_int8_threshold.
  double int8_threshold = -1.0;
};

// --tp-send-weights, --tp-reduce and --int8-threshold.
void AddTpOptions(CLI::App* sub, TpFlags* f);

// A command's model: the whole model, or this process's rank of an MPI job and its shard.
class ModelContext {
 public:
  // Starts MPI when launched by mpirun, then opens and loads the model (and, on rank 0, its
  // vocabulary). With `need_vocab` false the vocabulary is not read.
  static Expected<std::unique_ptr<ModelContext>> Open(const std::string& path, Residency residency, const TpFlags& flags,
                                                      bool need_vocab = true);
  ~ModelContext();

  const LlamaModel& model() const { return *model_; }
  // LoRA adapters applied at run time (--lora); one rank only (merge them for tensor parallelism).
  Expected<std::unique_ptr<train::LoraSet>> AttachLora(std::span<const train::LoraSpec> specs);
  const Vocab& vocab() const { return vocab_; }
  // The model file (rank 0: the whole file; other ranks may hold its header alone).
  const GgufFile& file() const { return *file_; }
  Comm* comm() { return comm_; }  // nullptr with one rank
  int rank() const { return rank_; }
  int ranks() const { return ranks_; }
  bool leader() const { return rank_ == 0; }
  // How the weights are held, for the reports ("mapped", "read into memory", "rank shards ...").
  const std::string& residency() const { return residency_; }
  // All ranks must get here with the same outcome of a step that only some ranks ran.
  Status Agree(const Status& mine);

 private:
  ModelContext() = default;
  Status Start(const TpFlags& flags);
  Status OpenFile(const std::string& path, double int8_threshold);  // mapped: only the header is read
  Status Load(const std::string& path, Residency residency, const TpFlags& flags, bool need_vocab);
  std::unique_ptr<Comm> reduced_;
  Comm* comm_ = nullptr;
  int rank_ = 0, ranks_ = 1;
  std::optional<GgufFile> file_;
  std::optional<LlamaModel> model_;
  Vocab vocab_;
  std::string residency_;
};

// Prefix for the error line of this process ("rank 1 of 4: "), empty with one rank.
const std::string& ErrorPrefix();

// Finalizes MPI if a command started it. main() calls it after the command's error line is printed:
// MPI_Finalize waits for every rank, so all ranks print their line before any exits (mpirun stops
// the job when the first rank exits with an error).
void FinishMpi();

}  // namespace lowbit::tools
