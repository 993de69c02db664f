#include "train/finetune_instruct.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "dist/communicator.h"
#include "data/chat_template.h"
#include "data/data_dir.h"
#include "data/datasets.h"
#include "data/instruction_data.h"
#include "data/text_file.h"
#include "generate/instruct.h"
#include "io/atomic_file.h"
#include "kernels/ops.h"
#include "model/model_dir.h"
#include "train/classifier_model.h"
#include "tokenizer/bpe.h"
#include "train/loop.h"
#include "train/run_dir.h"
#include "util/error.h"
#include "util/format.h"
#include "util/rng.h"
#include "util/signals.h"

namespace gptrain {

namespace fs = std::filesystem;

namespace {

nlohmann::json options_json(const InstructOptions& o) {
  nlohmann::json j = {{"data", o.data},
                      {"val-data", o.val_data},
                      {"test-data", o.test_data},
                      {"train-split", o.train_split},
                      {"test-split", o.test_split},
                      {"init", o.init},
                      {"max-length", o.max_length},
                      {"mask-prompt", o.mask_prompt},
                      {"sample-tokens", o.sample_tokens},
                      {"answer-test", o.answer_test},
                      {"answer-tokens", o.answer_tokens}};
  // Recorded only when set, so the book's run.json reads as before these options.
  if (o.prompt_template != "alpaca") j["template"] = o.prompt_template;
  if (!o.chat_template.empty()) j["chat-template"] = o.chat_template;
  if (!o.system.empty()) j["system"] = o.system;
  if (o.trainable != "all") j["trainable"] = o.trainable;
  j.update(train_options_json(o));
  return j;
}

// Options a resumed run may change (see train_options_may_change_on_resume for the cosine caveat).
const std::set<std::string> kMayChangeOnResume = [] {
  std::set<std::string> keys = train_options_may_change_on_resume();
  keys.insert({"sample-tokens", "answer-test", "answer-tokens"});
  return keys;
}();

class InstructTask : public TrainTask {
 public:
  InstructTask(Transformer& model, const Tokenizer& tokenizer, const std::vector<data::TokenizedExample>& train,
               const std::vector<data::TokenizedExample>& val, const data::InstructionEntry* sample_entry,
               const data::CollateOptions& collate, const InstructOptions& o, const AnswerOptions& answer)
      : model_(model), tokenizer_(tokenizer), train_examples_(train), sample_entry_(sample_entry), collate_(collate),
        o_(o), answer_(answer), train_(train, o.batch_size, /*shuffle=*/true, /*drop_last=*/true, o.seed, collate),
        val_(val, o.batch_size, /*shuffle=*/false, /*drop_last=*/false, o.seed, collate) {}

  int64_t batches_per_epoch() const override { return train_.num_batches(); }
  int64_t val_batches() const { return val_.num_batches(); }

  void train_batch(int64_t epoch, int64_t index, Batch& b) override {
    train_.get(epoch, index, collated_);
    b.inputs.swap(collated_.inputs);
    b.targets.swap(collated_.targets);
    b.B = collated_.B;
    b.T = collated_.T;
  }

  Evaluation evaluate(int64_t step) override {
    // The book iterates a fresh (reshuffled) train loader each evaluation; ours reshuffles with a
    // seed derived from the step, so a resumed run evaluates on the same batches.
    const data::InstructionLoader train_eval(train_examples_, o_.batch_size, true, true,
                                             derive_seed(o_.seed, 0x4556414cULL, static_cast<uint64_t>(step)),
                                             collate_);
    return {loader_loss(train_eval), loader_loss(val_)};
  }

  // The book prints the model's continuation of the first validation prompt after every epoch.
  void end_of_epoch(int64_t epoch, Progress& progress) override {
    if (o_.sample_tokens <= 0 || !sample_entry_) return;
    AnswerOptions a = answer_;
    a.max_new_tokens = o_.sample_tokens;
    progress.print(fmt::format("Ep {} sample (first validation entry): {}", epoch + 1,
                               answer_sample(model_, tokenizer_, *sample_entry_, a)));
  }

