// Choosing the next token from logits, as the book's generate(): top-k filtering first (ties with
// the k-th value are kept), then temperature; temperature 0 means greedy (argmax) even with top-k.
// Beyond the book: top-p (nucleus) filtering after temperature. Draws come from a counter-based
// generator keyed by (seed, draw index), so a generation is reproducible token for token.
#pragma once

#include <cstdint>
#include <span>

namespace gptrain {

struct SamplingOptions {
  double temperature = 0.0;  // 0: greedy
  int64_t top_k = 0;         // 0: off
  double top_p = 1.0;        // 1: off
  uint64_t seed = 123;
};

int32_t argmax(std::span<const float> logits);
// `draw` numbers the random draws of one generation (0, 1, 2, ...).
int32_t sample_next(std::span<const float> logits, const SamplingOptions& options, uint64_t draw);

}  // namespace gptrain
