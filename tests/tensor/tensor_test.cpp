// Tensor: element types and their conversions (bf16 and f16 as IEEE rounding gives them), typed
// access, views, host/device rules, and the arena's measuring mode.
#include <gtest/gtest.h>

#include <bit>

#include <cmath>
#include <cstring>
#include <limits>

#include "tensor/tensor.h"
#include "util/error.h"

namespace gptrain {
namespace {

// The nearest representable value with ties to even, found by brute force over the neighbours.
template <class Decode>
uint16_t nearest(float f, Decode decode) {
  uint16_t best = 0;
  double best_err = INFINITY;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float v = decode(static_cast<uint16_t>(h));
    if (std::isnan(v)) continue;
    const double err = std::fabs(double(v) - double(f));
    if (err < best_err || (err == best_err && (h & 1) == 0 && std::signbit(v) == std::signbit(f))) {
      best = static_cast<uint16_t>(h);
      best_err = err;
    }
  }
  return best;
}

// Stochastic rounding: always one of the two bf16 neighbours, and unbiased exactly: summed over
// every one of the 2^16 random values, the rounded values average to the input (the sum of
// 2^16 bf16 values of one binade is exact in double).
TEST(DType, bf16_stochastic_rounding_is_unbiased_and_stays_between_neighbours) {
  for (const float f : {1.0f, 1.00390625f, 1.001f, -3.14159265f, 1e-30f, -7.5e12f, 65504.3f, 3.3895e38f, 0.0f}) {
    const uint16_t down = static_cast<uint16_t>(std::bit_cast<uint32_t>(f) >> 16);  // toward zero
    const float lo = bf16_to_float(down), hi = bf16_to_float(static_cast<uint16_t>(down + 1));
    double sum = 0;
    for (uint32_t r = 0; r < 65536; ++r) {
      const float v = bf16_to_float(float_to_bf16_stochastic(f, static_cast<uint16_t>(r)));
      ASSERT_TRUE(v == lo || (v == hi && lo != f)) << f << " rounded to " << v;
      sum += v;
    }
    EXPECT_EQ(sum / 65536.0, static_cast<double>(f)) << f;
  }
  for (const float f : {INFINITY, -INFINITY}) EXPECT_EQ(bf16_to_float(float_to_bf16_stochastic(f, 0xffff)), f);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16_stochastic(NAN, 0x1234))));
}

TEST(DType, bf16_and_f16_round_trip_every_value_exactly) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float b = bf16_to_float(static_cast<uint16_t>(h)), f = f16_to_float(static_cast<uint16_t>(h));
    if (!std::isnan(b)) EXPECT_EQ(float_to_bf16(b), h) << std::hex << h;
    else EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(b))));
    if (!std::isnan(f)) EXPECT_EQ(float_to_f16(f), h) << std::hex << h;
    else EXPECT_TRUE(std::isnan(f16_to_float(float_to_f16(f))));
  }
}

TEST(DType, rounding_is_to_nearest_even_with_overflow_to_infinity) {
  // Midpoints between neighbours go to the even one; just above a midpoint goes up.
  const float one = 1.0f, bf_ulp = 0x1p-7f, f16_ulp = 0x1p-10f;
  EXPECT_EQ(float_to_bf16(one + bf_ulp / 2), float_to_bf16(one));                       // tie: 1.0 is even
  EXPECT_EQ(float_to_bf16(one + 3 * bf_ulp / 2), float_to_bf16(one + 2 * bf_ulp));      // tie: to even
  EXPECT_EQ(float_to_bf16(std::nextafter(one + bf_ulp / 2, 2.0f)), float_to_bf16(one + bf_ulp));
  EXPECT_EQ(float_to_f16(one + f16_ulp / 2), float_to_f16(one));
  EXPECT_EQ(float_to_f16(one + 3 * f16_ulp / 2), float_to_f16(one + 2 * f16_ulp));
  EXPECT_EQ(f16_to_float(float_to_f16(65504.0f)), 65504.0f);                // the largest half
  EXPECT_TRUE(std::isinf(f16_to_float(float_to_f16(65520.0f))));            // the midpoint to 2^16: inf
  EXPECT_EQ(f16_to_float(float_to_f16(65519.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(bf16_to_float(float_to_bf16(std::numeric_limits<float>::max()))));
  EXPECT_EQ(f16_to_float(float_to_f16(0x1p-24f)), 0x1p-24f);                // the smallest subnormal
  EXPECT_EQ(f16_to_float(float_to_f16(0x1p-25f)), 0.0f);                    // its half: tie to even (0)
  EXPECT_EQ(f16_to_float(float_to_f16(0x1.8p-25f)), 0x1p-24f);
  EXPECT_TRUE(std::signbit(f16_to_float(float_to_f16(-0.0f))));
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(NAN))));
  EXPECT_TRUE(std::isnan(f16_to_float(float_to_f16(-NAN))));
  // Against brute force on values spread over the ranges, subnormals included.
  for (float f : {0.1f, -3.14159f, 1e-3f, 7e-6f, 3e-8f, 1234.5678f, -60000.1f, 2.5e-5f, 1.00048828125f}) {
    EXPECT_EQ(float_to_f16(f), nearest(f, f16_to_float)) << f;
    EXPECT_EQ(float_to_bf16(f), nearest(f, bf16_to_float)) << f;
  }
}

