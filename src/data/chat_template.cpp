#include "data/chat_template.h"

#include <fmt/core.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <sstream>

#include "data/text_file.h"
#include "io/atomic_file.h"
#include "util/error.h"
#include "util/unicode_text.h"

namespace gptrain::data {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

constexpr const char* kLlamaHeaderStart = "<|start_header_id|>";
constexpr const char* kLlamaHeaderEnd = "<|end_header_id|>\n\n";
constexpr const char* kLlamaEot = "<|eot_id|>";

// Meta-Llama-3-8B-Instruct's tokenizer_config.json chat_template, which llama3_chat_template renders.
constexpr const char* kLlama3Jinja =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 "
    "%}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

const char* style_name(ChatStyle s) {
  switch (s) {
    case ChatStyle::Llama3: return "llama3";
    case ChatStyle::Llama31: return "llama3.1";
    case ChatStyle::ChatML: return "chatml";
    case ChatStyle::Qwen3: return "qwen3";
    case ChatStyle::Custom: return "custom";
  }
  return "custom";
}

// Appends text that came from a message, recording where it sits.
void add_content(RenderedChat& r, std::string_view content) {
  const size_t begin = r.text.size();
  r.text += content;
  if (!content.empty()) r.contents.emplace_back(begin, r.text.size());
}

std::string python_strip(std::string_view s) { return strip_unicode_whitespace(s); }

void render_llama(const ChatTemplate& t, std::span<const ChatMessage> messages, const ChatRenderOptions& o,
                  RenderedChat& r) {
  size_t first = 0;
  if (t.style == ChatStyle::Llama31) {
    // {{- bos_token }}, then a system block that is always there: knowledge date, today's date, the
    // system message (trimmed; "" when the conversation has none).
    r.text += t.bos;
    std::string system;
    if (!messages.empty() && messages[0].role == "system") {
      system = python_strip(messages[0].content);
      first = 1;
    }
    r.text += std::string(kLlamaHeaderStart) + "system" + kLlamaHeaderEnd + "Cutting Knowledge Date: December 2023\n" +
              "Today Date: " + t.date + "\n\n";
    add_content(r, system);
    r.text += kLlamaEot;
  } else if (!messages.empty()) {
    r.text += t.bos;  // before the first message only
  }
  for (size_t i = first; i < messages.size(); ++i) {
    r.text += std::string(kLlamaHeaderStart) + messages[i].role + kLlamaHeaderEnd;
    if (messages[i].role == "assistant") r.last_reply_begin = r.text.size();
    add_content(r, python_strip(messages[i].content));
    if (messages[i].role == "assistant") r.last_reply_end = r.text.size();
    r.text += kLlamaEot;
  }
  if (o.add_generation_prompt) r.text += t.generation_prompt;
}

void render_chatml(const ChatTemplate& t, std::span<const ChatMessage> messages, const ChatRenderOptions& o,
                   RenderedChat& r) {
  size_t first = 0;
  if (!messages.empty() && messages[0].role == "system") {
    r.text += "<|im_start|>system\n";
    add_content(r, messages[0].content);
    r.text += "<|im_end|>\n";
    first = 1;
  } else if (!t.default_system.empty()) {
    r.text += "<|im_start|>system\n" + t.default_system + "<|im_end|>\n";
  }
  for (size_t i = first; i < messages.size(); ++i) {
    r.text += "<|im_start|>" + messages[i].role + "\n";
    if (messages[i].role == "assistant") r.last_reply_begin = r.text.size();
    add_content(r, messages[i].content);
    if (messages[i].role == "assistant") r.last_reply_end = r.text.size();
    r.text += "<|im_end|>\n";
  }
  if (o.add_generation_prompt) r.text += t.generation_prompt;
}

// Qwen3's template without tools: assistant turns after the last user message carry their
// reasoning in a <think> block (the last one always, empty when it has none); earlier ones lose it.
void render_qwen3(const ChatTemplate& t, std::span<const ChatMessage> messages, const ChatRenderOptions& o,
                  RenderedChat& r) {
  const size_t n = messages.size();
  if (n > 0 && messages[0].role == "system") {
    r.text += "<|im_start|>system\n";
    add_content(r, messages[0].content);
    r.text += "<|im_end|>\n";
  }
  size_t last_query = n == 0 ? 0 : n - 1;
  for (size_t k = n; k-- > 0;) {
    const std::string& c = messages[k].content;
    const bool tool_response = c.starts_with("<tool_response>") && c.ends_with("</tool_response>");
    if (messages[k].role == "user" && !tool_response) {
      last_query = k;
      break;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "user" || (m.role == "system" && i > 0)) {
      r.text += "<|im_start|>" + m.role + "\n";
      add_content(r, m.content);
      r.text += "<|im_end|>\n";
    } else if (m.role == "assistant") {
      std::string content = m.content, reasoning;
      const size_t close = m.content.find("</think>");
      if (close != std::string::npos) {
        // content.split('</think>')[-1].lstrip('\n'); reasoning: the part before the first
        // '</think>', rstrip('\n'), after its last '<think>', lstrip('\n')
        content = std::string(lstrip_ascii(std::string_view(m.content).substr(m.content.rfind("</think>") + 8), "\n"));
        std::string_view before = rstrip_ascii(std::string_view(m.content).substr(0, close), "\n");
        const size_t open = before.rfind("<think>");
        if (open != std::string_view::npos) before = before.substr(open + 7);
        reasoning = std::string(lstrip_ascii(before, "\n"));
      }
      r.text += "<|im_start|>assistant\n";
      r.last_reply_begin = r.text.size();
      if (i > last_query && (i + 1 == n || !reasoning.empty())) {
        r.text += "<think>\n";
        add_content(r, lstrip_ascii(rstrip_ascii(reasoning, "\n"), "\n"));
        r.text += "\n</think>\n\n";
        add_content(r, lstrip_ascii(content, "\n"));
      } else {
        add_content(r, content);
      }
      r.last_reply_end = r.text.size();
      r.text += "<|im_end|>\n";
    }
  }
  if (o.add_generation_prompt) {
    r.text += t.generation_prompt;
    if (!o.enable_thinking) r.text += "<think>\n\n</think>\n\n";
  }
}

void render_custom(const ChatTemplate& t, std::span<const ChatMessage> messages, const ChatRenderOptions& o,
                   RenderedChat& r) {
  r.text += t.bos;
  const bool has_system_role = !t.system_prefix.empty() || !t.system_suffix.empty();
  if (!t.default_system.empty() && (messages.empty() || messages[0].role != "system"))
    r.text += t.system_prefix + t.default_system + t.system_suffix;
  for (const ChatMessage& m : messages) {
    const std::string* prefix = nullptr;
    const std::string* suffix = nullptr;
    if (m.role == "system" && has_system_role) {
      prefix = &t.system_prefix;
      suffix = &t.system_suffix;
    } else if (m.role == "user") {
      prefix = &t.user_prefix;
      suffix = &t.user_suffix;
    } else if (m.role == "assistant") {
      prefix = &t.assistant_prefix;
      suffix = &t.assistant_suffix;
    } else {
      fail("chat template {}{}: no {} role (it wraps{} user and assistant messages)", t.name,
           t.source.empty() ? "" : " (" + t.source + ")", m.role, has_system_role ? " system," : "");
    }
    r.text += *prefix;
    if (m.role == "assistant") r.last_reply_begin = r.text.size();
    add_content(r, t.trim ? python_strip(m.content) : m.content);
    if (m.role == "assistant") r.last_reply_end = r.text.size();
    r.text += *suffix;
  }
  if (o.add_generation_prompt) r.text += t.generation_prompt;
}

// "\\n" in Jinja string literals, as read from the template source.
std::string unescape_jinja(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char c = s[++i];
      out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
    } else {
      out += s[i];
    }
  }
  return out;
}

