#include "train/pretrain.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>

#include "dist/communicator.h"
#include "data/data_dir.h"
#include "data/chat_template.h"
#include "data/datasets.h"
#include "data/text_file.h"
#include "data/token_dataset.h"
#include "generate/engine.h"
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

bool is_shard(const fs::path& p, const std::string& format) {
  const std::string ext = p.extension().string();
  return !format.empty() || ext == ".u16" || ext == ".u32" || ext == ".bin";
}

nlohmann::json options_json(const PretrainOptions& o, const std::vector<std::string>& files) {
  nlohmann::json j = {{"files", files},
                      {"val-data", o.val_data},
                      {"train-split", o.train_split},
                      {"shard-format", o.shard_format},
                      {"init", o.init},
                      {"context-length", o.context_length},
                      {"stride", o.stride},
                      {"sample-prompt", o.sample_prompt},
                      {"sample-tokens", o.sample_tokens},
                      {"no-shuffle", o.no_shuffle}};
  j.update(shape_options_json(o.shape, /*with_tie_weights=*/true));
  if (!o.tokenizer.empty()) j["tokenizer"] = o.tokenizer;
  if (o.trainable != "all") j["trainable"] = o.trainable;
  j.update(train_options_json(o));
  return j;
}

// Options a resumed run may change (see train_options_may_change_on_resume for the cosine caveat).
const std::set<std::string> kMayChangeOnResume = [] {
  std::set<std::string> keys = train_options_may_change_on_resume();
  keys.insert({"sample-prompt", "sample-tokens"});
  return keys;
}();

class PretrainTask : public TrainTask {
 public:
  PretrainTask(Transformer& model, const Tokenizer& tokenizer, const data::SlidingWindows& train,
               const data::SlidingWindows& val, const PretrainOptions& o)
      : model_(model), tokenizer_(tokenizer), train_windows_(train), val_windows_(val), o_(o),
        train_(train, o.batch_size, /*shuffle=*/!o.no_shuffle, /*drop_last=*/true, o.seed),
        val_(val, o.batch_size, /*shuffle=*/false, /*drop_last=*/false, o.seed) {}

  int64_t batches_per_epoch() const override { return train_.num_batches(); }
  int64_t val_batches() const { return val_.num_batches(); }

  void train_batch(int64_t epoch, int64_t index, Batch& b) override {
    train_.get(epoch, index, b.inputs, b.targets);
    b.B = train_.rows(index);
    b.T = train_windows_.max_length();
  }

  Evaluation evaluate(int64_t step) override {
    // The book iterates a fresh (reshuffled) train loader each evaluation; ours reshuffles with a
    // seed derived from the step, so a resumed run evaluates on the same batches.
    const data::BatchLoader train_eval(train_windows_, o_.batch_size, !o_.no_shuffle, true,
                                       derive_seed(o_.seed, 0x4556414cULL, static_cast<uint64_t>(step)));
    return {loader_loss(train_eval), loader_loss(val_)};
  }

  void end_of_epoch(int64_t, Progress& progress) override {
    if (o_.sample_tokens <= 0) return;
    const std::vector<int32_t> prompt = tokenizer_.encode(o_.sample_prompt, /*allow_special=*/true);
    if (prompt.empty()) return;
    GenerateOptions g;
    g.max_new_tokens = o_.sample_tokens;
    const std::vector<int32_t> ids = generate(model_, prompt, g);
    std::string text = tokenizer_.decode(ids);
    std::replace(text.begin(), text.end(), '\n', ' ');
    progress.print(text);
  }

 private:
  // calc_loss_loader: the plain mean of the first eval_iters batch means; NaN for no batch.
  double loader_loss(const data::BatchLoader& loader) {
    const int64_t n = std::min(o_.eval_iters, loader.num_batches());
    if (n <= 0) return NAN;
    std::vector<int32_t> x, y;
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      loader.get(0, i, x, y);
      sum += model_.forward_loss(x, y, loader.rows(i), train_windows_.max_length(), ForwardOptions{false, 0});
    }
    return sum / static_cast<double>(n);
  }

  Transformer& model_;
  const Tokenizer& tokenizer_;
  const data::SlidingWindows& train_windows_;
  const data::SlidingWindows& val_windows_;
  const PretrainOptions& o_;
  data::BatchLoader train_, val_;
};


