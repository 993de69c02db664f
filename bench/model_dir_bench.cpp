// One job on a model dir, timed, for bench/llama_qwen_full.py to put beside transformers:
//   model_dir_bench --model DIR --logits IDS_FILE OUT_F32   load, one forward of the ids, raw logits out
//   model_dir_bench --model DIR --train B T STEPS            full-finetune steps (AdamW), median step
//   model_dir_bench --model DIR --decode IDS_FILE NEW        greedy KV-cache decode, tokens/s
// [--threads N]. IDS_FILE holds whitespace-separated ids. Prints one JSON line: load_s (reading
// the dir and converting to float32), the job's figures, and peak_rss_mb (VmHWM of the process).
#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "generate/engine.h"
#include "kernels/ops.h"
#include "model/model_dir.h"
#include "train/adamw.h"
#include "util/rng.h"
#include "util/timer.h"

using namespace gptrain;
using bench::median;
using bench::peak_rss_mb;

namespace {

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint64_t stream) {
  const CounterRng rng(7, stream);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[static_cast<size_t>(i)] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(i), vocab));
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir, mode, ids_file, out_file;
  int64_t B = 1, T = 512, steps = 3, new_tokens = 64;
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return std::string(argv[++i]); };
    if (a == "--model") model_dir = next();
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--logits") { mode = "logits"; ids_file = next(); out_file = next(); }
    else if (a == "--train") { mode = "train"; B = std::stoll(next()); T = std::stoll(next()); steps = std::stoll(next()); }
    else if (a == "--train-ids") ids_file = next();  // B * (T + 1) ids for --train (default: random)
    else if (a == "--decode") { mode = "decode"; ids_file = next(); new_tokens = std::stoll(next()); }
    else {
      fmt::print(stderr, "unknown option {}\n", a);
      return 2;
    }
  }
  if (model_dir.empty() || mode.empty()) {
    fmt::print(stderr, "usage: model_dir_bench --model DIR (--logits IDS OUT | --train B T STEPS | --decode IDS N)\n");
    return 2;
  }
  ops::set_num_threads(threads);
  Timer load_timer;
  ModelLoadOptions load;
  load.drop_rate = 0.0f;
  std::unique_ptr<Transformer> model = load_model_dir(model_dir, load);
  const double load_s = load_timer.seconds();
  const ModelConfig& cfg = model->config();
  fmt::print("{{\"impl\": \"gptrain\", \"mode\": \"{}\", \"model\": \"{}\", \"threads\": {}, \"load_s\": {:.3f}", mode,
             model_dir, ops::num_threads(), load_s);
  std::vector<int32_t> ids;
  if (!ids_file.empty()) {
    std::ifstream in(ids_file);
    for (int64_t id; in >> id;) ids.push_back(static_cast<int32_t>(id));
  }
  if (mode == "logits") {
    Timer t;
    const Tensor& logits = model->forward(ids, 1, static_cast<int64_t>(ids.size()), ForwardOptions{false, 0});
    const double fwd = t.seconds();
    std::FILE* f = std::fopen(out_file.c_str(), "wb");
    std::fwrite(logits.data<float>(), sizeof(float), static_cast<size_t>(logits.numel()), f);
    std::fclose(f);
    fmt::print(", \"tokens\": {}, \"forward_s\": {:.3f}", ids.size(), fwd);
  } else if (mode == "train") {
    AdamWOptions o;
    o.lr = 1e-5;
    o.weight_decay = 0.1;
    AdamW opt(model->params(), o);
    const std::vector<int32_t> all = ids_file.empty() ? random_ids(B * (T + 1), cfg.vocab_size, 1) : ids;
    if (static_cast<int64_t>(all.size()) != B * (T + 1)) {
      fmt::print(stderr, "--train-ids {}: {} ids, need B * (T + 1) = {}\n", ids_file, all.size(), B * (T + 1));
      return 2;
    }
    std::vector<int32_t> x, y;
    for (int64_t b = 0; b < B; ++b) {
      x.insert(x.end(), all.begin() + b * (T + 1), all.begin() + b * (T + 1) + T);
      y.insert(y.end(), all.begin() + b * (T + 1) + 1, all.begin() + (b + 1) * (T + 1));
    }
    std::vector<double> times;
    double loss = 0;
    for (int64_t s = 0; s <= steps; ++s) {  // step 0 warms up (first touch of grads and AdamW state)
      Timer t;
      model->zero_grads();
      loss = model->forward_loss(x, y, B, T, ForwardOptions{true, static_cast<uint64_t>(s)});
      model->backward();
      opt.step();
      if (s > 0) times.push_back(t.seconds());
      if (s == 0) ops::reset_profile();  // GPTRAIN_PROFILE=1: the timed steps only
    }
    fmt::print(", \"batch\": {}, \"context\": {}, \"step_s\": {:.3f}, \"tokens_per_s\": {:.1f}, \"loss\": {:.4f}", B, T,
               median(times), static_cast<double>(B * T) / median(times), loss);
  } else {
    GenerateOptions g;
    g.max_new_tokens = new_tokens;
    const std::vector<int32_t>& p = ids;
    Timer t;
    const std::vector<int32_t> out = generate(*model, p, g);
    const double s = t.seconds();
    std::string ids;
    for (size_t i = p.size(); i < out.size(); ++i) ids += (ids.empty() ? "" : " ") + std::to_string(out[i]);
    fmt::print(", \"prompt_tokens\": {}, \"new_tokens\": {}, \"decode_s\": {:.3f}, \"tokens_per_s\": {:.2f}, \"ids\": \"{}\"",
               p.size(), out.size() - p.size(), s, static_cast<double>(out.size() - p.size()) / s, ids);
  }
  fmt::print(", \"peak_rss_mb\": {:.0f}}}\n", peak_rss_mb());
  // GPTRAIN_PROFILE=1: where the time went, per op (summed over the timed steps), on stderr.
  auto prof = ops::profile();
  std::sort(prof.begin(), prof.end(), [](const auto& a, const auto& b) { return a.seconds > b.seconds; });
  for (const auto& e : prof) fmt::print(stderr, "{:<28} {:>8} calls {:>10.1f} ms\n", e.op, e.calls, 1e3 * e.seconds);
  return 0;
}
