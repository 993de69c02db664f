// gptrain judge: the book's chapter 7 evaluation (ollama_evaluate.py) as a command. Each entry's
// response is scored 0-100 by a judge model behind an Ollama (/api/chat, streamed JSON lines, as
// the book reads them) or OpenAI (/v1/chat/completions) endpoint, with the book's prompt, seed 123,
// temperature 0 and num_ctx 2048. A reply that is not an integer is skipped ("Could not convert
// score"), an empty response scores 0, as the book does. Transient failures (no connection, 5xx,
// 429, 503 with Retry-After) are retried with exponential backoff; each request has a timeout.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "data/instruction_data.h"

namespace gptrain::serve {

struct JudgeOptions {
  std::string endpoint = "http://localhost:11434";  // the server's base URL
  std::string api = "ollama";                       // "ollama" or "openai"
  std::string judge_model = "llama3";
  std::string key = "model_response";  // the entry field holding the response to score
  std::string api_key;                 // sent as a bearer token when set
  double timeout_s = 120;
  int retries = 5;
};

// The book's prompt, verbatim.
std::string judge_prompt(const data::InstructionEntry& entry, const std::string& response);

// The judge's reply to one prompt (the streamed content joined); an error naming the endpoint
// after the retries are spent. on_retry(message) is told of each retry.
std::string query_judge(const JudgeOptions& o, const std::string& prompt,
                        const std::function<void(const std::string&)>& on_retry = {});

// Python's int() of a reply: optional whitespace, a sign, decimal digits (underscores between
// digits allowed), nothing else; nullopt otherwise.
std::optional<int64_t> python_int(const std::string& text);

}  // namespace gptrain::serve
