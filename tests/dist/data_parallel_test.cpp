// Data-parallel training equals one process (issue 16, must show 1), run in-process through the
// real loop (train/loop.h) under mpirun -np 2 (ctest: dist_test_2_ranks): ranks with micro-batches
// of 1 row against one process accumulating 2 micro-batches and one process with batches of 2,
// dropout on. Every rank also runs the single-process references itself, so each compares alone.
//
// Bounds, as tests/model/parity_test.cpp derives them: the runs compute the same sums of the same
// terms in other orders (the ranks' gradients meet in the all-reduce instead of accumulating in
// place; a batch of 2 puts 2T rows into one product), so the losses agree within gamma_K * D and
// each step's gradient within gamma_K * 2D relative to its norm, K = max(4C, T * rows, vocab) the
// longest sum, D = 6L + 3 reduction stages; parameters after the AdamW steps within the per-element
// update bound of tests/common/parity.h. The instruction-style case gives the micro-batches
// unequal target counts (-100 masks): the loss is the mean over the step's targets, and the old
// mean of per-micro-batch means is shown to fall outside the bound.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "kernels/ops.h"
#include "model/transformer.h"
#include "tests/common/parity.h"
#include "train/adamw.h"
#include "train/loop.h"
#include "train/metrics.h"
#include "util/rng.h"

namespace gptrain {
namespace {

namespace fs = std::filesystem;
using testing_util::kU;

constexpr int64_t kT = 16, kRows = 8;

ModelConfig tiny_config() {
  ModelConfig c;
  c.vocab_size = 96;
  c.context_length = kT;
  c.emb_dim = 32;
  c.n_layers = 2;
  c.n_heads = 2;
  c.drop_rate = 0.1f;  // dropout on: the ranks must draw one pass's masks
  return c;
}

// kRows fixed rows of kT random tokens; with `masked`, row r ignores its first (r * 5) % 13 + 1
// targets (unequal target counts per micro-batch, as instruction data's prompt masks).
class FixedRows : public TrainTask {
 public:
  FixedRows(int64_t batch, bool masked) : batch_(batch) {
    const CounterRng rng(5, 6);
    for (int64_t r = 0; r < kRows; ++r)
      for (int64_t t = 0; t <= kT; ++t)
        tokens_.push_back(static_cast<int32_t>(rng.below(static_cast<uint64_t>(r * (kT + 1) + t), 96)));
    masked_ = masked;
  }
  int64_t batches_per_epoch() const override { return kRows / batch_; }
  void train_batch(int64_t, int64_t index, Batch& b) override {
    b.B = batch_;
    b.T = kT;
    b.inputs.clear();
    b.targets.clear();
    for (int64_t r = index * batch_; r < (index + 1) * batch_; ++r) {
      const int64_t ignored = masked_ ? (r * 5) % 13 + 1 : 0;
      for (int64_t t = 0; t < kT; ++t) {
        b.inputs.push_back(tokens_[static_cast<size_t>(r * (kT + 1) + t)]);
        b.targets.push_back(t < ignored ? -100 : tokens_[static_cast<size_t>(r * (kT + 1) + t + 1)]);
      }
    }
  }
  Evaluation evaluate(int64_t) override { return {}; }  // step losses are what is compared

