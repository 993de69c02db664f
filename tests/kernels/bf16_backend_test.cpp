// The cpu-bf16 backend (kernels/cpu/bf16_backend.cpp), the bf16 mode's semantics: each op equals the
// float32 CPU kernel on its widened operands with what it writes rounded to bf16 once (bit for
// bit; an accumulated output is round(old + contribution)), statistics stay float32 and equal the
// float32 kernel's, aliased operands stay in place, and the decode caches are bf16 as well. Then
// the error against exact arithmetic, bounded: for a product y of IC terms the float32 kernel is
// within e = gamma(IC + 1) * sum |x_i w_i| (+ |b|) of the exact y (harness.h), and rounding to
// bf16 (8 significand bits, unit roundoff 2^-8) adds at most 2^-8 * |y_f32|, so
// |bf16 - y| <= 2^-8 (|y| + e) + e. A CUDA bf16 kernel (bf16 loads, float32 arithmetic, one bf16
// store) has the same form with its own accumulation order. Last, the mixed AdamW: the float32
// update of the master weights, and their copy by the seeded stochastic rounding
// (tests/model/bf16_mode_test.cpp: ParameterSet::refresh_compute redraws it on a resume).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/backend.h"
#include "kernels/ops.h"
#include "kernels/stochastic_rounding.h"
#include "tensor/tensor.h"
#include "tests/kernels/bf16_bounds.h"
#include "tests/kernels/harness.h"