// A literal default system message in a ChatML template: '<|im_start|>system\n' followed by plain
// text up to <|im_end|> inside one string literal (Qwen2's and Qwen2.5's else-branch).
std::string chatml_default_system(std::string_view jinja) {
  for (const std::string_view open : {std::string_view("<|im_start|>system\\n"), std::string_view("<|im_start|>system\n")}) {
    for (size_t at = jinja.find(open); at != std::string_view::npos; at = jinja.find(open, at + 1)) {
      const size_t begin = at + open.size();
      const size_t end = jinja.find("<|im_end|>", begin);
      if (end == std::string_view::npos) continue;
      const std::string_view text = jinja.substr(begin, end - begin);
      if (text.empty() || text.find_first_of("'\"+{}") != std::string_view::npos) continue;
      return unescape_jinja(text);
    }
  }
  return "";
}

// A Jinja string literal of text.
std::string jinja_literal(std::string_view s) {
  std::string out = "'";
  for (const char c : s) {
    if (c == '\\' || c == '\'') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "'";
}

std::string require_string(const ordered_json& j, const char* key, const std::string& where, bool required) {
  if (!j.contains(key)) {
    if (required) fail("{}: missing field \"{}\"", where, key);
    return "";
  }
  if (!j[key].is_string()) fail("{}: field \"{}\" must be a string, got {}", where, key, j[key].dump());
  return j[key].get<std::string>();
}

void read_role(const ordered_json& j, const char* role, const std::string& where, bool required, std::string& prefix,
               std::string& suffix) {
  if (!j.contains(role)) {
    if (required) fail("{}: missing field \"{}\" (an object with \"prefix\" and \"suffix\")", where, role);
    return;
  }
  const ordered_json& r = j[role];
  if (!r.is_object()) fail("{}: field \"{}\" must be an object with \"prefix\" and \"suffix\"", where, role);
  const std::string at = fmt::format("{}: {}", where, role);
  for (auto it = r.begin(); it != r.end(); ++it)
    if (it.key() != "prefix" && it.key() != "suffix") fail("{}: unknown field \"{}\" (prefix, suffix)", at, it.key());
  prefix = require_string(r, "prefix", at, false);
  suffix = require_string(r, "suffix", at, false);
}

}  // namespace

