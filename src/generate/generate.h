// Text generation from a GPT-2 language model: the book's generate() loop (window the context to
// the model's context length, sample, stop at end-of-text without appending it), streaming each
// token to a callback as it is produced.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "generate/sampler.h"
#include "model/gpt2.h"

namespace gptrain {

struct GenerateOptions {
  int64_t max_new_tokens = 50;
  SamplingOptions sampling;
  int32_t eos_id = -1;  // stop (without emitting it) when this id is chosen; -1: never
  // Keys and values of past positions are kept, so each new token costs one position. Once the
  // text outgrows the context, the window slides as in the book (positions restart at 0 for the
  // last context_length tokens), which a cache cannot reuse: every later token re-reads its
  // window, and the output stays token-for-token equal to generation without the cache.
  bool kv_cache = true;
};

// Returns prompt + generated ids. on_token(id) runs for every generated id, in order.
std::vector<int32_t> generate(GPT2& model, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                              const std::function<void(int32_t)>& on_token = {});

}  // namespace gptrain
