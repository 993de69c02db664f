// The request side of the served APIs: OpenAI's /v1/chat/completions and /v1/completions, and
// Ollama's /api/chat and /api/generate, parsed from a JSON body into one SequenceRequest for the
// decode engine. Each API keeps its own defaults (OpenAI: temperature 1, top_p 1, no top_k;
// Ollama: temperature 0.8, top_k 40, top_p 0.9, streaming on) and its own field names
// (max_tokens / options.num_predict). Messages become the model's prompt: its chat template, or
// for the book's GPT-2 instruction models the Alpaca prompt of each user turn with earlier
// replies and their end-of-text kept between (as `gptrain chat` keeps them). Anything malformed
// or out of range is an ApiError naming the field, with the HTTP status to answer.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "data/chat_template.h"
#include "generate/engine.h"
#include "generate/instruct.h"
#include "tokenizer/bpe.h"

namespace gptrain::serve {

enum class Api { OpenAIChat, OpenAICompletions, OllamaChat, OllamaGenerate };
bool is_ollama(Api api);

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, std::string param = "", std::string code = "")
      : std::runtime_error(message), status_(status), param_(std::move(param)), code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }  // e.g. model_not_found, context_length_exceeded
  // OpenAI's error type for a status: invalid_request_error, not_found_error, authentication_error, ...
  static std::string type_of(int status);

 private:
  int status_;
  std::string param_, code_;
};

// What the server serves and the limits it keeps.
struct ServedModel {
  std::vector<std::string> names;  // the first is its id; requests may name any (aliases)
  const Tokenizer* tokenizer = nullptr;
  AnswerOptions prompt;               // chat template (or Alpaca), system message, the model's eos ids
  std::vector<int32_t> raw_stop_ids;  // raw completions stop here (the model's eos ids, else end-of-text)
  int64_t context_length = 0;
  int64_t max_tokens_limit = 4096;  // the most new tokens one request may ask for
  std::string family, dtype;
  int64_t parameters = 0, file_bytes = 0;
  bool knows(const std::string& name) const;
};

struct ParsedRequest {
  Api api = Api::OpenAIChat;
  std::string model;    // as the request named it (the served id when it named none)
  bool stream = false;  // OpenAI: false by default; Ollama: true
  bool include_usage = false;  // OpenAI stream_options.include_usage
  SequenceRequest sequence;
};

// Parses and checks one request body. `random_seed` is the seed of a request that sets none.
ParsedRequest parse_request(Api api, std::string_view body, const ServedModel& model, uint64_t random_seed);

// The prompt ids of a conversation (roles system, user, assistant; the last message the user's).
std::vector<int32_t> conversation_ids(const ServedModel& model, const std::vector<data::ChatMessage>& messages);

}  // namespace gptrain::serve
