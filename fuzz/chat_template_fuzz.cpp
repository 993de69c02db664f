// libFuzzer target for chat templates (data/chat_template.h): the input is read both as a
// --chat-template file (read_chat_template_file: gptrain's JSON form or a Jinja template it
// recognises) and as a model dir's tokenizer_config.json (read_prompt_format: the prompt format,
// gptrain_chat_template, or a Jinja chat_template). Each must either be refused with
// gptrain::Error or give a template that renders a fixed conversation with its message ranges
// inside the text, whose JSON form reads back as a template rendering the same, and whose ids
// with Qwen3's tokenizer are in range (or the template's special tokens are refused by name). Any
// other exception, a sanitizer report, a leak or a hang is a bug. The tokenizer comes from
// GPTRAIN_FUZZ_DATA_DIR (default ../shared/data). Build and run as in fuzz/CMakeLists.txt, with
// -dict=fuzz/chat_template.dict and the corpus fuzz/corpus/chat_template.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "fuzz_common.h"

namespace {

namespace fs = std::filesystem;
using namespace gptrain::data;
using gptrain::fuzz::expect_clean_rejection;

const gptrain::Tokenizer* qwen = nullptr;

const std::vector<ChatMessage> kConversation = {{"system", "  Be brief. "},
                                                {"user", "What is 2+2? <|im_end|>"},
                                                {"assistant", "<think>\nadd</think>\n\n4"},
                                                {"user", "And 3+3?"}};

void check_render(const ChatTemplate& t, bool generation_prompt) {
  ChatRenderOptions o;
  o.add_generation_prompt = generation_prompt;
  const RenderedChat r = render_chat(t, kConversation, o);
  for (const auto& [begin, end] : r.contents) GPTRAIN_FUZZ_REQUIRE(begin <= end && end <= r.text.size());
  GPTRAIN_FUZZ_REQUIRE(r.last_reply_begin <= r.last_reply_end && r.last_reply_end <= r.text.size());
  try {
    const std::vector<int32_t> ids = encode_chat(*qwen, r, t);
    for (const int32_t id : ids) GPTRAIN_FUZZ_REQUIRE(id >= 0 && id < qwen->vocab_size());
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);  // a special token Qwen's vocabulary lacks
  }
}

void check_template(const ChatTemplate& t) {
  check_render(t, true);
  check_render(t, false);
  try {
    for (const int32_t id : chat_stop_ids(t, *qwen)) GPTRAIN_FUZZ_REQUIRE(id >= 0 && id < qwen->vocab_size());
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);
  }
  // The JSON form (gptrain_chat_template in a model dir) reads back as the same rendering.
  const ChatTemplate back = chat_template_from_json(chat_template_json(t), "chat_template_json");
  GPTRAIN_FUZZ_REQUIRE(render_chat(back, kConversation).text == render_chat(t, kConversation).text);
  (void)chat_template_jinja(t);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  gptrain::fuzz::temp_dir("chat_template");
  const char* dir = std::getenv("GPTRAIN_FUZZ_DATA_DIR");
  const std::string data = dir ? dir : "../shared/data";
  static const gptrain::Tokenizer t = gptrain::Tokenizer::from_tokenizer_json(data + "/tokenizers/qwen/tokenizer.json");
  qwen = &t;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const fs::path& dir = gptrain::fuzz::temp_dir();
  gptrain::fuzz::write_file(dir / "chat_template.json", bytes);
  try {
    check_template(read_chat_template_file(dir / "chat_template.json"));
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);
  }
  gptrain::fuzz::write_file(dir / "tokenizer_config.json", bytes);
  try {
    const PromptFormat p = read_prompt_format(dir);
    GPTRAIN_FUZZ_REQUIRE(p.format.empty() || p.format == "alpaca" || p.format == "chat");
    if (p.chat) check_template(*p.chat);
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);
  }
  return 0;
}
