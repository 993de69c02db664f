// One GPT-2 training step (zero grads, forward, cross-entropy, backward, AdamW) timed per phase.
// Usage: train_step [--preset gpt2-small] [--batch 2] [--context 256] [--steps 5] [--threads N]
//        [--drop 0.1] [--tie] [--classes N [--last-block-only]] [--sgemm] [--device cuda] [--dtype bf16]
// (--sgemm also measures this machine's sgemm rate; --device cuda times the step on the GPU, each
// phase ended by a device synchronisation, in a build with the CUDA backend).
// Prints one JSON line per run so bench/compare_train_step.sh can put it beside PyTorch's.
#include <cblas.h>
#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kernels/ops.h"
#include "model/transformer.h"
#include "train/adamw.h"
#include "util/rng.h"
#include "util/timer.h"
#if GPTRAIN_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif

using namespace gptrain;
using bench::median;
using bench::peak_rss_mb;

namespace {

// Best-of-5 sgemm rate on the step's dominant shape class (square-ish, k = C).
double sgemm_gflops(int64_t m, int64_t n, int64_t k) {
  std::vector<float> a(m * k, 0.5f), b(k * n, 0.25f), c(m * n);
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    Timer t;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);
    best = std::min(best, t.seconds());
  }
  return 2.0 * m * n * k / best / 1e9;
}

// Peak resident memory of this process (VmHWM), in MiB.
}  // namespace