 private:
  // calc_loss_loader: the plain mean of the first eval_iters batch means; NaN for no batch.
  double loader_loss(const data::InstructionLoader& loader) {
    const int64_t n = std::min(o_.eval_iters, loader.num_batches());
    if (n <= 0) return NAN;
    double sum = 0;
    data::CollatedBatch b;
    for (int64_t i = 0; i < n; ++i) {
      loader.get(0, i, b);
      sum += model_.forward_loss(b.inputs, b.targets, b.B, b.T, ForwardOptions{false, 0});
    }
    return sum / static_cast<double>(n);
  }

  Transformer& model_;
  const Tokenizer& tokenizer_;
  const std::vector<data::TokenizedExample>& train_examples_;
  const data::InstructionEntry* sample_entry_;
  data::CollateOptions collate_;
  const InstructOptions& o_;
  AnswerOptions answer_;
  data::InstructionLoader train_, val_;
  data::CollatedBatch collated_;
};

void report_lengths(const char* name, const std::vector<data::TokenizedExample>& examples, int64_t max_length,
                    bool mask_prompt) {
  const data::LengthReport r = data::length_report(examples, max_length, mask_prompt);
  std::string line = fmt::format("  {}: {} entries, longest {} tokens", name, r.entries, r.longest);
  if (r.truncated > 0)
    line += fmt::format("; {} longer than --max-length {} are truncated", r.truncated, max_length);
  else
    line += fmt::format("; none longer than --max-length {}", max_length);
  if (r.no_response_left > 0)
    line += fmt::format("; {} keep no response token (their prompt fills --max-length)", r.no_response_left);
  if (r.prompt_misaligned > 0)
    line += fmt::format("; {} prompts end inside a token (that token is masked as prompt)", r.prompt_misaligned);
  fmt::print("{}\n", line);
}

}  // namespace

std::string answer_sample(const Transformer& model, const Tokenizer& tokenizer, const data::InstructionEntry& entry,
                          const AnswerOptions& a) {
  const Answer answer = answer_entry(model, tokenizer, entry, a);
  const std::string prompt = a.chat ? data::render_chat(*a.chat, data::entry_messages(entry, a.system, false)).text
                                    : data::format_prompt(entry);
  std::string text = prompt + decode_text(tokenizer, answer.generated);
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

void save_instruction_model(const Transformer& model, const fs::path& final_dir, const std::string& init,
                            const fs::path& tokenizer_dir, const AnswerOptions& answer) {
  save_trained_model(model, final_dir, init);
  copy_tokenizer_files(tokenizer_dir, final_dir);
  if (answer.chat || fs::exists(tokenizer_dir / "tokenizer_config.json"))
    data::write_prompt_format(tokenizer_dir, final_dir, answer.chat ? "chat" : "alpaca",
                              answer.chat ? &*answer.chat : nullptr);
}

void answer_test_entries(const Transformer& model, const Tokenizer& tokenizer,
                         const std::vector<data::InstructionEntry>& entries, const AnswerOptions& a,
                         const fs::path& out) {
  AnswerStats stats;
  fmt::print("answering the {} test entries (greedy, up to {} new tokens)\n", entries.size(), a.max_new_tokens);
  std::fflush(stdout);  // seen now, also through a pipe: this can take a while
  const std::vector<std::string> responses =
      answer_entries(model, tokenizer, entries, a, stats, [](const std::string& line) { fmt::print("  {}\n", line); });
  data::write_entries_with_responses(out, entries, responses);
  fmt::print("test responses in {} ({} of {} stopped at --answer-tokens {})\n", out.string(), stats.hit_max_new_tokens,
             stats.entries, a.max_new_tokens);
}

int run_finetune_instruct(const InstructOptions& o_in) {
  InstructOptions o = o_in;
  ops::set_num_threads(o.threads > 0 ? o.threads : dist::default_threads(dist::world()));
  const Device device = training_device(o);
  const fs::path data_dir = data::resolve_data_dir(o.data_dir);
  if (o.data.empty())
    o.data = data::require_data_file(data_dir, "instruction-data.json", "the book's instruction data (ch07)").string();
  if (o.init.empty())
    fail("--init MODEL_DIR is required: the model to finetune (the final/ dir of `gptrain pretrain`, a checkpoint "
         "dir, or a Hugging Face GPT-2 model dir)");
  if (!fs::is_directory(o.init))
    fail("--init {}: not a model directory (finetuning starts from trained weights: give the final/ dir of `gptrain "
         "pretrain` or a Hugging Face GPT-2 model dir)",
         o.init);
  if (o.batch_size <= 0) fail("--batch-size must be positive, got {}", o.batch_size);
  if (o.eval_iters <= 0) fail("--eval-iters must be positive, got {}", o.eval_iters);
  if (o.max_length <= 0) fail("--max-length must be positive, got {}", o.max_length);
  if (o.lr_schedule != "constant" && o.lr_schedule != "cosine")
    fail("--lr-schedule must be constant or cosine, got '{}'", o.lr_schedule);

  ModelLoadOptions load;
  load.drop_rate = static_cast<float>(o.drop_rate);
  load.lora = o.lora;
  load.lora_seed = o.seed;
  std::unique_ptr<Transformer> model = load_model_dir(o.init, load);
  const ModelConfig& cfg = model->config();
  if (cfg.head != HeadType::LanguageModel)
    fail("--init {}: a classifier model; instruction finetuning needs a language-model head", o.init);
  const std::string trainable_what = apply_trainable(*model, o.trainable);
  place_for_training(*model, o, device);  // after freezing

  const nlohmann::json opts = options_json(o);
  fmt::print("gptrain finetune-instruct\n");
  print_run_options(opts);
  fmt::print("  --out-dir {}\n  --data-dir {}\n", o.out_dir, data_dir.string());
  const int64_t max_length = std::min(o.max_length, cfg.context_length);
  if (max_length < o.max_length)
    fmt::print("--max-length {} exceeds the model's context length {}: sequences are cut to {}\n", o.max_length,
               cfg.context_length, max_length);

  // Data: the book's split in file order; a --val-data / --test-data file replaces that part,
  // whose entries then train.
  const fs::path tokenizer_dir = data::resolve_tokenizer_dir("", o.init, cfg.family, data_dir);
  const Tokenizer tokenizer = Tokenizer::from_dir(tokenizer_dir);
  if (o.prompt_template != "alpaca" && o.prompt_template != "chat")
    fail("--template must be alpaca or chat, got '{}'", o.prompt_template);
  AnswerOptions answer;
  answer.chat = choose_chat_template(o.init, cfg.family, o.chat_template.empty() ? o.prompt_template : "chat",
                                     o.chat_template);
  answer.system = o.system;
  answer.eos_ids = read_generation_config(o.init).eos_ids;
  if (!answer.chat && !o.system.empty()) fail("--system applies to chat templates; add --template chat");
  if (answer.chat)
    fmt::print("prompt: chat template {}{}\n", answer.chat->name,
               answer.chat->source.empty() ? " (built in)" : " from " + answer.chat->source);
  if (tokenizer.vocab_size() > cfg.vocab_size)
    fail("--init {}: the model's vocabulary has {} entries, fewer than the tokenizer's {}", o.init, cfg.vocab_size,
         tokenizer.vocab_size());
  const std::vector<data::InstructionEntry> all = data::load_instruction_file(o.data);
  data::InstructionSplit split = data::split_instruction_data(all, o.train_split, o.test_split);
  if (!o.test_data.empty()) {
    split.train.insert(split.train.end(), split.test.begin(), split.test.end());
    split.test = data::load_instruction_file(o.test_data);
  }
  if (!o.val_data.empty()) {
    split.train.insert(split.train.end(), split.val.begin(), split.val.end());
    split.val = data::load_instruction_file(o.val_data);
  }
  std::stable_sort(split.train.begin(), split.train.end(),
                   [](const auto& a, const auto& b) { return a.index < b.index; });
  fmt::print("data: {} entries in {}: train {}, val {}{}, test {}{}\n", all.size(), o.data, split.train.size(),
             split.val.size(), o.val_data.empty() ? "" : " (from --val-data)", split.test.size(),
             o.test_data.empty() ? "" : " (from --test-data)");
  if (split.train.empty())
    fail("no training entries: {} has {} entries and --train-split {} gives none", o.data, all.size(), o.train_split);
  const auto tokenize = [&](const std::vector<data::InstructionEntry>& entries) {
    if (!answer.chat) return data::tokenize_examples(tokenizer, entries);
    std::vector<data::TokenizedExample> out;
    out.reserve(entries.size());
    for (const data::InstructionEntry& e : entries)
      out.push_back(data::chat_example(tokenizer, *answer.chat, data::entry_messages(e, o.system, /*with_output=*/true)));
    return out;
  };
  const std::vector<data::TokenizedExample> train = tokenize(split.train);
  const std::vector<data::TokenizedExample> val = tokenize(split.val);
  report_lengths("train", train, max_length, o.mask_prompt);
  report_lengths("val", val, max_length, o.mask_prompt);
  if (!split.test.empty()) report_lengths("test", tokenize(split.test), max_length, o.mask_prompt);
  if (val.empty()) fmt::print("warning: no validation entries; the validation loss is NaN and no sample is printed\n");

  data::CollateOptions collate;
  // Each example ends with the template's end-of-turn (Alpaca: the end-of-text), which also pads.
  collate.pad_id = answer.chat ? data::chat_stop_ids(*answer.chat, tokenizer)[0] : data::end_of_text_id(tokenizer);
  collate.max_length = max_length;
  collate.mask_prompt = o.mask_prompt;
  InstructTask task(*model, tokenizer, train, val, split.val.empty() ? nullptr : &split.val[0], collate, o, answer);
  task.tokenizer_dir = tokenizer_dir;
  if (task.batches_per_epoch() == 0)
    fail("{} training entries are fewer than one batch of --batch-size {}: lower --batch-size or give more data",
         train.size(), o.batch_size);
  // The run dir once the data is known to be good: a refused file leaves no run.json behind
  // (review F9), so the retry needs no --overwrite.
  const RunDirPlan plan = prepare_run_dir(o.out_dir, opts, o.resume, o.overwrite, kMayChangeOnResume,
                                          options_json(InstructOptions{}),
                                          RunDataFiles{{"data", "val-data", "test-data"}, o.allow_changed_data});
  fmt::print("batches: train {} of {} per epoch (the last partial batch dropped), val {}; targets: {}\n",
             task.batches_per_epoch(), o.batch_size, task.val_batches(),
             o.mask_prompt ? "the response and its end-of-text (prompt and padding are -100)"
                           : "prompt, response and end-of-text (padding is -100; --no-mask-prompt, the book's chapter)");
  fmt::print("model: {} layers, {} heads, {} channels, context {}; {} parameters, {} trainable ({})\n", cfg.n_layers,
             cfg.n_heads, cfg.emb_dim, cfg.context_length, with_commas(count_parameters(cfg).total),
             with_commas(model->params().trainable_numel()), trainable_what);

  AdamW optimizer(model->params(), adamw_options(o));
  const LoopOptions lo = loop_options(o, task.batches_per_epoch());

  const LoopResult r = run_training_job(*model, optimizer, task, lo, o, plan, opts).result;
  if (r.interrupted) return report_interrupted(r, plan.dir);
  if (!dist::world().is_main()) return 0;  // the main rank writes the model and answers the test set
  const fs::path final_dir = plan.dir / "final";
  save_instruction_model(*model, final_dir, o.init, tokenizer_dir, answer);
  const double tps = r.seconds > 0 ? static_cast<double>(r.tokens_trained) / r.seconds : 0;
  fmt::print("done: {} steps, {} tokens seen, {:.1f} s ({:.0f} tokens/s); model in {}, plot in {}\n", r.state.step,
             r.state.tokens_seen, r.seconds, tps, final_dir.string(), (plan.dir / "loss.svg").string());

  if (o.answer_test && !split.test.empty()) {
    AnswerOptions a = answer;
    a.max_new_tokens = o.answer_tokens;
    answer_test_entries(*model, tokenizer, split.test, a, plan.dir / "test-responses.json");
  }
  return 0;
}

}  // namespace gptrain
