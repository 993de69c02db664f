#include "train/finetune_cls.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "dist/communicator.h"
#include "data/classification.h"
#include "data/chat_template.h"
#include "data/data_dir.h"
#include "data/datasets.h"
#include "data/text_file.h"
#include "io/atomic_file.h"
#include "kernels/ops.h"
#include "model/adapter_dir.h"
#include "model/model_dir.h"
#include "tokenizer/bpe.h"
#include "train/classifier_data.h"
#include "train/classifier_model.h"
#include "train/loop.h"
#include "train/run_dir.h"
#include "util/error.h"
#include "util/format.h"
#include "util/progress.h"
#include "util/rng.h"
#include "util/signals.h"

namespace gptrain {

namespace fs = std::filesystem;

namespace {

bool is_sms_spam(const fs::path& p) {
  const std::string name = p.filename().string();
  return name == "SMSSpamCollection" || name == "SMSSpamCollection.tsv";
}

char parse_sep(const std::string& s) {
  if (s.empty()) return 0;
  if (s == "tab" || s == "\\t" || s == "\t") return '\t';
  if (s == "comma") return ',';
  if (s.size() != 1 || s == "\"" || s == "\n" || s == "\r")
    fail("--sep '{}': expected one character (',', ';', '|'), 'tab' or 'comma'", s);
  return s[0];
}

nlohmann::json options_json(const FinetuneClsOptions& o, const std::string& data, bool balance) {
  nlohmann::json j = {{"data", data},
                      {"train", o.train},
                      {"val", o.val},
                      {"test", o.test},
                      {"text-column", o.text_column},
                      {"label-column", o.label_column},
                      {"no-header", o.no_header},
                      {"sep", o.sep},
                      {"balance", balance},
                      {"split", o.split},
                      {"init", o.init},
                      {"context-length", o.context_length},
                      {"trainable", o.trainable},
                      {"pool", o.pool},
                      {"max-length", o.max_length},
                      {"pad-token-id", o.pad_token_id}};
  j.update(shape_options_json(o.shape, /*with_tie_weights=*/false));
  j.update(train_options_json(o));
  return j;
}

// Options a resumed run may change (see train_options_may_change_on_resume for the cosine caveat).
const std::set<std::string>& kMayChangeOnResume = train_options_may_change_on_resume();

// Loss and accuracy of a loader's first `max_batches` batches (all when max_batches <= 0): the
// book's calc_loss_loader (the mean of batch means) and calc_accuracy_loader (argmax of the
// pooled logits; correct / examples), from one forward pass per batch in eval mode.
struct SetScore {
  double loss = NAN, accuracy = NAN;
  int64_t correct = 0, examples = 0;
};

SetScore score(Transformer& model, const data::ClassificationLoader& loader, int64_t epoch, int64_t max_batches, int64_t T) {
  const int64_t n = max_batches > 0 ? std::min(max_batches, loader.num_batches()) : loader.num_batches();
  SetScore s;
  if (n <= 0) return s;
  std::vector<int32_t> x, y;
  double loss_sum = 0;
  for (int64_t b = 0; b < n; ++b) {
    loader.get(epoch, b, x, y);
    const int64_t B = loader.rows(b);
    loss_sum += model.forward_loss(x, y, B, T, ForwardOptions{false, 0});
    Tensor logits = model.logits().host();  // [B, n_classes]
    if (logits.dtype() != DType::F32) logits = logits.to(DType::F32);  // the bf16 mode's
    const int64_t classes = logits.shape()[1];
    const float* l = logits.data();
    for (int64_t i = 0; i < B; ++i) {
      const float* row = l + i * classes;
      const int64_t predicted = std::max_element(row, row + classes) - row;  // first maximum, as torch.argmax
      s.correct += predicted == y[static_cast<size_t>(i)];
    }
    s.examples += B;
  }
  s.loss = loss_sum / static_cast<double>(n);
  s.accuracy = static_cast<double>(s.correct) / static_cast<double>(s.examples);
  return s;
}

class ClassifierTask : public TrainTask {
 public:
  ClassifierTask(Transformer& model, const data::ClassificationSet& train, const data::ClassificationSet& val,
                 std::vector<std::string> class_names, const FinetuneClsOptions& o)
      : model_(model), train_set_(train), class_names_(std::move(class_names)), o_(o),
        train_(train, o.batch_size, /*shuffle=*/true, /*drop_last=*/true, o.seed),
        val_(val, o.batch_size, /*shuffle=*/false, /*drop_last=*/false, o.seed) {}