ChatTemplate llama3_chat_template() {
  ChatTemplate t;
  t.style = ChatStyle::Llama3;
  t.name = "llama3";
  t.bos = "<|begin_of_text|>";
  t.generation_prompt = std::string(kLlamaHeaderStart) + "assistant" + kLlamaHeaderEnd;
  t.stop = {kLlamaEot};
  return t;
}

ChatTemplate llama31_chat_template(std::string date) {
  ChatTemplate t = llama3_chat_template();
  t.style = ChatStyle::Llama31;
  t.name = "llama3.1";
  t.date = std::move(date);
  // Llama 3.1+ also ends a tool-calling turn with <|eom_id|>; plain chat turns end with <|eot_id|>.
  return t;
}

ChatTemplate chatml_chat_template(std::string default_system) {
  ChatTemplate t;
  t.style = ChatStyle::ChatML;
  t.name = "chatml";
  t.default_system = std::move(default_system);
  t.generation_prompt = "<|im_start|>assistant\n";
  t.stop = {"<|im_end|>"};
  return t;
}

ChatTemplate qwen3_chat_template() {
  ChatTemplate t = chatml_chat_template();
  t.style = ChatStyle::Qwen3;
  t.name = "qwen3";
  return t;
}

std::optional<ChatTemplate> family_chat_template(const std::string& family) {
  if (family == "llama") return llama3_chat_template();
  if (family == "qwen3") return qwen3_chat_template();
  return std::nullopt;
}

std::optional<ChatTemplate> recognise_chat_template(std::string_view jinja, const std::string& source) {
  std::optional<ChatTemplate> t;
  const auto has = [&](std::string_view s) { return jinja.find(s) != std::string_view::npos; };
  if (has("<|start_header_id|>") && has("<|eot_id|>")) {
    if (has("Cutting Knowledge Date")) {
      // 3.2's template takes today's date when transformers provides strftime_now, as it does.
      t = llama31_chat_template();
      if (has("strftime_now")) {
        char buffer[32];
        const std::time_t now = std::time(nullptr);
        std::strftime(buffer, sizeof buffer, "%d %b %Y", std::localtime(&now));
        t->date = buffer;
      }
    } else {
      t = llama3_chat_template();
    }
  } else if (has("<|im_start|>") && has("<|im_end|>")) {
    t = has("<think>") ? qwen3_chat_template() : chatml_chat_template(chatml_default_system(jinja));
  }
  if (t) {
    t->jinja = std::string(jinja);
    t->source = source;
  }
  return t;
}

