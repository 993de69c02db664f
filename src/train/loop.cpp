#include "train/loop.h"

#include <fmt/core.h>

#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <string>
#include <cmath>
#include <optional>

#include "kernels/ops.h"
#include "util/error.h"
#include "util/rng.h"
#include "util/signals.h"
#include "util/timer.h"

namespace gptrain {

void place_for_training(Transformer& model, const TrainOptions& o, Device device) {
  model.set_compute_dtype(training_dtype(o));
  model.to_device(device);
}

AdamWOptions adamw_options(const TrainOptions& o) {
  AdamWOptions ao;
  ao.lr = o.lr;
  ao.weight_decay = o.weight_decay;
  ao.no_decay_bias_and_norm = o.no_decay_bias_norm;
  ao.rounding_seed = derive_seed(o.seed, 0x726f756e64ULL /* "round" */);
  if (o.zero) {
    ao.shards = dist::world().size();
    ao.shard = dist::world().rank();
  }
  return ao;
}

namespace {

// `collective` on `t` in host memory, where the communicator (MPI) works: t itself on the CPU, a
// device's buffer through a host copy that is written back after.
template <class Collective>
void on_host(const Tensor& t, Collective&& collective) {
  const Tensor h = t.host();
  collective(h);
  if (h.raw() != t.raw()) t.copy_from(h);
}

// A buffer summed over the ranks in place.
void all_reduce_sum(dist::Communicator& comm, const Tensor& t) {
  on_host(t, [&](const Tensor& h) {
    if (h.dtype() == DType::F64) {
      comm.all_reduce_sum(h.data<double>(), static_cast<size_t>(h.numel()));
    } else if (h.dtype() == DType::BF16) {  // summed in float32, rounded once: round(sum of the ranks' gradients)
      const Tensor wide = h.to(DType::F32);
      comm.all_reduce_sum(wide.data<float>(), static_cast<size_t>(wide.numel()));
      h.copy_from(wide.to(DType::BF16));
    } else {
      comm.all_reduce_sum(h.data<float>(), static_cast<size_t>(h.numel()));
    }
  });
}

// --zero 1 (optimizer state sharded as llm.c does): each rank keeps the AdamW moments of one block
// of the trainable gradient buffer, receives that block of the summed gradient (reduce-scatter),
// updates the weights in it, and every rank gathers everyone's updated weights (all-gather).
class ZeroShards {
 public:
  ZeroShards(dist::Communicator& comm, const AdamW& optimizer, ParameterSet& params)
      : comm_(comm), opt_(optimizer), params_(params) {
    if (params.dtype() != DType::F32) fail("--zero 1 shards float32 models only");
    if (opt_.options().shards != comm.size())
      fail("the optimizer is split in {} shards for {} ranks", opt_.options().shards, comm.size());
    // The weights are gathered in place in the parameter buffer, which has the gradient buffer's
    // layout when everything trains.
    if (params.flat_grads().numel() != params.flat_values().numel())
      fail("--zero 1 shards the optimizer state of a model whose every parameter trains (with LoRA or --trainable "
           "the state is small already)");
  }

  // The gradient buffer's block of this rank, summed over the ranks, in place (the rest of the
  // buffer is left undefined and is not read). bf16 gradients are summed in float32 and the block
  // rounded once, as all_reduce_sum does: the unsharded run's bits.
  void reduce_scatter_gradients() {
    on_host(params_.flat_grads(), [&](const Tensor& h) {
      if (h.dtype() != DType::BF16) return comm_.reduce_scatter_blocks(h.data<float>(), count(), block());
      const Tensor wide = h.to(DType::F32);
      comm_.reduce_scatter_blocks(wide.data<float>(), count(), block());
      const Tensor mine = shard_of(h);
      if (mine.defined()) mine.copy_from(shard_of(wide).to(DType::BF16));
    });
  }

  // clip_grad_norm over the blocks: the norm of the whole summed gradient, the same on every rank.
  void clip(double max_norm) {
    const Tensor mine = shard_of(params_.flat_grads());
    double sq = mine.defined() ? ops::sum_squares(mine) : 0.0;
    comm_.all_reduce_sum(&sq, 1);
    const float coef = static_cast<float>(max_norm) / (static_cast<float>(std::sqrt(sq)) + 1e-6f);
    if (coef < 1.0f && mine.defined()) ops::scale_(mine, coef);
  }