  int64_t batches_per_epoch() const override { return train_.num_batches(); }

  void train_batch(int64_t epoch, int64_t index, Batch& b) override {
    train_.get(epoch, index, b.inputs, b.targets);
    b.B = train_.rows(index);
    b.T = train_set_.max_length;
  }

  // The book evaluates on a freshly shuffled train loader each time; ours reshuffles with a seed
  // derived from the step (or epoch), so a resumed run evaluates on the same batches.
  Evaluation evaluate(int64_t step) override {
    const data::ClassificationLoader train_eval(train_set_, o_.batch_size, true, true,
                                                derive_seed(o_.seed, 0x4556414cULL, static_cast<uint64_t>(step)));
    return {score(model_, train_eval, 0, o_.eval_iters, train_set_.max_length).loss,
            score(model_, val_, 0, o_.eval_iters, train_set_.max_length).loss};
  }

  std::optional<EpochAccuracy> epoch_accuracy(int64_t epoch) override {
    const data::ClassificationLoader train_eval(train_set_, o_.batch_size, true, true,
                                                derive_seed(o_.seed, 0x41434355ULL, static_cast<uint64_t>(epoch)));
    return EpochAccuracy{score(model_, train_eval, 0, o_.eval_iters, train_set_.max_length).accuracy,
                         score(model_, val_, 0, o_.eval_iters, train_set_.max_length).accuracy};
  }

  std::vector<std::string> class_names() const override { return class_names_; }
  void complete_checkpoint(const fs::path& dir) const override {
    write_classifier_extras(dir, train_set_.max_length, static_cast<int32_t>(o_.pad_token_id), tokenizer_dir);
  }

