// Chat templates: how a chat model's conversation becomes tokens. Hugging Face keeps a Jinja
// template in tokenizer_config.json; gptrain has no Jinja engine. It recognises the families'
// templates by their markers and renders them natively: Llama 3 (header/eot tokens), Llama 3.1+
// (the same with the dated system block), ChatML (Qwen2 and Qwen2.5, with their default system
// message) and Qwen3 (ChatML with <think> blocks). Any other format that wraps each message in a
// prefix and a suffix per role is read from a JSON file (--chat-template). For conversations of
// system, user and assistant messages (no tools) the text equals transformers'
// apply_chat_template (tests/fixtures/chat_templates), and the ids equal its tokenization, except
// that special-token text written inside a message stays plain text here (HF would turn a user's
// "<|eot_id|>" into the real token).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/instruction_data.h"
#include "tokenizer/bpe.h"

namespace gptrain::data {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

enum class ChatStyle { Llama3, Llama31, ChatML, Qwen3, Custom };

struct ChatTemplate {
  ChatStyle style = ChatStyle::Custom;
  std::string name;  // "llama3", "llama3.1", "chatml", "qwen3", or a custom file's "name"
  std::string bos;   // text before the conversation, e.g. "<|begin_of_text|>"
  // Custom: each message is prefix + content + suffix of its role (no system role: both empty).
  std::string system_prefix, system_suffix, user_prefix, user_suffix, assistant_prefix, assistant_suffix;
  std::string generation_prompt;  // what opens the model's turn
  std::string default_system;     // ChatML, Custom: the system message of a conversation without one
  bool trim = false;              // Custom: contents stripped of surrounding whitespace (Jinja's `| trim`)
  std::string date;               // Llama 3.1+: the "Today Date:" of the system block
  std::vector<std::string> stop;  // end-of-turn tokens; the first closes each training example
  std::string jinja;              // the Jinja text it was recognised from ("" when built in)
  std::string source;             // where it came from, for messages
};

// The built-in templates. Llama 3.1's date is the template's fallback, "26 Jul 2024", unless given.
ChatTemplate llama3_chat_template();
ChatTemplate llama31_chat_template(std::string date = "26 Jul 2024");
ChatTemplate chatml_chat_template(std::string default_system = "");
ChatTemplate qwen3_chat_template();
// The template a family's chat models use when their tokenizer files carry none: llama -> Llama 3,
// qwen3 -> Qwen3; nullopt for gpt2 (no chat tokens: the Alpaca prompt).
std::optional<ChatTemplate> family_chat_template(const std::string& family);

// A Jinja chat template recognised by its markers: <|start_header_id|> and <|eot_id|> (Llama 3;
// with "Cutting Knowledge Date", 3.1+), <|im_start|> and <|im_end|> (ChatML; with <think>, Qwen3;
// a literal system message in the template, its default). nullopt for anything else.
std::optional<ChatTemplate> recognise_chat_template(std::string_view jinja, const std::string& source);

// --chat-template FILE: a JSON object ({"style": "llama3"|"llama3.1"|"chatml"|"qwen3"} or a custom
// {"name", "bos", "system": {"prefix", "suffix"}, "user": {...}, "assistant": {...},
// "generation_prompt", "default_system", "trim", "stop": [...]}) or a Jinja template that
// recognise_chat_template knows. Errors name the file and the field.
ChatTemplate read_chat_template_file(const std::filesystem::path& path);
// The JSON form of a template (what read_chat_template_file reads), and back.
nlohmann::ordered_json chat_template_json(const ChatTemplate& t);
ChatTemplate chat_template_from_json(const nlohmann::ordered_json& j, const std::string& source);
// A Jinja template that renders as `t` does, for transformers (tokenizer_config.json's
// chat_template): the recognised text when there is one, else written from the fields.
std::string chat_template_jinja(const ChatTemplate& t);

// How a model dir's answers are prompted, from its tokenizer_config.json: "gptrain_prompt_format"
// ("alpaca" or "chat", written by finetune-instruct), "gptrain_chat_template" (the template gptrain
// trained with), else "chat_template" (Jinja, recognised; one gptrain cannot render is an error
// naming the file and the field). format is "" when the file says nothing.
struct PromptFormat {
  std::string format;  // "alpaca", "chat" or ""
  std::optional<ChatTemplate> chat;
};
PromptFormat read_prompt_format(const std::filesystem::path& model_dir);
// Writes tokenizer_config.json into model_dir (atomically): the existing file of tokenizer_dir
// when there is one, with the prompt format, the chat template (gptrain's JSON form and Jinja)
// and, when absent, the bos/eos token names.
void write_prompt_format(const std::filesystem::path& tokenizer_dir, const std::filesystem::path& model_dir,
                         const std::string& format, const ChatTemplate* chat);

struct ChatRenderOptions {
  bool add_generation_prompt = true;
  bool enable_thinking = true;  // Qwen3: false opens the answer with an empty <think></think> block
};

// A conversation as the template's text, with where message text sits in it.
struct RenderedChat {
  std::string text;
  std::vector<std::pair<size_t, size_t>> contents;  // [begin, end) of text that came from messages
  size_t last_reply_begin = 0;  // where the last assistant message's turn starts after its opening
  size_t last_reply_end = 0;    // and where its text ends (before the end-of-turn)
};
RenderedChat render_chat(const ChatTemplate& t, std::span<const ChatMessage> messages, const ChatRenderOptions& o = {});

// The ids of a rendering: the template's special tokens become their ids; message text and the
// template's plain text are encoded as ordinary text (special-token text in a message stays text).
// A special token the tokenizer lacks is an error naming it and the template.
std::vector<int32_t> encode_chat(const Tokenizer& tokenizer, const RenderedChat& r, const ChatTemplate& t);

// The template's end-of-turn ids (generation stops there).
std::vector<int32_t> chat_stop_ids(const ChatTemplate& t, const Tokenizer& tokenizer);

// The messages of an instruction entry: the system message (when not empty), the user's (the
// instruction, then a blank line and the input when there is one), and the output as the
// assistant's when with_output.
std::vector<ChatMessage> entry_messages(const InstructionEntry& entry, const std::string& system, bool with_output);

// A training example of a conversation ending with an assistant message: the ids up to the end of
// that message's text (collate appends the end-of-turn, chat_stop_ids()[0]); prompt_tokens counts
// those before its text (its turn's opening included), as tokenize_example does for Alpaca.
TokenizedExample chat_example(const Tokenizer& tokenizer, const ChatTemplate& t, std::span<const ChatMessage> messages);

// The token that ends a document: the first of "<|endoftext|>" (GPT-2, Qwen), "<|end_of_text|>"
// (Llama 3) and "</s>" the tokenizer has; an error when it has none.
std::string end_of_text_token(const Tokenizer& tokenizer);
int32_t end_of_text_id(const Tokenizer& tokenizer);

// A chat model's reply as text: after a Qwen3 "</think>" when there is one, stripped of whitespace.
std::string chat_reply_text(std::string_view generated_text);

}  // namespace gptrain::data
