// `lowbit qat`: quantization-aware training of a float GGUF for a quantized type or llama.cpp mix,
// writing the quantized GGUF llama.cpp runs.
//
// Each tensor gets the type `lowbit quantize` would give it (pipeline/quantize.h PlanTensorTypes:
// the same mix rules, fallbacks and overrides, so the files have the same size). Every trainable
// tensor has an F32 master copy; before each step every quantized tensor is fake-quantized from its
// master (fake_quant.h: quant/'s from_float, numeric/'s to_float), the forward runs the engine's
// products on those bytes, and the backward passes the gradient straight through (with the
// clipping mask) to the master weights, which AdamW updates. The file written at the end holds the
// bytes of the final fake-quantization: exactly what the last forward used.
//
// The loss (default) is distillation: KL(teacher || student) per token, the teacher being the input
// model itself in F32. The data is a text (--train) or, with --self-distill, sequences the teacher
// samples itself (LLM-QAT's data-free recipe). --loss ce trains on next-token cross-entropy of the
// text instead. With learn_scales, the block scales of Q4_0, Q5_0, Q8_0 and IQ4_NL tensors are
// trained too (LSQ) and the file is written with them.
//
// With format "gptq" the target is the linear int-N grid instead (fake_quant.h IntGridFakeQuant: the
// bits, group size and sym/asym of `folder`): every layer matrix is fake-quantized on the grid (its
// bytes the grouped-integer rows `lowbit run -m DIR` loads), the other tensors train in F32, and the
// output is a GPTQ folder written by pipeline/quantize_folder.h's writer, holding exactly the codes,
// scales and zeros of the final forward (and the trained F32 values of the other tensors). The model
// must then be a Hugging Face float folder (its config and tokenizer files are carried over).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/pipeline/quantize_folder.h"
#include "lowbit/train/trainer.h"

namespace lowbit::train {

struct QatOptions {
  std::string model, output, type;
  std::string format = "gguf";   // "gguf" (a GGUF of `type`) or "gptq" (a folder on the int grid of `folder`)
  FolderQuantOptions folder;     // bits, group_size, sym, range (format "gptq")
  std::string train_text;        // text to train on (tokenized with the model's vocabulary)
  bool self_distill = false;     // generate the data with the model itself
  int64_t samples = 0;           // generated sequences (0: enough for one pass, at most 1024)
  std::string loss = "kl";       // "kl" (distill from the F32 model) or "ce"
  std::string imatrix;           // importance matrix for the searching quantizers
  bool pure = false;
  std::vector<std::string> tensor_types;  // --tensor-type REGEX=TYPE
  std::string output_tensor_type, token_embedding_type;
  bool learn_scales = false;     // LSQ on the formats with free block scales (fake_quant.h)
  std::string grid = "search";   // "search": the quantizer's search each step; "frozen": PTQ's block grids kept, codes re-picked
  int64_t holdout = 32;          // sequences of ctx tokens held out of the training data (holdout.h); 0: write the last step;
                                 // < 0: DefaultQatSchedule's
  int64_t eval_every = 0;        // steps between held-out evaluations (0: steps / 20)
  TrainConfig train;              // train.lr < 0, train.steps 0: DefaultQatSchedule for the type's bits per weight
  int threads = 0;
};

struct QatReport {
  std::string mix;
  int64_t steps_run = 0;
  double first_loss = 0, last_loss = 0;
  int64_t selected_step = 0;     // the step whose state the output holds (the lowest held-out KL)
  double heldout_kl = 0;         // its held-out KL (0 without a held-out set)
  double seconds = 0, tokens_per_s = 0;
  uint64_t file_size = 0;
  int64_t quantized_tensors = 0;
  int64_t trained_parameters = 0;
};

// The default schedule for fake-quantized tensors that average `bits_per_weight` bits (their bytes
// per element, scales included; the int grid as a GPTQ folder stores it). Adam moves every weight by
// about the learning rate per step whatever its gradient, while the quantization step halves with
// each bit: the low-bit types (Q2_K's mix, w2 g64: at most kQatLowBits) train 600 steps at 1e-4 and
// write the last step; the others train 200 steps at 1e-5 and write the state with the lowest
// held-out KL (docs/QUALITY.md "QAT and QLoRA" has the measurements, docs/DESIGN-NOTES.md the rule).
inline constexpr double kQatLowBits = 3.5;
struct QatSchedule {
  float lr;
  int64_t steps;
  int64_t holdout;
};
QatSchedule DefaultQatSchedule(double bits_per_weight);

// `log` receives one line per event (data generation, each step); may be empty.
Expected<QatReport> RunQat(const QatOptions& o, const std::function<void(const std::string&)>& log);

}  // namespace lowbit::train
