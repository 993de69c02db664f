// gptrain judge: the book's chapter 7 scoring of model responses by a judge LLM (serve/judge.h),
// printed as ollama_evaluate.py prints it, every entry's score written to a JSON file.
#include <fmt/core.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "data/instruction_data.h"
#include "io/atomic_file.h"
#include "serve/judge.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/signals.h"

namespace gptrain::cli {

namespace {

struct JudgeCommandOptions {
  std::string data;
  std::string out;
  serve::JudgeOptions judge;
};

int run_judge(const JudgeCommandOptions& o) {
  if (o.data.empty()) fail("--data is required: a JSON file of entries with instruction, input, output and the response");
  if (o.judge.retries < 0) fail("--retries must be at least 0, got {}", o.judge.retries);
  if (o.judge.timeout_s <= 0) fail("--timeout must be positive, got {}", o.judge.timeout_s);
  const std::vector<data::InstructionEntry> entries = data::load_instruction_file(o.data, /*require_output=*/true);
  for (const data::InstructionEntry& e : entries) {
    const auto it = e.fields.find(o.judge.key);
    if (it == e.fields.end())
      fail("{}: entry {} (line {}) has no field '{}' (--key)", o.data, e.index, e.line, o.judge.key);
    if (!it->is_string()) fail("{}: entry {} (line {}): '{}' must be a string", o.data, e.index, e.line, o.judge.key);
  }
  install_stop_handlers();
  fmt::print("gptrain judge: {} entries of {}, field '{}', judged by '{}' at {} ({} API)\n", entries.size(), o.data,
             o.judge.key, o.judge.judge_model, o.judge.endpoint, o.judge.api);
  std::fflush(stdout);
  Progress progress(static_cast<int64_t>(entries.size()), 10.0);
  std::vector<int64_t> scores;
  nlohmann::ordered_json per_entry = nlohmann::ordered_json::array();
  for (size_t i = 0; i < entries.size(); ++i) {
    if (stop_requested()) {
      progress.finish();
      fail("stopped after {} of {} entries (nothing written)", i, entries.size());
    }
    const data::InstructionEntry& e = entries[i];
    const std::string response = e.fields.at(o.judge.key).get<std::string>();
    nlohmann::ordered_json record = {{"index", e.index}, {"instruction", e.instruction}};
    if (response.empty()) {  // ollama_evaluate.py: an empty response scores 0
      scores.push_back(0);
      record["score"] = 0;
      record["reply"] = nullptr;
    } else {
      const std::string reply =
          serve::query_judge(o.judge, serve::judge_prompt(e, response), [&](const std::string& m) { progress.print(m); });
      record["reply"] = reply;
      if (const std::optional<int64_t> score = serve::python_int(reply)) {
        scores.push_back(*score);
        record["score"] = *score;
      } else {
        progress.print(fmt::format("Could not convert score: {}", reply));
        record["score"] = nullptr;
      }
    }
    per_entry.push_back(record);
    progress.update(static_cast<int64_t>(i + 1), std::nan(""), 0.0);
  }
  progress.finish();
  double sum = 0;
  for (int64_t s : scores) sum += static_cast<double>(s);
  nlohmann::ordered_json out = {{"data", o.data}, {"key", o.judge.key}, {"judge_model", o.judge.judge_model},
                                {"endpoint", o.judge.endpoint}, {"api", o.judge.api},
                                {"number_of_scores", scores.size()}, {"entries", entries.size()},
                                {"average_score", scores.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(sum / scores.size())},
                                {"scores", per_entry}};
  const std::string out_path = o.out.empty() ? std::filesystem::path(o.data).replace_extension("").string() + "-scores.json" : o.out;
  io::write_file_atomic(out_path, out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n");
  fmt::print("Number of scores: {} of {}\n", scores.size(), entries.size());
  if (scores.empty())
    fmt::print("Average score: n/a (no score)\n\n");
  else
    fmt::print("Average score: {:.2f}\n\n", sum / static_cast<double>(scores.size()));
  fmt::print("scores written to {}\n", out_path);
  return 0;
}

}  // namespace

Command register_judge(CLI::App& app) {
  auto o = std::make_shared<JudgeCommandOptions>();
  CLI::App* s = app.add_subcommand("judge", "Score model responses with a judge LLM (the book's chapter 7 evaluation)");
  s->add_option("--data", o->data, "JSON file of entries (instruction, input, output, and the response field)");
  s->add_option("data_file", o->data, "The same as --data");
  s->add_option("--key", o->judge.key, "The field holding the response to score")->capture_default_str();
  s->add_option("--endpoint", o->judge.endpoint, "The judge server's base URL")->capture_default_str();
  s->add_option("--api", o->judge.api, "ollama (POST /api/chat, as the book) or openai (POST /v1/chat/completions)")
      ->capture_default_str()
      ->check(CLI::IsMember({"ollama", "openai"}));
  s->add_option("--judge-model", o->judge.judge_model, "The judge model's name on that server")->capture_default_str();
  s->add_option("--api-key", o->judge.api_key, "Bearer token for the server");
  s->add_option("--timeout", o->judge.timeout_s, "Seconds per request")->capture_default_str();
  s->add_option("--retries", o->judge.retries, "Retries of a request that failed in passing (backoff 1, 2, 4... s)")
      ->capture_default_str();
  s->add_option("--out", o->out, "Where the per-entry scores go (default: <data>-scores.json)");
  return [o] { return run_judge(*o); };
}

}  // namespace gptrain::cli
