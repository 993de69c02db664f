// The cost of LoRA: one training step (zero grads, forward, loss, backward, AdamW over the
// trainable parameters) of one model, full finetune or LoRA adapters alone, for
// bench/lora_compare.py to put beside PyTorch + PEFT (bench/peft_step.py). One contender per
// process, so peak RSS is the contender's own.
//   lora_step --task cls [--preset gpt2-small] ...   the book's ch06 / appendix E classifier (2
//       classes, qkv bias, loss on the last token); LoRA on every Linear and the head (--targets default)
//   lora_step --task lm --model DIR ...              a language model from a model dir (bf16 converted
//       to float32 on load), loss over all positions; LoRA on --targets (all-linear)
// [--mode full|lora] [--rank 16] [--alpha 16] [--targets T] [--batch B] [--length T] [--steps N]
// [--threads N] [--ids FILE]. FILE holds B * T (cls: labels are i % 2) or B * (T + 1) (lm)
// whitespace-separated ids; default random. Step 0 warms up (first touch of the gradients and the
// AdamW state); the median of the next N is reported. Prints one JSON line: trainable and total
// parameters, load_s, step_s (median) and each step, forward / backward / AdamW medians, the loss
// of step 0 and of the last step, peak_rss_mb (the process's VmHWM), and with GPTRAIN_PROFILE set,
// "profile": per op, calls and ms per timed step.
#include <fmt/core.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"
#include "kernels/ops.h"
#include "model/model_dir.h"
#include "model/transformer.h"
#include "train/adamw.h"
#include "train/classifier_model.h"
#include "util/rng.h"
#include "util/timer.h"

using namespace gptrain;
using bench::median;
using bench::peak_rss_mb;

namespace {

std::vector<int32_t> random_ids(int64_t n, int64_t vocab) {
  const CounterRng rng(1, 2);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[static_cast<size_t>(i)] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(i), vocab));
  return ids;
}

std::string json_list(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += fmt::format("{}{:.3f}", i ? ", " : "", v[i]);
  return s + "]";
}

}  // namespace

