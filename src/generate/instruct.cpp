#include "generate/instruct.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "data/data_dir.h"
#include "data/datasets.h"
#include "generate/text_stream.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/rng.h"
#include "util/timer.h"

namespace gptrain {

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

std::string token_text(const Tokenizer& tokenizer, int32_t id) {
  return id >= 0 && id < tokenizer.vocab_size() ? tokenizer.decode_token(id) : std::string("\xEF\xBF\xBD");
}

namespace {

data::ChatRenderOptions render_options(const AnswerOptions& options) {
  data::ChatRenderOptions o;
  o.enable_thinking = options.enable_thinking;
  return o;
}

SequenceRequest answer_request(const Tokenizer& tokenizer, const data::InstructionEntry& entry,
                               const AnswerOptions& options, const std::vector<int32_t>& stop_ids) {
  SequenceRequest r;
  if (options.chat) {
    const std::vector<data::ChatMessage> messages = data::entry_messages(entry, options.system, /*with_output=*/false);
    r.prompt = data::encode_chat(tokenizer, data::render_chat(*options.chat, messages, render_options(options)), *options.chat);
  } else {
    const std::string prompt = options.response_header ? data::format_prompt(entry) : data::format_input(entry);
    r.prompt = tokenizer.encode(prompt, /*allow_special=*/false);
  }
  r.max_new_tokens = options.max_new_tokens;
  r.sampling = options.sampling;
  r.stop_ids = stop_ids;
  return r;
}

Answer answer_of(const Tokenizer& tokenizer, const SequenceResult& result, const AnswerOptions& options) {
  Answer a;
  a.generated = result.generated;
  a.stopped_at_eos = result.finish == FinishReason::StopId;
  const std::string text = decode_text(tokenizer, a.generated);
  a.response = options.chat ? data::chat_reply_text(text) : extract_response(text);
  return a;
}

}  // namespace

Answer answer_entry(const Transformer& model, const Tokenizer& tokenizer, const data::InstructionEntry& entry,
                    const AnswerOptions& options, const std::function<void(std::string_view)>& on_text) {
  DecodeEngine engine(model, [&](int32_t id) { return token_text(tokenizer, id); });
  const int64_t id = engine.add(answer_request(tokenizer, entry, options, answer_stop_ids(tokenizer, options)));
  engine.run([&](const TokenEvent& ev) {
    if (on_text && !ev.text.empty()) on_text(ev.text);
  });
  return answer_of(tokenizer, engine.result(id), options);
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
  const std::vector<int32_t> stop_ids = answer_stop_ids(tokenizer, options);
  size_t next = 0;
  // Keep batch_size sequences running: a finished one is replaced by the next entry at once.
  const auto refill = [&] {
    while (next < entries.size() && engine.running() < options.batch_size) {
      const int64_t id = engine.add(answer_request(tokenizer, entries[next], options, stop_ids));
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
      const Answer a = answer_of(tokenizer, engine.result(id), options);
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

std::string decode_text(const Tokenizer& tokenizer, const std::vector<int32_t>& ids) {
  std::string bytes;
  for (const int32_t id : ids) bytes += token_text(tokenizer, id);
  return utf8_lossy(bytes);
}

std::vector<int32_t> answer_stop_ids(const Tokenizer& tokenizer, const AnswerOptions& options) {
  std::vector<int32_t> ids = options.chat ? data::chat_stop_ids(*options.chat, tokenizer)
                                          : std::vector<int32_t>{data::end_of_text_id(tokenizer)};
  for (const int32_t id : options.eos_ids)
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  return ids;
}

std::optional<data::ChatTemplate> choose_chat_template(const std::filesystem::path& model_dir, const std::string& family,
                                                       const std::string& template_option,
                                                       const std::string& chat_template_file) {
  if (template_option != "auto" && template_option != "alpaca" && template_option != "chat")
    fail("--template must be auto, alpaca or chat, got '{}'", template_option);
  if (!chat_template_file.empty()) {
    if (template_option == "alpaca")
      fail("--template alpaca and --chat-template {} contradict each other: choose one", chat_template_file);
    return data::read_chat_template_file(chat_template_file);
  }
  if (template_option == "alpaca") return std::nullopt;
  const data::PromptFormat p = data::read_prompt_format(model_dir);
  if (template_option == "auto" && p.format == "alpaca") return std::nullopt;
  if (p.chat) return p.chat;
  if (template_option == "auto") return std::nullopt;
  std::optional<data::ChatTemplate> t = data::family_chat_template(family);
  if (!t)
    fail("--template chat: {} is a {} model, whose vocabulary has no chat tokens and whose dir has no chat template; "
         "give the format with --chat-template FILE (docs/DESIGN.md, \"Chat templates\"), or use --template alpaca",
         model_dir.string(), family);
  return t;
}

Tokenizer load_tokenizer_for_model(const std::filesystem::path& model_dir, const std::string& family,
                                   const std::string& data_dir_option) {
  if (data::has_tokenizer_files(model_dir)) return Tokenizer::from_dir(model_dir);
  return Tokenizer::from_dir(data::family_tokenizer_dir(data::resolve_data_dir(data_dir_option), family));
}

ChatSession::ChatSession(const Transformer& model, const Tokenizer& tokenizer, const AnswerOptions& options, bool keep_history)
    : model_(model), tokenizer_(tokenizer), options_(options), keep_history_(keep_history) {
  if (options_.max_new_tokens <= 0) fail("--max-new-tokens must be positive, got {}", options_.max_new_tokens);
  stop_ids_ = answer_stop_ids(tokenizer_, options_);
}

int64_t ChatSession::prompt_budget() const {
  const int64_t context = model_.config().context_length;
  return context - std::min(options_.max_new_tokens, context / 2);
}

std::vector<int32_t> ChatSession::prompt_ids(const std::string& message) {
  if (!keep_history_) {
    turns_.clear();
    exchanges_.clear();
  }
  const int64_t budget = prompt_budget();
  if (options_.chat) {
    const auto render = [&] {
      std::vector<data::ChatMessage> m;
      if (!options_.system.empty()) m.push_back({"system", options_.system});
      for (const auto& [question, answer] : exchanges_) {
        m.push_back({"user", question});
        m.push_back({"assistant", answer});
      }
      m.push_back({"user", message});
      return data::encode_chat(tokenizer_, data::render_chat(*options_.chat, m, render_options(options_)), *options_.chat);
    };
    std::vector<int32_t> ids = render();
    while (!exchanges_.empty() && static_cast<int64_t>(ids.size()) > budget) {
      exchanges_.erase(exchanges_.begin());
      ++dropped_;
      ids = render();
    }
    return ids;
  }
  data::InstructionEntry entry;
  entry.instruction = message;
  const std::vector<int32_t> prompt = tokenizer_.encode(
      options_.response_header ? data::format_prompt(entry) : data::format_input(entry), /*allow_special=*/false);
  const auto history_tokens = [&] {
    return std::accumulate(turns_.begin(), turns_.end(), int64_t{0},
                           [](int64_t n, const std::vector<int32_t>& t) { return n + static_cast<int64_t>(t.size()); });
  };
  while (!turns_.empty() && history_tokens() + static_cast<int64_t>(prompt.size()) > budget) {
    turns_.erase(turns_.begin());
    ++dropped_;
  }
  std::vector<int32_t> ids;
  for (const auto& t : turns_) ids.insert(ids.end(), t.begin(), t.end());
  ids.insert(ids.end(), prompt.begin(), prompt.end());
  return ids;
}

std::string ChatSession::reply(const std::string& message, const std::function<void(std::string_view)>& on_text,
                               const std::function<bool()>& should_stop) {
  const std::vector<int32_t> ids = prompt_ids(message);
  last_prompt_tokens_ = static_cast<int64_t>(ids.size());

  SequenceRequest r;
  r.prompt = ids;
  r.max_new_tokens = options_.max_new_tokens;
  r.sampling = options_.sampling;
  r.sampling.seed = derive_seed(options_.sampling.seed, 0x43484154ULL, static_cast<uint64_t>(replies_++));
  r.stop_ids = stop_ids_;
  DecodeEngine engine(model_, [&](int32_t id) { return token_text(tokenizer_, id); });
  const int64_t id = engine.add(std::move(r));
  // should_stop() is polled after every token: a true cancels the answer before the next one.
  engine.run([&](const TokenEvent& ev) {
    if (!ev.text.empty() && on_text) on_text(ev.text);
    if (ev.token >= 0 && should_stop && should_stop()) engine.cancel(id);
  });
  const std::vector<int32_t>& generated = engine.result(id).generated;
  const std::string text = decode_text(tokenizer_, generated);
  if (options_.chat) {
    if (keep_history_) exchanges_.emplace_back(message, text);
    return data::chat_reply_text(text);
  }
  if (keep_history_) {
    // The Alpaca prompt of this turn (the history before it is already kept), the reply, end-of-text.
    size_t history = 0;
    for (const auto& t : turns_) history += t.size();
    std::vector<int32_t> turn(ids.begin() + static_cast<std::ptrdiff_t>(history), ids.end());
    turn.insert(turn.end(), generated.begin(), generated.end());
    turn.push_back(stop_ids_[0]);
    turns_.push_back(std::move(turn));
  }
  return extract_response(text);
}

}  // namespace gptrain
