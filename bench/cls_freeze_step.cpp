// What the book's freezing saves: one classifier training step (zero grads, forward, last-token
// cross-entropy, backward, AdamW) with every parameter trainable against the same step with only
// the last block, the final norm and the head trainable (gptrain finetune-cls's default), on one
// model in one process. The two kinds of step alternate, so a change in the machine's load hits
// both alike; medians are reported.
// Usage: cls_freeze_step [--preset gpt2-small] [--batch 8] [--length 120] [--rounds 7] [--threads N]
#include <fmt/core.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kernels/ops.h"
#include "model/transformer.h"
#include "train/adamw.h"
#include "train/classifier_model.h"
#include "util/rng.h"
#include "util/timer.h"

using namespace gptrain;
using bench::median;

namespace {

struct Phases {
  std::vector<double> forward, backward, update, total;
};

}  // namespace

int main(int argc, char** argv) {
  std::string preset = "gpt2-small";
  int64_t B = 8, T = 120, rounds = 7;
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return std::string(argv[++i]); };
    if (a == "--preset") preset = next();
    else if (a == "--batch") B = std::stoll(next());
    else if (a == "--length") T = std::stoll(next());
    else if (a == "--rounds") rounds = std::stoll(next());
    else if (a == "--threads") threads = std::stoi(next());
    else {
      fmt::print(stderr, "unknown option {}\n", a);
      return 2;
    }
  }
  ops::set_num_threads(threads);
  const std::optional<ModelConfig> book = bench::book_classifier_config(preset);
  if (!book) {
    fmt::print(stderr, "unknown preset {}\n", preset);
    return 2;
  }
  const ModelConfig& cfg = *book;
  Transformer model(cfg, 123);
  std::vector<int32_t> tokens(static_cast<size_t>(B * T)), labels(static_cast<size_t>(B));
  const CounterRng rng(1, 2);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(rng.below(i, 50257));
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(i % 2);

  const char* modes[2] = {"all", "last-block"};
  Phases phases[2];
  int64_t trainable[2] = {0, 0};
  for (int64_t r = -1; r < rounds; ++r) {  // round -1 warms up both
    for (int m = 0; m < 2; ++m) {
      apply_trainable(model, modes[m]);
      trainable[m] = model.params().trainable_numel();
      AdamWOptions ao;
      ao.lr = 5e-5;
      AdamW optimizer(model.params(), ao);
      for (int s = 0; s < 2; ++s) {  // two steps per visit; the second is timed
        Timer total;
        model.zero_grads();
        Timer t;
        model.forward_loss(tokens, labels, B, T, ForwardOptions{true, 0});
        const double f = t.seconds();
        t.reset();
        model.backward();
        const double b = t.seconds();
        t.reset();
        optimizer.step();
        const double u = t.seconds();
        const double all = total.seconds();
        if (r >= 0 && s == 1) {
          phases[m].forward.push_back(f);
          phases[m].backward.push_back(b);
          phases[m].update.push_back(u);
          phases[m].total.push_back(all);
        }
      }
    }
  }
  fmt::print("classifier step, {} ({} layers, {} channels, qkv bias, 2 classes), batch {} x {}, {} threads, "
             "median of {} rounds (ms):\n",
             preset, cfg.n_layers, cfg.emb_dim, B, T, ops::num_threads(), rounds);
  fmt::print("{:>12} {:>14} {:>9} {:>9} {:>9} {:>9}\n", "trainable", "parameters", "forward", "backward", "AdamW",
             "step");
  for (int m = 0; m < 2; ++m)
    fmt::print("{:>12} {:>14} {:9.1f} {:9.1f} {:9.1f} {:9.1f}\n", modes[m], trainable[m],
               median(phases[m].forward) * 1e3, median(phases[m].backward) * 1e3, median(phases[m].update) * 1e3,
               median(phases[m].total) * 1e3);
  fmt::print("last-block step / full step = {:.3f}; backward {:.3f}; AdamW {:.4f}\n",
             median(phases[1].total) / median(phases[0].total),
             median(phases[1].backward) / median(phases[0].backward),
             median(phases[1].update) / median(phases[0].update));
  return 0;
}
