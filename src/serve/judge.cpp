#include "serve/judge.h"

#include <fmt/core.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "net/http_post.h"
#include "util/error.h"

namespace gptrain::serve {

using nlohmann::json;

std::string judge_prompt(const data::InstructionEntry& entry, const std::string& response) {
  return fmt::format(
      "Given the input `{}` and correct output `{}`, score the model response `{}` on a scale from 0 to 100, where 100 "
      "is the best score. Respond with the integer number only.",
      data::format_input(entry), entry.output, response);
}

std::optional<int64_t> python_int(const std::string& text) {
  size_t b = 0, e = text.size();
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  while (b < e && space(text[b])) ++b;
  while (e > b && space(text[e - 1])) --e;
  if (b == e) return std::nullopt;
  bool negative = false;
  if (text[b] == '+' || text[b] == '-') negative = text[b++] == '-';
  if (b == e || text[b] == '_') return std::nullopt;
  int64_t value = 0;
  for (size_t i = b; i < e; ++i) {
    const char c = text[i];
    if (c == '_') {
      if (i + 1 == e || text[i + 1] == '_') return std::nullopt;
      continue;
    }
    if (c < '0' || c > '9') return std::nullopt;
    if (value > (INT64_MAX - 9) / 10) return std::nullopt;  // far beyond any score
    value = value * 10 + (c - '0');
  }
  return negative ? -value : value;
}

std::string query_judge(const JudgeOptions& o, const std::string& prompt,
                        const std::function<void(const std::string&)>& on_retry) {
  const bool ollama = o.api == "ollama";
  if (!ollama && o.api != "openai") fail("--api must be ollama or openai, got '{}'", o.api);
  std::string base = o.endpoint;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::string url = base + (ollama ? "/api/chat" : "/v1/chat/completions");
  json payload;
  payload["model"] = o.judge_model;
  payload["messages"] = json::array({{{"role", "user"}, {"content", prompt}}});
  if (ollama) {
    payload["options"] = {{"seed", 123}, {"temperature", 0}, {"num_ctx", 2048}};  // the book's
  } else {
    payload["seed"] = 123;
    payload["temperature"] = 0;
    payload["stream"] = false;
  }
  const std::string body = payload.dump(-1, ' ', false, json::error_handler_t::replace);
  std::vector<std::string> headers;
  if (!o.api_key.empty()) headers.push_back("Authorization: Bearer " + o.api_key);

  double backoff = 1.0;
  for (int attempt = 0;; ++attempt) {
    std::string reply, pending, stream_error;
    // Ollama streams JSON lines: the content of each, joined, as the book reads them.
    const auto on_data = [&](std::string_view data) {
      pending.append(data);
      size_t end;
      while ((end = pending.find('\n')) != std::string::npos) {
        const std::string line = pending.substr(0, end);
        pending.erase(0, end + 1);
        if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
        const json j = json::parse(line, nullptr, false);
        if (j.is_discarded()) {
          stream_error = fmt::format("a streamed line is not JSON: {}", line.substr(0, 200));
          return false;
        }
        if (j.contains("error")) {
          stream_error = j["error"].is_string() ? j["error"].get<std::string>() : j["error"].dump();
          return false;
        }
        if (j.contains("message") && j["message"].contains("content") && j["message"]["content"].is_string())
          reply += j["message"]["content"].get<std::string>();
      }
      return true;
    };
    const net::PostResult r = ollama ? net::http_post(url, body, headers, o.timeout_s, on_data)
                                     : net::http_post(url, body, headers, o.timeout_s);
    std::string why;
    bool transient = false;
    if (!r.connected) {
      why = fmt::format("no response from {}: {}", url, r.error);
      transient = true;
    } else if (r.status >= 500 || r.status == 429 || r.status == 408) {
      why = fmt::format("{} answered HTTP {}", url, r.status);
      transient = true;
    } else if (r.status != 200) {
      std::string detail = r.body.substr(0, 300);
      if (ollama && detail.empty()) detail = stream_error;
      fail("the judge at {} answered HTTP {}: {}", url, r.status, detail);
    } else if (!stream_error.empty()) {
      fail("the judge at {}: {}", url, stream_error);
    } else if (!r.error.empty()) {
      why = fmt::format("the reply from {} broke off: {}", url, r.error);
      transient = true;
    } else {
      if (ollama) {
        if (!pending.empty()) on_data("\n");
        if (!stream_error.empty()) fail("the judge at {}: {}", url, stream_error);
        return reply;
      }
      const json j = json::parse(r.body, nullptr, false);
      if (j.is_discarded() || !j.contains("choices") || !j["choices"].is_array() || j["choices"].empty() ||
          !j["choices"][0].contains("message") || !j["choices"][0]["message"].value("content", json()).is_string())
        fail("the judge at {} answered something that is not a chat completion: {}", url, r.body.substr(0, 300));
      return j["choices"][0]["message"]["content"].get<std::string>();
    }
    if (!transient || attempt >= o.retries) fail("{} (after {} attempts)", why, attempt + 1);
    const double wait = r.retry_after_s >= 0 ? std::max(r.retry_after_s, 0.1) : backoff;
    if (on_retry) on_retry(fmt::format("{}; retrying in {:.1f} s ({} of {})", why, wait, attempt + 1, o.retries));
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(wait * 1000)));
    backoff = std::min(backoff * 2, 30.0);
  }
}

}  // namespace gptrain::serve
