#include "serve/api.h"

#include <fmt/core.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <nlohmann/json.hpp>

#include "data/instruction_data.h"

namespace gptrain::serve {

using nlohmann::json;

bool is_ollama(Api api) { return api == Api::OllamaChat || api == Api::OllamaGenerate; }

std::string ApiError::type_of(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429:
    case 503: return "server_overloaded";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

bool ServedModel::knows(const std::string& name) const {
  return std::find(names.begin(), names.end(), name) != names.end();
}

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& message) { throw ApiError(400, message, param); }

const char* type_name(const json& v) { return v.type_name(); }

// Optional fields of an object, each checked for its type (a JSON null counts as absent).
const json* field(const json& o, const char* name) {
  const auto it = o.find(name);
  return it == o.end() || it->is_null() ? nullptr : &*it;
}

std::optional<double> number(const json& o, const char* name, const std::string& path) {
  const json* v = field(o, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) bad(path, fmt::format("'{}' must be a number, got {}", path, type_name(*v)));
  const double d = v->get<double>();
  if (!std::isfinite(d)) bad(path, fmt::format("'{}' must be finite", path));
  return d;
}

std::optional<int64_t> integer(const json& o, const char* name, const std::string& path) {
  const json* v = field(o, name);
  if (!v) return std::nullopt;
  if (v->is_number_integer()) return v->get<int64_t>();
  if (v->is_number_float()) {  // 5.0 is 5; 5.5 is not an integer
    const double d = v->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
  }
  bad(path, fmt::format("'{}' must be an integer, got {}", path, v->dump().substr(0, 40)));
}

std::optional<bool> boolean(const json& o, const char* name, const std::string& path) {
  const json* v = field(o, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) bad(path, fmt::format("'{}' must be true or false, got {}", path, type_name(*v)));
  return v->get<bool>();
}

std::optional<std::string> text(const json& o, const char* name, const std::string& path) {
  const json* v = field(o, name);
  if (!v) return std::nullopt;
  if (!v->is_string()) bad(path, fmt::format("'{}' must be a string, got {}", path, type_name(*v)));
  return v->get<std::string>();
}

// "stop": a string or an array of strings (at most 16, none empty).
std::vector<std::string> stops(const json& o, const std::string& path) {
  const json* v = field(o, "stop");
  if (!v) return {};
  std::vector<std::string> out;
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const json& s : *v) {
      if (!s.is_string()) bad(path, fmt::format("'{}' must hold strings, got {}", path, type_name(s)));
      out.push_back(s.get<std::string>());
    }
  } else {
    bad(path, fmt::format("'{}' must be a string or an array of strings", path));
  }
  if (out.size() > 16) bad(path, fmt::format("'{}' has {} strings; at most 16", path, out.size()));
  for (const std::string& s : out)
    if (s.empty()) bad(path, fmt::format("'{}' holds an empty string", path));
  return out;
}

std::vector<data::ChatMessage> messages(const json& body) {
  const json* v = field(body, "messages");
  if (!v) bad("messages", "'messages' is required");
  if (!v->is_array() || v->empty()) bad("messages", "'messages' must be a non-empty array");
  std::vector<data::ChatMessage> out;
  for (size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    const std::string path = fmt::format("messages[{}]", i);
    if (!m.is_object()) bad(path, fmt::format("'{}' must be an object", path));
    const std::optional<std::string> role = text(m, "role", path + ".role");
    if (!role) bad(path + ".role", fmt::format("'{}.role' is required", path));
    if (*role != "system" && *role != "user" && *role != "assistant")
      bad(path + ".role", fmt::format("'{}.role' is '{}': system, user or assistant", path, *role));
    const json* content = field(m, "content");
    std::string content_text;
    if (!content) {
      content_text = "";
    } else if (content->is_string()) {
      content_text = content->get<std::string>();
    } else if (content->is_array()) {  // OpenAI's content parts: text only
      for (const json& part : *content) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
          bad(path + ".content", fmt::format("'{}.content' parts must be {{\"type\": \"text\", \"text\": ...}}", path));
        content_text += part["text"].get<std::string>();
      }
    } else {
      bad(path + ".content", fmt::format("'{}.content' must be a string, got {}", path, type_name(*content)));
    }
    if (field(m, "images")) bad(path + ".images", "images are not supported: the model reads text");
    out.push_back({*role, content_text});
  }
  if (out.back().role != "user") bad("messages", "the last message must be the user's");
  return out;
}

}  // namespace

