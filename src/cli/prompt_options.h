// The prompt options of `chat` and `answer`: --template, --chat-template, --system, --no-think.
#pragma once

#include <CLI/CLI.hpp>

#include <filesystem>
#include <string>

#include "generate/instruct.h"
#include "model/config.h"

namespace gptrain::cli {

struct PromptOptions {
  std::string prompt_template = "auto";
  std::string chat_template;
  std::string system;
  bool no_think = false;
};

void add_prompt_options(CLI::App* s, PromptOptions& o);

// Fills answer.chat, system, enable_thinking and eos_ids for the model dir, and says which prompt
// is used (a line for the console).
std::string apply_prompt_options(const PromptOptions& o, const std::filesystem::path& model_dir,
                                 const ModelConfig& config, AnswerOptions& answer);

}  // namespace gptrain::cli
