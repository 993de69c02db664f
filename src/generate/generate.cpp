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
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    const int64_t T = std::min<int64_t>(static_cast<int64_t>(ids.size()), context);
    const std::span<const int32_t> window(ids.data() + ids.size() - T, static_cast<size_t>(T));
    const Tensor& logits = model.forward(window, 1, T, ForwardOptions{false, 0, true});
    const int32_t next = sample_next(std::span<const float>(logits.data(), static_cast<size_t>(V)),
                                     options.sampling, static_cast<uint64_t>(step));
    if (next == options.eos_id) break;
    ids.push_back(next);
    if (on_token) on_token(next);
  }
  return ids;
}

}  // namespace gptrain