std::vector<int32_t> conversation_ids(const ServedModel& model, const std::vector<data::ChatMessage>& messages) {
  const Tokenizer& tokenizer = *model.tokenizer;
  const AnswerOptions& o = model.prompt;
  if (o.chat) {
    std::vector<data::ChatMessage> m;
    const bool has_system = std::any_of(messages.begin(), messages.end(), [](const auto& x) { return x.role == "system"; });
    if (!has_system && !o.system.empty()) m.push_back({"system", o.system});
    m.insert(m.end(), messages.begin(), messages.end());
    data::ChatRenderOptions render;
    render.enable_thinking = o.enable_thinking;
    return data::encode_chat(tokenizer, data::render_chat(*o.chat, m, render), *o.chat);
  }
  // Alpaca: each user turn is an instruction; a reply before the last turn is kept with the
  // end-of-text that closed it in training. The Alpaca preamble is the system prompt, so system
  // messages are not part of it.
  const std::vector<int32_t> stop = answer_stop_ids(tokenizer, o);
  std::vector<int32_t> ids;
  for (const data::ChatMessage& m : messages) {
    if (m.role == "user") {
      data::InstructionEntry entry;
      entry.instruction = m.content;
      const std::vector<int32_t> t = tokenizer.encode(
          o.response_header ? data::format_prompt(entry) : data::format_input(entry), /*allow_special=*/false);
      ids.insert(ids.end(), t.begin(), t.end());
    } else if (m.role == "assistant") {
      const std::vector<int32_t> t = tokenizer.encode(m.content, /*allow_special=*/false);
      ids.insert(ids.end(), t.begin(), t.end());
      ids.push_back(stop.at(0));
    }
  }
  return ids;
}