 private:
  int64_t batch_;
  bool masked_ = false;
  std::vector<int32_t> tokens_;
};

struct TrainedRun {
  std::vector<double> losses;                                          // per step
  std::vector<std::map<std::string, std::vector<double>>> gradients;  // per step, per parameter
  std::map<std::string, std::vector<double>> params;                   // after the last step
};

constexpr int64_t kSteps = 3;
constexpr double kLr = 1e-3;

TrainedRun train(dist::Communicator& comm, int64_t batch, int64_t accum, bool masked, const fs::path& dir,
                 bool zero = false, DType dtype = DType::F32) {
  Transformer model(tiny_config(), 11);
  model.set_compute_dtype(dtype);
  model.allocate_grads();
  AdamWOptions ao;
  ao.lr = kLr;
  ao.rounding_seed = 5;
  if (zero) {
    ao.shards = comm.size();
    ao.shard = comm.rank();
  }
  AdamW optimizer(model.params(), ao);
  FixedRows task(batch, masked);
  LoopOptions lo;
  lo.epochs = 1;
  lo.max_steps = kSteps;
  lo.eval_interval = 1;
  lo.grad_accum = accum;
  lo.batch_size = batch;
  lo.comm = &comm;
  lo.schedule.peak_lr = kLr;
  lo.save_interval = 1000;
  TrainedRun run;
  lo.on_gradients = [&](int64_t, const ParameterSet& params) {
    auto& g = run.gradients.emplace_back();
    for (const Parameter& p : params.all())
      if (p.trainable) g[p.name] = testing_util::as_doubles(p.grad.to_vector());
  };
  fs::create_directories(dir);
  MetricsLog metrics(dir, -1, comm.is_main());
  run_training(model, optimizer, task, lo, TrainerState{}, dir, metrics);
  for (const MetricRecord& r : metrics.records())
    if (r.kind.empty()) run.losses.push_back(r.step_loss);
  for (const Parameter& p : model.params().all()) {
    run.params[p.name] = testing_util::as_doubles(p.value.to_vector());
    if (model.params().has_compute_copy()) run.params[p.name + " (bf16 copy)"] = testing_util::as_doubles(p.compute.to_vector());
  }
  return run;
}

struct Bounds {
  double loss, grad;
};
Bounds bounds(int64_t rows_per_product) {
  const ModelConfig c = tiny_config();
  const double K = std::max({4.0 * c.emb_dim, static_cast<double>(kT * rows_per_product), double(c.vocab_size)});
  const double gamma = K * kU / (1 - K * kU), D = 6.0 * c.n_layers + 3;
  return {gamma * D, gamma * 2 * D};
}

double rel_norm_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d += (a[i] - b[i]) * (a[i] - b[i]);
    n += b[i] * b[i];
  }
  return n > 0 ? std::sqrt(d / n) : std::sqrt(d);
}

// `ours` against `ref`: per-step losses and gradients, then the parameters after the steps.
void expect_equivalent(const TrainedRun& ours, const TrainedRun& ref, const Bounds& b, const char* what) {
  ASSERT_EQ(ours.losses.size(), static_cast<size_t>(kSteps)) << what;
  ASSERT_EQ(ref.losses.size(), static_cast<size_t>(kSteps)) << what;
  double worst_loss = 0, worst_grad = 0;
  testing_util::AdamWParityBound bound(kLr, b.grad);
  for (int64_t s = 0; s < kSteps; ++s) {
    const double e = std::fabs(ours.losses[s] - ref.losses[s]) / std::fabs(ref.losses[s]);
    EXPECT_LE(e, b.loss) << what << ": loss of step " << s;
    worst_loss = std::max(worst_loss, e);
    for (const auto& [name, g] : ref.gradients[s]) {
      const double eg = rel_norm_diff(ours.gradients[s].at(name), g);
      EXPECT_LE(eg, b.grad) << what << ": gradient of " << name << " at step " << s;
      worst_grad = std::max(worst_grad, eg);
      bound.add_step(name, g);
    }
  }
  double worst_update = 0;
  for (const auto& [name, p] : ref.params)
    EXPECT_EQ(bound.outside(name, ours.params.at(name), p, &worst_update), 0) << what << ": " << name;
  std::printf("[%s] rel. loss error %.3g (bound %.3g), gradient %.3g (bound %.3g), |p - p_ref| <= %.3g lr\n", what,
              worst_loss, b.loss, worst_grad, b.grad, worst_update);
}

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (dist::world().size() != 2) GTEST_SKIP() << "needs 2 ranks: ctest runs this under mpirun -np 2 (dist_test_2_ranks)";
    ops::set_num_threads(1);
    // One directory for the run (the main rank writes into it), named by the main rank.
    std::string dir;
    if (dist::world().is_main()) {
      char name[] = "/tmp/gptrain-dp-XXXXXX";
      dir = mkdtemp(name);
    }
    dist::world().broadcast_string(dir, 0);
    dir_ = dir;
  }
  void TearDown() override {
    if (dir_.empty()) return;
    dist::world().barrier();
    if (dist::world().is_main()) fs::remove_all(dir_);
  }
  fs::path dir_;
};

TEST_F(DataParallel, two_ranks_equal_accumulation_and_one_bigger_batch) {
  const auto single = dist::make_single_process();
  const TrainedRun ranks = train(dist::world(), 1, 1, false, dir_ / "ranks");
  const TrainedRun accum = train(*single, 1, 2, false, dir_ / ("accum" + std::to_string(dist::world().rank())));
  const TrainedRun batch2 = train(*single, 2, 1, false, dir_ / ("batch2" + std::to_string(dist::world().rank())));
  expect_equivalent(ranks, accum, bounds(1), "2 ranks x batch 1 vs --grad-accum 2");
  expect_equivalent(ranks, batch2, bounds(2), "2 ranks x batch 1 vs --batch-size 2");
}