ordered_json chat_template_json(const ChatTemplate& t) {
  ordered_json j;
  j["style"] = style_name(t.style);
  if (t.style == ChatStyle::Llama31) j["date"] = t.date;
  if (t.style == ChatStyle::ChatML && !t.default_system.empty()) j["default_system"] = t.default_system;
  if (t.style != ChatStyle::Custom) return j;
  j["name"] = t.name;
  j["bos"] = t.bos;
  if (!t.system_prefix.empty() || !t.system_suffix.empty())
    j["system"] = {{"prefix", t.system_prefix}, {"suffix", t.system_suffix}};
  j["user"] = {{"prefix", t.user_prefix}, {"suffix", t.user_suffix}};
  j["assistant"] = {{"prefix", t.assistant_prefix}, {"suffix", t.assistant_suffix}};
  j["generation_prompt"] = t.generation_prompt;
  j["default_system"] = t.default_system;
  j["trim"] = t.trim;
  j["stop"] = t.stop;
  return j;
}

ChatTemplate chat_template_from_json(const ordered_json& j, const std::string& source) {
  if (!j.is_object()) fail("{}: a chat template must be a JSON object", source);
  const std::string style = j.contains("style") ? require_string(j, "style", source, true) : "custom";
  ChatTemplate t;
  if (style == "llama3") {
    t = llama3_chat_template();
  } else if (style == "llama3.1") {
    t = llama31_chat_template(j.contains("date") ? require_string(j, "date", source, true) : "26 Jul 2024");
  } else if (style == "chatml") {
    t = chatml_chat_template(require_string(j, "default_system", source, false));
  } else if (style == "qwen3") {
    t = qwen3_chat_template();
  } else if (style == "custom") {
    static const std::vector<std::string> kFields = {"style", "name", "bos", "system", "user", "assistant",
                                                     "generation_prompt", "default_system", "trim", "stop"};
    for (auto it = j.begin(); it != j.end(); ++it)
      if (std::find(kFields.begin(), kFields.end(), it.key()) == kFields.end())
        fail("{}: unknown field \"{}\" (a custom template has name, bos, system, user, assistant, generation_prompt, "
             "default_system, trim, stop)",
             source, it.key());
    t.style = ChatStyle::Custom;
    t.name = j.contains("name") ? require_string(j, "name", source, true) : fs::path(source).stem().string();
    t.bos = require_string(j, "bos", source, false);
    read_role(j, "system", source, false, t.system_prefix, t.system_suffix);
    read_role(j, "user", source, true, t.user_prefix, t.user_suffix);
    read_role(j, "assistant", source, true, t.assistant_prefix, t.assistant_suffix);
    t.generation_prompt = j.contains("generation_prompt") ? require_string(j, "generation_prompt", source, true)
                                                          : t.assistant_prefix;
    t.default_system = require_string(j, "default_system", source, false);
    if (!t.default_system.empty() && t.system_prefix.empty() && t.system_suffix.empty())
      fail("{}: \"default_system\" needs a \"system\" role", source);
    if (j.contains("trim")) {
      if (!j["trim"].is_boolean()) fail("{}: field \"trim\" must be true or false, got {}", source, j["trim"].dump());
      t.trim = j["trim"].get<bool>();
    }
    if (!j.contains("stop") || !j["stop"].is_array() || j["stop"].empty())
      fail("{}: field \"stop\" must be a non-empty list of the end-of-turn token(s), e.g. [\"</s>\"]", source);
    for (const auto& s : j["stop"]) {
      if (!s.is_string() || s.get<std::string>().empty())
        fail("{}: field \"stop\" must hold token names (strings), got {}", source, s.dump());
      t.stop.push_back(s.get<std::string>());
    }
  } else {
    fail("{}: field \"style\": unknown style \"{}\" (llama3, llama3.1, chatml, qwen3, custom)", source, style);
  }
  t.source = source;
  return t;
}

