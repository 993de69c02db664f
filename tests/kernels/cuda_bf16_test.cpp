// The CUDA bf16 backend ("cuda-bf16", kernels/cuda/bf16_backend.cpp) against the cpu-bf16
// reference. Its ops other than the products are the float32 CUDA kernels (proven by tests/kernels/cuda_staged.cpp)
// over the shared widening code (proven on the CPU by bf16_backend_test.cpp and, through the emulated device, by
// tests/cli/bf16_test.sh); what is new on the GPU is the conversions, so they are checked bit for bit against the
// host's: widening, rounding to nearest (ties to even, NaN, infinities, overflow), and the weight copy's stochastic
// rounding with the same counter bits. Then the products, which cuda-bf16 computes with cuBLASLt on bf16 operands:
// forward and backward on the GPU and on the CPU each within the derived bound 2^-8 (|y| + e) + e of exact arithmetic
// (e = gamma(k + 1) sum |a b|), and the mixed AdamW's copy equal to the host's stochastic rounding
// of the GPU's master weights. Skips without a GPU.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/launch.h"
#include "kernels/ops.h"
#include "kernels/stochastic_rounding.h"
#include "tensor/tensor.h"
#include "tests/kernels/bf16_bounds.h"
#include "tests/kernels/harness.h"

namespace gptrain::test {
namespace {

class CudaBf16 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kernels::cuda::init()) GTEST_SKIP() << "no CUDA device visible: " << kernels::cuda::device_description();
  }
};

// Floats that exercise every rounding path: ties either way, NaNs, infinities, overflow, zeros of
// both signs, subnormals, and random values of every exponent.
std::vector<float> awkward_floats() {
  std::vector<float> v = {0.0f,
                          -0.0f,
                          1.0f,
                          -1.0f,
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN(),
                          std::bit_cast<float>(0x7f800001u),
                          std::bit_cast<float>(0xff812345u),
                          std::numeric_limits<float>::max(),
                          std::numeric_limits<float>::denorm_min(),
                          std::bit_cast<float>(0x3f808000u),
                          std::bit_cast<float>(0x3f818000u),  // ties to even
                          std::bit_cast<float>(0x7f7fffffu),
                          std::bit_cast<float>(0x7f7f8000u)};  // overflow
  const CounterRng rng(5, 1);
  for (uint64_t i = 0; i < 20000; ++i) v.push_back(std::bit_cast<float>(static_cast<uint32_t>(rng.bits(i))));
  return v;
}

std::vector<uint16_t> bits_of(const Tensor& bf16) {
  const Tensor h = bf16.host();
  return {h.data<uint16_t>(), h.data<uint16_t>() + h.numel()};
}

TEST_F(CudaBf16, is_registered_beside_the_f32_backend) {
  EXPECT_STREQ(kernels::backend_for(Device::CUDA, DType::BF16).name(), "cuda-bf16");
}

