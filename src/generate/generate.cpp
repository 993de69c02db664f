#include "generate/generate.h"

#include <algorithm>
#include <span>

#include "util/error.h"

namespace gptrain {

std::vector<int32_t> generate(GPT2& model, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                              const std::function<void(int32_t)>& on_token) {
  if (prompt.empty()) fail("generation needs a prompt of at least one token");
  if (model.config().head != HeadType::LanguageModel) fail("generation needs a language-model head");
  std::vector<int32_t> ids = prompt;
  const int64_t context = model.config().context_length;
  const int64_t V = model.config().vocab_size;
  KVCache cache;
  int64_t cache_start = 0;  // ids[cache_start] sits at position 0 of the cache
  if (options.kv_cache) cache = model.make_kv_cache(1, context);
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    const int64_t n = static_cast<int64_t>(ids.size());
    const int64_t T = std::min<int64_t>(n, context);
    const Tensor* out;
    if (options.kv_cache) {
      if (n - cache_start > context) {  // the window slid: positions changed, the cache is stale
        cache.length = 0;
        cache_start = n - T;
      }
      const int64_t fed = cache_start + cache.length;  // ids already in the cache
      const std::span<const int32_t> fresh(ids.data() + fed, static_cast<size_t>(n - fed));
      out = &model.forward_cached(fresh, 1, n - fed, cache);
    } else {
      const std::span<const int32_t> window(ids.data() + n - T, static_cast<size_t>(T));
      out = &model.forward(window, 1, T, ForwardOptions{false, 0, true});
    }
    const Tensor& logits = *out;
    const int32_t next = sample_next(std::span<const float>(logits.data(), static_cast<size_t>(V)),
                                     options.sampling, static_cast<uint64_t>(step));
    if (next == options.eos_id) break;
    ids.push_back(next);
    if (on_token) on_token(next);
  }
  return ids;
}

}  // namespace gptrain