int main(int argc, char** argv) {
  std::string preset = "gpt2-small";
  int64_t B = 2, T = 256, steps = 5;
  int threads = 0;
  float drop = 0.1f;
  bool sgemm = false;
  bool tie = false;  // share the head with tok_emb (GPT-2's and llm.c's layout)
  int64_t classes = 0;  // > 0: the book's ch06 classifier head on the last token
  bool last_block_only = false;  // train only the last block, final norm and head (ch06 freezing)
  std::string device = "cpu";
  std::string dtype = "f32";  // bf16: the bf16 mode (float32 masters, bf16 copy, activations and gradients)
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return std::string(argv[++i]); };
    if (a == "--preset") preset = next();
    else if (a == "--batch") B = std::stoll(next());
    else if (a == "--context") T = std::stoll(next());
    else if (a == "--steps") steps = std::stoll(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--drop") drop = std::stof(next());
    else if (a == "--sgemm") sgemm = true;
    else if (a == "--tie") tie = true;
    else if (a == "--classes") classes = std::stoll(next());
    else if (a == "--last-block-only") last_block_only = true;
    else if (a == "--device") device = next();
    else if (a == "--dtype") dtype = next();
    else {
      fmt::print(stderr, "unknown option {}\n", a);
      return 2;
    }
  }
  ops::set_num_threads(threads);
  const bool on_gpu = device == "cuda";
  auto sync = [&] {
#if GPTRAIN_HAVE_CUDA
    if (on_gpu) kernels::cuda::synchronize();
#endif
  };
  if (on_gpu) {
#if GPTRAIN_HAVE_CUDA
    if (!kernels::cuda::init()) {
      fmt::print(stderr, "--device cuda: {}\n", kernels::cuda::device_description());
      return 1;
    }
    fmt::print(stderr, "{}\n", kernels::cuda::device_description());
#else
    fmt::print(stderr, "--device cuda: this build has no CUDA backend\n");
    return 1;
#endif
  } else if (device != "cpu") {
    fmt::print(stderr, "--device must be cpu or cuda\n");
    return 2;
  }
  ModelConfig cfg;
  if (!preset_config(preset, cfg)) {
    fmt::print(stderr, "unknown preset {}\n", preset);
    return 2;
  }
  cfg.context_length = T;
  cfg.drop_rate = drop;
  cfg.tie_weights = tie;
  if (classes > 0) {
    cfg.head = HeadType::Classifier;
    cfg.n_classes = classes;
  }
  Transformer model(cfg);
  if (last_block_only) {
    model.set_trainable_all(false);
    model.set_trainable_prefix("blocks." + std::to_string(cfg.n_layers - 1) + ".", true);
    model.set_trainable_prefix("ln_f.", true);
    model.set_trainable_prefix("head.", true);
    model.allocate_grads();
  }
  if (dtype != "f32" && dtype != "bf16") {
    fmt::print(stderr, "--dtype must be f32 or bf16\n");
    return 2;
  }
  model.set_compute_dtype(dtype == "bf16" ? DType::BF16 : DType::F32);
  model.to_device(on_gpu ? Device::CUDA : Device::CPU);
  AdamWOptions o;
  o.lr = 4e-4;
  o.weight_decay = 0.1;
  AdamW opt(model.params(), o);
  const CounterRng rng(1, 2);
  std::vector<int32_t> x(B * T), y(classes > 0 ? B : B * T);
  for (int64_t i = 0; i < B * T; ++i) x[i] = static_cast<int32_t>(rng.below(2 * i, cfg.vocab_size));
  for (size_t i = 0; i < y.size(); ++i)
    y[i] = static_cast<int32_t>(rng.below(2 * i + 1, classes > 0 ? classes : cfg.vocab_size));
  std::vector<double> t_total, t_fwd, t_bwd, t_opt;
  double loss = 0;
  for (int64_t s = 0; s <= steps; ++s) {  // step 0 warms up (page faults, arena, BLAS buffers)
    Timer total;
    model.zero_grads();
    Timer t;
    loss = model.forward_loss(x, y, B, T, {true, static_cast<uint64_t>(s)});
    sync();
    const double f = t.seconds();
    t.reset();
    model.backward();
    sync();
    const double b = t.seconds();
    t.reset();
    opt.step();
    sync();
    const double u = t.seconds();
    if (s == 0) {
      ops::reset_profile();  // exclude the warm-up step
      continue;
    }
    t_total.push_back(total.seconds());
    t_fwd.push_back(f);
    t_bwd.push_back(b);
    t_opt.push_back(u);
  }
  // Model FLOPs: 6 per matmul weight per token (forward 2, backward 4) plus causal attention
  // (q k^T and p v, forward and backward: 6 * 2 * B * NH * T * T * HS / 2 when only the causal
  // half is counted, as PyTorch's and our useful work). The weights of each block: the fused
  // q|k|v rows, the output projection, and the MLP's two (GELU) or three (SwiGLU) matrices.
  const int64_t C = cfg.emb_dim;
  const double mlp_matrices = cfg.mlp == MlpKind::SwiGLU ? 3.0 : 2.0;
  const double block_weights = double(cfg.qkv_width()) * C + double(cfg.q_width()) * C +
                               mlp_matrices * double(cfg.mlp_width()) * C;
  const double matmul_params = cfg.n_layers * block_weights + double(cfg.vocab_size) * C;
  // (for a classifier this is the full-model training FLOP count, the reference cost)
  const double flops = 6.0 * B * T * matmul_params + cfg.n_layers * 6.0 * B * T * T * double(cfg.q_width());
  const double med = median(t_total);
  fmt::print("{{\"impl\": \"gptrain\", \"device\": \"{}\", \"task\": \"{}\", \"preset\": \"{}\", \"batch\": {}, \"context\": {}, \"threads\": {}, "
             "\"step_s\": {:.4f}, \"forward_s\": {:.4f}, \"backward_s\": {:.4f}, \"optimizer_s\": {:.4f}, "
             "\"tokens_per_s\": {:.1f}, \"gflops\": {:.2f}, \"loss\": {:.4f}",
             device, classes > 0 ? (last_block_only ? "classify-last-block" : "classify-all") : "lm", preset, B, T,
             ops::num_threads(), med, median(t_fwd), median(t_bwd), median(t_opt), B * T / med,
             flops / med / 1e9, loss);
  fmt::print(", \"dtype\": \"{}\", \"peak_rss_mb\": {:.0f}", dtype, peak_rss_mb());
  if (sgemm) fmt::print(", \"sgemm_gflops\": {:.2f}", sgemm_gflops(B * T, 3 * C, C));
  fmt::print("}}\n");
  // GPTRAIN_PROFILE=1: where the step's time goes, per op (mean per step).
  auto prof = ops::profile();
  if (!prof.empty()) {
    std::sort(prof.begin(), prof.end(), [](const auto& a, const auto& b) { return a.seconds > b.seconds; });
    double total = 0;
    for (const auto& e : prof) total += e.seconds;
    fmt::print("{:<26} {:>8} {:>10} {:>7}\n", "op", "calls", "ms/step", "share");
    for (const auto& e : prof)
      fmt::print("{:<26} {:>8} {:>10.1f} {:>6.1f}%\n", e.op, e.calls / steps, 1e3 * e.seconds / steps,
                 100 * e.seconds / total);
    fmt::print("{:<26} {:>8} {:>10.1f}   (step {:.1f} ms; the rest is outside the ops)\n", "sum of ops", "",
               1e3 * total / steps, 1e3 * med);
  }
  return 0;
}
