#include "lowbit/eval/tp_cost.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "lowbit/eval/bench.h"
#include "lowbit/model/llama.h"

namespace lowbit {
namespace {

int Log2Ceil(int n) {
  int r = 0;
  while ((1 << r) < n) ++r;
  return r;
}

// Seconds to move `bytes` over the link: the wire's rate and the software's per-byte cost.
double Transfer(double bytes, const TpLink& link) {
  return (link.bandwidth_Bps > 0 ? bytes / link.bandwidth_Bps : 0.0) + bytes * link.stack_s_per_byte;
}

// One round: alpha (software + latency) plus the bytes over the link.
double Round(double bytes, const TpLink& link, double sw) { return sw + link.latency_s + Transfer(bytes, link); }

}  // namespace

double AllReduceSeconds(int ranks, double bytes, const TpLink& link, double sw) {
  if (ranks <= 1) return 0;
  // Ranks beyond a power of two first hand their vector to a partner and get the sum back at the end.
  const bool pow2 = (ranks & (ranks - 1)) == 0;
  const double doubling = (pow2 ? Log2Ceil(ranks) : Log2Ceil(ranks) + 1) * Round(bytes, link, sw);
  const double ring = 2.0 * (ranks - 1) * Round(bytes / ranks, link, sw);
  return std::min(doubling, ring);
}

double AllGatherSeconds(int ranks, double bytes, const TpLink& link, double sw) {
  if (ranks <= 1) return 0;
  const int rounds = Log2Ceil(ranks);
  return rounds * (sw + link.latency_s) + Transfer(bytes * (ranks - 1) / ranks, link);
}

double BroadcastSeconds(int ranks, double bytes, const TpLink& link, double sw) {
  if (ranks <= 1) return 0;
  return Log2Ceil(ranks) * Round(bytes, link, sw);
}

TpCostPrediction PredictTpDecode(const TpCostInputs& in) {
  TpCostPrediction p;
  p.ranks = in.ranks;
  for (double b : in.rank_bytes) p.max_rank_bytes = std::max(p.max_rank_bytes, b);
  const double bw = in.read_Bps * (in.efficiency > 0 ? in.efficiency : 1.0);
  p.compute_s = bw > 0 ? p.max_rank_bytes / bw : 0;
  p.allreduce_s = 2.0 * static_cast<double>(in.n_layer) *
                  AllReduceSeconds(in.ranks, 4.0 * static_cast<double>(in.n_embd), in.link, in.software_alpha_s);
  p.gather_s = AllGatherSeconds(in.ranks, 4.0 * static_cast<double>(in.n_vocab), in.link, in.software_alpha_s);
  p.broadcast_s = BroadcastSeconds(in.ranks, 4.0, in.link, in.software_alpha_s);
  p.token_s = p.compute_s + p.allreduce_s + p.gather_s + p.broadcast_s;
  p.tok_per_s = p.token_s > 0 ? 1.0 / p.token_s : 0;
  return p;
}

Expected<TpCostInputs> TpCostInputsFor(const GgufFile& g, int ranks) {
  TpCostInputs in;
  in.ranks = ranks;
  for (int r = 0; r < ranks; ++r) {
    // Views into the file's mapping: nothing is read but the header.
    LOWBIT_ASSIGN_OR_RETURN(LlamaModel m, LlamaModel::Load(g, r, ranks));
    in.rank_bytes.push_back(WeightBytesPerToken(m));
    if (r == 0) {
      in.n_layer = m.config().n_layer;
      in.n_embd = m.config().n_embd;
      in.n_vocab = m.config().n_vocab;
    }
  }
  return in;
}

namespace {

// A number followed by a unit; the unit lower-cased.
bool SplitUnit(const std::string& s, double* value, std::string* unit) {
  const char* b = s.c_str();
  char* end = nullptr;
  *value = std::strtod(b, &end);
  if (end == b || !std::isfinite(*value) || *value < 0) return false;
  unit->clear();
  for (const char* p = end; *p; ++p) unit->push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(*p))));
  return true;
}

}  // namespace

Expected<double> ParseLatency(const std::string& s) {
  double v = 0;
  std::string u;
  if (!SplitUnit(s, &v, &u)) return Errorf("latency '{}' is not a number with a unit (50us, 0.2ms)", s);
  if (u == "us") return v * 1e-6;
  if (u == "ms") return v * 1e-3;
  if (u == "s") return v;
  if (u == "ns") return v * 1e-9;
  return Errorf("latency '{}': unknown unit '{}' (use ns, us, ms or s)", s, u);
}

Expected<double> ParseBandwidth(const std::string& s) {
  double v = 0;
  std::string u;
  if (!SplitUnit(s, &v, &u)) return Errorf("bandwidth '{}' is not a number with a unit (10gbit, 1.5GB/s)", s);
  if (u == "gbit" || u == "gbps" || u == "gbit/s") return v * 1e9 / 8;
  if (u == "mbit" || u == "mbps" || u == "mbit/s") return v * 1e6 / 8;
  if (u == "gb/s") return v * 1e9;
  if (u == "mb/s") return v * 1e6;
  return Errorf("bandwidth '{}': unknown unit '{}' (use gbit, mbit, GB/s or MB/s)", s, u);
}

}  // namespace lowbit
