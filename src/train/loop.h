// The book's training loop (ch05 train_model_simple, with appendix D's warmup, cosine decay and
// clipping, plus gradient accumulation, max steps, checkpoints and graceful stop), shared by
// pretraining and both finetuning jobs. A TrainTask supplies the batches and the evaluation.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "model/transformer.h"
#include "train/adamw.h"
#include "train/checkpoint.h"
#include "train/metrics.h"
#include "train/run_dir.h"
#include "train/schedule.h"
#include "train/train_options.h"
#include "util/progress.h"

namespace gptrain {

struct Batch {
  std::vector<int32_t> inputs, targets;  // B*T inputs; B*T targets (LM) or B labels (classifier)
  int64_t B = 0, T = 0;
  std::vector<double> row_values;  // what a task's own objective reads per row (DPO: reference log-probabilities)
  std::vector<int64_t> examples;   // the task's example indices (DPO: the pairs)
};

// What one micro-batch counts for in its step.
struct BatchCounts {
  int64_t terms = 0;     // the terms its loss is the mean of; its share of the step is terms / the step's terms
  int64_t examples = 0;  // examples seen
  int64_t tokens = 0;    // tokens seen
};

// DPO's tracked rewards: the batch means of (policy - reference) log-probabilities of the chosen
// and the rejected responses (the book's, without beta); their difference is the reward margin.
struct PairRewards {
  double chosen = 0, rejected = 0;
  double margin() const { return chosen - rejected; }
};

struct Evaluation {
  Evaluation(double train = 0, double val = 0) : train_loss(train), val_loss(val) {}
  double train_loss = 0, val_loss = 0;
  std::optional<double> train_accuracy, val_accuracy;
  std::optional<PairRewards> train_rewards, val_rewards;
};

// Classifiers' accuracy after an epoch (the book's ch06: over the first eval_iters batches).
struct EpochAccuracy {
  double train = 0, val = 0;
};

class TrainTask {
 public:
  virtual ~TrainTask() = default;
  virtual int64_t batches_per_epoch() const = 0;
  virtual void train_batch(int64_t epoch, int64_t index, Batch& batch) = 0;
  // A micro-batch's counts. Default: the targets that are not -100 (the token-mean cross-entropy),
  // B examples, B*T tokens.
  virtual BatchCounts counts(const Batch& batch) const;
  // One micro-batch's loss (the mean over its terms), and its gradient times `share` accumulated into
  // the model's trainable parameters. Default: the cross-entropy of the targets (forward_loss, backward).
  virtual double forward_backward(Transformer& model, const Batch& batch, const ForwardOptions& options, float share);
  // Mean train and val losses over the first eval_iters batches (the book's evaluate_model); the
  // model is in eval mode (no dropout) while this runs. `step` seeds the train-loader reshuffle.
  virtual Evaluation evaluate(int64_t step) = 0;
  // After each epoch: the book prints a generated sample (ch05) or accuracies (ch06).
  virtual void end_of_epoch(int64_t /*epoch*/, Progress& /*progress*/) {}
  // Class names to store with classifier checkpoints.
  virtual std::vector<std::string> class_names() const { return {}; }
  // What makes a checkpoint a complete model dir beside its weights (F3): by default the files of
  // `tokenizer_dir` (set by the job), so a checkpoint used as --model or --init brings its own
  // vocabulary; a classifier adds its padded length and pad id.
  virtual void complete_checkpoint(const std::filesystem::path& dir) const;
  std::filesystem::path tokenizer_dir;
  // Classifiers: accuracies after each epoch (model in eval mode); the loop prints them as the book
  // ("Training accuracy: 70.00% | Validation accuracy: 72.50%") and records them in
  // metrics.jsonl (kind "epoch"), from which accuracy.svg is drawn.
  virtual std::optional<EpochAccuracy> epoch_accuracy(int64_t /*epoch*/) { return std::nullopt; }
};

struct LoopOptions {
  int64_t epochs = 10;
  int64_t max_steps = 0;  // 0: no limit besides epochs
  int64_t eval_interval = 5;
  // Micro-batches per optimizer step on each rank: a step takes grad_accum x ranks micro-batches
  // (the global batch), rank r the ones at r, r + ranks, ... of the step.
  int64_t grad_accum = 1;
  int64_t batch_size = 0;  // the rows of a full micro-batch (where each one's dropout masks start)
  dist::Communicator* comm = nullptr;  // the ranks of a data-parallel run; null: this process alone
  // Called with each step's complete gradient (summed over the ranks), before clipping and the
  // update: how tests compare runs step by step.
  std::function<void(int64_t step, const ParameterSet& params)> on_gradients;
  double grad_clip = 0.0;  // 0: off; applied from step warmup_steps on (appendix D)
  LrSchedule schedule;
  int64_t save_interval = 0;  // steps between checkpoints; 0: at the end of every epoch
  int keep_last = 2;
  uint64_t seed = 123;
  bool examples_axis = false;  // plots' top axis: examples seen instead of tokens seen
  // A fresh run evaluates once before its first step (DPO: the loss is ln 2 there), printed and
  // recorded as kind "initial" at step -1.
  bool evaluate_first = false;
};

struct LoopResult {
  TrainerState state;
  bool interrupted = false;  // stopped by SIGINT/SIGTERM after checkpointing
  int signal = 0;
  double seconds = 0;
  int64_t tokens_trained = 0;  // this invocation only
};

// Total optimizer steps the options imply (max_steps included).
int64_t planned_steps(const LoopOptions& options, int64_t batches_per_epoch);

// The optimizer and loop settings of a training command's shared options.
AdamWOptions adamw_options(const TrainOptions& o);
// A loaded, frozen model made ready to train as --dtype and --device say: its compute type set
// (the bf16 copy rounded on the host), then moved, the gradients of what trains with it.
void place_for_training(Transformer& model, const TrainOptions& o, Device device);
LoopOptions loop_options(const TrainOptions& o, int64_t batches_per_epoch);


// A training command's run in its run dir: model, optimizer and loop position restored from
// plan.resume_from when resuming (with a "resuming from" line), the plan printed, the SIGINT/SIGTERM
// handlers installed, then run_training. `opts` (the command's options) goes into every checkpoint.
// The metrics log comes back with the result, for records a command adds after the loop.
struct TrainingJob {
  LoopResult result;
  MetricsLog metrics;
};
TrainingJob run_training_job(Transformer& model, AdamW& optimizer, TrainTask& task, const LoopOptions& lo,
                             const TrainOptions& o, const RunDirPlan& plan, const nlohmann::json& opts);

// Prints where a run stopped by a signal left its checkpoint; returns the exit code (128 + signal).
int report_interrupted(const LoopResult& r, const std::filesystem::path& run_dir);

// Runs from `state` (fresh or loaded from a checkpoint) to the end; writes metrics, plots and
// checkpoints into run_dir.
LoopResult run_training(Transformer& model, AdamW& optimizer, TrainTask& task, const LoopOptions& options,
                        TrainerState state, const std::filesystem::path& run_dir, MetricsLog& metrics);

}  // namespace gptrain
