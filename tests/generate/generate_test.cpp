// Generation: the KV-cache path against full recomputation, the sliding window, and the sampler's
// semantics (the book's generate(): top-k then temperature, greedy at temperature 0, eos stop).
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <map>

#include "generate/engine.h"
#include "model/transformer.h"

namespace gptrain {
namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.vocab_size = 97;
  c.context_length = 16;
  c.emb_dim = 32;
  c.n_heads = 4;
  c.n_layers = 2;
  c.drop_rate = 0.1f;  // must not matter: generation runs in eval mode
  return c;
}

TEST(Generate, cached_logits_equal_full_forward_logits) {
  Transformer m(small_config(), 7);
  const std::vector<int32_t> ids = {5, 17, 3, 88, 41, 2, 9, 60};
  KVCache cache = m.make_kv_cache(16);
  DecodeWorkspace ws;
  // prefill three tokens, then one at a time
  DecodeBatch prefill;
  prefill.tokens = {ids[0], ids[1], ids[2]};
  prefill.positions = {0, 1, 2};
  prefill.slots = {DecodeSlot{&cache, 0, 3}};
  m.decode(ws, prefill);
  int64_t past = prefill.slots[0].past;
  EXPECT_EQ(past, 3);
  for (size_t n = 4; n <= ids.size(); ++n) {
    DecodeBatch step;
    step.tokens = {ids[n - 1]};
    step.positions = {static_cast<int32_t>(n - 1)};
    step.slots = {DecodeSlot{&cache, past, 1}};
    step.batch_invariant = true;
    const auto cached = m.decode(ws, step).to_vector();
    past = step.slots[0].past;
    const auto full = m.forward(std::span(ids).subspan(0, n), 1, static_cast<int64_t>(n), ForwardOptions{false, 0, true}).to_vector();
    ASSERT_EQ(cached.size(), full.size());
    double maxabs = 0, maxdiff = 0;
    for (size_t i = 0; i < full.size(); ++i) {
      maxabs = std::max(maxabs, std::fabs(double(full[i])));
      maxdiff = std::max(maxdiff, std::fabs(double(full[i]) - cached[i]));
    }
    // different kernels (BLAS vs vectorized loops): rounding-level differences only
    EXPECT_LE(maxdiff, 1e-5 * maxabs) << "length " << n;
  }
  EXPECT_EQ(past, static_cast<int64_t>(ids.size()));
}

TEST(Generate, greedy_with_cache_equals_without_it_even_past_the_context) {
  Transformer m(small_config(), 11);
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5};
  GenerateOptions with, without;
  with.max_new_tokens = without.max_new_tokens = 30;  // 35 > context 16: the window slides
  without.kv_cache = false;
  std::vector<int32_t> streamed;
  const auto a = generate(m, prompt, with, [&](int32_t id) { streamed.push_back(id); });
  const auto b = generate(m, prompt, without);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 35u);
  EXPECT_EQ(std::vector<int32_t>(a.begin() + 5, a.end()), streamed);
}

TEST(Generate, sampling_is_reproducible_and_stops_at_eos) {
  Transformer m(small_config(), 3);
  GenerateOptions o;
  o.max_new_tokens = 20;
  o.sampling.temperature = 1.5;
  o.sampling.top_k = 20;
  o.sampling.seed = 99;
  const auto a = generate(m, {7, 8}, o), b = generate(m, {7, 8}, o);
  EXPECT_EQ(a, b);
  o.sampling.seed = 100;
  EXPECT_NE(generate(m, {7, 8}, o), a);
  // eos: stop without appending it
  o.sampling.seed = 99;
  size_t k = 4;  // the first generated id from position 4 on that was not generated before
  while (std::find(a.begin() + 2, a.begin() + static_cast<long>(k), a[k]) != a.begin() + static_cast<long>(k)) ++k;
  o.eos_id = a[k];
  const auto c = generate(m, {7, 8}, o);
  EXPECT_EQ(c, std::vector<int32_t>(a.begin(), a.begin() + static_cast<long>(k)));
}

// The book's 9-token toy vocabulary (ch05 §5.3): next-token logits over
// closer, every, effort, forward, inches, moves, pizza, toward, you.
const std::vector<float> kToy = {4.51f, 0.89f, -1.90f, 6.75f, 1.63f, -1.62f, -1.89f, 6.28f, 1.79f};

std::vector<double> softmax(std::vector<double> z, double temperature) {
  double m = -INFINITY, s = 0;
  for (double& v : z) m = std::max(m, v /= temperature);
  for (double& v : z) s += (v = std::exp(v - m));
  for (double& v : z) v /= s;
  return z;
}

TEST(Sampler, greedy_topk_temperature_and_top_p) {
  SamplingOptions greedy;
  EXPECT_EQ(sample_next(kToy, greedy, 0), 3);  // "forward"
  greedy.top_k = 3;
  EXPECT_EQ(sample_next(kToy, greedy, 0), 3);  // temperature 0 stays greedy even with top-k

  // Top-3 at temperature 1: only forward, toward, closer (the book's [0.0615, 0, 0, 0.5775, 0, 0, 0, 0.3610, 0]).
  SamplingOptions topk;
  topk.temperature = 1.0;
  topk.top_k = 3;
  std::map<int32_t, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[sample_next(kToy, topk, static_cast<uint64_t>(i))];
  EXPECT_EQ(counts.size(), 3u);
  const std::map<int32_t, double> expected = {{0, 0.0615}, {3, 0.5775}, {7, 0.3610}};
  for (auto [id, p] : expected)  // 5 binomial standard deviations
    EXPECT_NEAR(counts[id] / double(n), p, 5 * std::sqrt(p * (1 - p) / n)) << id;

  // Temperature 5 over all nine: frequencies follow softmax(z / 5).
  SamplingOptions hot;
  hot.temperature = 5.0;
  counts.clear();
  for (int i = 0; i < n; ++i) ++counts[sample_next(kToy, hot, static_cast<uint64_t>(i))];
  const auto probs = softmax(std::vector<double>(kToy.begin(), kToy.end()), 5.0);
  for (int32_t id = 0; id < 9; ++id)
    EXPECT_NEAR(counts[id] / double(n), probs[id], 5 * std::sqrt(probs[id] * (1 - probs[id]) / n) + 1e-4) << id;

  // Top-p 0.9 at temperature 1: forward (0.57) + toward (0.36) reach 0.93, everything else is cut.
  SamplingOptions nucleus;
  nucleus.temperature = 1.0;
  nucleus.top_p = 0.9;
  for (int i = 0; i < 2000; ++i) {
    const int32_t id = sample_next(kToy, nucleus, static_cast<uint64_t>(i));
    ASSERT_TRUE(id == 3 || id == 7) << id;
  }
}

TEST(Sampler, top_k_keeps_ties_with_the_kth_value) {
  const std::vector<float> z = {1.0f, 3.0f, 2.0f, 2.0f, 0.5f};
  SamplingOptions o;
  o.temperature = 1.0;
  o.top_k = 2;  // the 2nd largest value is 2.0, shared by ids 2 and 3: both stay
  std::map<int32_t, int> counts;
  for (int i = 0; i < 5000; ++i) ++counts[sample_next(z, o, static_cast<uint64_t>(i))];
  EXPECT_EQ(counts.size(), 3u);
  EXPECT_GT(counts[2], 0);
  EXPECT_GT(counts[3], 0);
}

}  // namespace
}  // namespace gptrain