ChatTemplate read_chat_template_file(const fs::path& path) {
  const std::string text = read_text_file(path);
  const std::string source = path.string();
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{' && (first + 1 >= text.size() || (text[first + 1] != '%' && text[first + 1] != '{' && text[first + 1] != '#'))) {
    ordered_json j;
    try {
      j = ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range (1e400)
      fail("{}: not valid JSON ({}); a chat template file is a JSON template or a Jinja template", source, e.what());
    }
    return chat_template_from_json(j, source);
  }
  std::optional<ChatTemplate> t = recognise_chat_template(text, source);
  if (!t)
    fail("{}: a Jinja chat template gptrain does not know (it renders Llama 3's header/eot format and ChatML); "
         "write the format as a JSON template instead (docs/DESIGN.md, \"Chat templates\")",
         source);
  return *t;
}

std::string chat_template_jinja(const ChatTemplate& t) {
  if (!t.jinja.empty()) return t.jinja;
  switch (t.style) {
    case ChatStyle::Llama3:
      return kLlama3Jinja;
    case ChatStyle::Llama31:
      return "{{- bos_token }}{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim "
             "%}{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}"
             "{{- '<|start_header_id|>system<|end_header_id|>\\n\\nCutting Knowledge Date: December 2023\\nToday Date: " +
             t.date +
             "\\n\\n' + system_message + '<|eot_id|>' }}{%- for message in messages %}{{- '<|start_header_id|>' + "
             "message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
             "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";
    case ChatStyle::ChatML:
    case ChatStyle::Qwen3: {
      std::string j = "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + "
                      "'<|im_end|>\\n' }}";
      if (!t.default_system.empty())
        j += "{%- else %}{{- " + jinja_literal("<|im_start|>system\n" + t.default_system + "<|im_end|>\n") + " }}";
      j += "{%- endif %}{%- for message in messages %}{%- if not (loop.first and message['role'] == 'system') %}";
      if (t.style == ChatStyle::Qwen3)
        // Without tools, and reasoning only as the last turn's empty block: what gptrain trains.
        j += "{%- if message['role'] == 'assistant' and loop.last and '</think>' not in message['content'] %}{{- "
             "'<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' + message['content'] + '<|im_end|>\\n' }}{%- else %}";
      j += "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}";
      if (t.style == ChatStyle::Qwen3) j += "{%- endif %}";
      j += "{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}";
      if (t.style == ChatStyle::Qwen3)
        j += "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}";
      return j + "{%- endif %}";
    }
    case ChatStyle::Custom: {
      const std::string content = t.trim ? "message['content'] | trim" : "message['content']";
      std::string j = "{{- " + jinja_literal(t.bos) + " }}";
      if (!t.default_system.empty())
        j += "{%- if messages|length == 0 or messages[0]['role'] != 'system' %}{{- " +
             jinja_literal(t.system_prefix + t.default_system + t.system_suffix) + " }}{%- endif %}";
      j += "{%- for message in messages %}";
      const auto role = [&](const char* name, const std::string& prefix, const std::string& suffix, bool first) {
        j += std::string(first ? "{%- if" : "{%- elif") + " message['role'] == '" + name + "' %}{{- " +
             jinja_literal(prefix) + " + " + content + " + " + jinja_literal(suffix) + " }}";
      };
      role("user", t.user_prefix, t.user_suffix, true);
      role("assistant", t.assistant_prefix, t.assistant_suffix, false);
      if (!t.system_prefix.empty() || !t.system_suffix.empty()) role("system", t.system_prefix, t.system_suffix, false);
      j += "{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- " + jinja_literal(t.generation_prompt) +
           " }}{%- endif %}";
      return j;
    }
  }
  return "";
}

PromptFormat read_prompt_format(const fs::path& model_dir) {
  PromptFormat p;
  const fs::path path = model_dir / "tokenizer_config.json";
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return p;
  ordered_json j;
  try {
    j = ordered_json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range (1e400)
    fail("{}: not valid JSON: {}", path.string(), e.what());
  }
  if (!j.is_object()) fail("{}: expected a JSON object", path.string());
  if (j.contains("gptrain_prompt_format")) {
    p.format = require_string(j, "gptrain_prompt_format", path.string(), true);
    if (p.format != "alpaca" && p.format != "chat")
      fail("{}: field \"gptrain_prompt_format\" must be \"alpaca\" or \"chat\", got \"{}\"", path.string(), p.format);
  }
  if (j.contains("gptrain_chat_template")) {
    p.chat = chat_template_from_json(j["gptrain_chat_template"], path.string() + ": gptrain_chat_template");
    if (j.contains("chat_template") && j["chat_template"].is_string()) p.chat->jinja = j["chat_template"].get<std::string>();
  } else if (j.contains("chat_template") && p.format != "alpaca") {
    // A string, or transformers' list of named templates ({"name": "default", "template": ...}).
    std::string jinja;
    const ordered_json& c = j["chat_template"];
    if (c.is_string()) {
      jinja = c.get<std::string>();
    } else if (c.is_array()) {
      for (const auto& named : c)
        if (named.is_object() && named.value("name", "") == "default" && named.contains("template") &&
            named["template"].is_string())
          jinja = named["template"].get<std::string>();
    }
    if (jinja.empty() && !c.is_null())
      fail("{}: field \"chat_template\": expected a string (or a list with a \"default\" template)", path.string());
    if (!jinja.empty()) {
      p.chat = recognise_chat_template(jinja, path.string() + ": chat_template");
      if (!p.chat)
        fail("{}: field \"chat_template\": a Jinja template gptrain does not know (it renders Llama 3's header/eot "
             "format and ChatML); pass --chat-template FILE with the format as a JSON template, or --template alpaca",
             path.string());
    }
  }
  return p;
}

void write_prompt_format(const fs::path& tokenizer_dir, const fs::path& model_dir, const std::string& format,
                         const ChatTemplate* chat) {
  ordered_json j = ordered_json::object();
  const fs::path from = tokenizer_dir / "tokenizer_config.json";
  std::error_code ec;
  if (fs::is_regular_file(from, ec)) {
    try {
      j = ordered_json::parse(read_text_file(from));
    } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range (1e400)
      fail("{}: not valid JSON: {}", from.string(), e.what());
    }
    if (!j.is_object()) fail("{}: expected a JSON object", from.string());
  }
  j["gptrain_prompt_format"] = format;
  if (chat) {
    j["chat_template"] = chat_template_jinja(*chat);
    j["gptrain_chat_template"] = chat_template_json(*chat);
    if (!j.contains("bos_token") && !chat->bos.empty()) j["bos_token"] = chat->bos;
    if (!j.contains("eos_token") && !chat->stop.empty()) j["eos_token"] = chat->stop[0];
  } else {
    j.erase("gptrain_chat_template");
  }
  io::write_file_atomic(model_dir / "tokenizer_config.json", j.dump(2) + "\n");
}

