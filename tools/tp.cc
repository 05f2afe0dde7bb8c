#include "tp.h"

#include "lowbit/pipeline/model_source.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <vector>

#include "lowbit/formats/gguf_vocab.h"
#include "lowbit/parallel/agree.h"
#include "lowbit/parallel/mpi_comm.h"

namespace lowbit::tools {
namespace {

std::string g_error_prefix;
char g_term_line[160];
std::unique_ptr<Comm> g_mpi;  // MPI_COMM_WORLD, from the first ModelContext to FinishMpi

// mpirun stops the other ranks with SIGTERM when one fails: each says so in one line.
extern "C" void OnTerm(int) {
  const ssize_t ignored = ::write(STDERR_FILENO, g_term_line, std::strlen(g_term_line));
  (void)ignored;
  ::_exit(1);
}

}  // namespace

const std::string& ErrorPrefix() { return g_error_prefix; }

void FinishMpi() { g_mpi.reset(); }

void AddTpOptions(CLI::App* sub, TpFlags* f) {
  sub->add_flag("--tp-send-weights", f->send_weights,
                "under mpirun: rank 0 reads the model and sends each rank its shard (for machines without the file)");
  sub->add_option("--tp-reduce", f->reduce, "under mpirun: all-reduce precision, f32 (default), bf16 or q8 (see docs/QUALITY.md)")
      ->check(CLI::IsMember({"f32", "bf16", "q8"}));
  sub->add_option("--int8-threshold", f->int8_threshold,
                  "bitsandbytes 8-bit folders (LLM.int8): input columns with |x| >= T run in float, per token; 0: plain int8 x int8 "
                  "(default: the folder's llm_int8_threshold, else 6)")
      ->check(CLI::Range(0.0, 1e30));
}

ModelContext::~ModelContext() = default;

Status ModelContext::Start(const TpFlags& flags) {
  if (!StartedByMpiLauncher()) return OkStatus();
  if (g_mpi == nullptr) {
    MpiOptions mo;
    mo.on_timeout = [](const std::string& line) {  // from the watchdog's thread: say why, and go
      std::fprintf(stderr, "lowbit: %s\n", line.c_str());
      std::fflush(stderr);
      ::_exit(1);  // mpirun sees a rank gone without MPI_Finalize and stops the job
    };
    LOWBIT_ASSIGN_OR_RETURN(g_mpi, CreateMpiComm(mo));
  }
  rank_ = g_mpi->rank();
  ranks_ = g_mpi->size();
  if (ranks_ == 1) {  // -np 1: exactly as without mpirun
    return OkStatus();
  }
  g_error_prefix = fmt::format("rank {} of {}: ", rank_, ranks_);
  std::snprintf(g_term_line, sizeof(g_term_line), "lowbit: rank %d of %d: stopped by the MPI launcher (another rank failed)\n", rank_,
                ranks_);
  std::signal(SIGTERM, OnTerm);
  if (rank_ != 0 && std::freopen("/dev/null", "w", stdout) == nullptr) {
    return Errorf("cannot send this rank's standard output to /dev/null: {}", std::strerror(errno));
  }
  ReducePrecision p = ReducePrecision::kF32;
  ParseReducePrecision(flags.reduce, &p);
  comm_ = g_mpi.get();
  if (p != ReducePrecision::kF32) {
    reduced_ = std::make_unique<ReducedPrecisionComm>(g_mpi.get(), p);
    comm_ = reduced_.get();
  }
  return OkStatus();
}

Expected<std::unique_ptr<train::LoraSet>> ModelContext::AttachLora(std::span<const train::LoraSpec> specs) {
  if (specs.empty()) return std::unique_ptr<train::LoraSet>();
  if (ranks_ > 1) return Errorf("--lora with {} ranks: adapters are applied on one rank only; merge them first (lowbit lora merge)", ranks_);
  return train::AttachLoraAdapters(&*model_, *file_, specs);
}

Status ModelContext::OpenFile(const std::string& path, double int8_threshold) {
  LOWBIT_ASSIGN_OR_RETURN(GgufFile g, OpenModel(path, Residency::kMapped, "", int8_threshold));
  file_.emplace(std::move(g));
  return OkStatus();
}

Status ModelContext::Agree(const Status& mine) { return comm_ != nullptr ? AgreeOnStatus(comm_, mine) : mine; }

Status ModelContext::Load(const std::string& path, Residency residency, const TpFlags& flags, bool need_vocab) {
  if (comm_ == nullptr) {  // one rank: as without MPI
    LOWBIT_ASSIGN_OR_RETURN(GgufFile g, OpenModel(path, residency, "", flags.int8_threshold));
    file_.emplace(std::move(g));
    LOWBIT_ASSIGN_OR_RETURN(LlamaModel m, LlamaModel::Load(*file_));
    model_.emplace(std::move(m));
    if (need_vocab) {
      LOWBIT_ASSIGN_OR_RETURN(vocab_, VocabFromGguf(*file_));
    }
    residency_ = file_->in_memory() ? "read into memory" : "mapped";
    return OkStatus();
  }
  // Several ranks: the file is mapped for its header only; each rank reads its own bytes (or
  // views them in the mapping with --mmap, or receives them from rank 0 with --tp-send-weights).
  LoadOptions lo{.rank = rank_, .ranks = ranks_};
  lo.weights = residency == Residency::kMapped ? LoadOptions::Weights::kView : LoadOptions::Weights::kCopy;
  if (!flags.send_weights) {
    const Status opened = OpenFile(path, flags.int8_threshold);
    LOWBIT_RETURN_IF_ERROR(Agree(opened));
  } else {
    // Rank 0 sends the header (metadata and tensor infos); the others parse it without the data.
    std::vector<uint8_t> header;
    uint64_t sizes[2] = {0, 0};  // header bytes, file bytes
    Status opened = rank_ == 0 ? OpenFile(path, flags.int8_threshold) : OkStatus();
    if (opened.ok() && rank_ == 0 && file_->assembled()) {
      opened = Errorf("{}: --tp-send-weights sends a GGUF file's bytes; convert this model to GGUF first (lowbit convert)", path);
    }
    if (opened.ok() && rank_ == 0) {
      sizes[0] = file_->data_offset();
      sizes[1] = file_->file_size();
    }
    LOWBIT_RETURN_IF_ERROR(Agree(opened));
    comm_->Broadcast(sizes, sizeof(sizes), 0);
    header.resize(sizes[0]);
    if (rank_ == 0) std::memcpy(header.data(), file_->file().data(), sizes[0]);
    comm_->Broadcast(header.data(), header.size(), 0);
    Status parsed = OkStatus();
    if (rank_ != 0) {
      auto g = GgufFile::ParseHeader(header, sizes[1], path + " (sent by rank 0)");
      parsed = g.ok() ? OkStatus() : g.status();
      if (g.ok()) file_.emplace(std::move(*g));
    }
    LOWBIT_RETURN_IF_ERROR(Agree(parsed));
    lo.weights = LoadOptions::Weights::kCopy;
    lo.stream = comm_;
  }
  auto m = LlamaModel::Load(*file_, lo);
  LOWBIT_RETURN_IF_ERROR(Agree(m.ok() ? OkStatus() : m.status()));
  model_.emplace(std::move(*m));
  LOWBIT_RETURN_IF_ERROR(AgreeOnIdentity(comm_, model_->fingerprint(), model_->description(), "the model"));
  if (need_vocab) {
    Status read = OkStatus();
    if (rank_ == 0) {
      auto v = VocabFromGguf(*file_);
      read = v.ok() ? OkStatus() : v.status();
      if (v.ok()) vocab_ = std::move(*v);
    }
    LOWBIT_RETURN_IF_ERROR(Agree(read));
  }
  const char* how = flags.send_weights ? "received from rank 0" : lo.weights == LoadOptions::Weights::kView ? "mapped" : "read";
  residency_ = fmt::format("{} ranks, shards {} ({:.1f} MB on rank 0)", ranks_, how, static_cast<double>(model_->owned_bytes()) / 1e6);
  return OkStatus();
}

Expected<std::unique_ptr<ModelContext>> ModelContext::Open(const std::string& path, Residency residency, const TpFlags& flags,
                                                           bool need_vocab) {
  std::unique_ptr<ModelContext> c(new ModelContext());
  LOWBIT_RETURN_IF_ERROR(c->Start(flags));
  LOWBIT_RETURN_IF_ERROR(c->Load(path, residency, flags, need_vocab));
  return c;
}

}  // namespace lowbit::tools
