#include "cli/prompt_options.h"

#include <fmt/core.h>

#include "model/model_dir.h"
#include "util/error.h"

namespace gptrain::cli {

void add_prompt_options(CLI::App* s, PromptOptions& o) {
  s->add_option("--template", o.prompt_template,
                "Prompt format: auto (what the model dir's tokenizer_config.json says: the format it was finetuned "
                "with, or its chat template; else the book's Alpaca), alpaca, or chat (the dir's chat template, else "
                "its family's: Llama 3, Qwen3)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "alpaca", "chat"}));
  s->add_option("--chat-template", o.chat_template,
                "A chat template file (JSON, or a Jinja template of Llama 3 / ChatML form) instead of the model's");
  s->add_option("--system", o.system, "System message (chat templates)");
  s->add_flag("--no-think", o.no_think, "Qwen3: open each answer with an empty <think></think> block (no reasoning)");
}

std::string apply_prompt_options(const PromptOptions& o, const std::filesystem::path& model_dir,
                                 const ModelConfig& config, AnswerOptions& answer) {
  answer.chat = choose_chat_template(model_dir, config.family, o.prompt_template, o.chat_template);
  answer.system = o.system;
  answer.enable_thinking = !o.no_think;
  answer.eos_ids = read_generation_config(model_dir).eos_ids;
  if (!answer.chat) {
    if (!o.system.empty()) fail("--system applies to chat templates; the prompt here is Alpaca (add --template chat)");
    if (o.no_think) fail("--no-think applies to Qwen3's chat template; the prompt here is Alpaca");
    return "Alpaca";
  }
  if (o.no_think && answer.chat->style != data::ChatStyle::Qwen3)
    fail("--no-think applies to Qwen3's chat template, not {}", answer.chat->name);
  return fmt::format("chat template {}{}", answer.chat->name,
                     answer.chat->source.empty() ? " (built in)" : " from " + answer.chat->source);
}

}  // namespace gptrain::cli