RenderedChat render_chat(const ChatTemplate& t, std::span<const ChatMessage> messages, const ChatRenderOptions& o) {
  RenderedChat r;
  switch (t.style) {
    case ChatStyle::Llama3:
    case ChatStyle::Llama31: render_llama(t, messages, o, r); break;
    case ChatStyle::ChatML: render_chatml(t, messages, o, r); break;
    case ChatStyle::Qwen3: render_qwen3(t, messages, o, r); break;
    case ChatStyle::Custom: render_custom(t, messages, o, r); break;
  }
  return r;
}

std::vector<int32_t> encode_chat(const Tokenizer& tokenizer, const RenderedChat& r, const ChatTemplate& t) {
  const auto& specials = tokenizer.special_tokens();
  std::vector<int32_t> ids;
  std::string pending;  // ordinary text waiting to be encoded in one piece
  const auto flush = [&] {
    if (pending.empty()) return;
    tokenizer.encode_append(pending, /*allow_special=*/false, ids);
    pending.clear();
  };
  const std::string_view text = r.text;
  size_t next_content = 0;
  for (size_t i = 0; i < text.size();) {
    while (next_content < r.contents.size() && r.contents[next_content].second <= i) ++next_content;
    if (next_content < r.contents.size() && r.contents[next_content].first <= i) {
      // message text: plain, whatever it spells
      const size_t end = r.contents[next_content].second;
      pending.append(text.substr(i, end - i));
      i = end;
      continue;
    }
    const size_t stop_at = next_content < r.contents.size() ? r.contents[next_content].first : text.size();
    // template text: its special tokens become ids (the longest name that starts here)
    const std::pair<std::string, int32_t>* found = nullptr;
    for (const auto& s : specials)
      if (s.first.size() <= stop_at - i && text.compare(i, s.first.size(), s.first) == 0 &&
          (!found || s.first.size() > found->first.size()))
        found = &s;
    if (found) {
      flush();
      ids.push_back(found->second);
      i += found->first.size();
    } else {
      pending += text[i++];
    }
  }
  flush();
  // A template token the tokenizer lacks was encoded as text: say so rather than train on it.
  for (const std::string& name : t.stop)
    if (tokenizer.token_id(name) < 0)
      fail("chat template {}: the tokenizer has no token {} (is it the tokenizer of a {} model?)", t.name, name, t.name);
  return ids;
}

