#include "train/finetune_dpo.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <memory>

#include "data/chat_template.h"
#include "data/data_dir.h"
#include "data/datasets.h"
#include "data/preference_data.h"
#include "dist/communicator.h"
#include "generate/instruct.h"
#include "kernels/ops.h"
#include "model/model_dir.h"
#include "tokenizer/bpe.h"
#include "train/classifier_model.h"
#include "train/dpo.h"
#include "train/finetune_instruct.h"
#include "train/loop.h"
#include "train/run_dir.h"
#include "util/error.h"
#include "util/format.h"
#include "util/progress.h"
#include "util/rng.h"
#include "util/timer.h"

namespace gptrain {

namespace fs = std::filesystem;

namespace {

nlohmann::json options_json(const DpoOptions& o) {
  nlohmann::json j = {{"data", o.data},
                      {"train-split", o.train_split},
                      {"test-split", o.test_split},
                      {"init", o.init},
                      {"reference", o.reference},
                      {"beta", o.beta},
                      {"logprob", o.logprob},
                      {"precompute-reference", o.precompute_reference},
                      {"max-length", o.max_length},
                      {"mask-prompt", o.mask_prompt},
                      {"template", o.prompt_template},
                      {"sample-tokens", o.sample_tokens},
                      {"answer-test", o.answer_test},
                      {"answer-tokens", o.answer_tokens}};
  if (!o.chat_template.empty()) j["chat-template"] = o.chat_template;
  if (!o.system.empty()) j["system"] = o.system;
  if (o.trainable != "all") j["trainable"] = o.trainable;
  j.update(train_options_json(o));
  return j;
}

const std::set<std::string> kMayChangeOnResume = [] {
  std::set<std::string> keys = train_options_may_change_on_resume();
  keys.insert({"sample-tokens", "answer-test", "answer-tokens"});
  return keys;
}();

enum SplitIndex { kTrain = 0, kVal = 1 };

// The pairs of one split, tokenized, with their entries (for samples and test answers).
struct Split {
  std::vector<data::PreferenceEntry> entries;
  std::vector<data::PreferenceExample> examples;
};

class DpoTask : public TrainTask {
 public:
  DpoTask(Transformer& policy, const Tokenizer& tokenizer, const Split (&splits)[2],
          const data::PreferenceCollate& collate, const DpoOptions& o, const AnswerOptions& answer)
      : policy_(policy), tokenizer_(tokenizer), splits_(splits), collate_(collate), o_(o),
        reduction_(dpo::parse_reduction(o.logprob)), answer_(answer),
        train_(static_cast<int64_t>(splits[kTrain].examples.size()), o.batch_size, /*shuffle=*/true,
               /*drop_last=*/true, o.seed),
        val_(static_cast<int64_t>(splits[kVal].examples.size()), o.batch_size, false, false, o.seed) {}

  int64_t batches_per_epoch() const override { return train_.num_batches(); }
  int64_t val_batches() const { return val_.num_batches(); }

  // The batch of `indices` of a split; with a key, the reference's log-probabilities of its rows too.
  Batch batch_of(int split, std::span<const int64_t> indices, const std::string& key = "") {
    std::vector<const data::PreferenceExample*> rows;
    for (int64_t i : indices) rows.push_back(&splits_[split].examples[static_cast<size_t>(i)]);
    data::collate_preferences(rows, indices, collate_, collated_);
    Batch b;
    b.inputs = std::move(collated_.inputs);
    b.targets = std::move(collated_.targets);
    b.B = 2 * collated_.pairs;
    b.T = collated_.T;
    b.examples = std::move(collated_.examples);
    if (!key.empty()) b.row_values = dpo::logprobs(reference_->sums(b, key), reduction_);
    return b;
  }

  void set_reference(dpo::Reference& reference) { reference_ = &reference; }