TEST_F(CudaBf16, conversions_are_the_hosts_bit_for_bit) {
  const std::vector<float> values = awkward_floats();
  const int64_t n = static_cast<int64_t>(values.size());
  const Tensor host = Tensor::from_vector({n}, values);
  const Tensor wide = host.to(Device::CUDA);
  // Rounding to nearest.
  const Tensor rounded = Tensor::zeros({n}, DType::BF16, Device::CUDA);
  kernels::cuda::round_bf16(rounded.device_data<uint16_t>(), wide.device_data<float>(), n);
  std::vector<uint16_t> expected(values.size());
  for (size_t i = 0; i < values.size(); ++i) expected[i] = float_to_bf16(values[i]);
  EXPECT_EQ(bits_of(rounded), expected) << "rounding to nearest differs from the host's";
  // Widening: every bf16 value back to its float32 exactly.
  const Tensor back = Tensor::zeros({n}, DType::F32, Device::CUDA);
  kernels::cuda::widen_bf16(back.device_data<float>(), rounded.device_data<uint16_t>(), n);
  const Tensor back_host = back.host();
  for (size_t i = 0; i < values.size(); ++i)
    ASSERT_EQ(std::bit_cast<uint32_t>(back_host.data<float>()[i]), static_cast<uint32_t>(expected[i]) << 16) << i;
  // Stochastic rounding with the counter bits, through the mixed AdamW with lr 0 and no decay
  // (the masters stay; the copy is their rounding at the step's bits).
  const Tensor finite = Tensor::from_vector({n}, random_floats(n, 9, -3.0f, 3.0f)).to(Device::CUDA);
  const Tensor m = Tensor::zeros({n}, DType::F32, Device::CUDA), v = Tensor::zeros({n}, DType::F32, Device::CUDA);
  const Tensor grad = Tensor::zeros({n}, DType::BF16, Device::CUDA),
               copy = Tensor::zeros({n}, DType::BF16, Device::CUDA);
  kernels::AdamWParams p{n, 0.0, 0.9, 0.999, 1e-8, 0.0, 4};
  p.rounding_seed = 11;
  p.element_offset = 123;
  ops::adamw_step_mixed(finite, copy, grad, m, v, p);
  const kernels::StochasticRounding rounding(11, 4, 123);
  const std::vector<float> master = finite.to_vector();
  for (size_t i = 0; i < values.size(); ++i) expected[i] = float_to_bf16_stochastic(master[i], rounding.bits(i));
  EXPECT_EQ(bits_of(copy), expected) << "the stochastic rounding differs from the host's";
  // And directly, on the awkward values (NaN, infinities, overflow).
  kernels::cuda::round_bf16_stochastic(copy.device_data<uint16_t>(), wide.device_data<float>(), n, rounding);
  for (size_t i = 0; i < values.size(); ++i) expected[i] = float_to_bf16_stochastic(values[i], rounding.bits(i));
  EXPECT_EQ(bits_of(copy), expected) << "the stochastic rounding of awkward values differs from the host's";
}

TEST_F(CudaBf16, a_product_is_within_the_derived_bound_on_both_devices) {
  expect_bf16_product_within_bound({Device::CPU, Device::CUDA}, 33, 257, 19);
  expect_bf16_product_within_bound({Device::CPU, Device::CUDA}, 64, 768, 96);  // aligned: tensor-core kernels
}

TEST_F(CudaBf16, backward_products_are_within_the_derived_bound_on_both_devices) {
  expect_bf16_backward_products_within_bound({Device::CPU, Device::CUDA});
}

// n random bf16 values in [lo, hi) on the GPU.
Tensor bf16(int64_t n, uint64_t seed, float lo = -2.0f, float hi = 2.0f) {
  return Tensor::from_vector({n}, random_floats(n, seed, lo, hi)).to(DType::BF16).to(Device::CUDA);
}
Tensor copy(const Tensor& t) {
  Tensor c = Tensor::empty(t.shape(), t.dtype(), Device::CUDA);
  c.copy_from(t);
  return c;
}
Tensor f32(int64_t n) { return Tensor::zeros({n}, DType::F32, Device::CUDA); }
void same(const std::string& what, const Tensor& a, const Tensor& b) {
  const Tensor ha = a.host(), hb = b.host();
  ASSERT_EQ(ha.nbytes(), hb.nbytes()) << what;
  EXPECT_EQ(std::memcmp(ha.raw(), hb.raw(), ha.nbytes()), 0) << what << ": the bf16 kernel differs from the widened op";
}