ParsedRequest parse_request(Api api, std::string_view body, const ServedModel& model, uint64_t random_seed) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {  // syntax errors, and numbers beyond a double (out_of_range)
    throw ApiError(400, fmt::format("the body is not JSON: {}", e.what()));
  }
  if (!j.is_object()) throw ApiError(400, fmt::format("the body must be a JSON object, got {}", type_name(j)));
  ParsedRequest r;
  r.api = api;
  const bool ollama = is_ollama(api);

  const std::optional<std::string> name = text(j, "model", "model");
  r.model = name.value_or(model.names.at(0));
  if (!model.knows(r.model))
    throw ApiError(404, fmt::format("model '{}' not found; this server serves {}", r.model, fmt::format("'{}'", fmt::join(model.names, "', '"))),
                   "model", "model_not_found");

  // Sampling: the API's defaults, then the request's values.
  SamplingOptions& s = r.sequence.sampling;
  const json empty = json::object();
  const json* options = ollama ? field(j, "options") : nullptr;
  if (options && !options->is_object()) bad("options", "'options' must be an object");
  const json& o = options ? *options : empty;
  // Ollama reads sampling from "options"; ollama_evaluate.py sends seed and temperature at the top
  // level too, so a top-level value counts when options lacks it.
  json merged = o;
  if (ollama)
    for (const char* k : {"temperature", "seed", "top_k", "top_p"})
      if (!field(o, k) && field(j, k)) merged[k] = j[k];
  const json& src = ollama ? merged : j;
  const std::string p = ollama ? "options." : "";
  s.temperature = ollama ? 0.8 : 1.0;
  s.top_k = ollama ? 40 : 0;
  s.top_p = ollama ? 0.9 : 1.0;
  if (auto t = number(src, "temperature", p + "temperature")) {
    if (*t < 0 || *t > 100) bad(p + "temperature", fmt::format("'{}temperature' must be in [0, 100], got {}", p, *t));
    s.temperature = *t;
  }
  if (auto t = number(src, "top_p", p + "top_p")) {
    if (!(*t > 0 && *t <= 1)) bad(p + "top_p", fmt::format("'{}top_p' must be in (0, 1], got {}", p, *t));
    s.top_p = *t;
  }
  if (auto k = integer(src, "top_k", p + "top_k")) {
    if (*k < 0) bad(p + "top_k", fmt::format("'{}top_k' must be at least 0, got {}", p, *k));
    s.top_k = *k;
  }
  const std::optional<int64_t> seed = integer(src, "seed", p + "seed");
  s.seed = seed && *seed >= 0 ? static_cast<uint64_t>(*seed) : random_seed;  // Ollama: -1 is random
  for (const char* penalty : {"presence_penalty", "frequency_penalty", "repeat_penalty"}) {
    const std::optional<double> v = number(src, penalty, p + penalty);
    const double neutral = std::string(penalty) == "repeat_penalty" ? 1.0 : 0.0;
    if (v && *v != neutral) bad(p + penalty, fmt::format("'{}{}' is not supported (only {})", p, penalty, neutral));
  }
  r.sequence.stop_strings = stops(src, p + "stop");
  if (auto n = integer(j, "n", "n"); n && *n != 1) bad("n", "'n' must be 1: one choice per request");
  if (ollama) {
    if (auto c = integer(o, "num_ctx", "options.num_ctx"); c && *c < 1)
      bad("options.num_ctx", fmt::format("'options.num_ctx' must be positive, got {}", *c));
    if (field(j, "format")) bad("format", "'format' (structured output) is not supported");
    if (field(j, "images")) bad("images", "images are not supported: the model reads text");
  } else {
    if (field(j, "tools")) bad("tools", "'tools' are not supported");
    if (auto rf = field(j, "response_format"); rf && !(rf->is_object() && rf->value("type", "") == "text"))
      bad("response_format", "'response_format' other than text is not supported");
  }

  // The prompt.
  bool ignore_eos = boolean(j, "ignore_eos", "ignore_eos").value_or(false);
  if (api == Api::OpenAIChat || api == Api::OllamaChat) {
    r.sequence.prompt = conversation_ids(model, messages(j));
    r.sequence.stop_ids = answer_stop_ids(*model.tokenizer, model.prompt);
  } else {
    const json* prompt = field(j, "prompt");
    std::string text_prompt;
    if (prompt && prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string())
      text_prompt = (*prompt)[0].get<std::string>();  // OpenAI's one-prompt list
    else if (prompt && !prompt->is_string())
      bad("prompt", fmt::format("'prompt' must be a string, got {}", type_name(*prompt)));
    else if (prompt)
      text_prompt = prompt->get<std::string>();
    else if (!ollama)
      bad("prompt", "'prompt' is required");
    const bool raw = !ollama || boolean(j, "raw", "raw").value_or(false);
    if (raw) {
      r.sequence.prompt = model.tokenizer->encode(text_prompt, /*allow_special=*/true);  // as `gptrain generate`
      r.sequence.stop_ids = model.raw_stop_ids;
      if (r.sequence.prompt.empty()) r.sequence.prompt = {model.raw_stop_ids.at(0)};  // GPT-2's start of text
    } else {  // Ollama applies the model's template to a prompt (and its system message)
      std::vector<data::ChatMessage> m;
      if (auto system = text(j, "system", "system"); system && !system->empty()) m.push_back({"system", *system});
      m.push_back({"user", text_prompt});
      r.sequence.prompt = conversation_ids(model, m);
      r.sequence.stop_ids = answer_stop_ids(*model.tokenizer, model.prompt);
    }
    if (!ollama && field(j, "suffix")) bad("suffix", "'suffix' (insertion) is not supported");
  }
  if (ignore_eos) r.sequence.stop_ids.clear();
  const int64_t prompt_tokens = static_cast<int64_t>(r.sequence.prompt.size());
  if (prompt_tokens >= model.context_length)
    throw ApiError(400, fmt::format("the prompt has {} tokens; the model's context holds {}, so at most {} fit with one new token",
                                    prompt_tokens, model.context_length, model.context_length - 1),
                   ollama ? "prompt" : "messages", "context_length_exceeded");

  // How many new tokens: what fits the context unless asked (the window would slide past it).
  const int64_t fits = model.context_length - prompt_tokens;
  std::optional<int64_t> max_tokens;
  std::string max_name;
  if (ollama) {
    max_name = "options.num_predict";
    max_tokens = integer(o, "num_predict", max_name);
    if (max_tokens && (*max_tokens == -1 || *max_tokens == -2)) max_tokens = std::nullopt;  // infinite / fill the context
  } else {
    max_name = field(j, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    max_tokens = integer(j, max_name.c_str(), max_name);
  }
  if (max_tokens && (*max_tokens < 1 || *max_tokens > model.max_tokens_limit))
    bad(max_name, fmt::format("'{}' must be in [1, {}], got {}", max_name, model.max_tokens_limit, *max_tokens));
  r.sequence.max_new_tokens = max_tokens.value_or(std::min(fits, model.max_tokens_limit));

  r.stream = boolean(j, "stream", "stream").value_or(ollama);
  if (const json* so = field(j, "stream_options")) {
    if (!so->is_object()) bad("stream_options", "'stream_options' must be an object");
    r.include_usage = boolean(*so, "include_usage", "stream_options.include_usage").value_or(false);
  }
  return r;
}

}  // namespace gptrain::serve