  // Every batch a run of `lo` evaluates or trains on, by key: what a precomputed reference holds.
  struct Planned {
    std::string key;
    int split;
    std::vector<int64_t> indices;
  };
  std::vector<Planned> planned_batches(const LoopOptions& lo) const {
    std::vector<Planned> out;
    const auto add = [&](std::string key, int split, std::span<const int64_t> idx) {
      out.push_back({std::move(key), split, std::vector<int64_t>(idx.begin(), idx.end())});
    };
    const int64_t nb = train_.num_batches(), per_step = lo.grad_accum * (lo.comm ? lo.comm->size() : 1);
    const int64_t per_epoch = (nb + per_step - 1) / per_step, total = lo.schedule.total_steps;
    for (int64_t step = 0; step < total; ++step) {
      const int64_t epoch = step / per_epoch, first = (step % per_epoch) * per_step;
      for (int64_t b = first; b < std::min(nb, first + per_step); ++b)
        add(train_key(epoch, b), kTrain, train_.batch(epoch, b));
    }
    for (int64_t i = 0; i < std::min(o_.eval_iters, val_.num_batches()); ++i) add(val_key(i), kVal, val_.batch(0, i));
    std::vector<int64_t> eval_steps = {-1};
    for (int64_t step = 0; step < total; ++step)
      if (step % lo.eval_interval == 0 || step == total - 1) eval_steps.push_back(step);
    for (int64_t step : eval_steps) {
      const data::BatchOrder order = train_eval_order(step);
      for (int64_t i = 0; i < std::min(o_.eval_iters, order.num_batches()); ++i)
        add(eval_key(step, i), kTrain, order.batch(0, i));
    }
    return out;
  }

  void train_batch(int64_t epoch, int64_t index, Batch& b) override {
    b = batch_of(kTrain, train_.batch(epoch, index), train_key(epoch, index));
  }

  // Pairs are the terms of the loss; tokens seen are the chosen batch's, as the book counts them.
  BatchCounts counts(const Batch& b) const override {
    const int64_t pairs = b.B / 2;
    return {pairs, pairs, pairs * (b.T + 1)};
  }

  double forward_backward(Transformer& model, const Batch& b, const ForwardOptions& fo, float share) override {
    return dpo::policy_pass(model, ws_, b, b.row_values, o_.beta, reduction_, fo, true, share).loss;
  }

  // One workspace for every pass (the reference's, training's, evaluation's): they never overlap
  // (a step's reference passes come before its forward and backward), so the activations and
  // logits are held once.
  BatchWorkspace& workspace() { return ws_; }

  Evaluation evaluate(int64_t step) override {
    const data::BatchOrder train_eval = train_eval_order(step);
    Evaluation ev;
    PairRewards rewards[2];
    double losses[2];
    const data::BatchOrder* orders[2] = {&train_eval, &val_};
    for (int split = 0; split < 2; ++split) {
      const int64_t n = std::min(o_.eval_iters, orders[split]->num_batches());
      if (n <= 0) {
        losses[split] = rewards[split].chosen = rewards[split].rejected = NAN;
        continue;
      }
      double loss = 0, chosen = 0, rejected = 0;
      for (int64_t i = 0; i < n; ++i) {
        const Batch b = batch_of(split, orders[split]->batch(0, i), split == kVal ? val_key(i) : eval_key(step, i));
        const dpo::BatchResult r =
            dpo::policy_pass(policy_, ws_, b, b.row_values, o_.beta, reduction_, ForwardOptions{}, false, 0);
        loss += r.loss;
        chosen += r.rewards.chosen;
        rejected += r.rewards.rejected;
      }
      // compute_dpo_loss_loader: plain means of the batch means.
      losses[split] = loss / static_cast<double>(n);
      rewards[split] = {chosen / static_cast<double>(n), rejected / static_cast<double>(n)};
    }
    ev.train_loss = losses[0];
    ev.val_loss = losses[1];
    ev.train_rewards = rewards[0];
    ev.val_rewards = rewards[1];
    return ev;
  }

