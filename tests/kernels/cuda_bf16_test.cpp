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

}  // namespace
}  // namespace gptrain::test
