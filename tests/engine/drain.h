// What a request channel delivers until its final event (scheduler tests).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/engine/scheduler.h"

namespace lowbit::testing {

struct Drained {
  std::string text;
  std::vector<int32_t> tokens;
  GenerationEvent done;
  int text_events = 0;
};

// Text, tokens and the final event of `ch`, waiting at most `wait` for each event.
inline Drained Drain(RequestChannel& ch, std::chrono::seconds wait = std::chrono::seconds(60)) {
  Drained r;
  GenerationEvent ev;
  while (ch.Next(&ev, wait)) {
    if (ev.kind == GenerationEvent::Kind::kText) {
      r.text += ev.text;
      ++r.text_events;
      for (const auto& t : ev.tokens) r.tokens.push_back(t.token);
    } else {
      r.done = ev;
      break;
    }
  }
  return r;
}

}  // namespace lowbit::testing
