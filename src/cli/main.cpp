// gptrain: the command-line entry point. Parses the subcommand, runs it, and turns any
// gptrain::Error into a one-line message and exit code 1. Under a launcher (mpirun, srun) only
// rank 0 prints to stdout; errors name the rank they come from.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstdio>
#include <exception>
#include <map>
#include <string>

#include "cli/commands.h"
#include "dist/communicator.h"
#include "util/error.h"
#include "util/version.h"

int main(int argc, char** argv) {
  CLI::App app{"gptrain: pretrain and finetune GPT-2 models in C++", "gptrain"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("gptrain ") + gptrain::kVersion);

  std::map<CLI::App*, gptrain::cli::Command> commands;
  auto add = [&](gptrain::cli::Command (*registrar)(CLI::App&)) {
    const size_t before = app.get_subcommands({}).size();
    gptrain::cli::Command command = registrar(app);
    auto subcommands = app.get_subcommands({});
    if (subcommands.size() > before) commands[subcommands.back()] = std::move(command);
  };
  add(gptrain::cli::register_pretrain);
  add(gptrain::cli::register_info);
  add(gptrain::cli::register_tokenize);
  add(gptrain::cli::register_finetune_instruct);
  add(gptrain::cli::register_finetune_dpo);
  add(gptrain::cli::register_answer);
  add(gptrain::cli::register_chat);
  add(gptrain::cli::register_generate);
  add(gptrain::cli::register_download);
  add(gptrain::cli::register_finetune_cls);
  add(gptrain::cli::register_classify);
  add(gptrain::cli::register_merge_lora);
  add(gptrain::cli::register_export_gguf);
  add(gptrain::cli::register_serve);
  add(gptrain::cli::register_judge);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::string who = "gptrain";
  try {
    const gptrain::dist::LaunchInfo launch = gptrain::dist::detect_launch();
    if (launch.size > 1) who = fmt::format("gptrain (rank {} of {})", launch.rank, launch.size);
    if (launch.rank != 0 && !std::freopen("/dev/null", "w", stdout)) return 1;
    for (auto& [sub, command] : commands)
      if (sub->parsed()) return command();
  } catch (const gptrain::Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "{}: error: {}\n", who, e.what());
    gptrain::dist::abandon_world();
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "{}: unexpected error: {}\n", who, e.what());
    gptrain::dist::abandon_world();
    return 1;
  }
  return 0;
}