void require_windows(const data::SlidingWindows& w, const std::string& what, int64_t context, const std::string& hint) {
  if (w.size() > 0) return;
  fail("{} has {} tokens, but one window of --context-length {} needs at least {} tokens; use a smaller "
       "--context-length (at most {}){}",
       what, w.tokens(), context, context + 1, std::max<int64_t>(1, w.tokens() - 1), hint);
}

}  // namespace

int run_pretrain(const PretrainOptions& o_in) {
  PretrainOptions o = o_in;
  ops::set_num_threads(o.threads > 0 ? o.threads : dist::default_threads(dist::world()));
  const Device device = training_device(o);
  const fs::path data_dir = data::resolve_data_dir(o.data_dir);
  if (o.files.empty()) o.files = {data::require_data_file(data_dir, "the-verdict.txt", "the default training text (the book's The Verdict)").string()};
  if (o.stride == 0) o.stride = o.context_length;
  if (o.batch_size <= 0) fail("--batch-size must be positive, got {}", o.batch_size);
  if (o.eval_iters <= 0) fail("--eval-iters must be positive, got {}", o.eval_iters);
  if (o.lr_schedule != "constant" && o.lr_schedule != "cosine")
    fail("--lr-schedule must be constant or cosine, got '{}'", o.lr_schedule);
  if (o.val_data.empty() && !(o.train_split > 0 && o.train_split < 1))
    fail("--train-split must be between 0 and 1 (exclusive), got {}", o.train_split);
  for (const std::string& f : o.files)
    if (!fs::is_regular_file(f)) fail("{}: no such file", f);

  // Model.
  std::unique_ptr<Transformer> model;
  ModelConfig cfg;
  const bool from_dir = fs::is_directory(o.init);
  if (from_dir) {
    if (o.shape.any())
      fail("{} shape a preset; --init {} is a model dir whose config.json fixes them", o.shape.given(), o.init);
    ModelLoadOptions lo;
    lo.drop_rate = static_cast<float>(o.drop_rate);
    lo.lora = o.lora;
    lo.lora_seed = o.seed;
    model = load_model_dir(o.init, lo);
    cfg = model->config();
    if (o.context_length > cfg.context_length)
      fail("--context-length {} exceeds the context length {} of the model in {}", o.context_length,
           cfg.context_length, o.init);
  } else {
    if (o.lora.enabled())
      fail("--lora-rank adapts a trained model: --init must be a model dir (continued pretraining), not the preset "
           "'{}'",
           o.init);
    if (!preset_config(o.init == "scratch" ? "gpt2-small" : o.init, cfg))
      fail("--init '{}' is neither a preset ({}, scratch) nor a model directory", o.init, preset_list());
    cfg.context_length = o.context_length;
    o.shape.apply(cfg);
    cfg.validate();
    cfg.drop_rate = static_cast<float>(o.drop_rate);
    model = std::make_unique<Transformer>(cfg, o.seed);
  }

  const nlohmann::json opts = options_json(o, o.files);
  fmt::print("gptrain pretrain\n");
  print_run_options(opts);
  fmt::print("  --out-dir {}\n  --data-dir {}\n", o.out_dir, data_dir.string());

  // Data.
  // A model dir brings its own tokenizer; otherwise the family's from the data dir.
  const fs::path tokenizer_dir =
      data::resolve_tokenizer_dir(o.tokenizer, from_dir ? fs::path(o.init) : fs::path(), cfg.family, data_dir);
  const Tokenizer tokenizer = Tokenizer::from_dir(tokenizer_dir);
  if (tokenizer.vocab_size() > cfg.vocab_size)
    fail("the tokenizer in {} has {} tokens, more than the model's vocab_size {}; use the model's own tokenizer", 
         tokenizer_dir.string(), tokenizer.vocab_size(), cfg.vocab_size);
  // Documents are separated by the end-of-text token, as in the book's Gutenberg script.
  const std::string separator = data::end_of_text_token(tokenizer);
  std::shared_ptr<data::TokenSource> train_tokens, val_tokens;
  const bool shards = is_shard(o.files[0], o.shard_format);
  if (shards) {
    if (o.files.size() != 1) fail("give one token shard for training (got {} files)", o.files.size());
    auto all = data::TokenSource::map_shard(o.files[0], o.shard_format, cfg.vocab_size);
    if (!o.val_data.empty()) {
      train_tokens = all;
    } else {
      // last (1 - split) of the tokens for validation
      // (views of the mapping: a big shard is never copied into memory)
      const int64_t cut = static_cast<int64_t>(o.train_split * static_cast<double>(all->size()));
      train_tokens = data::TokenSource::slice(all, 0, cut);
      val_tokens = data::TokenSource::slice(all, cut, all->size());
    }
  } else {
    std::string text;
    for (size_t i = 0; i < o.files.size(); ++i) {
      if (i) text += separator;
      text += data::read_text_file(o.files[i]);
    }
    if (o.val_data.empty()) {
      const auto [train_text, val_text] = data::split_by_characters(text, o.train_split);
      train_tokens = data::TokenSource::from_vector(tokenizer.encode(train_text, true));
      val_tokens = data::TokenSource::from_vector(tokenizer.encode(val_text, true));
    } else {
      train_tokens = data::TokenSource::from_vector(tokenizer.encode(text, true));
    }
  }
  if (!o.val_data.empty()) {
    if (is_shard(o.val_data, o.shard_format))
      val_tokens = data::TokenSource::map_shard(o.val_data, o.shard_format, cfg.vocab_size);
    else
      val_tokens = data::TokenSource::from_vector(tokenizer.encode(data::read_text_file(o.val_data), true));
  }
  const data::SlidingWindows train_windows(train_tokens, o.context_length, o.stride);
  const data::SlidingWindows val_windows(val_tokens, o.context_length, o.context_length);
  require_windows(train_windows, "the training data", o.context_length, "");
  require_windows(val_windows, "the validation data", o.context_length,
                  o.val_data.empty() ? ", or give a longer text or a separate --val-data FILE" : "");

  PretrainTask task(*model, tokenizer, train_windows, val_windows, o);
  task.tokenizer_dir = tokenizer_dir;
  fmt::print("data: train {} tokens -> {} windows -> {} batches of {} x {}; val {} tokens -> {} windows -> {} batches\n",
             with_commas(train_tokens->size()), train_windows.size(), task.batches_per_epoch(), o.batch_size,
             o.context_length, with_commas(val_tokens->size()), val_windows.size(), task.val_batches());
  if (task.batches_per_epoch() == 0)
    fail("the training data gives {} windows, fewer than one batch of --batch-size {}; lower --batch-size or "
         "--context-length, or give more text",
         train_windows.size(), o.batch_size);
  // The run dir once the data is known to be good: a refused file leaves no run.json behind
  // (review F9), so the retry needs no --overwrite.
  const RunDirPlan plan = prepare_run_dir(o.out_dir, opts, o.resume, o.overwrite, kMayChangeOnResume,
                                          options_json(PretrainOptions{}, o.files),
                                          RunDataFiles{{"files", "val-data"}, o.allow_changed_data});
  const std::string trainable_what = apply_trainable(*model, o.trainable);
  const ParameterCounts counts = count_parameters(cfg);
  fmt::print("model: {} layers, {} heads, {} channels, context {}; {} parameters ({} trainable{})\n", cfg.n_layers,
             cfg.n_heads, cfg.emb_dim, cfg.context_length, with_commas(counts.total),
             with_commas(model->params().trainable_numel()), o.trainable == "all" && !o.lora.enabled() ? "" : ": " + trainable_what);

  place_for_training(*model, o, device);  // after freezing
  AdamW optimizer(model->params(), adamw_options(o));
  const LoopOptions lo = loop_options(o, task.batches_per_epoch());

  const LoopResult r = run_training_job(*model, optimizer, task, lo, o, plan, opts).result;
  const double tps = r.seconds > 0 ? static_cast<double>(r.tokens_trained) / r.seconds : 0;
  if (r.interrupted) return report_interrupted(r, plan.dir);
  if (!dist::world().is_main()) return 0;  // the main rank writes the model
  const fs::path final_dir = plan.dir / "final";
  save_trained_model(*model, final_dir, o.init);
  copy_tokenizer_files(tokenizer_dir, final_dir);
  fmt::print("done: {} steps, {} tokens seen, {:.1f} s ({:.0f} tokens/s); model in {}, plot in {}\n", r.state.step,
             with_commas(r.state.tokens_seen), r.seconds, tps, final_dir.string(), (plan.dir / "loss.svg").string());
  return 0;
}

}  // namespace gptrain
