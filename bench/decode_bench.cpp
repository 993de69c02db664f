// Decoding through the engine: S sequences of the same model generated (a) batched, every decode
// step one pass for all S (one matrix product per layer for all their rows), (b) in lockstep but one
// pass per sequence (max_batch 1), (c) one sequence after another. All three give the same tokens
// (checked); the times show what batching the rows buys.
// Usage: decode_bench --model DIR [--sequences 8] [--new-tokens 100] [--prompt-tokens 20] [--threads N] [--rounds 2]
// Prints one JSON line per mode and round.
#include <fmt/core.h>

#include <string>
#include <vector>

#include "generate/engine.h"
#include "kernels/ops.h"
#include "model/model_dir.h"
#include "util/error.h"
#include "util/rng.h"
#include "util/timer.h"

using namespace gptrain;

namespace {

std::vector<SequenceRequest> requests(int64_t S, int64_t prompt_tokens, int64_t new_tokens, int64_t vocab) {
  std::vector<SequenceRequest> r(static_cast<size_t>(S));
  for (int64_t s = 0; s < S; ++s) {
    const CounterRng rng(7, static_cast<uint64_t>(s));
    for (int64_t i = 0; i < prompt_tokens + s; ++i)  // prompts of different lengths
      r[static_cast<size_t>(s)].prompt.push_back(static_cast<int32_t>(rng.below(static_cast<uint64_t>(i), 50000) % vocab));
    r[static_cast<size_t>(s)].max_new_tokens = new_tokens;
    if (s % 2) {  // half greedy, half sampled
      r[static_cast<size_t>(s)].sampling.temperature = 1.0;
      r[static_cast<size_t>(s)].sampling.top_k = 40;
      r[static_cast<size_t>(s)].sampling.seed = static_cast<uint64_t>(s);
    }
  }
  return r;
}

struct Run {
  double seconds;
  std::vector<std::vector<int32_t>> tokens;
};

Run together(const Transformer& m, const std::vector<SequenceRequest>& reqs, int64_t max_batch) {
  EngineOptions o;
  o.max_batch = max_batch;
  DecodeEngine engine(m, {}, o);
  std::vector<int64_t> ids;
  const Timer t;
  for (const SequenceRequest& r : reqs) ids.push_back(engine.add(r));
  engine.run();
  Run run{t.seconds(), {}};
  for (int64_t id : ids) run.tokens.push_back(engine.result(id).generated);
  return run;
}

Run one_after_another(const Transformer& m, const std::vector<SequenceRequest>& reqs) {
  Run run{0, {}};
  const Timer t;
  for (const SequenceRequest& r : reqs) {
    DecodeEngine engine(m);
    const int64_t id = engine.add(r);
    engine.run();
    run.tokens.push_back(engine.result(id).generated);
  }
  run.seconds = t.seconds();
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir;
  int64_t S = 8, new_tokens = 100, prompt_tokens = 20, rounds = 2;
  int threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--model") model_dir = v;
    else if (a == "--sequences") S = std::stoll(v);
    else if (a == "--new-tokens") new_tokens = std::stoll(v);
    else if (a == "--prompt-tokens") prompt_tokens = std::stoll(v);
    else if (a == "--threads") threads = std::stoi(v);
    else if (a == "--rounds") rounds = std::stoll(v);
    else {
      fmt::print(stderr, "unknown option {}\n", a);
      return 1;
    }
  }
  if (model_dir.empty()) {
    fmt::print(stderr, "usage: decode_bench --model DIR [--sequences 8] [--new-tokens 100] [--prompt-tokens 20]\n");
    return 1;
  }
  try {
    ops::set_num_threads(threads);
    const auto model = load_model_dir(model_dir);
    const std::vector<SequenceRequest> reqs = requests(S, prompt_tokens, new_tokens, model->config().vocab_size);
    for (int64_t r = 0; r < rounds; ++r) {
      const Run batched = together(*model, reqs, S), lockstep = together(*model, reqs, 1),
                alone = one_after_another(*model, reqs);
      const bool same = batched.tokens == alone.tokens && lockstep.tokens == alone.tokens;
      int64_t generated = 0;
      for (const auto& t : alone.tokens) generated += static_cast<int64_t>(t.size());
      for (const auto& [name, run] : {std::pair{"batched", &batched}, {"lockstep", &lockstep}, {"sequential", &alone}})
        fmt::print("{{\"round\": {}, \"mode\": \"{}\", \"sequences\": {}, \"tokens\": {}, \"seconds\": {:.3f}, "
                   "\"tokens_per_s\": {:.2f}, \"same_tokens\": {}, \"threads\": {}}}\n",
                   r + 1, name, S, generated, run->seconds, static_cast<double>(generated) / run->seconds, same,
                   ops::num_threads());
      if (!same) return 2;
    }
  } catch (const Error& e) {
    fmt::print(stderr, "decode_bench: {}\n", e.what());
    return 1;
  }
  return 0;
}
