// The cost of a DPO step (the book's chapter 7 bonus) for bench/dpo_compare.py to put beside the
// book's PyTorch code (bench/dpo_torch_step.py) on the same model and the same batches: the first
// --steps + 1 batches of --pairs pairs of the preference file in file order, tokenized and
// collated as finetune-dpo does (Alpaca prompt masked, padded to the longest + 1).
// A step: the reference's log-probabilities (a frozen copy, evaluation pass), the policy's forward
// and backward of the DPO loss (mean log-probabilities, beta 0.1), AdamW (lr 5e-6, wd 0.01).
// Step 0 warms up; the median of the rest is reported. One JSON line: step_s (median) and each
// step, tokens per step (the book's count: the chosen batch's numel), the loss of every step, peak_rss_mb.
//   dpo_step --model DIR --data FILE [--pairs 8] [--steps 4] [--threads 2] [--tokenizer DIR]
#include <fmt/core.h>

#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"
#include "data/preference_data.h"
#include "kernels/ops.h"
#include "model/model_dir.h"
#include "train/adamw.h"
#include "train/dpo.h"
#include "util/error.h"
#include "util/timer.h"

using namespace gptrain;

int main(int argc, char** argv) {
  std::string model_dir, data, tokenizer_dir;
  int64_t pairs = 8, steps = 4;
  int threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model_dir = v;
    else if (k == "--data") data = v;
    else if (k == "--tokenizer") tokenizer_dir = v;
    else if (k == "--pairs") pairs = std::stoll(v);
    else if (k == "--steps") steps = std::stoll(v);
    else if (k == "--threads") threads = std::stoi(v);
    else {
      fmt::print(stderr, "unknown option {}\n", k);
      return 2;
    }
  }
  try {
    ops::set_num_threads(threads);
    std::unique_ptr<Transformer> policy = load_model_dir(model_dir), reference = load_model_dir(model_dir);
    reference->set_trainable_all(false);
    const Tokenizer tok = Tokenizer::from_dir(tokenizer_dir.empty() ? model_dir : tokenizer_dir);
    const std::vector<data::PreferenceEntry> entries = data::load_preference_file(data);
    std::vector<data::PreferenceExample> examples;
    for (int64_t i = 0; i < pairs * (steps + 1); ++i)
      examples.push_back(data::tokenize_preference(tok, entries.at(static_cast<size_t>(i))));
    AdamWOptions ao;
    ao.lr = 5e-6;
    ao.weight_decay = 0.01;
    AdamW opt(policy->params(), ao);
    BatchWorkspace ws;
    std::unique_ptr<dpo::Reference> ref = dpo::frozen_reference(std::move(reference), model_dir, &ws);
    std::vector<double> times, losses;
    std::vector<int64_t> tokens;
    for (int64_t s = 0; s <= steps; ++s) {
      std::vector<const data::PreferenceExample*> rows;
      std::vector<int64_t> idx;
      for (int64_t i = s * pairs; i < (s + 1) * pairs; ++i) {
        rows.push_back(&examples[static_cast<size_t>(i)]);
        idx.push_back(i);
      }
      data::PreferenceBatch pb;
      data::collate_preferences(rows, idx, data::PreferenceCollate{}, pb);
      Batch b;
      b.inputs = pb.inputs;
      b.targets = pb.targets;
      b.B = 2 * pb.pairs;
      b.T = pb.T;
      const Timer t;
      policy->zero_grads();
      const std::vector<double> ref_lp = dpo::logprobs(ref->sums(b, ""), dpo::Reduction::Mean);
      const dpo::BatchResult r =
          dpo::policy_pass(*policy, ws, b, ref_lp, 0.1, dpo::Reduction::Mean, ForwardOptions{true, 0}, true, 1.0f);
      opt.step(5e-6);
      times.push_back(t.seconds());
      losses.push_back(r.loss);
      tokens.push_back(pb.pairs * (pb.T + 1));
    }
    std::vector<double> timed(times.begin() + 1, times.end());
    std::string step_list, loss_list, token_list;
    for (size_t i = 0; i < times.size(); ++i) {
      step_list += fmt::format("{}{:.4f}", i ? ", " : "", times[i]);
      loss_list += fmt::format("{}{:.10f}", i ? ", " : "", losses[i]);
      token_list += fmt::format("{}{}", i ? ", " : "", tokens[i]);
    }
    fmt::print("{{\"step_s\": {:.4f}, \"steps\": [{}], \"tokens\": [{}], \"losses\": [{}], \"peak_rss_mb\": {:.1f}}}\n",
               bench::median(timed), step_list, token_list, loss_list, bench::peak_rss_mb());
  } catch (const Error& e) {
    fmt::print(stderr, "dpo_step: {}\n", e.what());
    return 1;
  }
  return 0;
}