  // The book prints the policy's continuation of the third validation prompt after each epoch.
  void end_of_epoch(int64_t epoch, Progress& progress) override {
    const auto& val = splits_[kVal].entries;
    if (o_.sample_tokens <= 0 || val.empty()) return;
    const data::InstructionEntry& entry = val[std::min<size_t>(2, val.size() - 1)].entry;
    AnswerOptions a = answer_;
    a.max_new_tokens = o_.sample_tokens;
    progress.print(fmt::format("Ep {} sample (validation entry {}): {}", epoch + 1, std::min<size_t>(2, val.size() - 1),
                               answer_sample(policy_, tokenizer_, entry, a)));
  }

 private:
  static std::string train_key(int64_t epoch, int64_t b) { return fmt::format("train/{}/{}", epoch, b); }
  static std::string val_key(int64_t i) { return fmt::format("val/{}", i); }
  static std::string eval_key(int64_t step, int64_t i) { return fmt::format("eval/{}/{}", step, i); }
  // The book iterates a freshly shuffled train loader each evaluation; ours reshuffles with a
  // seed of the step, so a resumed run evaluates on the same batches.
  data::BatchOrder train_eval_order(int64_t step) const {
    return data::BatchOrder(static_cast<int64_t>(splits_[kTrain].examples.size()), o_.batch_size, true, true,
                            derive_seed(o_.seed, 0x4556414cULL, static_cast<uint64_t>(step)));
  }

