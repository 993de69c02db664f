// Each subcommand lives in its own cmd_<name>.cpp and registers itself on the root app; the
// returned callback runs when that subcommand was chosen. Options are defined once, there.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace gptrain::cli {

using Command = std::function<int()>;

Command register_info(CLI::App& app);
Command register_pretrain(CLI::App& app);
Command register_tokenize(CLI::App& app);
Command register_finetune_instruct(CLI::App& app);
Command register_finetune_dpo(CLI::App& app);
Command register_answer(CLI::App& app);
Command register_chat(CLI::App& app);
Command register_generate(CLI::App& app);
Command register_download(CLI::App& app);
Command register_finetune_cls(CLI::App& app);
Command register_classify(CLI::App& app);
Command register_merge_lora(CLI::App& app);
Command register_export_gguf(CLI::App& app);
Command register_serve(CLI::App& app);
Command register_judge(CLI::App& app);

}  // namespace gptrain::cli