TEST_F(DataParallel, unequal_target_counts_weigh_by_targets_not_micro_batches) {
  const auto single = dist::make_single_process();
  const TrainedRun ranks = train(dist::world(), 1, 1, true, dir_ / "ranks");
  const TrainedRun accum = train(*single, 1, 2, true, dir_ / ("accum" + std::to_string(dist::world().rank())));
  const TrainedRun batch2 = train(*single, 2, 1, true, dir_ / ("batch2" + std::to_string(dist::world().rank())));
  expect_equivalent(ranks, accum, bounds(1), "masked: 2 ranks vs --grad-accum 2");
  expect_equivalent(ranks, batch2, bounds(2), "masked: 2 ranks vs --batch-size 2");

  // The old rule, the mean of the two micro-batches' means, is another loss: at step 0 (the same
  // weights for all) it differs from the mean over the step's targets by far more than the bound.
  FixedRows rows(1, true);
  Transformer model(tiny_config(), 11);
  Batch b0, b1;
  rows.train_batch(0, 0, b0);
  rows.train_batch(0, 1, b1);
  ForwardOptions fo{true, derive_seed(123, 0, 0)};
  const double l0 = model.forward_loss(b0.inputs, b0.targets, 1, kT, fo);
  const int64_t n0 = model.targets_counted();
  fo.seq_offset = 1;
  const double l1 = model.forward_loss(b1.inputs, b1.targets, 1, kT, fo);
  const int64_t n1 = model.targets_counted();
  ASSERT_NE(n0, n1);
  const double mean_of_means = (l0 + l1) / 2, by_targets = (l0 * n0 + l1 * n1) / static_cast<double>(n0 + n1);
  EXPECT_NEAR(ranks.losses[0], by_targets, bounds(1).loss * by_targets);
  EXPECT_GT(std::fabs(mean_of_means - by_targets), bounds(2).loss * by_targets);
  std::printf("step 0: targets %lld and %lld; the loss over them %.8f, the old mean of means %.8f\n",
              static_cast<long long>(n0), static_cast<long long>(n1), by_targets, mean_of_means);
}

// --zero 1: the optimizer state in one block per rank, the gradient reduce-scattered, the weights
// all-gathered. On 2 ranks every summed element is the one addition of the two ranks' values, as
// in the all-reduce, and AdamW is element-wise: the run is the unsharded one, bit for bit.
TEST_F(DataParallel, zero_1_is_the_unsharded_run_bit_for_bit) {
  const TrainedRun plain = train(dist::world(), 1, 1, true, dir_ / "plain");
  const TrainedRun zero = train(dist::world(), 1, 1, true, dir_ / "zero", true);
  ASSERT_EQ(zero.losses.size(), plain.losses.size());
  for (size_t s = 0; s < plain.losses.size(); ++s) EXPECT_EQ(zero.losses[s], plain.losses[s]) << "step " << s;
  for (const auto& [name, p] : plain.params) EXPECT_TRUE(zero.params.at(name) == p) << name;
  EXPECT_TRUE(zero.gradients.empty());  // the hook does not see blocks
}

// The bf16 mode under --zero 1: each rank's block of the bf16 gradient is summed in float32 and
// rounded once (as the all-reduce does), its AdamW writes the block's float32 weights and bf16 copy,
// and the others' copy is redrawn from the gathered weights with the same (seed, step, element)
// bits: the unsharded bf16 run bit for bit, the copy included.
TEST_F(DataParallel, zero_1_in_bf16_is_the_unsharded_bf16_run_bit_for_bit) {
  const TrainedRun plain = train(dist::world(), 1, 1, true, dir_ / "plain", false, DType::BF16);
  const TrainedRun zero = train(dist::world(), 1, 1, true, dir_ / "zero", true, DType::BF16);
  ASSERT_EQ(zero.losses.size(), plain.losses.size());
  for (size_t s = 0; s < plain.losses.size(); ++s) EXPECT_EQ(zero.losses[s], plain.losses[s]) << "step " << s;
  ASSERT_EQ(zero.params.size(), plain.params.size());
  for (const auto& [name, p] : plain.params) EXPECT_TRUE(zero.params.at(name) == p) << name;
}

}  // namespace
}  // namespace gptrain