std::vector<int32_t> chat_stop_ids(const ChatTemplate& t, const Tokenizer& tokenizer) {
  std::vector<int32_t> ids;
  for (const std::string& name : t.stop) {
    const int32_t id = tokenizer.token_id(name);
    if (id < 0)
      fail("chat template {}{}: the tokenizer has no end-of-turn token {}", t.name,
           t.source.empty() ? "" : " (" + t.source + ")", name);
    ids.push_back(id);
  }
  return ids;
}

std::vector<ChatMessage> entry_messages(const InstructionEntry& entry, const std::string& system, bool with_output) {
  std::vector<ChatMessage> m;
  if (!system.empty()) m.push_back({"system", system});
  m.push_back({"user", entry.input.empty() ? entry.instruction : entry.instruction + "\n\n" + entry.input});
  if (with_output) m.push_back({"assistant", entry.output});
  return m;
}

TokenizedExample chat_example(const Tokenizer& tokenizer, const ChatTemplate& t, std::span<const ChatMessage> messages) {
  GPTRAIN_CHECK(!messages.empty() && messages.back().role == "assistant",
                "chat_example: the conversation must end with an assistant message");
  ChatRenderOptions o;
  o.add_generation_prompt = false;
  RenderedChat r = render_chat(t, messages, o);
  // Up to the end of the reply; the end-of-turn comes from collate.
  r.text.resize(r.last_reply_end);
  std::erase_if(r.contents, [&](const auto& c) { return c.first >= r.last_reply_end; });
  TokenizedExample ex;
  ex.ids = encode_chat(tokenizer, r, t);
  size_t bytes = 0;
  int64_t k = 0;
  const int64_t n = static_cast<int64_t>(ex.ids.size());
  while (k < n && bytes < r.last_reply_begin) bytes += tokenizer.decode_token(ex.ids[static_cast<size_t>(k++)]).size();
  ex.prompt_tokens = k;
  ex.prompt_aligned = bytes == r.last_reply_begin;
  return ex;
}

std::string end_of_text_token(const Tokenizer& tokenizer) {
  for (const char* name : {"<|endoftext|>", "<|end_of_text|>", "</s>"})
    if (tokenizer.token_id(name) >= 0) return name;
  fail("the tokenizer has no end-of-text token (<|endoftext|>, <|end_of_text|> or </s>)");
}

int32_t end_of_text_id(const Tokenizer& tokenizer) { return tokenizer.token_id(end_of_text_token(tokenizer)); }

std::string chat_reply_text(std::string_view generated_text) {
  const size_t close = generated_text.rfind("</think>");
  if (close != std::string_view::npos) generated_text = generated_text.substr(close + 8);
  return strip_unicode_whitespace(generated_text);
}

}  // namespace gptrain::data