 private:
  Transformer& model_;
  const data::ClassificationSet& train_set_;
  std::vector<std::string> class_names_;
  const FinetuneClsOptions& o_;
  data::ClassificationLoader train_, val_;
};


std::string percent(const SetScore& s) {
  return fmt::format("{:.2f}% ({}/{})", s.accuracy * 100, s.correct, s.examples);
}

}  // namespace

int run_finetune_cls(const FinetuneClsOptions& o_in) {
  FinetuneClsOptions o = o_in;
  ops::set_num_threads(o.threads > 0 ? o.threads : dist::default_threads(dist::world()));
  const Device device = training_device(o);
  const fs::path data_dir = data::resolve_data_dir(o.data_dir);
  if (o.batch_size <= 0) fail("--batch-size must be positive, got {}", o.batch_size);
  if (o.eval_iters <= 0) fail("--eval-iters must be positive, got {}", o.eval_iters);
  if (o.balance && o.no_balance) fail("--balance and --no-balance contradict each other: choose one");
  if (o.split.size() != 2)
    fail("--split takes two fractions, training and validation (the rest is test), e.g. 0.7,0.1; got {} value{}",
         o.split.size(), o.split.size() == 1 ? "" : "s");
  if (!o.data.empty() && !o.train.empty())
    fail("give either one labelled file to split (--data {}) or ready splits (--train {}), not both", o.data, o.train);
  if (o.train.empty() && o.data.empty())
    o.data = data::require_data_file(data_dir, "sms_spam/SMSSpamCollection", "the SMS Spam Collection (the book's "
                                                                              "chapter 6 data)")
                 .string();
  for (const std::string& f : {o.data, o.train, o.val, o.test})
    if (!f.empty() && !fs::is_regular_file(f)) fail("{}: no such file", f);
  // The book balances the spam data; other data keeps its class sizes unless asked.
  const bool balance = o.balance || (!o.no_balance && !o.data.empty() && is_sms_spam(o.data));

  // Data first (cheap), since the head's size is the number of classes.
  ClassifierDataOptions dopt;
  dopt.data = o.data;
  dopt.train = o.train;
  dopt.val = o.val;
  dopt.test = o.test;
  dopt.table.sep = parse_sep(o.sep);
  dopt.table.header = o.no_header ? 0 : -1;
  dopt.table.text_column = o.text_column;
  dopt.table.label_column = o.label_column;
  dopt.balance = balance;
  dopt.train_fraction = o.split[0];
  dopt.validation_fraction = o.split[1];
  dopt.seed = o.seed;

  // The model's options, and its tokenizer (whose end-of-text pads unless --pad-token-id says).
  ClassifierModelOptions mo;
  mo.init = o.init;
  mo.context_length = o.context_length;
  mo.shape = o.shape;
  mo.pool = o.pool;
  mo.drop_rate = o.drop_rate;
  mo.seed = o.seed;
  mo.lora = o.lora;
  const ModelConfig body = classifier_body_config(mo);
  const fs::path tokenizer_dir =
      data::resolve_tokenizer_dir("", fs::is_directory(o.init) ? fs::path(o.init) : fs::path(), body.family, data_dir);
  const Tokenizer tokenizer = Tokenizer::from_dir(tokenizer_dir);
  if (o.pad_token_id < 0) o.pad_token_id = data::end_of_text_id(tokenizer);

  const nlohmann::json opts = options_json(o, o.data, balance);
  fmt::print("gptrain finetune-cls\n");
  print_run_options(opts);
  fmt::print("  --out-dir {}\n  --data-dir {}\n", o.out_dir, data_dir.string());
  const ClassifierSplits splits = prepare_classifier_splits(dopt);
  const int64_t n_classes = static_cast<int64_t>(splits.class_names.size());

  // Model: the body from --init, a new N-class head, then freezing.
  std::unique_ptr<Transformer> model = build_classifier(mo, n_classes);
  const ModelConfig& cfg = model->config();
  const std::string trainable_what = apply_trainable(*model, o.trainable);
  place_for_training(*model, o, device);  // after freezing
  if (!fs::is_directory(o.init) && o.trainable != "all")
    fmt::print("note: --init {} is a preset, so the body is random, and only {} will learn; pass a pretrained model "
               "dir (the book uses OpenAI's GPT-2 124M) or --trainable all\n",
               o.init, trainable_what);

  check_vocabulary(cfg, tokenizer, o.pad_token_id, o.init);
  const auto train_encoded = encode_texts(tokenizer, splits.train);
  const int64_t T = choose_max_length(train_encoded, splits.train, o.max_length, cfg.context_length);
  const auto ids = [&](const data::LabelledTable& t) { return label_ids(t, splits.class_names); };
  const int32_t pad = static_cast<int32_t>(o.pad_token_id);
  const data::ClassificationSet train = data::pad_and_stack(train_encoded, ids(splits.train), T, pad);
  const data::ClassificationSet val =
      data::pad_and_stack(encode_texts(tokenizer, splits.validation), ids(splits.validation), T, pad);
  const bool have_test = !splits.test.rows.empty();
  const data::ClassificationSet test =
      have_test ? data::pad_and_stack(encode_texts(tokenizer, splits.test), ids(splits.test), T, pad)
                : data::ClassificationSet{};

  ClassifierTask task(*model, train, val, splits.class_names, o);
  task.tokenizer_dir = tokenizer_dir;
  const data::ClassificationLoader val_loader(val, o.batch_size, false, false, o.seed);
  const data::ClassificationLoader test_loader(test, o.batch_size, false, false, o.seed);
  fmt::print("padded length {} ({}), pad id {}; batches of {}: train {} (last partial batch dropped), validation {}, "
             "test {}\n",
             T, o.max_length > 0 ? "--max-length" : "the longest training text", pad, o.batch_size,
             task.batches_per_epoch(), val_loader.num_batches(), have_test ? test_loader.num_batches() : 0);
  if (task.batches_per_epoch() == 0)
    fail("the training split has {} rows, fewer than one batch of --batch-size {}; lower --batch-size or give more "
         "data",
         train.size(), o.batch_size);
  fmt::print("model: {} layers, {} heads, {} channels, context {}, {} classes ({} pooling); {} parameters, {} "
             "trainable ({})\n",
             cfg.n_layers, cfg.n_heads, cfg.emb_dim, cfg.context_length, n_classes, o.pool,
             with_commas(count_parameters(cfg).total), with_commas(model->params().trainable_numel()), trainable_what);

  // Run dir before training, after every check of the inputs, so a refused run leaves nothing behind.
  const RunDirPlan plan = prepare_run_dir(o.out_dir, opts, o.resume, o.overwrite, kMayChangeOnResume,
                                          options_json(FinetuneClsOptions{}, o.data, balance),
                                          RunDataFiles{{"data", "train", "val", "test"}, o.allow_changed_data});
  if (splits.from_split && dist::world().is_main()) {
    io::write_file_atomic(plan.dir / "train.csv", data::labelled_csv(splits.train.rows));
    io::write_file_atomic(plan.dir / "validation.csv", data::labelled_csv(splits.validation.rows));
    io::write_file_atomic(plan.dir / "test.csv", data::labelled_csv(splits.test.rows));
    fmt::print("splits written to {}/{{train,validation,test}}.csv (pass them back with --train/--val/--test)\n",
               plan.dir.string());
  }

  if (!plan.resume_from) {
    // The book's accuracies before training, over the first 10 batches of each loader (with LoRA
    // the base model's: B = 0).
    const data::ClassificationLoader train_first(train, o.batch_size, true, true, o.seed);
    const SetScore a = score(*model, train_first, 0, 10, T), b = score(*model, val_loader, 0, 10, T);
    fmt::print("before training (10 batches each): training accuracy {}, validation accuracy {}", percent(a), percent(b));
    if (have_test) fmt::print(", test accuracy {}", percent(score(*model, test_loader, 0, 10, T)));
    fmt::print("\n");
  }

  AdamW optimizer(model->params(), adamw_options(o));
  LoopOptions lo = loop_options(o, task.batches_per_epoch());
  lo.examples_axis = true;  // classifiers plot against examples seen

  auto [r, metrics] = run_training_job(*model, optimizer, task, lo, o, plan, opts);
  if (r.interrupted) return report_interrupted(r, plan.dir);
  if (!dist::world().is_main()) return 0;  // the main rank scores and writes the model
  fmt::print("Training completed in {:.2f} minutes.\n", r.seconds / 60);

  // The book's final accuracies over the full loaders (train: shuffled, last partial batch dropped).
  const data::ClassificationLoader train_full(train, o.batch_size, true, true,
                                              derive_seed(o.seed, 0x46494e41ULL, 0));
  const SetScore train_score = score(*model, train_full, 0, 0, T);
  const SetScore val_score = score(*model, val_loader, 0, 0, T);
  const SetScore test_score = have_test ? score(*model, test_loader, 0, 0, T) : SetScore{};
  fmt::print("Training accuracy: {}\nValidation accuracy: {}\n", percent(train_score), percent(val_score));
  if (have_test) fmt::print("Test accuracy: {}\n", percent(test_score));
  MetricRecord fin;
  fin.kind = "final";
  fin.step = r.state.step;  // after every evaluation; a resume from this run's last checkpoint drops it
  fin.epoch = static_cast<double>(r.state.epoch);
  fin.tokens_seen = r.state.tokens_seen;
  fin.examples_seen = r.state.examples_seen;
  fin.train_loss = train_score.loss;
  fin.val_loss = val_score.loss;
  fin.train_accuracy = train_score.accuracy;
  fin.val_accuracy = val_score.accuracy;
  if (have_test) {
    fin.test_accuracy = test_score.accuracy;
    fin.test_loss = test_score.loss;
  }
  metrics.append(fin);

  const fs::path final_dir = plan.dir / "final";
  save_classifier_dir(*model, final_dir, splits.class_names, T, pad, tokenizer_dir);
  // With LoRA the dir holds the base (the --init body and the new head) and, beside it, the
  // adapter, which `classify` applies.
  if (!model->adapters().empty()) save_adapter_dir(*model, final_dir, fs::absolute(final_dir).lexically_normal().string());
  fmt::print("done: {} steps, {} examples seen, {:.1f} s; model in {}, plots {} and {}\n", r.state.step,
             with_commas(r.state.examples_seen), r.seconds, final_dir.string(), (plan.dir / "loss.svg").string(),
             (plan.dir / "accuracy.svg").string());
  return 0;
}

}  // namespace gptrain