int main(int argc, char** argv) {
  std::string task = "cls", preset = "gpt2-small", model_dir, mode = "lora", targets, ids_file;
  int64_t B = 8, T = 120, steps = 3, rank = 16;
  double alpha = 16;
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return std::string(argv[++i]); };
    if (a == "--task") task = next();
    else if (a == "--preset") preset = next();
    else if (a == "--model") model_dir = next();
    else if (a == "--mode") mode = next();
    else if (a == "--rank") rank = std::stoll(next());
    else if (a == "--alpha") alpha = std::stod(next());
    else if (a == "--targets") targets = next();
    else if (a == "--batch") B = std::stoll(next());
    else if (a == "--length") T = std::stoll(next());
    else if (a == "--steps") steps = std::stoll(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--ids") ids_file = next();
    else {
      fmt::print(stderr, "unknown option {}\n", a);
      return 2;
    }
  }
  if ((task != "cls" && task != "lm") || (mode != "full" && mode != "lora") || (task == "lm" && model_dir.empty())) {
    fmt::print(stderr, "usage: lora_step --task cls|lm [--model DIR] --mode full|lora [options]\n");
    return 2;
  }
  ops::set_num_threads(threads);
  LoraOptions lora;
  if (mode == "lora") {
    lora.rank = rank;
    lora.alpha = alpha;
    lora.targets = targets.empty() ? (task == "cls" ? "default" : "all-linear") : targets;
  }
  Timer load_timer;
  std::unique_ptr<Transformer> model;
  if (task == "cls") {
    const std::optional<ModelConfig> book = bench::book_classifier_config(preset);
    if (!book) {
      fmt::print(stderr, "unknown preset {}\n", preset);
      return 2;
    }
    const ModelConfig& cfg = *book;
    model = std::make_unique<Transformer>(cfg, 123, DType::F32, plan_adapters(cfg, lora));
  } else {
    ModelLoadOptions load;
    load.drop_rate = 0.0f;
    load.lora = lora;
    load.lora_seed = 123;
    model = load_model_dir(model_dir, load);
  }
  const double load_s = load_timer.seconds();
  const std::string what = apply_trainable(*model, mode == "lora" ? "none" : "all");
  const ModelConfig& cfg = model->config();

  const int64_t per_row = task == "cls" ? T : T + 1;
  std::vector<int32_t> all;
  if (!ids_file.empty()) {
    std::ifstream in(ids_file);
    for (int64_t id; in >> id;) all.push_back(static_cast<int32_t>(id));
  } else {
    all = random_ids(B * per_row, cfg.vocab_size);
  }
  if (static_cast<int64_t>(all.size()) != B * per_row) {
    fmt::print(stderr, "--ids {}: {} ids, need {}\n", ids_file, all.size(), B * per_row);
    return 2;
  }
  std::vector<int32_t> x, y;
  if (task == "cls") {
    x = all;
    for (int64_t b = 0; b < B; ++b) y.push_back(static_cast<int32_t>(b % 2));
  } else {
    for (int64_t b = 0; b < B; ++b) {
      x.insert(x.end(), all.begin() + b * per_row, all.begin() + b * per_row + T);
      y.insert(y.end(), all.begin() + b * per_row + 1, all.begin() + (b + 1) * per_row);
    }
  }

  AdamWOptions ao;
  ao.lr = 1e-4;
  ao.weight_decay = 0.1;
  AdamW opt(model->params(), ao);
  std::vector<double> total, fwd, bwd, upd;
  double loss0 = 0, loss = 0;
  for (int64_t s = 0; s <= steps; ++s) {
    Timer t_all;
    model->zero_grads();
    Timer t;
    loss = model->forward_loss(x, y, B, T, ForwardOptions{true, static_cast<uint64_t>(s)});
    const double f = t.seconds();
    t.reset();
    model->backward();
    const double b = t.seconds();
    t.reset();
    opt.step();
    const double u = t.seconds();
    const double step = t_all.seconds();
    if (s == 0) {
      loss0 = loss;
      ops::reset_profile();  // GPTRAIN_PROFILE: the timed steps only
    } else {
      total.push_back(step);
      fwd.push_back(f);
      bwd.push_back(b);
      upd.push_back(u);
    }
  }
  fmt::print(
      "{{\"impl\": \"gptrain\", \"task\": \"{}\", \"mode\": \"{}\", \"model\": \"{}\", \"threads\": {}, \"batch\": {}, "
      "\"length\": {}, \"trainable\": {}, \"parameters\": {}, \"what\": \"{}\", \"load_s\": {:.3f}, \"step_s\": {:.3f}, "
      "\"steps_s\": {}, \"forward_s\": {:.3f}, \"backward_s\": {:.3f}, \"optimizer_s\": {:.3f}, \"loss0\": {:.5f}, "
      "\"loss\": {:.5f}",
      task, mode, task == "cls" ? preset : model_dir, ops::num_threads(), B, T, model->params().trainable_numel(),
      model->params().numel(), what, load_s, median(total), json_list(total), median(fwd), median(bwd), median(upd),
      loss0, loss);
  auto prof = ops::profile();
  if (!prof.empty()) {
    std::sort(prof.begin(), prof.end(), [](const auto& a, const auto& b) { return a.seconds > b.seconds; });
    std::string p;
    for (const auto& e : prof)
      p += fmt::format("{}{{\"op\": \"{}\", \"calls\": {}, \"ms_per_step\": {:.1f}}}", p.empty() ? "" : ", ", e.op,
                       e.calls / steps, 1e3 * e.seconds / static_cast<double>(steps));
    fmt::print(", \"profile\": [{}]", p);
  }
  fmt::print(", \"peak_rss_mb\": {:.0f}}}\n", peak_rss_mb());
  return 0;
}
