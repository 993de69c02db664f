#include "generate/instruct.h"

#include <algorithm>
#include <numeric>

#include "data/data_dir.h"
#include "generate/text_stream.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/rng.h"
#include "util/timer.h"

namespace gptrain {

namespace {

// Length of the UTF-8 character at p: > 0 when complete and valid, 0 when the bytes so far are a
// valid but incomplete start, -k when the first k bytes form an invalid (maximal) subsequence.
int utf8_char_length(const unsigned char* p, size_t avail) {
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  int n;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int k = 1; k < n; ++k) {
    if (static_cast<size_t>(k) >= avail) return 0;
    const unsigned char b = p[k];
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return -k;
  }
  return n;
}

// Decodes the code point of a complete, valid UTF-8 character.
uint32_t code_point(const unsigned char* p, int n) {
  if (n == 1) return p[0];
  uint32_t cp = p[0] & (0x7F >> n);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (p[k] & 0x3F);
  return cp;
}

bool is_python_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

struct Cancelled {};

}  // namespace

std::string strip_unicode_whitespace(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  // Walk the characters once; remember where the first non-space starts and the last one ends.
  size_t first = n, last_end = 0;
  for (size_t i = 0; i < n;) {
    int len = utf8_char_length(p + i, n - i);
    const bool space = len > 0 && is_python_space(code_point(p + i, len));
    if (len <= 0) len = std::max(1, -len);
    if (!space) {
      if (first == n) first = i;
      last_end = i + static_cast<size_t>(len);
    }
    i += static_cast<size_t>(len);
  }
  return first == n ? std::string() : std::string(text.substr(first, last_end - first));
}

std::string extract_response(std::string_view generated_text) {
  static constexpr std::string_view kHeader = "### Response:";
  std::string text;
  for (size_t i = 0; i < generated_text.size();) {
    if (generated_text.substr(i, kHeader.size()) == kHeader) {
      i += kHeader.size();
    } else {
      text += generated_text[i++];
    }
  }
  return strip_unicode_whitespace(text);
}

Answer answer_entry(GPT2& model, const Tokenizer& tokenizer, const data::InstructionEntry& entry,
                    const AnswerOptions& options, const std::function<void(std::string_view)>& on_text) {
  const std::string prompt = options.response_header ? data::format_prompt(entry) : data::format_input(entry);
  const std::vector<int32_t> prompt_ids = tokenizer.encode(prompt, /*allow_special=*/false);
  GenerateOptions g;
  g.max_new_tokens = options.max_new_tokens;
  g.sampling = options.sampling;
  g.eos_id = tokenizer.eot_id();
  Answer a;
  Utf8Stream stream;
  generate(model, prompt_ids, g, [&](int32_t id) {
    a.generated.push_back(id);
    if (on_text) {
      const std::string text = stream.push(tokenizer.decode_token(id));
      if (!text.empty()) on_text(text);
    }
  });
  if (on_text) {
    const std::string rest = stream.finish();
    if (!rest.empty()) on_text(rest);
  }
  a.stopped_at_eos = static_cast<int64_t>(a.generated.size()) < options.max_new_tokens;
  a.response = extract_response(utf8_lossy(tokenizer.decode(a.generated)));
  return a;
}

std::vector<std::string> answer_entries(GPT2& model, const Tokenizer& tokenizer,
                                        const std::vector<data::InstructionEntry>& entries,
                                        const AnswerOptions& options, AnswerStats& stats,
                                        const std::function<void(const std::string&)>& log) {
  stats = AnswerStats{};
  std::vector<std::string> responses;
  responses.reserve(entries.size());
  const Timer timer;
  for (const data::InstructionEntry& entry : entries) {
    const Answer a = answer_entry(model, tokenizer, entry, options);
    responses.push_back(a.response);
    ++stats.entries;
    stats.generated_tokens += static_cast<int64_t>(a.generated.size());
    if (!a.stopped_at_eos) ++stats.hit_max_new_tokens;
    const int64_t n = static_cast<int64_t>(entries.size());
    if (log && (stats.entries % 10 == 0 || stats.entries == n)) {
      const double s = timer.seconds();
      log(fmt::format("answered {}/{} entries: {} tokens in {}, {:.1f} tokens/s, ETA {}", stats.entries, n,
                      stats.generated_tokens, format_duration(s), static_cast<double>(stats.generated_tokens) / s,
                      format_duration(s / static_cast<double>(stats.entries) * static_cast<double>(n - stats.entries))));
    }
  }
  stats.seconds = timer.seconds();
  return responses;
}