TEST(Tensor, typed_access_views_and_conversions) {
  const Tensor t = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(t.dtype(), DType::F32);
  EXPECT_EQ(t.nbytes(), 24u);
  EXPECT_THROW(t.data<double>(), Error);  // the element type is checked
  EXPECT_THROW(t.data<int32_t>(), Error);
  const Tensor row = t.slice_rows(1, 2);
  EXPECT_EQ(row.to_vector(), (std::vector<float>{4, 5, 6}));
  EXPECT_EQ(row.data<float>(), t.data<float>() + 3);
  const Tensor d = t.to(DType::F64);
  EXPECT_EQ(d.dtype(), DType::F64);
  EXPECT_EQ(d.to_doubles(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(d.slice_rows(1, 2).data<double>(), d.data<double>() + 3);  // row strides in the element size
  const Tensor h = Tensor::from_vector({3}, {0.1f, 1e5f, -2.0f}).to(DType::BF16);
  EXPECT_EQ(h.nbytes(), 6u);
  EXPECT_EQ(h.to_vector()[2], -2.0f);
  EXPECT_EQ(h.to_vector()[0], bf16_to_float(float_to_bf16(0.1f)));
  EXPECT_THROW(t.copy_from(d), Error);  // copies need the same dtype
  const Tensor ids = Tensor::from_ids({2}, std::vector<int32_t>{7, -100});
  EXPECT_EQ(ids.data<int32_t>()[1], -100);
  EXPECT_THROW(ids.to_vector(), Error);
  Tensor z = Tensor::zeros({4}, DType::F64);
  z.fill(2.5f);
  EXPECT_EQ(z.to_doubles(), (std::vector<double>{2.5, 2.5, 2.5, 2.5}));
}

TEST(Tensor, a_device_without_an_allocator_is_a_clear_error) {
  try {
    Tensor::empty({4}, DType::F32, Device::CUDA);
    FAIL() << "this build has no CUDA allocator";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda"), std::string::npos) << e.what();
  }
}

TEST(Arena, measuring_counts_what_allocating_uses) {
  Arena measure = Arena::measuring();
  const auto layout = [](Arena& a) {
    std::vector<Tensor> t;
    t.push_back(a.alloc({3, 5}));
    t.push_back(a.alloc({7}, DType::I32));
    t.push_back(a.alloc({2, 2}, DType::F64));
    t.push_back(a.alloc({0}));
    t.push_back(a.alloc({33}, DType::BF16));
    return t;
  };
  const std::vector<Tensor> shapes = layout(measure);
  EXPECT_FALSE(shapes[0].defined());  // shapes only
  EXPECT_EQ(shapes[0].shape(), (Shape{3, 5}));
  Arena real;
  real.reserve(measure.used());
  const std::vector<Tensor> tensors = layout(real);
  EXPECT_EQ(real.used(), measure.used());
  EXPECT_EQ(real.used(), 64u + 64u + 64u + 0u + 128u);  // each padded to 64 bytes
  for (const Tensor& t : tensors)
    if (t.numel()) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u);
    }
  EXPECT_THROW(real.alloc({1}), Error);  // full
}

}  // namespace
}  // namespace gptrain