  // After each rank updated its block: everyone's weights from the blocks of all. The bf16 copy of
  // the others' blocks is then what their AdamW wrote: the stochastic rounding is a function of
  // (seed, step, element) alone, so every rank redraws it from the gathered float32 weights.
  void gather_weights() {
    on_host(params_.flat_values(),
            [&](const Tensor& h) { comm_.all_gather_blocks(h.data<float>(), count(), block()); });
    if (params_.has_compute_copy()) params_.refresh_compute(opt_.options().rounding_seed, opt_.steps_taken());
  }

  // The whole moments on the main rank (a collective: every rank calls it).
  FullMoments gather_moments() {
    FullMoments full;
    for (const auto& [moment, out] : {std::pair{opt_.first_moment(), &full.m}, {opt_.second_moment(), &full.v}}) {
      if (comm_.is_main()) *out = Tensor::empty({static_cast<int64_t>(count())});
      comm_.gather_blocks(moment.host().data<float>(), comm_.is_main() ? out->data<float>() : nullptr, count(), block(),
                          0);
    }
    return full;
  }

 private:
  size_t count() const { return static_cast<size_t>(params_.flat_grads().numel()); }
  size_t block() const { return static_cast<size_t>(opt_.shard_size()); }
  Tensor shard_of(const Tensor& flat) const {
    if (opt_.shard_end() <= opt_.shard_begin()) return Tensor();
    return flat.reshape({flat.numel()}).slice_rows(opt_.shard_begin(), opt_.shard_end());
  }
  dist::Communicator& comm_;
  const AdamW& opt_;
  ParameterSet& params_;
};

// This process image's peak resident memory: VmHWM, which starts afresh at exec (ru_maxrss keeps
// the peak of the launcher that forked it, e.g. torchrun's Python).
double peak_rss_mb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

}  // namespace

void TrainTask::complete_checkpoint(const std::filesystem::path& dir) const {
  if (!tokenizer_dir.empty()) copy_tokenizer_files(tokenizer_dir, dir);
}

BatchCounts TrainTask::counts(const Batch& b) const {
  const int64_t graded = std::count_if(b.targets.begin(), b.targets.end(), [](int32_t t) { return t != -100; });
  return {graded, b.B, b.B * b.T};
}

double TrainTask::forward_backward(Transformer& model, const Batch& b, const ForwardOptions& fo, float share) {
  const double loss = model.forward_loss(b.inputs, b.targets, b.B, b.T, fo);
  model.backward(share);
  return loss;
}

LoopOptions loop_options(const TrainOptions& o, int64_t batches_per_epoch) {
  // Ranges (review F17): a value outside them used to be taken silently (a negative
  // --save-interval turned checkpoints off, a negative --max-steps meant no limit).
  if (o.epochs < 1) fail("--epochs must be at least 1, got {}", o.epochs);
  if (o.max_steps < 0) fail("--max-steps must be 0 (no limit) or positive, got {}", o.max_steps);
  if (o.save_interval < 0) fail("--save-interval must be 0 (after every epoch) or positive, got {}", o.save_interval);
  if (o.keep_last < 1) fail("--keep-last must be at least 1, got {}", o.keep_last);
  if (o.warmup_steps < 0) fail("--warmup-steps must not be negative, got {}", o.warmup_steps);
  if (o.grad_clip < 0) fail("--grad-clip must be 0 (off) or positive, got {}", o.grad_clip);
  if (!(o.lr >= 0) || !std::isfinite(o.lr)) fail("--lr must be a finite number of at least 0, got {}", o.lr);
  if (o.weight_decay < 0) fail("--weight-decay must not be negative, got {}", o.weight_decay);
  // Options that do nothing in this combination: said, not silently dropped.
  const bool main = dist::world().is_main();
  if (o.min_lr != 0 && o.lr_schedule != "cosine" && main)
    fmt::print("warning: --min-lr {} has no effect without --lr-schedule cosine\n", o.min_lr);
  if (o.initial_lr != 0 && o.warmup_steps == 0 && main)
    fmt::print("warning: --initial-lr {} has no effect without --warmup-steps\n", o.initial_lr);
  LoopOptions lo;
  lo.epochs = o.epochs;
  lo.max_steps = o.max_steps;
  lo.eval_interval = o.eval_interval;
  lo.grad_accum = o.grad_accum;
  lo.grad_clip = o.grad_clip;
  lo.save_interval = o.save_interval;
  lo.keep_last = o.keep_last;
  lo.seed = o.seed;
  lo.batch_size = o.batch_size;
  lo.comm = &dist::world();
  lo.schedule.peak_lr = o.lr;
  lo.schedule.initial_lr = o.warmup_steps > 0 ? o.initial_lr : o.lr;
  lo.schedule.min_lr = o.min_lr;
  lo.schedule.warmup_steps = o.warmup_steps;
  lo.schedule.cosine = o.lr_schedule == "cosine";
  lo.schedule.total_steps = planned_steps(lo, batches_per_epoch);
  return lo;
}

TrainingJob run_training_job(Transformer& model, AdamW& optimizer, TrainTask& task, const LoopOptions& lo,
                             const TrainOptions& o, const RunDirPlan& plan, const nlohmann::json& opts) {
  TrainerState state;
  state.options = opts;
  state.inputs = plan.inputs;
  int64_t resumed_eval_interval = 0;  // the --eval-interval of the run that wrote the checkpoint
  if (plan.resume_from) {
    state = load_checkpoint(*plan.resume_from, model, optimizer);
    resumed_eval_interval = state.options.value("eval-interval", int64_t{0});
    state.options = opts;
    state.inputs = plan.inputs;
    fmt::print("resuming from {} (step {}, epoch {}, tokens seen {}, examples seen {})\n", plan.resume_from->string(),
               state.step, state.epoch + 1, state.tokens_seen, state.examples_seen);
  }
  MetricsLog metrics(plan.dir, plan.resume_from ? state.step - 1 : -1, !lo.comm || lo.comm->is_main());
  // A run that ended off its evaluation interval evaluated its last step (below); the continued
  // run passes that step on its way, so that record is not part of the training curve.
  if (plan.resume_from && resumed_eval_interval > 0 && (state.step - 1) % resumed_eval_interval != 0)
    metrics.drop([&](const MetricRecord& r) { return r.kind.empty() && r.step == state.step - 1; });
  const int64_t ranks = lo.comm ? lo.comm->size() : 1, per_step = o.grad_accum * ranks;
  fmt::print("training: {} steps ({} per epoch), evaluation every {} steps over {} batches{}\n",
             lo.schedule.total_steps, (task.batches_per_epoch() + per_step - 1) / per_step, o.eval_interval,
             o.eval_iters,
             ranks > 1 ? fmt::format("; {} ranks ({}) x {} micro-batch(es) of {} per step", ranks, lo.comm->backend(),
                                     o.grad_accum, o.batch_size)
                       : "");
  install_stop_handlers();
  LoopResult result = run_training(model, optimizer, task, lo, state, plan.dir, metrics);
  // What a finished job does after the loop (scoring, test answers) has no step to finish: Ctrl-C
  // ends it at once, with 128 + signal, instead of being noted and ignored (review F10). A stopped
  // run keeps the handlers: it only reports and exits, and a launcher's second signal (mpirun's
  // SIGTERM once a rank has left) must not cut that short.
  if (!result.interrupted) restore_default_stop_handlers();
  return {std::move(result), std::move(metrics)};
}

int report_interrupted(const LoopResult& r, const std::filesystem::path& run_dir) {
  fmt::print("stopped by signal {} at step {}; checkpoint saved in {}; continue with --resume\n", r.signal,
             r.state.step, (run_dir / "checkpoints").string());
  return 128 + r.signal;
}

int64_t planned_steps(const LoopOptions& o, int64_t batches_per_epoch) {
  const int64_t per_step = o.grad_accum * (o.comm ? o.comm->size() : 1);
  const int64_t per_epoch = (batches_per_epoch + per_step - 1) / per_step;
  const int64_t total = per_epoch * o.epochs;
  return o.max_steps > 0 ? std::min(total, o.max_steps) : total;
}

LoopResult run_training(Transformer& model, AdamW& optimizer, TrainTask& task, const LoopOptions& o, TrainerState state,
                        const std::filesystem::path& run_dir, MetricsLog& metrics) {
  if (o.grad_accum < 1) fail("--grad-accum must be at least 1, got {}", o.grad_accum);
  if (o.eval_interval < 1) fail("--eval-interval must be at least 1, got {}", o.eval_interval);
  const int64_t nb = task.batches_per_epoch();
  if (nb <= 0) fail("the training data gives no batch");
  const int64_t total_steps = planned_steps(o, nb);
  LoopResult result;
  Progress progress(total_steps);
  Timer wall;
  dist::Communicator& comm = o.comm ? *o.comm : dist::world();
  const int64_t per_step = o.grad_accum * comm.size();  // micro-batches per optimizer step, all ranks
  struct MicroBatch {
    Batch batch;
    int64_t m = 0;        // its place in the step
    int64_t counted = 0;  // its loss's terms (LM: targets that are not -100)
    BatchCounts counts;
  };
  std::vector<MicroBatch> mine;
  double recent_tokens_per_s = 0;
  std::optional<ZeroShards> zero;
  double exchange_seconds = 0, step_seconds = 0;  // the gradient's collectives, and the steps they are part of
  if (optimizer.sharded() && model.params().flat_grads().defined()) zero.emplace(comm, optimizer, model.params());
  // Every rank holds the same model and optimizer state (with --zero 1, its block of the state);
  // the main rank alone writes them.
  auto checkpoint = [&] {
    const FullMoments full = zero ? zero->gather_moments() : FullMoments{};
    if (!comm.is_main()) return;
    save_checkpoint(run_dir, model, optimizer, state, o.keep_last, task.class_names(), zero ? &full : nullptr,
                    [&](const std::filesystem::path& dir) { task.complete_checkpoint(dir); });
    metrics.write_plots(o.examples_axis);
  };
  double last_loss = NAN, last_lr = 0;
  int64_t steps_this_run = 0;
  // Evaluation after the update of global step `step` (the book's evaluate_model), logged.
  auto evaluate = [&](int64_t step) {
    const Evaluation ev = task.evaluate(step);
    MetricRecord r;
    r.step = step;
    if (step < 0) r.kind = "initial";
    r.epoch = static_cast<double>(state.epoch) + static_cast<double>(state.batch) / static_cast<double>(nb);
    r.tokens_seen = state.tokens_seen;
    r.examples_seen = state.examples_seen;
    r.train_loss = ev.train_loss;
    r.val_loss = ev.val_loss;
    r.step_loss = last_loss;
    r.train_accuracy = ev.train_accuracy;
    r.val_accuracy = ev.val_accuracy;
    if (ev.train_rewards) {
      r.train_chosen_reward = ev.train_rewards->chosen;
      r.train_rejected_reward = ev.train_rewards->rejected;
    }
    if (ev.val_rewards) {
      r.val_chosen_reward = ev.val_rewards->chosen;
      r.val_rejected_reward = ev.val_rewards->rejected;
    }
    r.lr = last_lr;
    r.tokens_per_s = recent_tokens_per_s;
    metrics.append(r);
    metrics.write_plots(o.examples_axis);
    // After an epoch's last batch the loop has moved on to the next epoch: name the one that ended.
    const int64_t shown_epoch = state.batch == 0 && state.epoch > 0 ? state.epoch : state.epoch + 1;
    std::string margins;
    if (ev.train_rewards && ev.val_rewards)
      margins = step < 0 ? fmt::format(", Train reward margin {}, Val reward margin {}", ev.train_rewards->margin(),
                                       ev.val_rewards->margin())
                         : fmt::format(", Train reward margins {:.3f}, Val reward margins {:.3f}",
                                       ev.train_rewards->margin(), ev.val_rewards->margin());
    if (step < 0)  // the book's cell before training prints the exact values
      progress.print(fmt::format("Before training: Train loss {}, Val loss {}{}", ev.train_loss, ev.val_loss, margins));
    else
      progress.print(fmt::format("Ep {} (Step {:06d}): Train loss {:.3f}, Val loss {:.3f}{}", shown_epoch, step,
                                 ev.train_loss, ev.val_loss, margins));
  };
  if (o.evaluate_first && state.step == 0 && state.batch == 0 && state.epoch == 0) evaluate(-1);
  bool stop = false;
  while (!stop && state.epoch < o.epochs && (o.max_steps <= 0 || state.step < o.max_steps)) {
    while (state.batch < nb) {
      Timer step_timer;
      model.zero_grads();
      const int64_t group = std::min(per_step, nb - state.batch);  // the step's micro-batches, all ranks
      // This rank's: global indices rank, rank + ranks, ... (a short last step may leave a rank none).
      mine.clear();
      int64_t counted = 0;  // targets that are not -100
      for (int64_t m = comm.rank(); m < group; m += comm.size()) {
        MicroBatch& mb = mine.emplace_back();
        mb.m = m;
        task.train_batch(state.epoch, state.batch + m, mb.batch);
        mb.counts = task.counts(mb.batch);
        mb.counted = mb.counts.terms;
        counted += mb.counted;
      }
      // The loss is the mean over the step's targets, wherever they are: each micro-batch's mean
      // weighs its share of them (equal shares: 1 / micro-batches, as one bigger batch).
      double total_counted = static_cast<double>(counted);
      comm.all_reduce_sum(&total_counted, 1);
      // loss x targets, tokens, examples, summed over ranks after the backward passes
      double step_sums[3] = {0, 0, 0};
      double single_loss = 0;
      for (const MicroBatch& mb : mine) {
        const Batch& b = mb.batch;
        // Dropout masks depend on (seed, step) and the rows' place in the step only: resumed runs,
        // accumulation and any number of ranks draw the masks of one pass over the whole step.
        ForwardOptions fo{true, derive_seed(o.seed, static_cast<uint64_t>(state.step), 0)};
        fo.seq_offset = mb.m * (o.batch_size > 0 ? o.batch_size : b.B);
        const float share = total_counted > 0
                                ? static_cast<float>(mb.counted) / static_cast<float>(total_counted)
                                : 0.0f;
        const double mb_loss = task.forward_backward(model, b, fo, share);
        single_loss = mb_loss;
        step_sums[0] += mb_loss * static_cast<double>(mb.counted);
        step_sums[1] += static_cast<double>(mb.counts.tokens);
        step_sums[2] += static_cast<double>(mb.counts.examples);
      }
      Timer exchange;
      if (zero) {
        zero->reduce_scatter_gradients();
      } else if (comm.size() > 1) {
        const Tensor grads = model.params().flat_grads();
        if (grads.defined()) all_reduce_sum(comm, grads);
      }
      exchange_seconds += exchange.seconds();
      comm.all_reduce_sum(step_sums, 3);
      const int64_t step_tokens = static_cast<int64_t>(step_sums[1]);
      state.examples_seen += static_cast<int64_t>(step_sums[2]);
      // One micro-batch: its own mean, bit for bit (x * n / n need not give x back).
      const double loss = comm.size() == 1 && mine.size() == 1 ? single_loss
                          : total_counted > 0                  ? step_sums[0] / total_counted
                                                               : 0.0;
      if (!std::isfinite(loss))
        fail("the training loss became {} at step {} (epoch {}): lower --lr, enable --grad-clip, or check the data; "
             "the last good checkpoint is in {}",
             loss, state.step, state.epoch + 1, (run_dir / "checkpoints").string());
      if (o.on_gradients && !zero) o.on_gradients(state.step, model.params());  // with --zero, blocks only
      if (o.grad_clip > 0 && state.step >= o.schedule.warmup_steps) {
        if (zero)
          zero->clip(o.grad_clip);
        else
          clip_grad_norm(model.params(), o.grad_clip);
      }
      const double lr = o.schedule.at(state.step);
      optimizer.step(lr);
      if (zero) {
        Timer gather;
        zero->gather_weights();
        exchange_seconds += gather.seconds();
      }
      state.tokens_seen += step_tokens;
      result.tokens_trained += step_tokens;
      state.batch += group;
      const int64_t step = state.step;  // the book's global_step of this update
      ++state.step;
      ++steps_this_run;
      recent_tokens_per_s = static_cast<double>(step_tokens) / step_timer.seconds();
      step_seconds += step_timer.seconds();

      last_loss = loss;
      last_lr = lr;
      if (step % o.eval_interval == 0) evaluate(step);
      progress.update(state.step, loss, recent_tokens_per_s);
      if (o.save_interval > 0 && state.step % o.save_interval == 0) checkpoint();
      // Every rank stops after the same step, whichever of them got the signal.
      if (comm.all_reduce_max(stop_requested() ? 1 : 0) > 0) {
        stop = true;
        break;
      }
      if (o.max_steps > 0 && state.step >= o.max_steps) break;
    }
    if (stop) break;
    if (state.batch >= nb) {
      task.end_of_epoch(state.epoch, progress);
      if (const std::optional<EpochAccuracy> accuracy = task.epoch_accuracy(state.epoch)) {
        progress.print(fmt::format("Training accuracy: {:.2f}% | Validation accuracy: {:.2f}%",
                                   accuracy->train * 100, accuracy->val * 100));
        // A run resumed from a checkpoint taken at the epoch's last step repeats this epoch end:
        // its record may already be in the log.
        const auto& records = metrics.records();
        const bool recorded = std::any_of(records.begin(), records.end(), [&](const MetricRecord& r) {
          return r.kind == "epoch" && r.epoch == static_cast<double>(state.epoch + 1);
        });
        if (!recorded) {
          MetricRecord r;
          r.kind = "epoch";
          r.step = state.step - 1;
          r.epoch = static_cast<double>(state.epoch + 1);
          r.tokens_seen = state.tokens_seen;
          r.examples_seen = state.examples_seen;
          r.train_loss = NAN;
          r.val_loss = NAN;
          r.train_accuracy = accuracy->train;
          r.val_accuracy = accuracy->val;
          r.lr = o.schedule.at(std::max<int64_t>(0, state.step - 1));
          metrics.append(r);
          metrics.write_plots(o.examples_axis);
        }
      }
      ++state.epoch;
      state.batch = 0;
      if (o.save_interval == 0) checkpoint();
    }
  }
  // A finished run reports the model it ends with: an evaluation at its last step (unless that
  // step was just evaluated), and, when it ended at --max-steps inside an epoch, the sample.
  if (!stop && state.step > 0 && steps_this_run > 0) {
    if ((state.step - 1) % o.eval_interval != 0) evaluate(state.step - 1);
    if (state.batch > 0 && state.batch < nb) task.end_of_epoch(state.epoch, progress);
  }
  // A signal during that last evaluation or sample: the checkpoint below, then the exit code says
  // so (review F10), where it used to be noted and ignored.
  if (!stop && comm.all_reduce_max(stop_requested() ? 1 : 0) > 0) stop = true;
  progress.finish();
  if (comm.size() > 1) {  // each rank's peak memory, printed by the main one
    const float mine_mb = static_cast<float>(peak_rss_mb());
    std::vector<float> all(static_cast<size_t>(comm.size()));
    comm.gather(&mine_mb, all.data(), 1, 0);
    if (comm.is_main()) {
      std::string list;
      for (float mb : all) list += fmt::format("{}{:.0f}", list.empty() ? "" : ", ", mb);
      fmt::print("peak memory per rank (MB){}: {}\n", zero ? ", optimizer state sharded (--zero 1)" : "", list);
      const Tensor g = model.params().flat_grads();
      if (steps_this_run > 0 && g.defined())
        fmt::print("gradient exchange ({}): {:.4g} MB per step, {:.1f} ms per step ({:.1f}% of the steps' time)\n",
                   zero ? "reduce-scatter + all-gather of the weights" : "all-reduce",
                   static_cast<double>(g.numel()) * 4 / 1e6, exchange_seconds / steps_this_run * 1e3,
                   step_seconds > 0 ? 100 * exchange_seconds / step_seconds : 0.0);
    }
  }
  checkpoint();
  if (stop) {
    result.interrupted = true;
    result.signal = stop_signal() ? stop_signal() : SIGINT;  // a rank stopped by another's signal
  }
  result.state = state;
  result.seconds = wall.seconds();
  return result;
}

}  // namespace gptrain