Tokenizer load_tokenizer_for_model(const std::filesystem::path& model_dir, const std::string& data_dir_option) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(model_dir / "vocab.json", ec) &&
      std::filesystem::is_regular_file(model_dir / "merges.txt", ec))
    return Tokenizer::from_dir(model_dir);
  const std::filesystem::path dir = data::resolve_data_dir(data_dir_option);
  data::require_data_file(dir, "gpt2_tokenizer/encoder.json",
                          fmt::format("the GPT-2 vocabulary ({} has no vocab.json + merges.txt)", model_dir.string()));
  return Tokenizer::from_dir(dir / "gpt2_tokenizer");
}

ChatSession::ChatSession(GPT2& model, const Tokenizer& tokenizer, const AnswerOptions& options, bool keep_history)
    : model_(model), tokenizer_(tokenizer), options_(options), keep_history_(keep_history) {
  if (options_.max_new_tokens <= 0) fail("--max-new-tokens must be positive, got {}", options_.max_new_tokens);
}

int64_t ChatSession::prompt_budget() const {
  const int64_t context = model_.config().context_length;
  return context - std::min(options_.max_new_tokens, context / 2);
}

std::string ChatSession::reply(const std::string& message, const std::function<void(std::string_view)>& on_text,
                               const std::function<bool()>& should_stop) {
  data::InstructionEntry entry;
  entry.instruction = message;
  std::vector<int32_t> prompt = tokenizer_.encode(
      options_.response_header ? data::format_prompt(entry) : data::format_input(entry), /*allow_special=*/false);
  const auto history_tokens = [&] {
    return std::accumulate(turns_.begin(), turns_.end(), int64_t{0},
                           [](int64_t n, const std::vector<int32_t>& t) { return n + static_cast<int64_t>(t.size()); });
  };
  if (!keep_history_) turns_.clear();
  const int64_t budget = prompt_budget();
  while (!turns_.empty() && history_tokens() + static_cast<int64_t>(prompt.size()) > budget) {
    turns_.erase(turns_.begin());
    ++dropped_;
  }
  std::vector<int32_t> ids;
  for (const auto& t : turns_) ids.insert(ids.end(), t.begin(), t.end());
  ids.insert(ids.end(), prompt.begin(), prompt.end());
  last_prompt_tokens_ = static_cast<int64_t>(ids.size());

  GenerateOptions g;
  g.max_new_tokens = options_.max_new_tokens;
  g.sampling = options_.sampling;
  g.sampling.seed = derive_seed(options_.sampling.seed, 0x43484154ULL, static_cast<uint64_t>(replies_++));
  g.eos_id = tokenizer_.eot_id();
  std::vector<int32_t> generated;
  Utf8Stream stream;
  try {
    generate(model_, ids, g, [&](int32_t id) {
      generated.push_back(id);
      const std::string text = stream.push(tokenizer_.decode_token(id));
      if (!text.empty() && on_text) on_text(text);
      if (should_stop && should_stop()) throw Cancelled{};
    });
  } catch (const Cancelled&) {
  }
  const std::string rest = stream.finish();
  if (!rest.empty() && on_text) on_text(rest);
  if (keep_history_) {
    prompt.insert(prompt.end(), generated.begin(), generated.end());
    prompt.push_back(tokenizer_.eot_id());
    turns_.push_back(std::move(prompt));
  }
  return extract_response(utf8_lossy(tokenizer_.decode(generated)));
}

}  // namespace gptrain
