// Checks shared by the bf16 tests (bf16_backend_test.cpp on the CPU, cuda_bf16_test.cpp on the GPU,
// tests/model/bf16_mode_test.cpp): bit-for-bit comparisons and the products' error bound.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "tensor/tensor.h"
#include "tests/kernels/harness.h"

namespace gptrain::test {

inline constexpr double kUnitBf16 = 0x1.0p-8;  // unit roundoff of bf16's 8-bit significand

// A float32 tensor rounded to bf16, as float32 values (what a bf16 op that computes it in float32
// and rounds once must give, bit for bit).
inline std::vector<float> rounded(const Tensor& f32) { return f32.to(DType::BF16).to_vector(); }

inline void expect_same(const std::string& what, const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int64_t diff = 0;
  for (size_t i = 0; i < got.size(); ++i) diff += std::memcmp(&got[i], &want[i], sizeof(float)) != 0;
  EXPECT_EQ(diff, 0) << what << ": " << diff << " of " << got.size() << " elements differ";
}

// out[N,OC] = x[N,IC] w^T + b in bf16 on each of `devices`, against exact arithmetic on the same
// bf16 operands: the float32 result is within e = gamma(IC + 1) (sum |x w| + |b|) of the exact y
// (harness.h), and rounding to bf16 adds at most 2^-8 |y_f32|, so |out - y| <= 2^-8 (|y| + e) + e.
inline void expect_bf16_product_within_bound(const std::vector<Device>& devices, int64_t N, int64_t IC, int64_t OC) {
  const auto bf16 = [](const Shape& shape, uint64_t seed) {
    return Tensor::from_vector(shape, random_floats(shape_numel(shape), seed)).to(DType::BF16);
  };
  const Tensor x = bf16({N, IC}, 1), w = bf16({OC, IC}, 2), b = bf16({OC}, 3);
  const std::vector<float> xv = x.to_vector(), wv = w.to_vector(), bv = b.to_vector();
  std::vector<double> want(static_cast<size_t>(N * OC)), bound(want.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) {
      double y = bv[o], abs = std::fabs(bv[o]);
      for (int64_t i = 0; i < IC; ++i) {
        y += static_cast<double>(xv[n * IC + i]) * wv[o * IC + i];
        abs += std::fabs(static_cast<double>(xv[n * IC + i]) * wv[o * IC + i]);
      }
      const double e = gamma(IC + 1) * abs;
      want[n * OC + o] = y;
      bound[n * OC + o] = kUnitBf16 * (std::fabs(y) + e) + e;
    }
  for (const Device device : devices) {
    const Tensor out = Tensor::empty({N, OC}, DType::BF16, device);
    ops::matmul_forward(out, x.to(device), w.to(device), b.to(device));
    expect_within(std::string("bf16 product on ") + device_name(device), out.to_vector(), want, bound);
  }
}

// The bf16 backward products on each of `devices`: dinp written and accumulated, dweight and dbias
// accumulated onto what they held. Each output is old + a sum of k products, computed in float32
// and rounded once to bf16 (unit roundoff 2^-8): within 2^-8 (|y| + e) + e of the exact y, with
// e = gamma(k + 1) (|old| + sum |a b|) for any summation order (split-k included, while its
// partial sums stay float32).
inline void expect_bf16_backward_products_within_bound(const std::vector<Device>& devices) {
  const int64_t N = 45, IC = 130, OC = 23;
  const auto bf16 = [](const Shape& shape, uint64_t seed) {
    return Tensor::from_vector(shape, random_floats(shape_numel(shape), seed)).to(DType::BF16);
  };
  const Tensor x = bf16({N, IC}, 1), w = bf16({OC, IC}, 2), dout = bf16({N, OC}, 3);
  const Tensor dx0 = bf16({N, IC}, 4), dw0 = bf16({OC, IC}, 5), db0 = bf16({OC}, 6);
  const std::vector<float> xv = x.to_vector(), wv = w.to_vector(), gv = dout.to_vector();
  const std::vector<float> dx0v = dx0.to_vector(), dw0v = dw0.to_vector(), db0v = db0.to_vector();
  // want/bound of old + sum_j a(j) b(j) over k terms
  struct Sums {
    std::vector<double> want, bound;
    void add(double old, int64_t k, const std::function<double(int64_t)>& term) {
      double y = old, abs = std::fabs(old);
      for (int64_t j = 0; j < k; ++j) {
        y += term(j);
        abs += std::fabs(term(j));
      }
      const double e = gamma(k + 1) * abs;
      want.push_back(y);
      bound.push_back(kUnitBf16 * (std::fabs(y) + e) + e);
    }
  };
  for (const bool accumulate : {false, true}) {
    Sums dx, dw, db;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < IC; ++i)
        dx.add(accumulate ? dx0v[n * IC + i] : 0.0, OC,
               [&](int64_t o) { return double(gv[n * OC + o]) * wv[o * IC + i]; });
    for (int64_t o = 0; o < OC; ++o)
      for (int64_t i = 0; i < IC; ++i)
        dw.add(dw0v[o * IC + i], N, [&](int64_t n) { return double(gv[n * OC + o]) * xv[n * IC + i]; });
    for (int64_t o = 0; o < OC; ++o) db.add(db0v[o], N, [&](int64_t n) { return double(gv[n * OC + o]); });
    for (const Device device : devices) {
      const Tensor dxt = dx0.to(device), dwt = dw0.to(device), dbt = db0.to(device);
      ops::matmul_backward(dxt, dwt, dbt, dout.to(device), x.to(device), w.to(device),
                           accumulate ? ops::InputGrad::Accumulate : ops::InputGrad::Write);
      const std::string on = std::string(device_name(device)) + (accumulate ? ", accumulating" : ", writing");
      expect_within("dinp on " + on, dxt.to_vector(), dx.want, dx.bound);
      expect_within("dweight on " + on, dwt.to_vector(), dw.want, dw.bound);
      expect_within("dbias on " + on, dbt.to_vector(), db.want, db.bound);
    }
  }
}

}  // namespace gptrain::test
