// The decode speed of a model split over tensor-parallel ranks, predicted (an alpha-beta model).
//
// One decoded token costs, on the slowest rank:
//   compute    max over ranks of (weight bytes the rank reads) / (its read bandwidth x efficiency)
//   all-reduce 2 x n_layer all-reduces of n_embd floats (after attention and after the FFN)
//   gather     the classifier's logits, all-gathered (n_vocab floats)
//   broadcast  the sampled token from rank 0 (4 bytes)
// Each collective is a number of message rounds, each costing alpha (software overhead + the link's
// latency) plus its bytes times beta (1 / the link's bandwidth):
//   all-reduce: the better of recursive doubling (ceil(log2 N) rounds of the whole vector, two more
//               when N is not a power of two) and a ring (2 (N - 1) rounds of 1/N of it), as MPI
//               chooses between them by size;
//   all-gather: ceil(log2 N) rounds, (N - 1) / N of the vector in all (Bruck / recursive doubling);
//   broadcast:  ceil(log2 N) rounds of 4 bytes (binomial tree).
// Non-goals: attention's cost over the KV cache (small beside the weights for short contexts),
// overlap of communication with compute (the forward does none), contention between ranks that
// share a link. The inputs are measured: read bandwidth by the probe of `lowbit bench`, efficiency
// by one rank's decode, the software alpha by bench/tp_allreduce.cc (docs/PERFORMANCE.md).
//
// This is the tensor-parallel part of the advisor's cost model (issue 23): `lowbit plan` prints it,
// and an advisor can call PredictTpDecode with its own inputs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/base/status.h"
#include "lowbit/formats/gguf_reader.h"

namespace lowbit {

struct TpLink {
  double latency_s = 0;       // one message, one way
  double bandwidth_Bps = 0;   // bytes per second, one direction; 0: infinite (shared memory)
  // The software's cost per byte on top of the wire's (copies, the TCP stack; per round): 0 unless
  // measured, as bench/tp_netns.sh does from an all-reduce fit across the link.
  double stack_s_per_byte = 0;
};

struct TpCostInputs {
  int ranks = 1;
  std::vector<double> rank_bytes;  // weight bytes each rank reads per decoded token
  double read_Bps = 0;             // read bandwidth of one rank (all its threads)
  double efficiency = 1;           // fraction of read_Bps the decode reaches (1: the roofline)
  int64_t n_layer = 0, n_embd = 0, n_vocab = 0;
  TpLink link;
  double software_alpha_s = 0;     // MPI's own cost per message round (measured over shared memory)
};

struct TpCostPrediction {
  int ranks = 1;
  double compute_s = 0, allreduce_s = 0, gather_s = 0, broadcast_s = 0;
  double token_s = 0, tok_per_s = 0;
  double max_rank_bytes = 0;
};

// Seconds of one collective of `bytes` over `ranks` ranks (0 with one rank).
double AllReduceSeconds(int ranks, double bytes, const TpLink& link, double software_alpha_s);
double AllGatherSeconds(int ranks, double bytes, const TpLink& link, double software_alpha_s);
double BroadcastSeconds(int ranks, double bytes, const TpLink& link, double software_alpha_s);

TpCostPrediction PredictTpDecode(const TpCostInputs& in);

// The model's side of the inputs for `ranks` ranks: bytes per rank from the shard plans, and the
// shape (layers, width, vocabulary). Reads only the file's header.
Expected<TpCostInputs> TpCostInputsFor(const GgufFile& g, int ranks);

// "50us", "0.2ms", "1s" -> seconds; "10gbit", "100mbit", "1.5GB/s", "800MB/s" -> bytes per second.
Expected<double> ParseLatency(const std::string& s);
Expected<double> ParseBandwidth(const std::string& s);

}  // namespace lowbit
