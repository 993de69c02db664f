// libFuzzer target for gptrain serve's request parser (serve/api.h): any body, for each of the four
// APIs, against an Alpaca model (GPT-2's tokenizer) and a chat-template model (Qwen's tokenizer and
// the Qwen3 template), must either parse into a request that fits the model's limits or be refused
// with an ApiError (a 4xx). Any other exception, a sanitizer report, a leak or a hang is a bug.
// The tokenizers come from GPTRAIN_FUZZ_DATA_DIR (default ../shared/data). Build and run as in
// fuzz/CMakeLists.txt, with -dict=fuzz/serve_request.dict and the corpus fuzz/corpus/serve_request.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "data/chat_template.h"
#include "serve/api.h"

namespace {

struct Models {
  gptrain::Tokenizer gpt2, qwen;
  gptrain::serve::ServedModel alpaca, chat;
};

Models* models = nullptr;

gptrain::serve::ServedModel served(const gptrain::Tokenizer& t, std::optional<gptrain::data::ChatTemplate> chat) {
  gptrain::serve::ServedModel m;
  m.names = {"model", "llama3"};
  m.tokenizer = &t;
  m.prompt.chat = std::move(chat);
  m.raw_stop_ids = {gptrain::data::end_of_text_id(t)};
  m.context_length = 256;
  m.max_tokens_limit = 512;
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = std::getenv("GPTRAIN_FUZZ_DATA_DIR");
  const std::string data = dir ? dir : "../shared/data";
  static Models m{gptrain::Tokenizer::from_files(data + "/gpt2_tokenizer/encoder.json", data + "/gpt2_tokenizer/vocab.bpe"),
                  gptrain::Tokenizer::from_tokenizer_json(data + "/tokenizers/qwen/tokenizer.json"),
                  {},
                  {}};
  m.alpaca = served(m.gpt2, std::nullopt);
  m.chat = served(m.qwen, gptrain::data::qwen3_chat_template());
  models = &m;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using gptrain::serve::Api;
  const Api api = static_cast<Api>(data[0] & 3);
  const gptrain::serve::ServedModel& model = (data[0] & 4) ? models->chat : models->alpaca;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    const gptrain::serve::ParsedRequest r = gptrain::serve::parse_request(api, body, model, 7);
    const int64_t prompt = static_cast<int64_t>(r.sequence.prompt.size());
    if (prompt < 1 || prompt >= model.context_length) __builtin_trap();  // a request must fit
    if (r.sequence.max_new_tokens < 1 || r.sequence.max_new_tokens > model.max_tokens_limit) __builtin_trap();
    for (const int32_t id : r.sequence.prompt)
      if (id < 0 || id >= model.tokenizer->vocab_size()) __builtin_trap();
    if (!model.knows(r.model)) __builtin_trap();
  } catch (const gptrain::serve::ApiError& e) {
    if (e.status() < 400 || e.status() >= 500) __builtin_trap();
  }
  return 0;
}
