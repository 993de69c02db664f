// gptrain answer: a model's answers to Alpaca-format entries (the book's ch07 §7.7), written as the
// book's instruction-data-with-response.json: each entry with its fields plus model_response.
#include <fmt/core.h>

#include <memory>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "cli/prompt_options.h"
#include "data/instruction_data.h"
#include "generate/instruct.h"
#include "kernels/ops.h"
#include "model/model_dir.h"
#include "util/error.h"

namespace gptrain::cli {

namespace {

struct AnswerCommandOptions {
  ModelChoice choice;
  std::string data, out, split = "all", data_dir;
  double train_split = 0.85, test_split = 0.10;
  AnswerOptions answer;
  PromptOptions prompt;
  int threads = 0;
};

int run_answer(const AnswerCommandOptions& o_in) {
  AnswerCommandOptions o = o_in;
  ops::set_num_threads(o.threads);
  resolve_model_choice(o.choice);
  const std::unique_ptr<Transformer> model = load_chosen_model(o.choice);
  if (model->config().head != HeadType::LanguageModel)
    fail("--model {}: a classifier model; answers need a language-model head", o.choice.model);
  const Tokenizer tokenizer = load_tokenizer_for_model(o.choice.model, model->config().family, o.data_dir);
  const std::string prompt = apply_prompt_options(o.prompt, prompt_dir(o.choice), model->config(), o.answer);
  const std::vector<data::InstructionEntry> all = data::load_instruction_file(o.data, /*require_output=*/false);
  std::vector<data::InstructionEntry> entries;
  if (o.split == "all") {
    entries = all;
  } else {
    const data::InstructionSplit s = data::split_instruction_data(all, o.train_split, o.test_split);
    entries = o.split == "train" ? s.train : o.split == "test" ? s.test : s.val;
  }
  if (entries.empty()) fail("--split {} of {} ({} entries) is empty", o.split, o.data, all.size());
  fmt::print("gptrain answer: {} entries ({} of {}) with {}; {}, up to {} new tokens, {} at a time, prompt {}\n",
             entries.size(), o.split, o.data, o.choice.adapter.empty() ? o.choice.model : o.choice.model + " + adapter " + o.choice.adapter,
             o.answer.sampling.temperature > 0 ? fmt::format("temperature {}", o.answer.sampling.temperature)
                                               : std::string("greedy"),
             o.answer.max_new_tokens, o.answer.batch_size,
             o.answer.chat ? prompt
             : o.answer.response_header ? "format_input + \"\\n\\n### Response:\\n\""
                                        : "format_input (the book's)");
  AnswerStats stats;
  const std::vector<std::string> responses = answer_entries(
      *model, tokenizer, entries, o.answer, stats, [](const std::string& line) { fmt::print("  {}\n", line); });
  data::write_entries_with_responses(o.out, entries, responses);
  fmt::print("wrote {} responses to {} in {:.1f} s ({} tokens, {:.1f} tokens/s; {} stopped at --max-new-tokens)\n",
             responses.size(), o.out, stats.seconds, stats.generated_tokens,
             stats.seconds > 0 ? static_cast<double>(stats.generated_tokens) / stats.seconds : 0.0,
             stats.hit_max_new_tokens);
  return 0;
}

}  // namespace

Command register_answer(CLI::App& app) {
  auto o = std::make_shared<AnswerCommandOptions>();
  CLI::App* s = app.add_subcommand("answer", "Answer Alpaca-format entries with a model; save them with model_response");
  add_model_options(s, o->choice, "Model dir (e.g. the final/ dir of finetune-instruct)");
  s->add_option("--data", o->data, "Alpaca JSON array or JSON Lines (instruction, input; output optional)")
      ->required();
  s->add_option("--out", o->out, "Output JSON (the entries plus model_response, as the book's json.dump indent=4)")
      ->required();
  s->add_option("--split", o->split, "Which entries: all, or the train/val/test part of the book's split")
      ->capture_default_str()
      ->check(CLI::IsMember({"all", "train", "val", "test"}));
  s->add_option("--train-split", o->train_split, "Training fraction of that split")->capture_default_str();
  s->add_option("--test-split", o->test_split, "Test fraction of that split")->capture_default_str();
  s->add_option("--max-new-tokens", o->answer.max_new_tokens, "Tokens to generate at most per entry")
      ->capture_default_str();
  s->add_option("--temperature", o->answer.sampling.temperature, "Sampling temperature (0: greedy)")
      ->capture_default_str();
  s->add_option("--top-k", o->answer.sampling.top_k, "Keep the k most likely tokens (0: off)");
  s->add_option("--top-p", o->answer.sampling.top_p, "Nucleus sampling mass (1: off)");
  s->add_option("--seed", o->answer.sampling.seed, "Seed of sampling")->capture_default_str();
  s->add_option("--batch-size", o->answer.batch_size,
                "Entries generated together (one decode pass for all; each answer is the one it gets alone)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  auto no_header = std::make_shared<bool>(false);
  s->add_flag("--no-response-header", *no_header,
              "Prompt with format_input alone, the book's exact prompt (the model must write \"### Response:\" "
              "itself: only for models trained with --no-mask-prompt); default: the prompt ends with it");
  add_prompt_options(s, o->prompt);
  s->add_option("--data-dir", o->data_dir, "Data directory, for the vocabulary when the model dir has none");
  s->add_option("--threads", o->threads, "CPU threads (0: all cores)");
  return [o, no_header] {
    o->answer.response_header = !*no_header;
    return run_answer(*o);
  };
}

}  // namespace gptrain::cli
