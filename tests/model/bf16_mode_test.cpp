// The bf16 mode above the kernels (docs/DESIGN.md "bf16 mode"): a ParameterSet's compute copy and
// bf16 gradients, the copy a refresh rebuilds equal to what AdamW's step wrote (a resumed run reads
// the copy the interrupted one had), and a Transformer computing in bf16 (the cpu-bf16 backend)
// whose float32 weights stay the model while its loss and gradients come from the copy. (How close
// a bf16 pass is to float32 is bounded op by op: tests/kernels/bf16_backend_test.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/ops.h"
#include "model/parameters.h"
#include "model/transformer.h"
#include "tensor/tensor.h"
#include "tests/kernels/bf16_bounds.h"
#include "tests/kernels/harness.h"
#include "train/adamw.h"

namespace gptrain::test {
namespace {

TEST(Bf16Mode, the_compute_copy_is_rebuilt_as_the_optimizer_wrote_it) {
  // A refresh after step s draws, for trainable parameters, the bits AdamW's step s drew (a
  // resumed run reads the copy the interrupted one had); frozen ones are rounded to nearest.
  ParameterSet set;
  set.add("a", {70}, ParamKind::LinearWeight, 0, 70);
  set.add("b", {33}, ParamKind::LinearBias, 0, 70);
  set.add("frozen", {20}, ParamKind::Norm, 0);
  set.allocate();
  set[2].trainable = false;
  const std::vector<float> values = random_floats(set.flat_values().numel(), 20);
  std::memcpy(set.flat_values().data<float>(), values.data(), values.size() * sizeof(float));
  set.set_compute_dtype(DType::BF16);
  set.allocate_grads();
  ASSERT_EQ(set[0].compute.dtype(), DType::BF16);
  ASSERT_EQ(set[0].grad.dtype(), DType::BF16);
  for (const Parameter& p : set.all())
    expect_same(p.name + ": the copy after set_compute_dtype is the nearest rounding", p.compute.to_vector(),
                rounded(p.value));
  // A zero update (lr 0, no decay) leaves the weights, so the step's copy is their stochastic rounding.
  for (Parameter& p : set.all()) {
    if (!p.trainable) continue;
    const int64_t n = p.value.numel();
    const Tensor m = Tensor::zeros({n}), v = Tensor::zeros({n});
    kernels::AdamWParams ap{n, 0.0, 0.9, 0.999, 1e-8, 0.0, 3};
    ap.rounding_seed = 9;
    ap.element_offset = static_cast<uint64_t>(p.offset);
    ops::adamw_step_mixed(p.value, p.compute, p.grad, m, v, ap);
  }
  const std::vector<float> written = set.flat_compute().to_vector();
  set.refresh_compute(9, 3);
  expect_same("refresh_compute(seed, step) = what that step wrote", set.flat_compute().to_vector(), written);
  EXPECT_NE(set[0].compute.to_vector(), rounded(set[0].value)) << "the trainable copy is not the nearest rounding";
  expect_same("the frozen parameter stays the nearest rounding", set[2].compute.to_vector(), rounded(set[2].value));
}

TEST(Bf16Mode, a_bf16_model_keeps_float32_weights_and_trains_its_copy) {
  for (const char* family : {"gpt2", "qwen3"}) {
    ModelConfig c;
    ASSERT_TRUE(preset_config(std::string(family) == "gpt2" ? "gpt2-small" : "qwen3-tiny", c));
    c.vocab_size = 50;
    c.context_length = 16;
    c.emb_dim = 16;
    c.n_layers = 2;
    c.n_heads = 2;
    if (c.n_kv_heads) c.n_kv_heads = 1, c.head_dim = 8, c.mlp_dim = 24;
    c.drop_rate = 0.1;
    Transformer model(c, 5);
    model.set_compute_dtype(DType::BF16);
    EXPECT_EQ(model.dtype(), DType::BF16) << family;
    EXPECT_EQ(model.params().dtype(), DType::F32) << family;
    const int64_t B = 2, T = 8;
    std::vector<int32_t> tokens(B * T), targets(B * T);
    for (int64_t i = 0; i < B * T; ++i) {
      tokens[i] = static_cast<int32_t>((i * 7 + 1) % c.vocab_size);
      targets[i] = static_cast<int32_t>((i * 5 + 2) % c.vocab_size);
    }
    model.zero_grads();
    const double loss = model.forward_loss(tokens, targets, B, T, ForwardOptions{true, 1});
    EXPECT_TRUE(std::isfinite(loss)) << family;
    model.backward();
    EXPECT_EQ(model.params().flat_grads().dtype(), DType::BF16) << family;
    EXPECT_GT(ops::sum_squares(model.params().flat_grads()), 0.0) << family;
    // The float32 weights are the model: a step moves them, and the copy follows.
    AdamWOptions ao;
    ao.lr = 1e-2;
    ao.rounding_seed = 77;
    AdamW opt(model.params(), ao);
    const std::vector<float> before = model.params().flat_values().to_vector();
    opt.step();
    EXPECT_NE(model.params().flat_values().to_vector(), before) << family;
    const std::vector<float> copy = model.params().flat_compute().to_vector();
    model.params().refresh_compute(77, 1);
    expect_same(std::string(family) + ": the copy after a step is rebuilt from the weights, seed and step",
                model.params().flat_compute().to_vector(), copy);
  }
}

}  // namespace
}  // namespace gptrain::test
