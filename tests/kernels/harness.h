// Helpers for the op harness: random inputs, float/double conversion, error-bound comparisons and
// a double-precision central-difference gradient check.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "util/rng.h"

namespace gptrain::test {

inline constexpr double kU32 = std::numeric_limits<float>::epsilon() / 2;  // unit roundoff 2^-24

// gamma_n = n u / (1 - n u): the classical bound on the relative error of an n-term float sum.
inline double gamma(int64_t n) { return n * kU32 / (1 - n * kU32); }

inline std::vector<float> random_floats(int64_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  const CounterRng rng(seed, 7);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = lo + (hi - lo) * rng.uniform(static_cast<uint64_t>(i));
  return v;
}

inline std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

inline std::vector<double> abs_of(const std::vector<double>& v) {
  std::vector<double> a(v.size());
  for (size_t i = 0; i < v.size(); ++i) a[i] = std::fabs(v[i]);
  return a;
}

// Asserts |got_i - want_i| <= bound_i for every element; reports the worst element.
inline void expect_within(const std::string& what, const std::vector<float>& got, const std::vector<double>& want,
                          const std::vector<double>& bound) {
  ASSERT_EQ(got.size(), want.size()) << what;
  ASSERT_EQ(bound.size(), want.size()) << what;
  size_t worst = 0;
  double worst_ratio = 0;
  int failures = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    const double ratio = bound[i] > 0 ? err / bound[i] : (err > 0 ? INFINITY : 0);
    if (!(err <= bound[i])) ++failures;
    if (!(ratio <= worst_ratio)) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  EXPECT_EQ(failures, 0) << what << ": " << failures << " of " << got.size() << " elements outside the error bound; worst ["
                         << worst << "] got " << got[worst] << " want " << want[worst] << " bound " << bound[worst];
}

// Same with one bound for all elements.
inline void expect_within(const std::string& what, const std::vector<float>& got, const std::vector<double>& want,
                          double bound) {
  expect_within(what, got, want, std::vector<double>(want.size(), bound));
}

// Central differences in double: for L(x) = <cotangent, f(x)>, compares dL/dx_i from `backward`
// with (L(x + h e_i) - L(x - h e_i)) / 2h for every element of every input listed in `check`.
// The error of a central difference is O(h^2 f''') + O(u64 |L| / h); with h = 1e-6 and values of
// order one both stay near 1e-10, so 1e-6 relative to the gradient's scale is a safe margin that a
// wrong gradient (off by a term, a sign or a factor) cannot meet.
using Inputs = std::vector<std::vector<double>>;
inline void gradcheck(const std::string& what, Inputs inputs, const std::vector<size_t>& check,
                      const std::function<std::vector<double>(const Inputs&)>& forward,
                      const std::function<Inputs(const Inputs&, const std::vector<double>&)>& backward,
                      uint64_t seed = 99) {
  const std::vector<double> out = forward(inputs);
  const std::vector<double> cot = to_double(random_floats(static_cast<int64_t>(out.size()), seed));
  const Inputs analytic = backward(inputs, cot);
  auto loss = [&](const Inputs& x) {
    const std::vector<double> y = forward(x);
    double l = 0;
    for (size_t i = 0; i < y.size(); ++i) l += cot[i] * y[i];
    return l;
  };
  const double h = 1e-6;
  for (size_t which : check) {
    // The scale comes from the finite gradients; a non-finite one (garbage a write-mode backward
    // left behind: NaN, inf) fails on its own instead of inflating the scale to infinity.
    double scale = 1e-3;
    for (double g : analytic[which])
      if (std::isfinite(g)) scale = std::max(scale, std::fabs(g));
    int failures = 0;
    std::string first;
    for (size_t i = 0; i < inputs[which].size(); ++i) {
      const double saved = inputs[which][i];
      inputs[which][i] = saved + h;
      const double lp = loss(inputs);
      inputs[which][i] = saved - h;
      const double lm = loss(inputs);
      inputs[which][i] = saved;
      const double numeric = (lp - lm) / (2 * h);
      if (!std::isfinite(analytic[which][i]) || !(std::fabs(numeric - analytic[which][i]) <= 1e-6 * scale)) {
        if (!failures) {  // a stream, not "[" + std::string: GCC 12 misreports that as -Wrestrict at -O3
          std::ostringstream os;
          os << "[" << i << "] analytic " << analytic[which][i] << " numeric " << numeric;
          first = os.str();
        }
        ++failures;
      }
    }
    EXPECT_EQ(failures, 0) << what << " input " << which << ": " << failures << " of " << inputs[which].size()
                           << " gradients disagree with central differences; first " << first;
  }
}

#ifdef GPTRAIN_TEST_CUDA
// The CUDA backend behind host staging (tests/kernels/cuda_staged.cpp); empty without a GPU,
// where every case is skipped before it runs.
std::vector<const kernels::Backend*> staged_cuda_backends();
#endif

// The backends tested against the reference: every registered float32 CPU backend (today "cpu"),
// so that a new one is covered by the same cases. Empty would make every case pass vacuously.
// Built as cuda_backend_test (GPTRAIN_TEST_CUDA), the CUDA backend on host buffers instead.
inline std::vector<const kernels::Backend*> f32_cpu_backends() {
#ifdef GPTRAIN_TEST_CUDA
  return staged_cuda_backends();
#endif
  std::vector<const kernels::Backend*> out;
  for (const kernels::Backend* b : kernels::backends())
    if (b->dtype() == DType::F32 && b->device() == Device::CPU) out.push_back(b);
  EXPECT_FALSE(out.empty()) << "no float32 CPU backend is registered";
  return out;
}

// Values a write-mode gradient buffer starts from: NaN, 1e30, -inf and -1e30 in turn. Any of them
// left in place, or added to, shows in the result.
template <class T>
std::vector<T> garbage(int64_t n) {
  const T pattern[4] = {std::numeric_limits<T>::quiet_NaN(), T(1e30), -std::numeric_limits<T>::infinity(), T(-1e30)};
  std::vector<T> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = pattern[i % 4];
  return v;
}

inline uint32_t bits_of(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

// Asserts got and want hold the same floats bit for bit (NaNs included). With zero_sign_matters
// false, +0 and -0 count as equal (used where IEEE rules alone decide a zero's sign: 0 + (-0) is
// +0, so no zero-filled buffer can reproduce both a written -0 and an untouched +0).
inline void expect_same_bits(const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
                             bool zero_sign_matters = true) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t first = 0;
  int64_t failures = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const bool same = bits_of(got[i]) == bits_of(want[i]) || (!zero_sign_matters && got[i] == 0.0f && want[i] == 0.0f);
    if (!same && !failures++) first = i;
  }
  if (failures) {
    std::ostringstream os;  // hex: the bits that differ
    os << what << ": " << failures << " of " << got.size() << " elements differ; first [" << first << "] got "
       << std::hexfloat << got[first] << " want " << want[first];
    ADD_FAILURE() << os.str();
  }
}

// Coverage bookkeeping: each case records the op it covers.
struct Coverage {
  std::set<std::string> backend, gradcheck;
  static Coverage& get() {
    static Coverage c;
    return c;
  }
};

}  // namespace gptrain::test