// The ops cuda-bf16 runs with the float32 kernels instantiated on bf16 storage: the same float32
// arithmetic on exactly loaded values, one rounding per store, so each equals the widened op
// (widened_bf16_backend: widen, the float32 kernel, round) bit for bit, outputs and statistics.
TEST_F(CudaBf16, bf16_storage_kernels_equal_the_widened_ops_bit_for_bit) {
  const kernels::Backend& native = kernels::backend_for(Device::CUDA, DType::BF16);
  const kernels::Backend& widened = kernels::cuda::widened_bf16_backend();
  // Each case runs `op` on one backend over fresh copies of its buffers and compares what it wrote.
  const int64_t N = 37, C = 200, n = N * C, V = 301;
  const Tensor x = bf16(n, 1), y = bf16(n, 2), g = bf16(n, 3), w = bf16(C, 4), b = bf16(C, 5);
  for (const kernels::InputGrad mode : {kernels::InputGrad::Write, kernels::InputGrad::Accumulate}) {
    const std::string m = mode == kernels::InputGrad::Write ? " (write)" : " (accumulate)";
    {
      const kernels::DropoutParams p{n, 0.1f, 7, mode};
      const Tensor o1 = copy(y), o2 = copy(y);
      native.dropout_forward(o1.raw(), x.raw(), p);
      widened.dropout_forward(o2.raw(), x.raw(), p);
      same("dropout forward", o1, o2);
      const Tensor d1 = copy(y), d2 = copy(y);
      native.dropout_backward(d1.raw(), g.raw(), p);
      widened.dropout_backward(d2.raw(), g.raw(), p);
      same("dropout backward" + m, d1, d2);
    }
    {
      const kernels::LayerNormParams p{N, C, 1e-5f, mode};
      const Tensor o1 = copy(y), o2 = copy(y), m1 = f32(N), m2 = f32(N), r1 = f32(N), r2 = f32(N);
      native.layernorm_forward(o1.raw(), m1.raw(), r1.raw(), x.raw(), w.raw(), b.raw(), p);
      widened.layernorm_forward(o2.raw(), m2.raw(), r2.raw(), x.raw(), w.raw(), b.raw(), p);
      same("layernorm forward", o1, o2);
      same("layernorm mean", m1, m2);
      same("layernorm rstd", r1, r2);
      const Tensor d1 = copy(y), d2 = copy(y), dw1 = copy(w), dw2 = copy(w), db1 = copy(b), db2 = copy(b);
      native.layernorm_backward(d1.raw(), dw1.raw(), db1.raw(), g.raw(), x.raw(), w.raw(), m1.raw(), r1.raw(), p);
      widened.layernorm_backward(d2.raw(), dw2.raw(), db2.raw(), g.raw(), x.raw(), w.raw(), m1.raw(), r1.raw(), p);
      same("layernorm dinp" + m, d1, d2);
      same("layernorm dweight", dw1, dw2);
      same("layernorm dbias", db1, db2);
    }
    {
      const kernels::GeluParams p{n, mode};
      const Tensor o1 = copy(y), o2 = copy(y);
      native.gelu_forward(o1.raw(), x.raw(), p);
      widened.gelu_forward(o2.raw(), x.raw(), p);
      same("gelu forward", o1, o2);
      const Tensor d1 = copy(y), d2 = copy(y);
      native.gelu_backward(d1.raw(), x.raw(), g.raw(), p);
      widened.gelu_backward(d2.raw(), x.raw(), g.raw(), p);
      same("gelu backward" + m, d1, d2);
    }
  }
  {
    const kernels::ResidualParams p{n};
    const Tensor o1 = copy(y), o2 = copy(y);
    native.residual_forward(o1.raw(), x.raw(), g.raw(), p);
    widened.residual_forward(o2.raw(), x.raw(), g.raw(), p);
    same("residual forward", o1, o2);
    const Tensor a1 = copy(x), a2 = copy(x), b1 = copy(y), b2 = copy(y);
    native.residual_backward(a1.raw(), b1.raw(), g.raw(), p);
    widened.residual_backward(a2.raw(), b2.raw(), g.raw(), p);
    same("residual backward a", a1, a2);
    same("residual backward b", b1, b2);
  }
  {
    const Tensor logits = bf16(N * V, 6, -6.0f, 6.0f);
    std::vector<int32_t> t(static_cast<size_t>(N));
    for (int64_t i = 0; i < N; ++i) t[static_cast<size_t>(i)] = i % 5 == 0 ? -100 : static_cast<int32_t>((i * 37) % V);
    const Tensor targets = Tensor::from_ids({N}, t).to(Device::CUDA);
    const kernels::CrossEntropyParams p{N, V, -100, 0.25f};
    const Tensor l1 = f32(N), l2 = f32(N), s1 = f32(N), s2 = f32(N);
    native.cross_entropy_forward(l1.raw(), s1.raw(), logits.raw(), targets.device_data<int32_t>(), p);
    widened.cross_entropy_forward(l2.raw(), s2.raw(), logits.raw(), targets.device_data<int32_t>(), p);
    same("cross-entropy losses", l1, l2);
    same("cross-entropy lse", s1, s2);
    const Tensor d1 = copy(logits), d2 = copy(logits);  // in place, as the model runs it
    native.cross_entropy_backward(d1.raw(), d1.raw(), s1.raw(), targets.device_data<int32_t>(), nullptr, p);
    widened.cross_entropy_backward(d2.raw(), d2.raw(), s1.raw(), targets.device_data<int32_t>(), nullptr, p);
    same("cross-entropy backward in place", d1, d2);
  }
  {
    const kernels::MatmulParams p{N, 3, C};  // the bias gradient alone: column sums of dout[N, C]
    const Tensor db1 = copy(w), db2 = copy(w);
    native.matmul_backward(nullptr, nullptr, db1.raw(), g.raw(), nullptr, nullptr, p);
    widened.matmul_backward(nullptr, nullptr, db2.raw(), g.raw(), nullptr, nullptr, p);
    same("matmul dbias", db1, db2);
  }
  for (const kernels::InputGrad mode : {kernels::InputGrad::Write, kernels::InputGrad::Accumulate}) {
    // Grouped-query attention with dropout on the probabilities: B 2, T 19, 4 query heads over 2.
    kernels::AttentionParams p{2, 19, 4, 2, 32, 0.1f, 9, mode};
    const int64_t rows = p.B * p.T, W = p.qkv_width();
    const Tensor qkv = bf16(rows * W, 7), dout = bf16(rows * p.NH * p.HS, 8), dq0 = bf16(rows * W, 9);
    const Tensor o1 = copy(dout), o2 = copy(dout), st1 = f32(p.B * p.NH * p.T * 2), st2 = f32(p.B * p.NH * p.T * 2);
    native.attention_forward(o1.raw(), st1.raw(), qkv.raw(), p);
    widened.attention_forward(o2.raw(), st2.raw(), qkv.raw(), p);
    same("attention forward", o1, o2);
    same("attention stats", st1, st2);
    const Tensor d1 = copy(dq0), d2 = copy(dq0);
    native.attention_backward(d1.raw(), dout.raw(), qkv.raw(), st1.raw(), p);
    widened.attention_backward(d2.raw(), dout.raw(), qkv.raw(), st1.raw(), p);
    same(std::string("attention backward") + (mode == kernels::InputGrad::Write ? " (write)" : " (accumulate)"), d1,
         d2);
  }
  {
    const kernels::EmbeddingParams p{3, 11, C, 50, 16};
    std::vector<int32_t> ids(33);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 7 + 3) % 50);
    const Tensor tokens = Tensor::from_ids({33}, ids).to(Device::CUDA);
    const Tensor wte = bf16(50 * C, 10), wpe = bf16(16 * C, 11), o1 = bf16(33 * C, 12), o2 = copy(o1);
    native.embedding_forward(o1.raw(), tokens.device_data<int32_t>(), nullptr, wte.raw(), wpe.raw(), p);
    widened.embedding_forward(o2.raw(), tokens.device_data<int32_t>(), nullptr, wte.raw(), wpe.raw(), p);
    same("embedding forward", o1, o2);
  }
  for (const kernels::InputGrad mode : {kernels::InputGrad::Write, kernels::InputGrad::Accumulate}) {
    const std::string m = mode == kernels::InputGrad::Write ? " (write)" : " (accumulate)";
    {
      const kernels::RmsNormParams p{N, C, 1e-6f, mode};
      const Tensor o1 = copy(y), o2 = copy(y), r1 = f32(N), r2 = f32(N);
      native.rmsnorm_forward(o1.raw(), r1.raw(), x.raw(), w.raw(), p);
      widened.rmsnorm_forward(o2.raw(), r2.raw(), x.raw(), w.raw(), p);
      same("rmsnorm forward", o1, o2);
      same("rmsnorm rstd", r1, r2);
      const Tensor d1 = copy(y), d2 = copy(y), dw1 = copy(w), dw2 = copy(w);
      native.rmsnorm_backward(d1.raw(), dw1.raw(), g.raw(), x.raw(), w.raw(), r1.raw(), p);
      widened.rmsnorm_backward(d2.raw(), dw2.raw(), g.raw(), x.raw(), w.raw(), r1.raw(), p);
      same("rmsnorm dinp" + m, d1, d2);
      same("rmsnorm dweight", dw1, dw2);
    }
    {
      const kernels::QkNormParams p{N, 4, 2, 16, 1e-6f, mode};
      const int64_t W = p.qkv_width(), heads = p.NH + p.NKV;
      const Tensor in = bf16(N * W, 13), dy = bf16(N * W, 14), qw = bf16(16, 15), kw = bf16(16, 16);
      const Tensor o1 = bf16(N * W, 17), o2 = copy(o1), r1 = f32(N * heads), r2 = f32(N * heads);
      native.qk_norm_forward(o1.raw(), r1.raw(), in.raw(), qw.raw(), kw.raw(), p);
      widened.qk_norm_forward(o2.raw(), r2.raw(), in.raw(), qw.raw(), kw.raw(), p);
      same("qk_norm forward", o1, o2);
      same("qk_norm rstd", r1, r2);
      const Tensor d1 = copy(dy), d2 = copy(dy), dq1 = copy(qw), dq2 = copy(qw), dk1 = copy(kw), dk2 = copy(kw);
      native.qk_norm_backward(d1.raw(), dq1.raw(), dk1.raw(), d1.raw(), in.raw(), qw.raw(), kw.raw(), r1.raw(), p);
      widened.qk_norm_backward(d2.raw(), dq2.raw(), dk2.raw(), d2.raw(), in.raw(), qw.raw(), kw.raw(), r1.raw(), p);
      same("qk_norm backward in place" + m, d1, d2);
      same("qk_norm dq_weight", dq1, dq2);
      same("qk_norm dk_weight", dk1, dk2);
    }
    {
      const kernels::SwigluParams p{N, C / 2, mode};
      const Tensor o1 = bf16(N * C / 2, 18), o2 = copy(o1);
      native.swiglu_forward(o1.raw(), x.raw(), p);
      widened.swiglu_forward(o2.raw(), x.raw(), p);
      same("swiglu forward", o1, o2);
      const Tensor d1 = copy(y), d2 = copy(y), dout = bf16(N * C / 2, 19);
      native.swiglu_backward(d1.raw(), x.raw(), dout.raw(), p);
      widened.swiglu_backward(d2.raw(), x.raw(), dout.raw(), p);
      same("swiglu backward" + m, d1, d2);
    }
  }
  {
    const kernels::RopeParams p{N, 4, 2, 16};
    const Tensor cos_t = Tensor::from_vector({N * 8}, random_floats(N * 8, 20)).to(Device::CUDA);
    const Tensor sin_t = Tensor::from_vector({N * 8}, random_floats(N * 8, 21)).to(Device::CUDA);
    const Tensor q1 = bf16(N * p.qkv_width(), 22), q2 = copy(q1);
    native.rope_forward(q1.raw(), cos_t.raw(), sin_t.raw(), p);
    widened.rope_forward(q2.raw(), cos_t.raw(), sin_t.raw(), p);
    same("rope forward", q1, q2);
    native.rope_backward(q1.raw(), cos_t.raw(), sin_t.raw(), p);
    widened.rope_backward(q2.raw(), cos_t.raw(), sin_t.raw(), p);
    same("rope backward", q1, q2);
  }
  {
    // The mixed AdamW in one pass against widen + the float32 AdamW + stochastic rounding.
    kernels::AdamWParams p{n, 1e-3, 0.9, 0.999, 1e-8, 0.1, 5};
    p.rounding_seed = 3;
    p.element_offset = 77;
    const auto floats = [](int64_t k, uint64_t seed, float lo, float hi) {
      return Tensor::from_vector({k}, random_floats(k, seed, lo, hi)).to(Device::CUDA);
    };
    const Tensor w1 = floats(n, 23, -1.0f, 1.0f), m1 = floats(n, 24, -0.1f, 0.1f), v1 = floats(n, 25, 0.0f, 0.01f);
    const Tensor w2 = copy(w1), m2 = copy(m1), v2 = copy(v1), c1 = copy(y), c2 = copy(y);
    native.adamw_step_mixed(w1.device_data<float>(), c1.device_data<uint16_t>(), g.raw(), m1.device_data<float>(),
                            v1.device_data<float>(), p);
    widened.adamw_step_mixed(w2.device_data<float>(), c2.device_data<uint16_t>(), g.raw(), m2.device_data<float>(),
                             v2.device_data<float>(), p);
    same("adamw masters", w1, w2);
    same("adamw m", m1, m2);
    same("adamw v", v1, v2);
    same("adamw copy", c1, c2);
  }
  EXPECT_EQ(native.sum_squares(g.raw(), n), widened.sum_squares(g.raw(), n));
  const Tensor s1 = copy(g), s2 = copy(g);
  native.scale(s1.raw(), 0.3f, n);
  widened.scale(s2.raw(), 0.3f, n);
  same("scale", s1, s2);
}