  Transformer& policy_;
  dpo::Reference* reference_ = nullptr;
  const Tokenizer& tokenizer_;
  const Split (&splits_)[2];
  data::PreferenceCollate collate_;
  const DpoOptions& o_;
  dpo::Reduction reduction_;
  AnswerOptions answer_;
  data::BatchOrder train_, val_;
  data::PreferenceBatch collated_;
  BatchWorkspace ws_;
};

std::string describe_lengths(const char* name, const Split& s, int64_t max_length) {
  int64_t longest = 0, cut = 0;
  for (const data::PreferenceExample& e : s.examples) {
    const int64_t n = static_cast<int64_t>(std::max(e.chosen.size(), e.rejected.size()));
    longest = std::max(longest, n);
    cut += n > max_length;
  }
  return fmt::format("  {}: {} pairs, longest {} tokens; {}", name, s.examples.size(), longest,
                     cut ? fmt::format("{} longer than --max-length {} are cut", cut, max_length)
                         : fmt::format("none longer than --max-length {}", max_length));
}

// A model dir DPO can tune: a language model whose prompt format is known (an instruction model).
void check_instruction_model(const DpoOptions& o, const ModelConfig& cfg, const std::optional<data::ChatTemplate>& chat) {
  if (cfg.head != HeadType::LanguageModel)
    fail("--init {}: a classifier ({} classes); DPO tunes a language model: give the final/ dir of `gptrain "
         "finetune-instruct`",
         o.init, cfg.n_classes);
  if (chat || o.prompt_template == "alpaca") return;
  if (cfg.family != "gpt2" && data::read_prompt_format(o.init).format.empty())
    fail("--init {}: a {} model dir with no prompt format (no gptrain_prompt_format or chat_template in its "
         "tokenizer_config.json), so not an instruction model: DPO starts from one. Finetune it first with `gptrain "
         "finetune-instruct`, or say how to prompt it with --template alpaca|chat or --chat-template FILE",
         o.init, cfg.family);
}

}  // namespace

int run_finetune_dpo(const DpoOptions& o_in) {
  DpoOptions o = o_in;
  ops::set_num_threads(o.threads > 0 ? o.threads : dist::default_threads(dist::world()));
  const Device device = training_device(o);
  const fs::path data_dir = data::resolve_data_dir(o.data_dir);
  if (o.data.empty())
    o.data = data::require_data_file(data_dir, "instruction-data-with-preference.json",
                                     "the book's preference data (ch07 DPO bonus)")
                 .string();
  if (o.init.empty()) fail("--init MODEL_DIR is required: the instruction-finetuned model to align");
  if (!fs::is_directory(o.init))
    fail("--init {}: not a model directory (DPO starts from an instruction-finetuned model: the final/ dir of "
         "`gptrain finetune-instruct`)",
         o.init);
  if (!o.reference.empty() && !fs::is_directory(o.reference)) fail("--reference {}: not a model directory", o.reference);
  if (o.batch_size <= 0) fail("--batch-size must be positive, got {}", o.batch_size);
  if (o.eval_iters <= 0) fail("--eval-iters must be positive, got {}", o.eval_iters);
  if (o.max_length < 2) fail("--max-length must be at least 2, got {}", o.max_length);
  if (!(o.beta > 0) || !std::isfinite(o.beta)) fail("--beta must be positive, got {}", o.beta);
  if (o.lr < 0) fail("--lr must not be negative, got {} (0 evaluates without moving the policy)", o.lr);
  if (o.lr_schedule != "constant" && o.lr_schedule != "cosine")
    fail("--lr-schedule must be constant or cosine, got '{}'", o.lr_schedule);
  dpo::parse_reduction(o.logprob);  // a bad --logprob fails before any model is read
  if (o.lora.enabled() && !o.reference.empty())
    fail("--reference with --lora-rank: with LoRA the reference is the base model without the adapters");
  if (o.precompute_reference && !o.reference.empty())
    fail("--precompute-reference computes the reference from --init; --reference names another model: choose one");

  ModelLoadOptions load;
  load.drop_rate = static_cast<float>(o.drop_rate);
  load.lora = o.lora;
  load.lora_seed = o.seed;
  std::unique_ptr<Transformer> policy = load_model_dir(o.init, load);
  const ModelConfig& cfg = policy->config();
  std::optional<data::ChatTemplate> chat =
      choose_chat_template(o.init, cfg.family, o.chat_template.empty() ? o.prompt_template : "chat", o.chat_template);
  check_instruction_model(o, cfg, chat);
  const std::string trainable_what = apply_trainable(*policy, o.trainable);
  place_for_training(*policy, o, device);  // after freezing

  const nlohmann::json opts = options_json(o);
  fmt::print("gptrain finetune-dpo\n");
  print_run_options(opts);
  fmt::print("  --out-dir {}\n  --data-dir {}\n", o.out_dir, data_dir.string());
  const int64_t max_length = std::min(o.max_length, cfg.context_length);
  if (max_length < o.max_length)
    fmt::print("--max-length {} exceeds the model's context length {}: sequences are cut to {}\n", o.max_length,
               cfg.context_length, max_length);

  const fs::path tokenizer_dir = data::resolve_tokenizer_dir("", o.init, cfg.family, data_dir);
  const Tokenizer tokenizer = Tokenizer::from_dir(tokenizer_dir);
  if (tokenizer.vocab_size() > cfg.vocab_size)
    fail("--init {}: the model's vocabulary has {} entries, fewer than the tokenizer's {}", o.init, cfg.vocab_size,
         tokenizer.vocab_size());
  AnswerOptions answer;
  answer.chat = chat;
  answer.system = o.system;
  answer.eos_ids = read_generation_config(o.init).eos_ids;
  if (!chat && !o.system.empty()) fail("--system applies to chat templates; add --template chat");
  fmt::print("prompt: {}\n", chat ? fmt::format("chat template {}{}", chat->name,
                                                chat->source.empty() ? " (built in)" : " from " + chat->source)
                                  : "Alpaca (the book's format_input + \"\\n\\n### Response:\\n\")");

  // The book's split in file order: train, test, then validation.
  const std::vector<data::PreferenceEntry> all = data::load_preference_file(o.data);
  const data::SplitRanges ranges = data::split_ranges(all.size(), o.train_split, o.test_split);
  Split splits[2];
  splits[kTrain].entries.assign(all.begin(), all.begin() + static_cast<ptrdiff_t>(ranges.train_end));
  splits[kVal].entries.assign(all.begin() + static_cast<ptrdiff_t>(ranges.test_end), all.end());
  const std::vector<data::PreferenceEntry> test(all.begin() + static_cast<ptrdiff_t>(ranges.train_end),
                                                all.begin() + static_cast<ptrdiff_t>(ranges.test_end));
  fmt::print("data: {} pairs in {}: train {}, val {}, test {}\n", all.size(), o.data,
             splits[kTrain].entries.size(), splits[kVal].entries.size(), test.size());
  int64_t same = 0;
  for (const data::PreferenceEntry& e : all) same += e.chosen == e.rejected;
  if (same > 0)
    fmt::print("warning: {} entries have the same chosen and rejected text (their pairs add nothing to the loss's "
               "gradient)\n",
               same);
  for (Split& s : splits) {
    for (const data::PreferenceEntry& e : s.entries)
      s.examples.push_back(data::tokenize_preference(tokenizer, e, chat ? &*chat : nullptr, o.system));
    data::check_graded(s.examples, max_length, o.mask_prompt, o.data);
  }
  fmt::print("{}\n{}\n", describe_lengths("train", splits[kTrain], max_length),
             describe_lengths("val", splits[kVal], max_length));
  if (splits[kVal].examples.empty())
    fmt::print("warning: no validation pairs; the validation loss is NaN and no sample is printed\n");

  // The run dir is taken only once the model and the data are known to be good (no run.json
  // left behind by a refused file).
  const RunDirPlan plan = prepare_run_dir(o.out_dir, opts, o.resume, o.overwrite, kMayChangeOnResume,
                                          options_json(DpoOptions{}),
                                          RunDataFiles{{"data"}, o.allow_changed_data});

  data::PreferenceCollate collate;
  collate.pad_id = chat ? data::chat_stop_ids(*chat, tokenizer)[0] : data::end_of_text_id(tokenizer);
  collate.max_length = max_length;
  collate.mask_prompt = o.mask_prompt;

  DpoTask task(*policy, tokenizer, splits, collate, o, answer);
  task.tokenizer_dir = tokenizer_dir;
  if (task.batches_per_epoch() == 0)
    fail("{} training pairs are fewer than one batch of --batch-size {}: lower --batch-size or give more data",
         splits[kTrain].examples.size(), o.batch_size);
  LoopOptions lo = loop_options(o, task.batches_per_epoch());
  lo.evaluate_first = true;

  // The reference: the base without the adapters (LoRA), a frozen copy, or a table of every batch
  // the run uses, computed before training from either (or from the policy itself, which is the
  // reference until the first step).
  const auto frozen_copy = [&] {
    const std::string source = o.reference.empty() ? o.init : o.reference;
    std::unique_ptr<Transformer> frozen = load_model_dir(source, ModelLoadOptions{});
    place_for_training(*frozen, o, device);  // the reference computes as the policy does
    if (frozen->config().vocab_size != cfg.vocab_size)
      fail("--reference {}: its vocabulary ({}) is not the policy's ({})", source, frozen->config().vocab_size,
           cfg.vocab_size);
    // A workspace is planned for one model's shape: shared only with a model of the policy's.
    const bool same = frozen->config().same_model(cfg) && policy->adapters().empty();
    return dpo::frozen_reference(std::move(frozen), source, same ? &task.workspace() : nullptr);
  };
  std::unique_ptr<dpo::Reference> reference;
  if (o.lora.enabled())
    reference = dpo::model_reference(*policy, "the base model without the LoRA adapters (no second copy)", true,
                                     &task.workspace());
  else if (!o.precompute_reference)
    reference = frozen_copy();
  if (o.precompute_reference) {
    const fs::path table_path = plan.dir / "reference-logprobs.json";
    // What the table's batches depend on: the reference model, the data and how it is cut into batches.
    const std::string identity =
        fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", fs::absolute(o.init).lexically_normal().string(),
                    fs::absolute(o.data).lexically_normal().string(), all.size(), o.train_split, o.test_split,
                    max_length, o.mask_prompt, chat ? chat->name : "alpaca", o.batch_size, o.seed);
    dpo::ReferenceTable table = dpo::load_reference_table(table_path, identity);
    std::vector<DpoTask::Planned> missing = task.planned_batches(lo);
    std::erase_if(missing, [&](const DpoTask::Planned& p) { return table.count(p.key) > 0; });
    Timer timer;
    const int64_t computed = static_cast<int64_t>(missing.size());
    if (!missing.empty()) {
      // A fresh run's policy is still the reference; a resumed one reads --init again, for now.
      std::unique_ptr<dpo::Reference> source;
      if (!reference)
        source = plan.resume_from ? frozen_copy()
                                  : dpo::model_reference(*policy, "the initial policy", false, &task.workspace());
      dpo::Reference& from = reference ? *reference : *source;
      fmt::print("reference: precomputing the log-probabilities of {} batches ({})\n", missing.size(), from.describe());
      std::fflush(stdout);
      Progress progress(computed);  // batches done, ETA (a NaN loss: no loss shown)
      int64_t done = 0;
      for (const DpoTask::Planned& p : missing) {
        const Batch b = task.batch_of(p.split, p.indices);
        table.emplace(p.key, from.sums(b, p.key));
        progress.update(++done, NAN, 0);
      }
      progress.finish();
    }
    fmt::print("reference: {} batches precomputed in {:.1f} s{}\n", computed, timer.seconds(),
               table.size() > static_cast<size_t>(computed)
                   ? fmt::format(" ({} read from {})", table.size() - static_cast<size_t>(computed), table_path.string())
                   : "");
    if (computed > 0 && dist::world().is_main()) dpo::save_reference_table(table_path, table, identity);
    reference = dpo::precomputed_reference(std::move(table));
  }
  task.set_reference(*reference);
  fmt::print("batches: train {} of {} pairs per epoch (the last partial batch dropped), val {}; log-probabilities: {} "
             "over the response tokens{}; beta {}\n",
             task.batches_per_epoch(), o.batch_size, task.val_batches(),
             o.logprob == "mean" ? "the mean (the book's)" : "the sum (the DPO paper's)",
             o.mask_prompt ? "" : " and the prompt's (--no-mask-prompt)", o.beta);
  fmt::print("reference: {}\n", reference->describe());
  fmt::print("model: {} layers, {} heads, {} channels, context {}; {} parameters, {} trainable ({})\n", cfg.n_layers,
             cfg.n_heads, cfg.emb_dim, cfg.context_length, with_commas(count_parameters(cfg).total),
             with_commas(policy->params().trainable_numel()), trainable_what);

  AdamW optimizer(policy->params(), adamw_options(o));
  const LoopResult r = run_training_job(*policy, optimizer, task, lo, o, plan, opts).result;
  if (r.interrupted) return report_interrupted(r, plan.dir);
  if (!dist::world().is_main()) return 0;
  const fs::path final_dir = plan.dir / "final";
  save_instruction_model(*policy, final_dir, o.init, tokenizer_dir, answer);
  fmt::print("done: {} steps, {} pairs and {} tokens seen, {:.1f} s; model in {}, plots in {} (loss.svg, "
             "rewards.svg, reward-margins.svg)\n",
             r.state.step, r.state.examples_seen, r.state.tokens_seen, r.seconds, final_dir.string(),
             plan.dir.string());

  if (o.answer_test && !test.empty()) {
    std::vector<data::InstructionEntry> entries;
    for (const data::PreferenceEntry& e : test) entries.push_back(e.entry);
    AnswerOptions a = answer;
    a.max_new_tokens = o.answer_tokens;
    answer_test_entries(*policy, tokenizer, entries, a, plan.dir / "test-responses.json");
  }
  return 0;
}

}  // namespace gptrain
