#include "generate/instruct.h"

#include <algorithm>
#include <map>
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

namespace {

SequenceRequest answer_request(const Tokenizer& tokenizer, const data::InstructionEntry& entry,
                               const AnswerOptions& options) {
  const std::string prompt = options.response_header ? data::format_prompt(entry) : data::format_input(entry);
  SequenceRequest r;
  r.prompt = tokenizer.encode(prompt, /*allow_special=*/false);
  r.max_new_tokens = options.max_new_tokens;
  r.sampling = options.sampling;
  r.stop_ids = {tokenizer.eot_id()};
  return r;
}

Answer answer_of(const Tokenizer& tokenizer, const SequenceResult& result) {
  Answer a;
  a.generated = result.generated;
  a.stopped_at_eos = result.finish == FinishReason::StopId;
  a.response = extract_response(utf8_lossy(tokenizer.decode(a.generated)));
  return a;
}

}  // namespace

Answer answer_entry(const Transformer& model, const Tokenizer& tokenizer, const data::InstructionEntry& entry,
                    const AnswerOptions& options, const std::function<void(std::string_view)>& on_text) {
  DecodeEngine engine(model, [&](int32_t id) { return tokenizer.decode_token(id); });
  const int64_t id = engine.add(answer_request(tokenizer, entry, options));
  engine.run([&](const TokenEvent& ev) {
    if (on_text && !ev.text.empty()) on_text(ev.text);
  });
  return answer_of(tokenizer, engine.result(id));
}

std::vector<std::string> answer_entries(const Transformer& model, const Tokenizer& tokenizer,
                                        const std::vector<data::InstructionEntry>& entries,
                                        const AnswerOptions& options, AnswerStats& stats,
                                        const std::function<void(const std::string&)>& log) {
  if (options.batch_size < 1) fail("--batch-size must be at least 1, got {}", options.batch_size);
  stats = AnswerStats{};
  std::vector<std::string> responses(entries.size());
  const Timer timer;
  const int64_t n = static_cast<int64_t>(entries.size());
  EngineOptions eo;
  eo.max_batch = options.batch_size;
  DecodeEngine engine(model, {}, eo);
  std::map<int64_t, size_t> entry_of;  // engine sequence -> entry
  size_t next = 0;
  // Keep batch_size sequences running: a finished one is replaced by the next entry at once.
  const auto refill = [&] {
    while (next < entries.size() && engine.running() < options.batch_size) {
      const int64_t id = engine.add(answer_request(tokenizer, entries[next], options));
      entry_of[id] = next++;
    }
  };
  refill();
  while (engine.running() > 0) {
    std::vector<int64_t> done;
    engine.step([&](const TokenEvent& ev) {
      if (ev.finish != FinishReason::None) done.push_back(ev.seq);
    });
    for (int64_t id : done) {
      const Answer a = answer_of(tokenizer, engine.result(id));
      responses[entry_of.at(id)] = a.response;
      engine.release(id);
      ++stats.entries;
      stats.generated_tokens += static_cast<int64_t>(a.generated.size());
      if (!a.stopped_at_eos) ++stats.hit_max_new_tokens;
      if (log && (stats.entries % 10 == 0 || stats.entries == n)) {
        const double s = timer.seconds();
        log(fmt::format("answered {}/{} entries: {} tokens in {}, {:.1f} tokens/s, ETA {}", stats.entries, n,
                        stats.generated_tokens, format_duration(s), static_cast<double>(stats.generated_tokens) / s,
                        format_duration(s / static_cast<double>(stats.entries) * static_cast<double>(n - stats.entries))));
      }
    }
    refill();
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

ChatSession::ChatSession(const Transformer& model, const Tokenizer& tokenizer, const AnswerOptions& options, bool keep_history)
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

  SequenceRequest r;
  r.prompt = ids;
  r.max_new_tokens = options_.max_new_tokens;
  r.sampling = options_.sampling;
  r.sampling.seed = derive_seed(options_.sampling.seed, 0x43484154ULL, static_cast<uint64_t>(replies_++));
  r.stop_ids = {tokenizer_.eot_id()};
  DecodeEngine engine(model_, [&](int32_t id) { return tokenizer_.decode_token(id); });
  const int64_t id = engine.add(std::move(r));
  // should_stop() is polled after every token: a true cancels the answer before the next one.
  engine.run([&](const TokenEvent& ev) {
    if (!ev.text.empty() && on_text) on_text(ev.text);
    if (ev.token >= 0 && should_stop && should_stop()) engine.cancel(id);
  });
  const std::vector<int32_t>& generated = engine.result(id).generated;
  if (keep_history_) {
    prompt.insert(prompt.end(), generated.begin(), generated.end());
    prompt.push_back(tokenizer_.eot_id());
    turns_.push_back(std::move(prompt));
  }
  return extract_response(utf8_lossy(tokenizer_.decode(generated)));
}

}  // namespace gptrain