namespace gptrain::test {
namespace {

// A bf16 tensor of `values` rounded to nearest, and the float32 tensor of the same (exact) values.
struct Pair {
  Tensor bf16, f32;
};
Pair pair_of(const Shape& shape, const std::vector<float>& values) {
  const Tensor b = Tensor::from_vector(shape, values).to(DType::BF16);
  return {b, b.to(DType::F32)};
}
Pair random_pair(const Shape& shape, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  return pair_of(shape, random_floats(shape_numel(shape), seed, lo, hi));
}

TEST(Bf16Backend, is_registered_for_bf16_tensors_on_the_cpu) {
  EXPECT_STREQ(kernels::backend_for(Device::CPU, DType::BF16).name(), "cpu-bf16");
  EXPECT_EQ(stats_dtype(DType::BF16), DType::F32);
}

TEST(Bf16Backend, matmul_is_the_float32_product_rounded_once_within_the_derived_bound) {
  for (const auto& [N, IC, OC] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {5, 33, 7}, {17, 130, 9}}) {
    const Pair x = random_pair({N, IC}, 1), w = random_pair({OC, IC}, 2), b = random_pair({OC}, 3);
    const Tensor out = Tensor::empty({N, OC}, DType::BF16), out32 = Tensor::empty({N, OC});
    ops::matmul_forward(out, x.bf16, w.bf16, b.bf16);
    ops::matmul_forward(out32, x.f32, w.f32, b.f32);
    expect_same("matmul forward", out.to_vector(), rounded(out32));
    expect_bf16_product_within_bound({Device::CPU}, N, IC, OC);  // against exact arithmetic

    // Backward: dinp written, dweight and dbias accumulated onto what they held, each rounded once.
    const Pair dout = random_pair({N, OC}, 4), dw0 = random_pair({OC, IC}, 5), db0 = random_pair({OC}, 6);
    const Tensor dx = Tensor::empty({N, IC}, DType::BF16), dx32 = Tensor::empty({N, IC});
    ops::matmul_backward(dx, dw0.bf16, db0.bf16, dout.bf16, x.bf16, w.bf16, ops::InputGrad::Write);
    ops::matmul_backward(dx32, dw0.f32, db0.f32, dout.f32, x.f32, w.f32, ops::InputGrad::Write);
    expect_same("matmul dinp", dx.to_vector(), rounded(dx32));
    expect_same("matmul dweight: round(old + contribution)", dw0.bf16.to_vector(), rounded(dw0.f32));
    expect_same("matmul dbias: round(old + contribution)", db0.bf16.to_vector(), rounded(db0.f32));
  }
}

TEST(Bf16Backend, backward_products_are_within_the_derived_bound) {
  expect_bf16_backward_products_within_bound({Device::CPU});
}

TEST(Bf16Backend, statistics_stay_float32_and_in_place_ops_stay_in_place) {
  const int64_t N = 6, C = 40, V = 37;
  // LayerNorm: the output rounded, mean and rstd the float32 kernel's exactly.
  const Pair x = random_pair({N, C}, 7, -3.0f, 3.0f), g = random_pair({C}, 8), b = random_pair({C}, 9);
  const Tensor out = Tensor::empty({N, C}, DType::BF16), out32 = Tensor::empty({N, C});
  const Tensor mean = Tensor::empty({N}), rstd = Tensor::empty({N}), mean32 = Tensor::empty({N}),
               rstd32 = Tensor::empty({N});
  ops::layernorm_forward(out, mean, rstd, x.bf16, g.bf16, b.bf16);
  ops::layernorm_forward(out32, mean32, rstd32, x.f32, g.f32, b.f32);
  expect_same("layernorm out", out.to_vector(), rounded(out32));
  expect_same("layernorm mean", mean.to_vector(), mean32.to_vector());
  expect_same("layernorm rstd", rstd.to_vector(), rstd32.to_vector());
  // Cross-entropy: float32 losses and lse; the gradient written over the logits themselves.
  const Pair logits = random_pair({N, V}, 10, -4.0f, 4.0f);
  std::vector<int32_t> target_ids = {3, -100, 0, 36, 5, 5};
  const Tensor targets = Tensor::from_ids({N}, target_ids);
  const Tensor losses = Tensor::empty({N}), lse = Tensor::empty({N}), losses32 = Tensor::empty({N}),
               lse32 = Tensor::empty({N});
  const double loss = ops::cross_entropy_forward(losses, lse, logits.bf16, targets).loss;
  const double loss32 = ops::cross_entropy_forward(losses32, lse32, logits.f32, targets).loss;
  EXPECT_EQ(loss, loss32);
  expect_same("cross-entropy lse", lse.to_vector(), lse32.to_vector());
  ops::cross_entropy_backward(logits.bf16, logits.bf16, lse, targets, 0.5f);
  ops::cross_entropy_backward(logits.f32, logits.f32, lse32, targets, 0.5f);
  expect_same("cross-entropy gradient in place", logits.bf16.to_vector(), rounded(logits.f32));
  // GELU's backward in place through its input's gradient buffer, accumulating.
  const Pair inp = random_pair({N * C}, 11, -3.0f, 3.0f), d = random_pair({N * C}, 12);
  ops::gelu_backward(d.bf16, inp.bf16, d.bf16, ops::InputGrad::Write);
  ops::gelu_backward(d.f32, inp.f32, d.f32, ops::InputGrad::Write);
  expect_same("gelu backward in place", d.bf16.to_vector(), rounded(d.f32));
}

TEST(Bf16Backend, decode_attention_rounds_the_new_keys_and_values_into_bf16_caches) {
  const int64_t NH = 2, NKV = 1, HS = 8, max_T = 6, past = 3, rows = 2, W = (NH + 2 * NKV) * HS;
  const Pair qkv = random_pair({rows, W}, 13, -2.0f, 2.0f);
  const Pair k = random_pair({max_T, NKV * HS}, 14), v = random_pair({max_T, NKV * HS}, 15);
  const Tensor out = Tensor::empty({rows, NH * HS}, DType::BF16), out32 = Tensor::empty({rows, NH * HS});
  const ops::AttentionShape shape{NH, NKV, HS};
  const ops::DecodeSequence seq{k.bf16, v.bf16, past, rows}, seq32{k.f32, v.f32, past, rows};
  ops::attention_decode_forward(out, qkv.bf16, std::span(&seq, 1), shape);
  ops::attention_decode_forward(out32, qkv.f32, std::span(&seq32, 1), shape);
  expect_same("decode attention out", out.to_vector(), rounded(out32));
  expect_same("key cache", k.bf16.to_vector(), rounded(k.f32));
  expect_same("value cache", v.bf16.to_vector(), rounded(v.f32));
}

TEST(Bf16Backend, mixed_adamw_updates_float32_masters_and_rounds_their_copy_stochastically) {
  const int64_t n = 1000;
  const Tensor master = Tensor::from_vector({n}, random_floats(n, 16));
  const Tensor master32 = Tensor::from_vector({n}, random_floats(n, 16));
  const Pair grad = random_pair({n}, 17);
  const Tensor m = Tensor::from_vector({n}, random_floats(n, 18, -0.1f, 0.1f)), m32 = m.to(DType::F32);
  const Tensor v = Tensor::from_vector({n}, random_floats(n, 19, 0.0f, 0.01f)), v32 = v.to(DType::F32);
  const Tensor copy = Tensor::zeros({n}, DType::BF16);
  kernels::AdamWParams p{n, 1e-3, 0.9, 0.999, 1e-8, 0.1, 7};
  p.rounding_seed = 42;
  p.element_offset = 5000;
  // In two calls, the second starting at element 300: the same as one call over all n.
  kernels::AdamWParams first = p, second = p;
  first.n = 300;
  second.element_offset = p.element_offset + 300;
  ops::adamw_step_mixed(master.slice_rows(0, 300), copy.slice_rows(0, 300), grad.bf16.slice_rows(0, 300),
                        m.slice_rows(0, 300), v.slice_rows(0, 300), first);
  ops::adamw_step_mixed(master.slice_rows(300, n), copy.slice_rows(300, n), grad.bf16.slice_rows(300, n),
                        m.slice_rows(300, n), v.slice_rows(300, n), second);
  ops::adamw_step(master32, grad.f32, m32, v32, p);
  expect_same("master weights: float32 AdamW on the widened gradient", master.to_vector(), master32.to_vector());
  expect_same("first moment", m.to_vector(), m32.to_vector());
  expect_same("second moment", v.to_vector(), v32.to_vector());
  const kernels::StochasticRounding rounding(42, 7, 5000);
  const float* x = master.data<float>();
  const uint16_t* c = copy.data<uint16_t>();
  int64_t rounded_up = 0, inexact = 0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(c[i], float_to_bf16_stochastic(x[i], rounding.bits(static_cast<uint64_t>(i)))) << i;
    // One of x's two bf16 neighbours (truncation, or the next one away from zero).
    const uint16_t down = static_cast<uint16_t>(std::bit_cast<uint32_t>(x[i]) >> 16);
    ASSERT_TRUE(c[i] == down || c[i] == down + 1) << i;
    inexact += (std::bit_cast<uint32_t>(x[i]) & 0xFFFFu) != 0;
    rounded_up += c[i] != down;
  }
  // Stochastic, not nearest and not truncation: both directions are taken (about half of the
  // inexact elements go up for uniform low bits; the chance that fewer than a tenth or more than
  // nine tenths of 1000 do is below 1e-100).
  EXPECT_GT(rounded_up, inexact / 10);
  EXPECT_LT(rounded_up, inexact * 9 / 10);
}

}  // namespace
}  // namespace gptrain::test