// The rest of the bf16 mode's ops on bf16 storage, each against the widened op bit for bit: the
// embedding's backward (ids repeated, so rows sum in row order onto the old gradient; untouched
// rows keep their bits), pooling, row gathers, LoRA, decoding against bf16 KV caches, and the
// row-wise products of decode rows and of f16/bf16 decode weights.
TEST_F(CudaBf16, embedding_backward_heads_adapters_and_decoding_equal_the_widened_ops_bit_for_bit) {
  const kernels::Backend& native = kernels::backend_for(Device::CUDA, DType::BF16);
  const kernels::Backend& widened = kernels::cuda::widened_bf16_backend();
  const int64_t C = 200;
  for (const int64_t pos_offset : {int64_t{-1}, int64_t{2}}) {  // -1: positions given
    const kernels::EmbeddingParams p{3, 11, C, 50, 16, pos_offset < 0 ? 0 : pos_offset};
    std::vector<int32_t> ids(33), pos(33);
    for (size_t i = 0; i < ids.size(); ++i) {
      ids[i] = static_cast<int32_t>((i * i + 3) % 13);  // 13 of the 50 ids, most of them repeated
      pos[i] = static_cast<int32_t>((i * 5) % 16);
    }
    const Tensor tokens = Tensor::from_ids({33}, ids).to(Device::CUDA);
    const Tensor positions = Tensor::from_ids({33}, pos).to(Device::CUDA);
    const int32_t* given = pos_offset < 0 ? positions.device_data<int32_t>() : nullptr;
    const Tensor dout = bf16(33 * C, 30), dwte1 = bf16(50 * C, 31), dwpe1 = bf16(16 * C, 32);
    const Tensor dwte2 = copy(dwte1), dwpe2 = copy(dwpe1);
    native.embedding_backward(dwte1.raw(), dwpe1.raw(), dout.raw(), tokens.device_data<int32_t>(), given, p);
    widened.embedding_backward(dwte2.raw(), dwpe2.raw(), dout.raw(), tokens.device_data<int32_t>(), given, p);
    const std::string how = pos_offset < 0 ? " (positions given)" : " (positions from the offset)";
    same("embedding backward dwte" + how, dwte1, dwte2);
    same("embedding backward dwpe" + how, dwpe1, dwpe2);
  }
  for (const kernels::PoolMode mode : {kernels::PoolMode::Last, kernels::PoolMode::First, kernels::PoolMode::Mean})
    for (const kernels::InputGrad grad : {kernels::InputGrad::Write, kernels::InputGrad::Accumulate}) {
      const kernels::PoolParams p{3, 11, C, mode, grad};
      const std::string what = "pool mode " + std::to_string(static_cast<int>(mode));
      const Tensor inp = bf16(33 * C, 33), o1 = bf16(3 * C, 34), o2 = copy(o1);
      native.pool_forward(o1.raw(), inp.raw(), p);
      widened.pool_forward(o2.raw(), inp.raw(), p);
      same(what + " forward", o1, o2);
      const Tensor dout = bf16(3 * C, 35), d1 = bf16(33 * C, 36), d2 = copy(d1);
      native.pool_backward(d1.raw(), dout.raw(), p);
      widened.pool_backward(d2.raw(), dout.raw(), p);
      same(what + " backward", d1, d2);
    }
  {
    const kernels::GatherRowsParams p{4, 11, C};
    const std::vector<int32_t> rows = {4, 0, 10, 4};
    const Tensor r = Tensor::from_ids({4}, rows).to(Device::CUDA);
    const Tensor inp = bf16(11 * C, 37), o1 = bf16(4 * C, 38), o2 = copy(o1);
    native.gather_rows_forward(o1.raw(), inp.raw(), r.device_data<int32_t>(), p);
    widened.gather_rows_forward(o2.raw(), inp.raw(), r.device_data<int32_t>(), p);
    same("gather rows", o1, o2);
  }
  {
    // Two segments of a fused output (columns 0..63 and 128..191 of 192), rank 4.
    kernels::LoraParams p{9, C, 192, 4};
    p.S = 2;
    p.seg[1] = 64;
    p.seg[2] = 128;
    p.col[1] = 128;
    p.scaling = 2.0f;
    const Tensor inp = bf16(9 * C, 39), A = bf16(8 * C, 40, -0.5f, 0.5f), B = bf16(128 * 4, 41, -0.5f, 0.5f);
    const Tensor o1 = bf16(9 * 192, 42), o2 = copy(o1);
    native.lora_forward(o1.raw(), inp.raw(), A.raw(), B.raw(), p);
    widened.lora_forward(o2.raw(), inp.raw(), A.raw(), B.raw(), p);
    same("lora forward", o1, o2);
    const Tensor dout = bf16(9 * 192, 43), dinp1 = bf16(9 * C, 44), dA1 = bf16(8 * C, 45), dB1 = bf16(128 * 4, 46);
    const Tensor dinp2 = copy(dinp1), dA2 = copy(dA1), dB2 = copy(dB1);
    native.lora_backward(dinp1.raw(), dA1.raw(), dB1.raw(), dout.raw(), inp.raw(), A.raw(), B.raw(), p);
    widened.lora_backward(dinp2.raw(), dA2.raw(), dB2.raw(), dout.raw(), inp.raw(), A.raw(), B.raw(), p);
    same("lora backward dinp", dinp1, dinp2);
    same("lora backward dA", dA1, dA2);
    same("lora backward dB", dB1, dB2);
    const Tensor w1 = bf16(192 * C, 47), w2 = copy(w1);
    native.lora_merge(w1.raw(), A.raw(), B.raw(), p);
    widened.lora_merge(w2.raw(), A.raw(), B.raw(), p);
    same("lora merge", w1, w2);
  }
  {
    // Two sequences of a decode step: a prefill of 2 rows after 3 cached positions, and a first row.
    const kernels::AttentionDecodeParams p{4, 2, 32, 2};
    const int64_t KV = p.NKV * p.HS, max_T = 8;
    const Tensor qkv = bf16(3 * p.qkv_width(), 48), o1 = bf16(3 * p.NH * p.HS, 49), o2 = copy(o1);
    Tensor caches1[4], caches2[4];
    for (int c = 0; c < 4; ++c) {
      caches1[c] = bf16(max_T * KV, 50 + c);
      caches2[c] = copy(caches1[c]);
    }
    const auto seqs = [&](Tensor* c) {
      return std::vector<kernels::DecodeSeq>{{c[0].raw(), c[1].raw(), max_T, 3, 0, 2},
                                             {c[2].raw(), c[3].raw(), max_T, 0, 2, 1}};
    };
    const std::vector<kernels::DecodeSeq> s1 = seqs(caches1), s2 = seqs(caches2);
    native.attention_decode_forward(o1.raw(), qkv.raw(), s1.data(), p);
    widened.attention_decode_forward(o2.raw(), qkv.raw(), s2.data(), p);
    same("decode attention", o1, o2);
    for (int c = 0; c < 4; ++c) same("decode cache " + std::to_string(c), caches1[c], caches2[c]);
  }
  {
    kernels::MatmulParams p{5, C, 48};
    p.batch_invariant = true;
    const Tensor inp = bf16(5 * C, 54), w = bf16(48 * C, 55, -0.2f, 0.2f), bias = bf16(48, 56);
    const Tensor o1 = bf16(5 * 48, 57), o2 = copy(o1);
    native.matmul_forward(o1.raw(), inp.raw(), w.raw(), bias.raw(), p);
    widened.matmul_forward(o2.raw(), inp.raw(), w.raw(), bias.raw(), p);
    same("row-wise matmul", o1, o2);
    for (const DType type : {DType::F16, DType::BF16}) {
      const Tensor half =
          Tensor::from_vector({48 * C}, random_floats(48 * C, 58, -0.2f, 0.2f)).to(type).to(Device::CUDA);
      const Tensor h1 = copy(o1), h2 = copy(o1);
      native.matmul_forward_half(h1.raw(), inp.raw(), half.device_data<uint16_t>(), type, bias.raw(), p);
      widened.matmul_forward_half(h2.raw(), inp.raw(), half.device_data<uint16_t>(), type, bias.raw(), p);
      same(std::string("matmul with ") + dtype_name(type) + " weights", h1, h2);
    }
  }
}

}  // namespace
}  // namespace gptrain::test
