// Behaviour of the GPT-2 model that needs no reference fixture: freezing, determinism, the
// inference path, ignored targets, the classifier head, and AdamW/clipping on real gradients.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "model/transformer.h"
#include "train/adamw.h"
#include "util/error.h"

namespace gptrain {
namespace {

ModelConfig tiny(bool qkv_bias = false, bool tie = false) {
  ModelConfig c;
  c.vocab_size = 71;
  c.context_length = 24;
  c.emb_dim = 32;
  c.n_heads = 4;
  c.n_layers = 3;
  c.drop_rate = 0.1f;
  c.qkv_bias = qkv_bias;
  c.tie_weights = tie;
  return c;
}

std::vector<int32_t> ids(int64_t n, int64_t vocab, int64_t salt) {
  std::vector<int32_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<int32_t>((i * 31 + salt * 7 + 5) % vocab);
  return v;
}

std::vector<float> grads_of(const Transformer& m, const std::string& name) {
  return m.params().find(name)->grad.to_vector();
}

TEST(Transformer, training_pass_is_deterministic_and_dropout_depends_on_the_seed) {
  Transformer a(tiny()), b(tiny());
  const auto x = ids(2 * 20, 71, 1), y = ids(2 * 20, 71, 2);
  const double la = a.forward_loss(x, y, 2, 20, {true, 42});
  a.backward();
  const double lb = b.forward_loss(x, y, 2, 20, {true, 42});
  b.backward();
  EXPECT_EQ(la, lb);
  EXPECT_EQ(a.params().flat_grads().to_vector(), b.params().flat_grads().to_vector());
  Transformer c(tiny());
  EXPECT_NE(c.forward_loss(x, y, 2, 20, {true, 43}), la);
  // no dropout in eval mode, so the seed does not matter
  EXPECT_EQ(c.forward_loss(x, y, 2, 20, {false, 1}), c.forward_loss(x, y, 2, 20, {false, 2}));
}

TEST(Transformer, inference_path_equals_training_path_without_dropout) {
  ModelConfig cfg = tiny();
  cfg.drop_rate = 0.0f;
  Transformer m(cfg);
  const auto x = ids(3 * 17, 71, 3);
  const auto eval_logits = m.forward(x, 3, 17, {false, 0}).to_vector();
  const auto train_logits = m.forward(x, 3, 17, {true, 0}).to_vector();
  EXPECT_EQ(eval_logits, train_logits);
}

TEST(Transformer, every_target_ignored_gives_zero_loss_and_zero_gradients) {
  Transformer m(tiny());
  const auto x = ids(2 * 8, 71, 4);
  const std::vector<int32_t> y(16, -100);
  const double loss = m.forward_loss(x, y, 2, 8, {true, 1});
  EXPECT_EQ(loss, 0.0);
  EXPECT_EQ(m.targets_counted(), 0);
  m.zero_grads();
  m.backward();
  for (float g : m.params().flat_grads().to_vector()) ASSERT_EQ(g, 0.0f);
}

TEST(Transformer, frozen_body_gets_no_gradient_and_the_top_gradients_are_unchanged) {
  const auto x = ids(2 * 16, 71, 5), y = ids(2 * 16, 71, 6);
  Transformer full(tiny(true)), frozen(tiny(true));
  frozen.set_trainable_all(false);
  frozen.set_trainable_prefix("blocks.2.", true);
  frozen.set_trainable_prefix("ln_f.", true);
  frozen.set_trainable_prefix("head.", true);
  frozen.allocate_grads();
  EXPECT_LT(frozen.params().trainable_numel(), full.params().trainable_numel());
  full.forward_loss(x, y, 2, 16, {true, 9});
  full.backward();
  frozen.forward_loss(x, y, 2, 16, {true, 9});
  frozen.backward();
  for (const Parameter& p : frozen.params().all()) {
    if (!p.trainable) {
      EXPECT_FALSE(p.grad.defined()) << p.name;
      continue;
    }
    // The same kernels run in the same order above the cut: bit-identical gradients.
    EXPECT_EQ(p.grad.to_vector(), grads_of(full, p.name)) << p.name;
  }
  // Training leaves frozen weights bit-identical.
  const auto before = frozen.params().at("blocks.1.mlp.fc.weight").value.to_vector();
  const auto emb_before = frozen.params().at("tok_emb.weight").value.to_vector();
  AdamW opt(frozen.params(), AdamWOptions{});
  for (int i = 0; i < 3; ++i) {
    frozen.zero_grads();
    frozen.forward_loss(x, y, 2, 16, {true, static_cast<uint64_t>(i)});
    frozen.backward();
    opt.step();
  }
  EXPECT_EQ(frozen.params().at("blocks.1.mlp.fc.weight").value.to_vector(), before);
  EXPECT_EQ(frozen.params().at("tok_emb.weight").value.to_vector(), emb_before);
  EXPECT_NE(frozen.params().at("blocks.2.mlp.fc.weight").value.to_vector(),
            full.params().at("blocks.2.mlp.fc.weight").value.to_vector());
}

TEST(Transformer, tied_head_accumulates_into_the_token_embedding) {
  Transformer m(tiny(false, true));
  EXPECT_EQ(m.params().find("head.weight"), nullptr);
  const auto x = ids(1 * 10, 71, 7), y = ids(1 * 10, 71, 8);
  m.forward_loss(x, y, 1, 10, {true, 0});
  m.backward();
  // Rows of tokens that never appear as input still get gradient through the head.
  const auto g = grads_of(m, "tok_emb.weight");
  bool any_nonzero_unused_row = false;
  for (int64_t row = 0; row < 71; ++row) {
    if (std::find(x.begin(), x.end(), row) != x.end()) continue;
    for (int64_t c = 0; c < 32; ++c) any_nonzero_unused_row |= g[row * 32 + c] != 0.0f;
  }
  EXPECT_TRUE(any_nonzero_unused_row);
}

TEST(Transformer, classifier_head_reads_the_pooled_position) {
  ModelConfig cfg = tiny();
  cfg.drop_rate = 0.0f;
  cfg.head = HeadType::Classifier;
  cfg.n_classes = 3;
  Transformer m(cfg);
  const auto x = ids(2 * 9, 71, 9);
  const std::vector<int32_t> labels = {2, 0};
  const double loss = m.forward_loss(x, labels, 2, 9, {true, 0});
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_EQ(m.logits().shape(), (Shape{2, 3}));
  m.backward();
  EXPECT_EQ(m.params().at("head.bias").grad.numel(), 3);
  // Last-token pooling: changing an earlier token changes the logits only through attention, and
  // changing tokens of the other sequence does not change this sequence's logits.
  auto x2 = x;
  x2[9] = (x2[9] + 1) % 71;  // first token of sequence 1
  const auto l1 = m.forward(x, 2, 9, {false, 0}).to_vector();
  const auto l2 = m.forward(x2, 2, 9, {false, 0}).to_vector();
  EXPECT_EQ(std::vector<float>(l1.begin(), l1.begin() + 3), std::vector<float>(l2.begin(), l2.begin() + 3));
  EXPECT_NE(std::vector<float>(l1.begin() + 3, l1.end()), std::vector<float>(l2.begin() + 3, l2.end()));
}

TEST(Transformer, initialisation_follows_pytorch_defaults_and_is_seeded) {
  ModelConfig c = tiny(true);
  c.emb_dim = 64;
  c.vocab_size = 500;
  Transformer a(c, 5), b(c, 5), other(c, 6);
  EXPECT_EQ(a.params().flat_values().to_vector(), b.params().flat_values().to_vector());
  EXPECT_NE(a.params().flat_values().to_vector(), other.params().flat_values().to_vector());
  auto stats = [](const std::vector<float>& v) {
    double mean = 0, sq = 0, maxabs = 0;
    for (float x : v) {
      mean += x;
      sq += double(x) * x;
      maxabs = std::max(maxabs, std::fabs(double(x)));
    }
    mean /= v.size();
    return std::array<double, 3>{mean, std::sqrt(sq / v.size() - mean * mean), maxabs};
  };
  // nn.Embedding: N(0, 1). 32000 samples: the sample sd errs by about 1/sqrt(2n) = 0.004.
  const auto e = stats(a.params().at("tok_emb.weight").value.to_vector());
  EXPECT_NEAR(e[0], 0.0, 0.03);
  EXPECT_NEAR(e[1], 1.0, 0.02);
  // nn.Linear weight and bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), sd bound/sqrt(3).
  for (const char* name : {"blocks.0.mlp.fc.weight", "blocks.1.mlp.proj.weight", "blocks.0.attn.qkv.bias"}) {
    const Parameter& p = a.params().at(name);
    const double bound = 1.0 / std::sqrt(double(p.fan_in));
    const auto w = stats(p.value.to_vector());
    EXPECT_LE(w[2], bound) << name;
    EXPECT_NEAR(w[1], bound / std::sqrt(3.0), 0.05 * bound) << name;
  }
  EXPECT_EQ(a.params().at("blocks.1.mlp.proj.weight").fan_in, 4 * 64);
  // LayerNorm: scale 1, shift 0.
  for (float x : a.params().at("ln_f.weight").value.to_vector()) ASSERT_EQ(x, 1.0f);
  for (float x : a.params().at("blocks.0.ln1.bias").value.to_vector()) ASSERT_EQ(x, 0.0f);
}

TEST(Transformer, llama_and_qwen3_initialise_as_transformers_does) {
  // transformers' _init_weights: N(0, initializer_range = 0.02) for embeddings and weights, norms 1.
  // Their heads are tied to the embedding, so the first loss is near ln(vocab), not 64.
  ModelConfig c;
  ASSERT_TRUE(preset_config("qwen3-tiny", c));
  c.vocab_size = 2000;
  c.context_length = 16;
  Transformer m(c, 3);
  for (const char* name : {"tok_emb.weight", "blocks.0.mlp.fc.weight", "blocks.1.attn.proj.weight"}) {
    const auto v = m.params().at(name).value.to_vector();
    double sq = 0;
    for (float x : v) sq += double(x) * x;
    // n >= 65536 samples: the sample sd errs by about 0.02 / sqrt(2n) < 1e-4
    EXPECT_NEAR(std::sqrt(sq / double(v.size())), 0.02, 1e-3) << name;
  }
  for (float x : m.params().at("blocks.0.attn.q_norm.weight").value.to_vector()) ASSERT_EQ(x, 1.0f);
  const auto x = ids(2 * 16, 2000, 1), y = ids(2 * 16, 2000, 2);
  const double loss = m.forward_loss(x, y, 2, 16, {false, 0});
  // The final norm's output has RMS 1, so the logits are ~N(0, s^2) with s = 0.02 sqrt(emb_dim) = 0.32:
  // the loss is ln(V) + s^2/2 on average, and its mean over 32 targets errs by about s/sqrt(32) = 0.06
  // (4 of those allowed). With N(0, 1) embeddings it would be near sqrt(256) = 16 above ln(V).
  const double s = 0.02 * std::sqrt(256.0);
  EXPECT_NEAR(loss, std::log(2000.0) + s * s / 2, 4 * s / std::sqrt(32.0));
}

TEST(Transformer, errors_name_the_problem) {
  Transformer m(tiny());
  const auto x = ids(30, 71, 1);
  EXPECT_THROW(m.forward(x, 1, 30, {}), Error);  // longer than the context
  std::vector<int32_t> bad(4, 71);
  EXPECT_THROW(m.forward(bad, 1, 4, {}), Error);  // id outside the vocabulary
  EXPECT_THROW(m.backward(), Error);              // no loss yet
}

TEST(AdamW, clipping_scales_to_the_max_norm_exactly_like_torch) {
  Transformer m(tiny());
  const auto x = ids(2 * 12, 71, 1), y = ids(2 * 12, 71, 2);
  m.forward_loss(x, y, 2, 12, {true, 1});
  m.backward();
  const double before = grad_norm(m.params());
  ASSERT_GT(before, 0.5);
  EXPECT_EQ(clip_grad_norm(m.params(), 0.5), before);
  EXPECT_NEAR(grad_norm(m.params()), 0.5, 0.5 * 1e-6);
  // below the limit nothing changes
  const auto g = m.params().flat_grads().to_vector();
  clip_grad_norm(m.params(), 10.0);
  EXPECT_EQ(m.params().flat_grads().to_vector(), g);
}

TEST(AdamW, exempting_bias_and_norm_leaves_them_undecayed_with_zero_gradient) {
  Transformer m(tiny());
  m.zero_grads();
  const float ln = m.params().at("ln_f.weight").value[0];
  const float w = m.params().at("blocks.0.mlp.fc.weight").value[0];
  AdamWOptions o;
  o.lr = 0.1;
  o.weight_decay = 0.5;
  o.no_decay_bias_and_norm = true;
  AdamW opt(m.params(), o);
  opt.step();
  EXPECT_EQ(m.params().at("ln_f.weight").value[0], ln);  // zero gradient, no decay
  EXPECT_EQ(m.params().at("blocks.0.mlp.fc.weight").value[0], w * static_cast<float>(1 - 0.1 * 0.5));
}

// The training path with dropout on: the gradient must be the derivative of the loss that the same
// dropout masks give (a mask drawn differently in backward than in forward passes every kernel test
// yet trains a different function). Central difference of the float32 loss along a random sign
// direction, per parameter; the masks depend only on the seed, so they are equal in all passes.
TEST(Transformer, gradient_with_dropout_is_the_derivative_of_the_dropped_out_loss) {
  ModelConfig cfg = tiny(/*qkv_bias=*/true);
  cfg.drop_rate = 0.3f;  // many dropped elements at every site
  Transformer m(cfg);
  const auto x = ids(2 * 20, 71, 7), y = ids(2 * 20, 71, 8);
  const ForwardOptions train{true, 1234};
  m.zero_grads();
  const double base_loss = m.forward_loss(x, y, 2, 20, train);
  m.backward();
  uint64_t state = 99;
  auto next_sign = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (state >> 63) ? 1.0f : -1.0f;
  };
  int checked = 0;
  for (Parameter& p : m.params().all()) {
    const int64_t n = p.value.numel();
    std::vector<float> d(static_cast<size_t>(n));
    for (float& v : d) v = next_sign();
    const std::vector<float> g = p.grad.to_vector(), v0 = p.value.to_vector();
    double analytic = 0, gnorm = 0;
    for (int64_t i = 0; i < n; ++i) analytic += double(g[i]) * d[i], gnorm += double(g[i]) * g[i];
    // A step of 1e-2 in norm: the float32 roundoff of the loss (~1e-6) over 2h and the curvature
    // term (h^2 times the third derivative) both stay well below the tolerance.
    const double h = 1e-2 / std::sqrt(static_cast<double>(n));
    auto loss_at = [&](double t) {
      float* w = p.value.data();
      for (int64_t i = 0; i < n; ++i) w[i] = v0[i] + static_cast<float>(t) * d[i];
      return m.forward_loss(x, y, 2, 20, train);
    };
    const double numeric = (loss_at(h) - loss_at(-h)) / (2 * h);
    loss_at(0);
    // <g, d> over random signs is of the size of |g|; a wrong mask changes it by as much. The
    // tolerance: 1% of |g| for the curvature term, plus the float32 roundoff of the two losses
    // (a few ulps of |L| each) over 2h.
    const double tol = 1e-2 * std::sqrt(gnorm) + 8 * 6e-8 * std::fabs(base_loss) / (2 * h);
    EXPECT_NEAR(numeric, analytic, tol) << p.name << ": directional derivative, |g| = " << std::sqrt(gnorm);
    ++checked;
  }
  EXPECT_EQ(checked, m.params().size());
}

}  // namespace
}  // namespace gptrain
