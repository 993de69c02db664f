// Every float32 CPU backend (kernels::backends(); today "cpu") run through the Backend interface
// against the scalar reference kernels run in double, on awkward shapes (1, odd, sizes that are
// not multiples of the SIMD width). Each bound is derived from float32 rounding: gamma(n) * (the
// same computation on absolute values) for sums of n products, plus the documented error of the
// vectorized exp/tanh (kernels/cpu/vec_math.h: exp within 2 ulp, tanh within 2e-7 absolute) where
// they are used. Beside the error bounds: the InputGrad::Write contract of every backward that
// takes a mode, and the bitwise invariances the decode engine relies on (a row or an element gets
// the same bits alone or batched).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <utility>

#include "kernels/backend.h"
#include "kernels/dropout_mask.h"
#include "kernels/ref/ref.h"
#include "tests/kernels/harness.h"

namespace gptrain::test {
namespace {

using namespace gptrain::kernels;

std::vector<float> randf(int64_t n, uint64_t seed) { return random_floats(n, seed); }

std::string trace(const Backend* be) { return std::string("backend ") + be->name(); }

// Sets the OpenMP thread count (every CPU kernel and BLAS share the pool) for one scope.
class ScopedThreads {
 public:
  explicit ScopedThreads(int n) : saved_(omp_get_max_threads()) {
    omp_set_num_threads(n);
    int team = 0;
#pragma omp parallel
    {
#pragma omp single
      team = omp_get_num_threads();
    }
    EXPECT_EQ(team, n) << "OpenMP did not give the requested threads";
  }
  ~ScopedThreads() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

// The InputGrad::Write contract, bit for bit: run(mode, buffer) runs a backward into `buffer`;
// written over garbage (harness.h) the gradient must equal the accumulate-mode gradient on a zero
// buffer. The zeros are -0.0f, IEEE's additive identity (x + -0 = x exactly for every x, where
// +0 + -0 = +0 would lose a written -0 such as dout * 0 of a dropped negative element), so every
// bit must agree where the backward adds a term to each element. A backward that leaves elements
// without a term (pool: every position but one) writes +0 there, which a -0 buffer keeps as -0:
// with touches_every_element false the buffer is +0 and the sign of zero is not compared.
// Returns the written gradient.
std::vector<float> check_write_mode(const std::string& what, int64_t n, bool touches_every_element,
                                    const std::function<void(InputGrad, float*)>& run) {
  std::vector<float> written = garbage<float>(n);
  run(InputGrad::Write, written.data());
  std::vector<float> accumulated(static_cast<size_t>(n), touches_every_element ? -0.0f : 0.0f);
  run(InputGrad::Accumulate, accumulated.data());
  expect_same_bits(what + ": write mode over garbage vs accumulate mode onto zeros", written, accumulated,
                   touches_every_element);
  return written;
}

TEST(Backend, registry) {
  // The harness tests every float32 CPU backend; "cpu" must be one, and the dispatch must find it.
  bool has_cpu = false;
  for (const Backend* be : f32_cpu_backends()) has_cpu |= std::string(be->name()) == "cpu";
  EXPECT_TRUE(has_cpu);
  EXPECT_STREQ(backend_for(Device::CPU, DType::F32).name(), "cpu");
  EXPECT_STREQ(backend_for(Device::CPU, DType::F64).name(), "ref");
  EXPECT_EQ(ref_backend().dtype(), DType::F64);
  // The ref backend is the templates in double, so it agrees with them bit for bit.
  const MatmulParams p{3, 5, 4};
  auto x = to_double(randf(15, 1)), w = to_double(randf(20, 2)), b = to_double(randf(4, 3));
  std::vector<double> a(12), e(12);
  ref_backend().matmul_forward(a.data(), x.data(), w.data(), b.data(), p);
  ref::matmul_forward(e.data(), x.data(), w.data(), b.data(), p);
  EXPECT_EQ(a, e);
}

TEST(Backend, embedding) {
  // P = 0: no position table (wpe null, rotary models); positions: an explicit position per row.
  struct Case { int64_t B, T, C, V, P, offset; bool positions; };
  for (const Case& c : {Case{1, 1, 1, 1, 1, 0, false}, Case{2, 7, 13, 11, 9, 2, false}, Case{3, 5, 33, 4, 5, 0, false},
                        Case{1, 1, 1, 1, 1, 0, true}, Case{2, 7, 13, 11, 9, 0, true}, Case{3, 5, 33, 4, 0, 0, false},
                        Case{2, 3, 70, 6, 0, 0, true}}) {
    const EmbeddingParams p{c.B, c.T, c.C, c.V, c.P, c.offset};
    const bool has_wpe = c.P > 0;
    std::vector<int32_t> tokens(static_cast<size_t>(c.B * c.T)), positions(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] = static_cast<int32_t>((i * 7 + 3) % c.V);
      positions[i] = static_cast<int32_t>(has_wpe ? (i * 5 + 2) % c.P : i);  // out of order, with repeats
    }
    const int32_t* pos = c.positions ? positions.data() : nullptr;
    auto wte = randf(c.V * c.C, 1), wpe = randf(std::max<int64_t>(c.P, 1) * c.C, 2), dout = randf(c.B * c.T * c.C, 3);
    auto wte_d = to_double(wte), wpe_d = to_double(wpe), dout_d = to_double(dout);
    std::vector<double> want(dout.size());
    ref::embedding_forward(want.data(), tokens.data(), pos, wte_d.data(), has_wpe ? wpe_d.data() : nullptr, p);
    auto dwte0 = randf(c.V * c.C, 4), dwpe0 = randf(std::max<int64_t>(c.P, 1) * c.C, 5);
    auto dwte_d = to_double(dwte0), dwpe_d = to_double(dwpe0);
    ref::embedding_backward(dwte_d.data(), has_wpe ? dwpe_d.data() : nullptr, dout_d.data(), tokens.data(), pos, p);
    for (const Backend* be : f32_cpu_backends()) {
      SCOPED_TRACE(trace(be));
      std::vector<float> out = garbage<float>(static_cast<int64_t>(dout.size()));
      be->embedding_forward(out.data(), tokens.data(), pos, wte.data(), has_wpe ? wpe.data() : nullptr, p);
      // one rounded add of values <= 1; without a position table a copy, exact
      expect_within("embedding forward", out, want, has_wpe ? gamma(1) * 2 : 0.0);
      // backward accumulates into existing gradients: start both from the same nonzero values
      auto dwte = dwte0, dwpe = dwpe0;
      be->embedding_backward(dwte.data(), has_wpe ? dwpe.data() : nullptr, dout.data(), tokens.data(), pos, p);
      // each row sums at most B*T terms of magnitude <= 1 onto a value <= 1
      expect_within("embedding dwte", dwte, dwte_d, gamma(c.B * c.T + 1) * (c.B * c.T + 1));
      expect_within("embedding dwpe", dwpe, dwpe_d, gamma(c.B * c.T + 1) * (c.B * c.T + 1));
    }
  }
}

TEST(Backend, dropout) {
  // n = 9000: more than one 4096-element mask chunk; p = 0: a copy; p = 1: everything dropped
  struct Case { int64_t n; float p; };
  for (const Case& c : {Case{1, 0.3f}, Case{7, 0.3f}, Case{1001, 0.3f}, Case{9000, 0.3f}, Case{1001, 0.0f},
                        Case{1001, 1.0f}}) {
    const int64_t n = c.n;
    const DropoutParams p{n, c.p, 42};
    auto x = randf(n, 1), dout = randf(n, 2), dinp0 = randf(n, 3);
    auto x_d = to_double(x), dout_d = to_double(dout), dinp_d = to_double(dinp0);
    std::vector<double> want(static_cast<size_t>(n)), dwrite_d = garbage<double>(n);
    ref::dropout_forward(want.data(), x_d.data(), p);
    ref::dropout_backward(dinp_d.data(), dout_d.data(), p);
    DropoutParams pw = p;
    pw.dinp = InputGrad::Write;
    ref::dropout_backward(dwrite_d.data(), dout_d.data(), pw);
    for (const Backend* be : f32_cpu_backends()) {
      SCOPED_TRACE(trace(be));
      std::vector<float> out(static_cast<size_t>(n));
      be->dropout_forward(out.data(), x.data(), p);
      expect_within("dropout forward", out, want, gamma(2) * 2);  // x * (1/(1-p)) rounded once or twice
      // out = x * factor(i) is one float product per element: bit for bit the reference in float
      std::vector<float> want_f(static_cast<size_t>(n)), dwrite_f(static_cast<size_t>(n));
      ref::dropout_forward(want_f.data(), x.data(), p);
      expect_same_bits("dropout forward vs the reference in float", out, want_f);
      ref::dropout_backward(dwrite_f.data(), dout.data(), pw);
      auto inplace = x;  // out may alias inp
      be->dropout_forward(inplace.data(), inplace.data(), p);
      expect_same_bits("dropout forward in place", inplace, out);
      auto dinp = dinp0;
      be->dropout_backward(dinp.data(), dout.data(), p);
      expect_within("dropout backward", dinp, dinp_d, gamma(3) * 3);
      const auto written = check_write_mode("dropout backward", n, true, [&](InputGrad mode, float* buf) {
        DropoutParams q = p;
        q.dinp = mode;
        be->dropout_backward(buf, dout.data(), q);
      });
      expect_within("dropout backward (write)", written, dwrite_d, gamma(2) * 2);  // as the forward
      expect_same_bits("dropout backward (write) vs the reference in float", written, dwrite_f);
    }
  }
  // The mask keeps a fraction 1 - p: binomial with n = 1e6 has sd sqrt(p(1-p)/n) = 4.6e-4 at p = 0.3.
  const int64_t n = 1000000;
  for (const Backend* be : f32_cpu_backends()) {
    SCOPED_TRACE(trace(be));
    std::vector<float> ones(n, 1.0f), out(n);
    be->dropout_forward(out.data(), ones.data(), DropoutParams{n, 0.3f, 7});
    const int64_t kept = std::count_if(out.begin(), out.end(), [](float v) { return v != 0.0f; });
    EXPECT_NEAR(static_cast<double>(kept) / n, 0.7, 6 * 4.6e-4);
    for (float v : out) ASSERT_TRUE(v == 0.0f || v == 1.0f / 0.7f);
  }
}

TEST(Backend, layernorm) {
  struct Case { int64_t N, C; };
  for (const Case& c : {Case{1, 1}, Case{1, 2}, Case{5, 7}, Case{9, 67}, Case{3, 768}})
    for (bool has_bias : {true, false}) {
      SCOPED_TRACE(has_bias ? "with bias" : "without bias");
      const LayerNormParams p{c.N, c.C, 1e-5f};
      auto x = randf(c.N * c.C, 1), w = randf(c.C, 2), b = randf(c.C, 3), dout = randf(c.N * c.C, 4);
      for (float& v : x) v = v * 3 + 0.5f;  // a nonzero mean, as in a residual stream
      if (!has_bias) std::fill(b.begin(), b.end(), 0.0f);  // |b| = 0 in the bound below
      std::vector<double> out_d(x.size()), mean_d(c.N), rstd_d(c.N);
      auto x_d = to_double(x), w_d = to_double(w), b_d = to_double(b), dout_d = to_double(dout);
      ref::layernorm_forward(out_d.data(), mean_d.data(), rstd_d.data(), x_d.data(), w_d.data(),
                             has_bias ? b_d.data() : nullptr, p);
      // normalised values are O(rstd * |x - mean|); mean and variance are C-term sums, so each output
      // carries a relative error of about gamma(2C + 8) on |norm * w| plus the rounding of + b.
      std::vector<double> bound(out_d.size());
      for (int64_t r = 0; r < c.N; ++r)
        for (int64_t k = 0; k < c.C; ++k) {
          const double norm = (x_d[r * c.C + k] - mean_d[r]) * rstd_d[r];
          bound[r * c.C + k] = gamma(2 * c.C + 8) * (std::fabs(norm * w_d[k]) + std::fabs(b_d[k]) +
                                                     std::fabs(w_d[k]) * (1 + std::sqrt(double(c.C))));
        }
      // backward against the reference run on the reference's own statistics
      auto dinp0 = randf(x.size(), 5), dw0 = randf(c.C, 6), db0 = randf(c.C, 7);
      auto dinp_d = to_double(dinp0), dw_d = to_double(dw0), db_d = to_double(db0);
      ref::layernorm_backward(dinp_d.data(), dw_d.data(), has_bias ? db_d.data() : nullptr, dout_d.data(), x_d.data(),
                              w_d.data(), mean_d.data(), rstd_d.data(), p);
      LayerNormParams pw = p;
      pw.dinp = InputGrad::Write;
      auto dwrite_d = garbage<double>(static_cast<int64_t>(x.size()));
      ref::layernorm_backward(dwrite_d.data(), static_cast<double*>(nullptr), static_cast<double*>(nullptr), dout_d.data(), x_d.data(), w_d.data(), mean_d.data(),
                              rstd_d.data(), pw);
      double rmax = 0;
      for (double r : rstd_d) rmax = std::max(rmax, r);
      // dinp: rstd * (three terms of size <= |w dy| * sqrt(C)), reductions over C: gamma(3C + 16). The
      // write-mode gradient has one rounding fewer (no initial value), within the same bound.
      const double bound_dinp = gamma(3 * c.C + 16) * rmax * 4 * (1 + std::sqrt(double(c.C))) * 2;
      for (const Backend* be : f32_cpu_backends()) {
        SCOPED_TRACE(trace(be));
        std::vector<float> out(x.size()), mean(c.N), rstd(c.N);
        be->layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), has_bias ? b.data() : nullptr,
                              p);
        expect_within("layernorm forward", out, out_d, bound);
        auto dinp = dinp0, dw = dw0, db = db0;
        be->layernorm_backward(dinp.data(), dw.data(), has_bias ? db.data() : nullptr, dout.data(), x.data(), w.data(),
                               mean.data(), rstd.data(), p);
        expect_within("layernorm dinp", dinp, dinp_d, bound_dinp);
        expect_within("layernorm dweight", dw, dw_d, gamma(c.N + 8) * (c.N * 2 * rmax * 4 + 1));
        expect_within("layernorm dbias", db, db_d, gamma(c.N + 1) * (c.N + 1));
        if (!has_bias) {
          EXPECT_EQ(db, db0);  // a null dbias is skipped
        }
        const auto written = check_write_mode("layernorm dinp", c.N * c.C, true, [&](InputGrad mode, float* buf) {
          LayerNormParams q = p;
          q.dinp = mode;
          be->layernorm_backward(buf, nullptr, nullptr, dout.data(), x.data(), w.data(), mean.data(), rstd.data(), q);
        });
        expect_within("layernorm dinp (write)", written, dwrite_d, bound_dinp);
        // The mode is the input gradient's alone: parameter gradients still accumulate.
        auto dinp_w = garbage<float>(c.N * c.C);
        auto dw_w = dw0, db_w = db0;
        be->layernorm_backward(dinp_w.data(), dw_w.data(), has_bias ? db_w.data() : nullptr, dout.data(), x.data(),
                               w.data(), mean.data(), rstd.data(), pw);
        expect_same_bits("layernorm dinp (write, with parameter gradients)", dinp_w, written);
        expect_same_bits("layernorm dweight (accumulated in write mode)", dw_w, dw);
        expect_same_bits("layernorm dbias (accumulated in write mode)", db_w, db);
      }
    }
}

TEST(Backend, matmul) {
  struct Case { int64_t N, IC, OC; bool bias; };
  for (const Case& c : {Case{1, 1, 1, true}, Case{1, 1, 1, false}, Case{7, 13, 17, true}, Case{33, 65, 31, false},
                        Case{5, 129, 9, true}, Case{1, 129, 67, true}, Case{1, 300, 5, false}}) {  // N 1: gemv
    const MatmulParams p{c.N, c.IC, c.OC};
    auto x = randf(c.N * c.IC, 1), w = randf(c.OC * c.IC, 2), b = randf(c.OC, 3), dout = randf(c.N * c.OC, 4);
    auto x_d = to_double(x), w_d = to_double(w), b_d = to_double(b), dout_d = to_double(dout);
    std::vector<double> out_d(c.N * c.OC), mag(out_d.size());
    ref::matmul_forward(out_d.data(), x_d.data(), w_d.data(), c.bias ? b_d.data() : nullptr, p);
    // Forward error bound: gamma(IC + 1) * (|x| @ |w|^T + |b|), the same product on absolute values.
    // It holds for any order of the IC-term sum (Higham, Numerical Stability, 3.1), so it bounds the
    // BLAS path and the batch-invariant kernel (eight-lane partial sums, then a fixed tree) alike.
    const auto ax = abs_of(x_d), aw = abs_of(w_d), ab = abs_of(b_d);
    ref::matmul_forward(mag.data(), ax.data(), aw.data(), c.bias ? ab.data() : nullptr, p);
    for (double& m : mag) m *= gamma(c.IC + 1);
    auto dx0 = randf(x.size(), 5), dw0 = randf(w.size(), 6), db0 = randf(b.size(), 7);
    auto dx_d = to_double(dx0), dw_d = to_double(dw0), db_d = to_double(db0);
    ref::matmul_backward(dx_d.data(), dw_d.data(), c.bias ? db_d.data() : nullptr, dout_d.data(), x_d.data(),
                         w_d.data(), p);
    MatmulParams pw = p;
    pw.dinp = InputGrad::Write;
    auto dxw_d = garbage<double>(static_cast<int64_t>(x.size()));
    ref::matmul_backward(dxw_d.data(), static_cast<double*>(nullptr), static_cast<double*>(nullptr), dout_d.data(), x_d.data(), w_d.data(), pw);
    // dinp: OC-term sums of |dout w| <= 1 onto a value <= 1 (written: no initial value, fewer roundings)
    const double bound_dx = gamma(c.OC + 2) * (c.OC + 1), bound_dw = gamma(c.N + 2) * (c.N + 1);
    for (const Backend* be : f32_cpu_backends()) {
      SCOPED_TRACE(trace(be));
      std::vector<float> out(c.N * c.OC);
      be->matmul_forward(out.data(), x.data(), w.data(), c.bias ? b.data() : nullptr, p);
      expect_within("matmul forward", out, out_d, mag);
      MatmulParams pi = p;
      pi.batch_invariant = true;
      std::vector<float> out_bi = garbage<float>(c.N * c.OC);
      be->matmul_forward(out_bi.data(), x.data(), w.data(), c.bias ? b.data() : nullptr, pi);
      expect_within("matmul forward (batch invariant)", out_bi, out_d, mag);
      // Backward, accumulating into nonzero gradients.
      auto dx = dx0, dw = dw0, db = db0;
      be->matmul_backward(dx.data(), dw.data(), c.bias ? db.data() : nullptr, dout.data(), x.data(), w.data(), p);
      expect_within("matmul dinp", dx, dx_d, bound_dx);
      expect_within("matmul dweight", dw, dw_d, bound_dw);
      expect_within("matmul dbias", db, db_d, gamma(c.N + 1) * (c.N + 1));
      // Null gradients are skipped: only dweight requested leaves dinp untouched.
      auto dx2 = dx;
      be->matmul_backward(nullptr, dw.data(), nullptr, dout.data(), x.data(), w.data(), p);
      EXPECT_EQ(dx2, dx);
      const auto written = check_write_mode("matmul dinp", c.N * c.IC, true, [&](InputGrad mode, float* buf) {
        MatmulParams q = p;
        q.dinp = mode;
        be->matmul_backward(buf, nullptr, nullptr, dout.data(), x.data(), w.data(), q);
      });
      expect_within("matmul dinp (write)", written, dxw_d, bound_dx);
      // The mode is the input gradient's alone: parameter gradients still accumulate.
      auto dx_w = garbage<float>(c.N * c.IC);
      auto dw_w = dw0, db_w = db0, dw_a = dw0, db_a = db0;
      be->matmul_backward(dx_w.data(), dw_w.data(), c.bias ? db_w.data() : nullptr, dout.data(), x.data(), w.data(), pw);
      be->matmul_backward(nullptr, dw_a.data(), c.bias ? db_a.data() : nullptr, dout.data(), x.data(), w.data(), p);
      expect_same_bits("matmul dinp (write, with parameter gradients)", dx_w, written);
      expect_same_bits("matmul dweight (accumulated in write mode)", dw_w, dw_a);
      expect_same_bits("matmul dbias (accumulated in write mode)", db_w, db_a);
    }
  }
}

// The decode product with f16 / bf16 weights: equal bit for bit to the batch-invariant f32 product
// on the weights converted to f32 (the same instructions on the same values), for every remainder
// of the kernel and both thread counts; and to the double reference on those weights within
// gamma_IC * sum |x w| (float32 sums of IC products).
TEST(Backend, matmul_half_weights_are_the_f32_product_of_their_values) {
  struct Shape { int64_t IC, OC; };
  for (const Backend* be : f32_cpu_backends()) {
    SCOPED_TRACE(trace(be));
    for (const DType half : {DType::F16, DType::BF16})
      for (const Shape& s : {Shape{1, 1}, Shape{13, 7}, Shape{70, 9}, Shape{37, 30}, Shape{129, 5}})
        for (int threads : {1, 2})
          for (int64_t N : {1, 2, 5}) {
            SCOPED_TRACE(std::string(dtype_name(half)) + " IC " + std::to_string(s.IC) + " OC " + std::to_string(s.OC) +
                         " N " + std::to_string(N) + " threads " + std::to_string(threads));
            const ScopedThreads scoped(threads);
            const auto w = randf(s.OC * s.IC, 2), b = randf(s.OC, 3), x = randf(N * s.IC, 4);
            std::vector<uint16_t> h(w.size());
            std::vector<float> wf(w.size());
            for (size_t i = 0; i < w.size(); ++i) {
              h[i] = half == DType::F16 ? float_to_f16(w[i]) : float_to_bf16(w[i]);
              wf[i] = half == DType::F16 ? f16_to_float(h[i]) : bf16_to_float(h[i]);
            }
            MatmulParams p{N, s.IC, s.OC};
            p.batch_invariant = true;
            std::vector<float> got = garbage<float>(N * s.OC), want = garbage<float>(N * s.OC);
            be->matmul_forward_half(got.data(), x.data(), h.data(), half, b.data(), p);
            be->matmul_forward(want.data(), x.data(), wf.data(), b.data(), p);
            expect_same_bits("half weights vs their f32 values", got, want);
            const double u = std::ldexp(1.0, -24), gamma = s.IC * u / (1 - s.IC * u);
            for (int64_t n = 0; n < N; ++n)
              for (int64_t o = 0; o < s.OC; ++o) {
                double exact = b[o], scale = std::fabs(b[o]);
                for (int64_t k = 0; k < s.IC; ++k) {
                  exact += static_cast<double>(x[n * s.IC + k]) * wf[o * s.IC + k];
                  scale += std::fabs(static_cast<double>(x[n * s.IC + k]) * wf[o * s.IC + k]);
                }
                EXPECT_LE(std::fabs(got[n * s.OC + o] - exact), (gamma + u) * scale + 1e-30) << n << "," << o;
              }
          }
  }
}

// MatmulParams.batch_invariant: every row of a batch of N gets exactly the bits it gets alone
// (N = 1) and at another position in the batch, for shapes that exercise every remainder of the
// kernel (IC not a multiple of the eight lanes, OC not a multiple of the four outputs per block,
// odd N for the unpaired last row), with one and two threads.
TEST(Backend, matmul_batch_invariant_rows) {
  struct Shape { int64_t IC, OC; };
  for (const Backend* be : f32_cpu_backends()) {
    SCOPED_TRACE(trace(be));
    for (const Shape& s : {Shape{1, 1}, Shape{13, 7}, Shape{70, 9}, Shape{37, 30}, Shape{129, 5}, Shape{9, 2}})
      for (bool bias : {true, false})
        for (int threads : {1, 2}) {
          const ScopedThreads scoped(threads);
          auto w = randf(s.OC * s.IC, 2), b = randf(s.OC, 3);
          auto forward = [&](const std::vector<float>& x, int64_t N) {
            MatmulParams p{N, s.IC, s.OC};
            p.batch_invariant = true;
            std::vector<float> out = garbage<float>(N * s.OC);
            be->matmul_forward(out.data(), x.data(), w.data(), bias ? b.data() : nullptr, p);
            return out;
          };
          for (int64_t N = 1; N <= 9; ++N) {
            SCOPED_TRACE("IC " + std::to_string(s.IC) + " OC " + std::to_string(s.OC) + " N " + std::to_string(N) +
                         (bias ? " bias" : "") + " threads " + std::to_string(threads));
            const auto x = randf(N * s.IC, 100 + static_cast<uint64_t>(N));
            const auto batch = forward(x, N);
            std::vector<float> alone, moved(batch.size()), xr(x.size());
            for (int64_t n = 0; n < N; ++n) {
              const auto row = forward(std::vector<float>(x.begin() + n * s.IC, x.begin() + (n + 1) * s.IC), 1);
              alone.insert(alone.end(), row.begin(), row.end());
              std::copy(x.begin() + n * s.IC, x.begin() + (n + 1) * s.IC, xr.begin() + (n + 1) % N * s.IC);
            }
            const auto rotated = forward(xr, N);  // row n at position (n + 1) % N
            for (int64_t n = 0; n < N; ++n)
              std::copy(rotated.begin() + (n + 1) % N * s.OC, rotated.begin() + ((n + 1) % N + 1) * s.OC,
                        moved.begin() + n * s.OC);
            expect_same_bits("rows of a batch vs each row alone", batch, alone);
            expect_same_bits("rows of a batch vs the rows moved by one position", batch, moved);
          }
        }
  }
}

// Exact softmax probabilities [B,NH,T,T] (zero above the diagonal) of causal attention, in double.
std::vector<double> exact_probabilities(const std::vector<double>& qkv, const AttentionParams& p) {
  const int64_t W = p.qkv_width(), group = p.NH / p.NKV;
  const double sc = 1.0 / std::sqrt(double(p.HS));
  std::vector<double> att(static_cast<size_t>(p.B * p.NH * p.T * p.T), 0.0);
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.NH; ++h)
      for (int64_t t = 0; t < p.T; ++t) {
        double* a = att.data() + ((b * p.NH + h) * p.T + t) * p.T;
        double maxv = -INFINITY, sum = 0;
        for (int64_t s = 0; s <= t; ++s) {
          double dot = 0;
          for (int64_t i = 0; i < p.HS; ++i)
            dot += qkv[(b * p.T + t) * W + h * p.HS + i] * qkv[(b * p.T + s) * W + (p.NH + h / group) * p.HS + i];
          a[s] = dot * sc;
          maxv = std::max(maxv, a[s]);
        }
        for (int64_t s = 0; s <= t; ++s) sum += (a[s] = std::exp(a[s] - maxv));
        for (int64_t s = 0; s <= t; ++s) a[s] /= sum;
      }
  return att;
}

// A micro-batch is a slice of its step's batch: with the element offset of its first row, its
// dropout (elementwise and on attention probabilities) is exactly that slice of the whole batch's,
// forward and backward, bit for bit.
TEST(Backend, dropout_of_a_slice_is_the_slice_of_the_whole) {
  for (const Backend* be : f32_cpu_backends()) {
    SCOPED_TRACE(trace(be));
    const int64_t rows = 3, width = 1001, n = rows * width;  // odd width: offsets not a multiple of 4
    const auto x = randf(n, 5);
    std::vector<float> whole(n), part(width), dwhole(n), dpart(width);
    be->dropout_forward(whole.data(), x.data(), DropoutParams{n, 0.3f, 9});
    DropoutParams pw{n, 0.3f, 9, InputGrad::Write};
    be->dropout_backward(dwhole.data(), x.data(), pw);
    for (int64_t r = 0; r < rows; ++r) {
      const DropoutParams pr{width, 0.3f, 9, InputGrad::Write, static_cast<uint64_t>(r * width)};
      be->dropout_forward(part.data(), x.data() + r * width, pr);
      be->dropout_backward(dpart.data(), x.data() + r * width, pr);
      EXPECT_EQ(std::memcmp(part.data(), whole.data() + r * width, width * sizeof(float)), 0) << "forward row " << r;
      EXPECT_EQ(std::memcmp(dpart.data(), dwhole.data() + r * width, width * sizeof(float)), 0) << "backward row " << r;
    }
    // attention: batch of 2 against each sequence alone with dropout_offset = b NH T T
    const AttentionParams p2{2, 17, 2, 2, 8, 0.25f, 77};
    const int64_t W = p2.qkv_width(), C = p2.NH * p2.HS, T = p2.T;
    const auto qkv = randf(2 * T * W, 6), dout = randf(2 * T * C, 7);
    std::vector<float> out2(2 * T * C), stats2(2 * p2.NH * T * 2), dqkv2(2 * T * W);
    be->attention_forward(out2.data(), stats2.data(), qkv.data(), p2);
    AttentionParams b2 = p2;
    b2.dinp = InputGrad::Write;
    be->attention_backward(dqkv2.data(), dout.data(), qkv.data(), stats2.data(), b2);
    for (int64_t b = 0; b < 2; ++b) {
      AttentionParams p1 = b2;
      p1.B = 1;
      p1.dropout_offset = static_cast<uint64_t>(b * p2.NH * T * T);
      std::vector<float> out1(T * C), stats1(p2.NH * T * 2), dqkv1(T * W);
      be->attention_forward(out1.data(), stats1.data(), qkv.data() + b * T * W, p1);
      be->attention_backward(dqkv1.data(), dout.data() + b * T * C, qkv.data() + b * T * W, stats1.data(), p1);
      EXPECT_EQ(std::memcmp(out1.data(), out2.data() + b * T * C, out1.size() * sizeof(float)), 0) << "attention b " << b;
      EXPECT_EQ(std::memcmp(dqkv1.data(), dqkv2.data() + b * T * W, dqkv1.size() * sizeof(float)), 0)
          << "attention backward b " << b;
    }
  }
}

TEST(Backend, attention) {
  // NKV < NH: grouped-query attention; the head size is a parameter of its own (not C / NH).
  struct Case { int64_t B, T, NH, NKV, HS; float p; };
  for (const Case& c : {Case{1, 1, 1, 1, 1, 0.0f}, Case{2, 5, 3, 3, 7, 0.0f}, Case{1, 17, 2, 2, 9, 0.25f},
                        Case{2, 33, 4, 4, 16, 0.1f}, Case{1, 150, 2, 2, 8, 0.1f}, Case{1, 130, 1, 1, 4, 0.0f},
                        Case{1, 1, 2, 1, 4, 0.0f}, Case{2, 9, 4, 2, 5, 0.0f}, Case{1, 70, 3, 1, 8, 0.1f},
                        Case{2, 17, 6, 2, 3, 0.25f}, Case{1, 130, 4, 2, 6, 0.0f}}) {
    SCOPED_TRACE("B " + std::to_string(c.B) + " T " + std::to_string(c.T) + " NH " + std::to_string(c.NH) + " NKV " +
                 std::to_string(c.NKV) + " HS " + std::to_string(c.HS) + " p " + std::to_string(c.p));
    const AttentionParams p{c.B, c.T, c.NH, c.NKV, c.HS, c.p, 1234};
    const int64_t C = c.NH * c.HS, W = p.qkv_width(), group = c.NH / c.NKV;
    auto qkv = randf(c.B * c.T * W, 1), dout = randf(c.B * c.T * C, 2);
    for (float& v : qkv) v *= 2;
    auto qkv_d = to_double(qkv), dout_d = to_double(dout);
    std::vector<double> out_d(c.B * c.T * C), stats_d(c.B * c.NH * c.T * 2);
    ref::attention_forward(out_d.data(), stats_d.data(), qkv_d.data(), p);
    const auto att_d = exact_probabilities(qkv_d, p);
    // Scores: HS-term dot products of values <= 2, error <= gamma(HS+1) * 4 HS * scale =: e_s.
    // Probabilities: relative error <= 2 e_s (shift) + 2 ulp (exp) + gamma(T + 2) (sum, divide).
    // Outputs: sums of T terms |p v| <= 2 with that relative error plus gamma(T + 1).
    const double e_s = gamma(c.HS + 1) * 4 * c.HS / std::sqrt(double(c.HS));
    const double rel_p = 2 * e_s + 4 * kU32 + gamma(c.T + 2);
    const double scale_drop = c.p > 0 ? 1.0 / (1.0 - c.p) : 1.0;
    // backward: the reference on its own (double) statistics, i.e. the exact probabilities
    auto dqkv0 = randf(qkv.size(), 3);
    auto dqkv_d = to_double(dqkv0);
    ref::attention_backward(dqkv_d.data(), dout_d.data(), qkv_d.data(), stats_d.data(), p);
    AttentionParams pw = p;
    pw.dinp = InputGrad::Write;
    auto dwrite_d = garbage<double>(static_cast<int64_t>(qkv.size()));
    ref::attention_backward(dwrite_d.data(), dout_d.data(), qkv_d.data(), stats_d.data(), pw);
    // dv: T-term sums of |p dy| <= 1 (x dropout scale); dscores: HS-term products (<= 2 HS) times p;
    // dq, dk: T-term sums of |dscore| * 2 * scale. A common bound: (gamma(T + HS + 4) + rel_p) * 8 HS T.
    // With grouped-query attention the dk and dv of a key/value head add up the terms of its `group`
    // query heads: group times as many terms of the same size, (gamma(group T + HS + 4) + rel_p) *
    // 8 HS T group (group = 1: the multi-head bound). Written gradients lack the initial value.
    const double bound_dqkv =
        (gamma(group * c.T + c.HS + 4) + rel_p) * 8 * c.HS * c.T * group * scale_drop + 4 * kU32;
    for (const Backend* be : f32_cpu_backends()) {
      SCOPED_TRACE(trace(be));
      std::vector<float> out(c.B * c.T * C), stats(c.B * c.NH * c.T * 2);
      be->attention_forward(out.data(), stats.data(), qkv.data(), p);
      // The row statistics (max, 1/sum) rebuild the probabilities: exp(score - max) * (1/sum) with
      // exact scores differs from the exact softmax only by the error of 1/sum (within rel_p).
      std::vector<float> rebuilt(att_d.size(), 0.0f);
      const double sc = 1.0 / std::sqrt(double(c.HS));
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t h = 0; h < c.NH; ++h)
          for (int64_t t = 0; t < c.T; ++t) {
            const float* st = stats.data() + ((b * c.NH + h) * c.T + t) * 2;
            for (int64_t s2 = 0; s2 <= t; ++s2) {
              double dot = 0;
              for (int64_t i = 0; i < c.HS; ++i)
                dot += qkv_d[(b * c.T + t) * W + h * c.HS + i] * qkv_d[(b * c.T + s2) * W + (c.NH + h / group) * c.HS + i];
              rebuilt[((b * c.NH + h) * c.T + t) * c.T + s2] = static_cast<float>(std::exp(dot * sc - st[0]) * st[1]);
            }
          }
      expect_within("attention probabilities from the row statistics", rebuilt, att_d, rel_p + kU32);
      expect_within("attention forward", out, out_d, (rel_p + gamma(c.T + 1)) * 2 * scale_drop * 1.01);
      // backward: ours recomputes its probabilities from qkv and its row statistics (relative error
      // rel_p against the reference's exact ones), into nonzero gradients
      auto dqkv = dqkv0;
      be->attention_backward(dqkv.data(), dout.data(), qkv.data(), stats.data(), p);
      expect_within("attention dqkv", dqkv, dqkv_d, bound_dqkv);
      const auto written =
          check_write_mode("attention dqkv", static_cast<int64_t>(qkv.size()), true, [&](InputGrad mode, float* buf) {
            AttentionParams q = p;
            q.dinp = mode;
            be->attention_backward(buf, dout.data(), qkv.data(), stats.data(), q);
          });
      expect_within("attention dqkv (write)", written, dwrite_d, bound_dqkv);
    }
  }
}

TEST(Backend, attention_decode) {
  // A KV-cache step must compute exactly what full causal attention computes for those rows: the
  // reference decode against the reference full attention (double), then each backend against the
  // reference decode. Several sequences share one call, each with its own caches, past length and
  // number of new rows; their rows sit anywhere in the step's qkv (first_row).
  struct Case {
    int64_t NH, NKV, HS;
    std::vector<std::pair<int64_t, int64_t>> seqs;  // (past, rows)
    bool reversed;                                  // pack the sequences' rows in reverse order
  };
  const std::vector<Case> cases = {
      {1, 1, 1, {{0, 1}}, false},  // the multi-head cases of before, B sequences of equal length
      {3, 3, 7, {{0, 5}, {0, 5}}, false},
      {2, 2, 9, {{9, 1}}, false},
      {4, 4, 16, {{30, 3}, {30, 3}}, false},
      {4, 2, 5, {{0, 1}, {5, 3}, {17, 1}, {2, 4}, {40, 2}}, false},  // grouped-query, ragged
      {3, 1, 8, {{0, 3}, {9, 1}, {70, 2}}, true},
      {6, 2, 4, {{1, 1}, {0, 1}, {7, 0}, {3, 1}, {64, 1}}, false},  // {7, 0}: no new rows this step
  };
  for (const Case& c : cases) {
    const int64_t W = (c.NH + 2 * c.NKV) * c.HS, C = c.NH * c.HS, KV = c.NKV * c.HS;
    const int64_t S = static_cast<int64_t>(c.seqs.size());
    SCOPED_TRACE("NH " + std::to_string(c.NH) + " NKV " + std::to_string(c.NKV) + " HS " + std::to_string(c.HS) +
                 " sequences " + std::to_string(S));
    const AttentionDecodeParams p{c.NH, c.NKV, c.HS, S};
    std::vector<int64_t> first_row(S), total(S), max_T(S);
    int64_t R = 0;
    for (int64_t i = 0; i < S; ++i) R += c.seqs[i].second;
    for (int64_t i = 0, at = 0; i < S; ++i) {
      const int64_t j = c.reversed ? S - 1 - i : i;
      first_row[j] = at;
      at += c.seqs[j].second;
    }
    // Per sequence: the qkv of all its positions, the reference full attention over them, and
    // caches holding the first `past` positions' keys and values (the rest garbage).
    std::vector<std::vector<double>> full(S), kc0(S), vc0(S), qkv_all(S);
    std::vector<double> step_d(R * W);
    for (int64_t i = 0; i < S; ++i) {
      const auto [past, rows] = c.seqs[i];
      total[i] = past + rows;
      max_T[i] = total[i] + 2;
      qkv_all[i] = to_double(randf(total[i] * W, 10 + static_cast<uint64_t>(i)));
      full[i].resize(total[i] * C);
      std::vector<double> stats(c.NH * total[i] * 2);
      ref::attention_forward(full[i].data(), stats.data(), qkv_all[i].data(),
                             AttentionParams{1, total[i], c.NH, c.NKV, c.HS, 0.0f, 0});
      kc0[i] = garbage<double>(max_T[i] * KV);
      vc0[i] = garbage<double>(max_T[i] * KV);
      for (int64_t t = 0; t < past; ++t)
        for (int64_t k = 0; k < KV; ++k) {
          kc0[i][t * KV + k] = qkv_all[i][t * W + C + k];
          vc0[i][t * KV + k] = qkv_all[i][t * W + C + KV + k];
        }
      std::copy(qkv_all[i].begin() + past * W, qkv_all[i].end(), step_d.begin() + first_row[i] * W);
    }
    // (a) the reference decode in double against the reference full attention
    auto kc_d = kc0, vc_d = vc0;
    std::vector<DecodeSeq> seqs_d(S);
    for (int64_t i = 0; i < S; ++i)
      seqs_d[i] = DecodeSeq{kc_d[i].data(), vc_d[i].data(), max_T[i], c.seqs[i].first, first_row[i], c.seqs[i].second};
    std::vector<double> dec = garbage<double>(R * C);
    ref::attention_decode_forward(dec.data(), step_d.data(), seqs_d.data(), p);
    for (int64_t i = 0; i < S; ++i) {
      const auto [past, rows] = c.seqs[i];
      for (int64_t t = 0; t < rows; ++t)
        for (int64_t k = 0; k < C; ++k)
          ASSERT_NEAR(dec[(first_row[i] + t) * C + k], full[i][(past + t) * C + k], 1e-12) << "sequence " << i;
      // its caches now hold the keys and values of all its positions, and nothing past them
      for (int64_t t = 0; t < max_T[i]; ++t)
        for (int64_t k = 0; k < KV; ++k) {
          const bool filled = t < total[i];
          const double want_k = filled ? qkv_all[i][t * W + C + k] : kc0[i][t * KV + k];
          const double want_v = filled ? qkv_all[i][t * W + C + KV + k] : vc0[i][t * KV + k];
          ASSERT_EQ(std::memcmp(&kc_d[i][t * KV + k], &want_k, sizeof(double)), 0) << "ref k cache " << i << " " << t;
          ASSERT_EQ(std::memcmp(&vc_d[i][t * KV + k], &want_v, sizeof(double)), 0) << "ref v cache " << i << " " << t;
        }
    }
    std::vector<float> step(step_d.begin(), step_d.end());
    auto to_float = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
    for (const Backend* be : f32_cpu_backends()) {
      SCOPED_TRACE(trace(be));
      // runs the sequences `which` in one call, each with fresh caches and its rows packed from `at`
      auto run = [&](const std::vector<int64_t>& which, const std::vector<float>& qkv,
                     const std::vector<int64_t>& rows_at, std::vector<std::vector<float>>& kc,
                     std::vector<std::vector<float>>& vc) {
        std::vector<DecodeSeq> seqs;
        int64_t rows_total = 0;
        for (size_t n = 0; n < which.size(); ++n) {
          const int64_t i = which[n];
          kc[i] = to_float(kc0[i]);
          vc[i] = to_float(vc0[i]);
          seqs.push_back(DecodeSeq{kc[i].data(), vc[i].data(), max_T[i], c.seqs[i].first, rows_at[n], c.seqs[i].second});
          rows_total += c.seqs[i].second;
        }
        std::vector<float> out = garbage<float>(rows_total * C);
        be->attention_decode_forward(out.data(), qkv.data(), seqs.data(),
                                     AttentionDecodeParams{c.NH, c.NKV, c.HS, static_cast<int64_t>(which.size())});
        return out;
      };
      std::vector<int64_t> everyone(S);
      for (int64_t i = 0; i < S; ++i) everyone[i] = i;
      std::vector<std::vector<float>> kc(S), vc(S);
      const auto out = run(everyone, step, first_row, kc, vc);
      for (int64_t i = 0; i < S; ++i) {
        const auto [past, rows] = c.seqs[i];
        // (b) against the reference decode: as in Backend.attention, score error e_s (values <= 1),
        // probabilities rel_p, outputs sums of T terms <= 1, with T this sequence's length
        const int64_t T = total[i];
        const double e_s = gamma(c.HS + 1) * c.HS / std::sqrt(double(c.HS));
        const double rel_p = 2 * e_s + 4 * kU32 + gamma(T + 2);
        expect_within("attention_decode forward, sequence " + std::to_string(i),
                      std::vector<float>(out.begin() + first_row[i] * C, out.begin() + (first_row[i] + rows) * C),
                      std::vector<double>(dec.begin() + first_row[i] * C, dec.begin() + (first_row[i] + rows) * C),
                      (rel_p + gamma(T + 1)) * 1.01);
        // (c) the caches: positions before `past` as they were, the new rows' keys and values
        // appended exactly, the positions after them untouched
        std::vector<float> want_k(kc0[i].begin(), kc0[i].end()), want_v(vc0[i].begin(), vc0[i].end());
        for (int64_t t = past; t < T; ++t)
          for (int64_t k = 0; k < KV; ++k) {
            want_k[t * KV + k] = step[(first_row[i] + t - past) * W + C + k];
            want_v[t * KV + k] = step[(first_row[i] + t - past) * W + C + KV + k];
          }
        expect_same_bits("k cache of sequence " + std::to_string(i), kc[i], want_k);
        expect_same_bits("v cache of sequence " + std::to_string(i), vc[i], want_v);
      }
      // (d) each sequence alone in its own call (its rows at the start of its own qkv) gets the
      // bits it gets in the shared call, with one thread or two for the shared one
      for (int threads : {1, 2}) {
        std::vector<float> shared;
        {
          const ScopedThreads scoped(threads);
          shared = run(everyone, step, first_row, kc, vc);
        }
        for (int64_t i = 0; i < S; ++i) {
          const int64_t rows = c.seqs[i].second;
          const std::vector<float> own(step.begin() + first_row[i] * W, step.begin() + (first_row[i] + rows) * W);
          const auto alone = run({i}, own, {0}, kc, vc);
          expect_same_bits("sequence " + std::to_string(i) + " alone vs in a call of " + std::to_string(S) +
                               " (threads " + std::to_string(threads) + ")",
                           std::vector<float>(shared.begin() + first_row[i] * C,
                                              shared.begin() + (first_row[i] + rows) * C),
                           alone);
        }
      }
    }
  }
}

TEST(Backend, gelu) {
  for (int64_t n : {1, 7, 1000}) {
    auto x = randf(n, 1), dout = randf(n, 2), dinp0 = randf(n, 3);
    for (float& v : x) v *= 6;  // cover the saturated tails
    auto x_d = to_double(x), dout_d = to_double(dout), dinp_d = to_double(dinp0);
    std::vector<double> out_d(n), dwrite_d = garbage<double>(n);
    ref::gelu_forward(out_d.data(), x_d.data(), GeluParams{n});
    ref::gelu_backward(dinp_d.data(), x_d.data(), dout_d.data(), GeluParams{n});
    ref::gelu_backward(dwrite_d.data(), x_d.data(), dout_d.data(), GeluParams{n, InputGrad::Write});
    // tanh_fast is within 2e-7 absolute; 0.5 x (1 + tanh) then errs by 0.5 |x| (2e-7 + gamma(8)).
    std::vector<double> bound(n), dbound(n);
    for (int64_t i = 0; i < n; ++i) bound[i] = 0.5 * std::fabs(x_d[i]) * (2e-7 + gamma(8)) * 2 + gamma(4) * std::fabs(out_d[i]);
    // derivative = 0.5 (1 + th) + 0.5 x (1 - th^2) k (1 + 3c x^2): th errs by 2e-7 absolute, and
    // its derivative term by 2 |th| 2e-7 times up to 1.1 |x| (1 + 0.134 x^2). The written gradient
    // lacks the initial value's rounding, within the same bound.
    for (int64_t i = 0; i < n; ++i) {
      const double ax = std::fabs(x_d[i]);
      dbound[i] = (2e-7 + gamma(16)) * (1 + ax * (1 + 0.14 * ax * ax) * 2) + gamma(2);
    }
    for (const Backend* be : f32_cpu_backends()) {
      SCOPED_TRACE(trace(be));
      std::vector<float> out(n);
      be->gelu_forward(out.data(), x.data(), GeluParams{n});
      expect_within("gelu forward", out, out_d, bound);
      auto dinp = dinp0;
      be->gelu_backward(dinp.data(), x.data(), dout.data(), GeluParams{n});
      expect_within("gelu backward", dinp, dinp_d, dbound);
      const auto written = check_write_mode("gelu backward", n, true, [&](InputGrad mode, float* buf) {
        be->gelu_backward(buf, x.data(), dout.data(), GeluParams{n, mode});
      });
      expect_within("gelu backward (write)", written, dwrite_d, dbound);
      // dinp may alias dout: the gradient replaces dout in place
      auto inplace = dout;
      be->gelu_backward(inplace.data(), x.data(), inplace.data(), GeluParams{n, InputGrad::Write});
      expect_same_bits("gelu backward in place", inplace, written);
    }
  }
}

TEST(Backend, residual) {
  for (int64_t n : {1, 7, 1000}) {
    auto a = randf(n, 1), b = randf(n, 2), dout = randf(n, 3), da0 = randf(n, 4), db0 = randf(n, 5);
    auto a_d = to_double(a), b_d = to_double(b), dout_d = to_double(dout), da_d = to_double(da0), db_d = to_double(db0);
    std::vector<double> out_d(n);
    ref::residual_forward(out_d.data(), a_d.data(), b_d.data(), ResidualParams{n});
    ref::residual_backward(da_d.data(), db_d.data(), dout_d.data(), ResidualParams{n});
    for (const Backend* be : f32_cpu_backends()) {
      SCOPED_TRACE(trace(be));
      std::vector<float> out(n);
      be->residual_forward(out.data(), a.data(), b.data(), ResidualParams{n});
      expect_within("residual forward", out, out_d, gamma(1) * 2);
      auto da = da0, db = db0;
      be->residual_backward(da.data(), db.data(), dout.data(), ResidualParams{n});
      expect_within("residual da", da, da_d, gamma(1) * 2);
      expect_within("residual db", db, db_d, gamma(1) * 2);
      auto da2 = da0;  // a null gradient is skipped
      be->residual_backward(da2.data(), nullptr, dout.data(), ResidualParams{n});
      expect_same_bits("residual da with db null", da2, da);
    }
  }
}

// The error bound of the CPU log-sum-exp of a row: lse = max + log(sum of V exps each within 2 ulp),
// error <= |lse| u + (gamma(V) + 4u) + u; doubled for |lse| and with slack for log's own ulps.
double lse_bound(double lse, int64_t V) { return 2 * std::fabs(lse) * kU32 + gamma(V) + 6 * kU32 + 8 * kU32; }
// A loss lse - x[target] adds the rounding of the subtraction (of values within 8 + |lse|).
double loss_bound(double lse, int64_t V) { return lse_bound(lse, V) + 8 * kU32 * 2; }

TEST(Backend, cross_entropy) {
  struct Case { int64_t N, V; };
  for (const Case& c : {Case{1, 1}, Case{1, 2}, Case{7, 13}, Case{5, 1003}}) {
    const CrossEntropyParams p{c.N, c.V, -100};
    auto logits = randf(c.N * c.V, 1);
    for (float& v : logits) v *= 8;
    std::vector<int32_t> targets(c.N);
    for (int64_t r = 0; r < c.N; ++r) targets[r] = (r % 3 == 2) ? -100 : static_cast<int32_t>((r * 5 + 1) % c.V);
    auto logits_d = to_double(logits);
    std::vector<double> losses_d(c.N), lse_d(c.N);
    ref::cross_entropy_forward(losses_d.data(), lse_d.data(), logits_d.data(), targets.data(), p);
    std::vector<double> bound(c.N), lbound(c.N);
    for (int64_t r = 0; r < c.N; ++r) {
      bound[r] = lse_bound(lse_d[r], c.V);
      lbound[r] = loss_bound(lse_d[r], c.V);
    }
    auto dloss = randf(c.N, 2);
    auto dloss_d = to_double(dloss);
    for (const Backend* be : f32_cpu_backends()) {
      SCOPED_TRACE(trace(be));
      std::vector<float> losses(c.N), lse(c.N);
      be->cross_entropy_forward(losses.data(), lse.data(), logits.data(), targets.data(), p);
      for (int64_t r = 0; r < c.N; ++r) {
        if (targets[r] == -100) {
          EXPECT_EQ(losses[r], 0.0f);
          EXPECT_EQ(losses_d[r], 0.0);
        }
      }
      expect_within("cross_entropy lse", lse, lse_d, bound);
      expect_within("cross_entropy losses", losses, losses_d, lbound);
      // backward: (exp(x - lse) - onehot) * d with x - lse carrying the lse error above; the
      // reference runs on its own lse, the backend on its own
      auto dlogits_bound = [&](const std::vector<double>& d) {
        std::vector<double> gb(logits.size());
        for (int64_t r = 0; r < c.N; ++r)
          for (int64_t v = 0; v < c.V; ++v) {
            const double prob = std::exp(logits_d[r * c.V + v] - lse_d[r]);
            gb[r * c.V + v] =
                (prob * (bound[r] + 16 * std::fabs(logits_d[r * c.V + v]) * kU32 + 4 * kU32) + 2 * kU32) *
                std::fabs(d[r]) * 1.01;
          }
        return gb;
      };
      std::vector<float> dlogits = garbage<float>(c.N * c.V);  // written, not accumulated
      std::vector<double> dlogits_d(logits.size());
      be->cross_entropy_backward(dlogits.data(), logits.data(), lse.data(), targets.data(), dloss.data(), p);
      ref::cross_entropy_backward(dlogits_d.data(), logits_d.data(), lse_d.data(), targets.data(), dloss_d.data(), p);
      expect_within("cross_entropy dlogits", dlogits, dlogits_d, dlogits_bound(dloss_d));
      // in place: dlogits aliasing logits gives the same result
      auto inplace = logits;
      be->cross_entropy_backward(inplace.data(), inplace.data(), lse.data(), targets.data(), dloss.data(), p);
      EXPECT_EQ(inplace, dlogits);
      // No dloss array: dloss_scale on every row, bit for bit the per-row array filled with it.
      for (float s : {1.0f, 0.25f, -1.7f, 1.0f / 3.0f}) {
        SCOPED_TRACE("dloss_scale " + std::to_string(s));
        CrossEntropyParams ps = p;
        ps.dloss_scale = s;
        const std::vector<float> filled(c.N, s);
        std::vector<float> with_array = garbage<float>(c.N * c.V), with_scale = garbage<float>(c.N * c.V);
        be->cross_entropy_backward(with_array.data(), logits.data(), lse.data(), targets.data(), filled.data(), p);
        be->cross_entropy_backward(with_scale.data(), logits.data(), lse.data(), targets.data(), nullptr, ps);
        expect_same_bits("cross_entropy dlogits, dloss_scale vs a dloss array of it", with_scale, with_array);
        std::vector<double> scaled_d(logits.size());
        ref::cross_entropy_backward(scaled_d.data(), logits_d.data(), lse_d.data(), targets.data(),
                                    static_cast<const double*>(nullptr), ps);
        expect_within("cross_entropy dlogits with dloss_scale", with_scale, scaled_d,
                      dlogits_bound(std::vector<double>(c.N, s)));
        auto inplace_s = logits;
        be->cross_entropy_backward(inplace_s.data(), inplace_s.data(), lse.data(), targets.data(), nullptr, ps);
        expect_same_bits("cross_entropy dlogits with dloss_scale, in place", inplace_s, with_scale);
      }
    }
  }
}

TEST(Backend, cross_entropy_loss_total) {
  struct Case { int64_t N, V; bool all_ignored; };
  for (const Case& c : {Case{1, 1, false}, Case{7, 13, false}, Case{5, 1003, false}, Case{4, 3, true}}) {
    const CrossEntropyParams p{c.N, c.V, -100};
    auto logits = randf(c.N * c.V, 1);
    for (float& v : logits) v *= 8;
    std::vector<int32_t> targets(c.N);
    int64_t counted = 0;
    for (int64_t r = 0; r < c.N; ++r) {
      targets[r] = (c.all_ignored || r % 3 == 2) ? -100 : static_cast<int32_t>((r * 5 + 1) % c.V);
      counted += targets[r] != -100;
    }
    auto logits_d = to_double(logits);
    std::vector<double> losses_d(c.N), lse_d(c.N);
    ref::cross_entropy_forward(losses_d.data(), lse_d.data(), logits_d.data(), targets.data(), p);
    const LossTotal want = ref::loss_total(losses_d.data(), targets.data(), p);
    EXPECT_EQ(want.counted, counted);
    // |sum - exact| <= the losses' own bounds summed, plus the double rounding of the sum (row order,
    // N terms: gamma_53(N) * sum |loss|)
    double sum_bound = 0, sum_abs = 0;
    for (int64_t r = 0; r < c.N; ++r)
      if (targets[r] != -100) {
        sum_bound += loss_bound(lse_d[r], c.V);
        sum_abs += std::fabs(losses_d[r]) + loss_bound(lse_d[r], c.V);
      }
    const double u53 = std::numeric_limits<double>::epsilon() / 2;
    sum_bound += c.N * u53 / (1 - c.N * u53) * sum_abs;
    for (const Backend* be : f32_cpu_backends()) {
      SCOPED_TRACE(trace(be));
      std::vector<float> losses(c.N), lse(c.N);
      be->cross_entropy_forward(losses.data(), lse.data(), logits.data(), targets.data(), p);
      const LossTotal got = be->loss_total(losses.data(), targets.data(), p);
      EXPECT_EQ(got.counted, counted);
      EXPECT_NEAR(got.sum, want.sum, sum_bound);
      // The sum runs in double in row order: exactly the reference's sum of the same float losses.
      const auto losses_f = to_double(losses);
      EXPECT_EQ(got.sum, ref::loss_total(losses_f.data(), targets.data(), p).sum);
      if (c.all_ignored) {
        EXPECT_EQ(got.sum, 0.0);
      }
      // No losses: the count alone.
      const LossTotal count_only = be->loss_total(nullptr, targets.data(), p);
      EXPECT_EQ(count_only.counted, counted);
      EXPECT_EQ(count_only.sum, 0.0);
    }
  }
}

TEST(Backend, pool) {
  for (PoolMode mode : {PoolMode::Last, PoolMode::First, PoolMode::Mean}) {
    struct Case { int64_t B, T, C; };
    for (const Case& c : {Case{1, 1, 1}, Case{3, 7, 5}, Case{2, 120, 33}}) {
      const PoolParams p{c.B, c.T, c.C, mode};
      auto x = randf(c.B * c.T * c.C, 1), dout = randf(c.B * c.C, 2), dinp0 = randf(x.size(), 3);
      auto x_d = to_double(x), dout_d = to_double(dout), dinp_d = to_double(dinp0);
      std::vector<double> out_d(c.B * c.C), dwrite_d = garbage<double>(static_cast<int64_t>(x.size()));
      ref::pool_forward(out_d.data(), x_d.data(), p);
      ref::pool_backward(dinp_d.data(), dout_d.data(), p);
      PoolParams pw = p;
      pw.dinp = InputGrad::Write;
      ref::pool_backward(dwrite_d.data(), dout_d.data(), pw);
      for (const Backend* be : f32_cpu_backends()) {
        SCOPED_TRACE(trace(be));
        std::vector<float> out(c.B * c.C);
        be->pool_forward(out.data(), x.data(), p);
        expect_within("pool forward", out, out_d, gamma(c.T + 1));
        auto dinp = dinp0;
        be->pool_backward(dinp.data(), dout.data(), p);
        expect_within("pool backward", dinp, dinp_d, gamma(3) * 2);
        const auto written = check_write_mode("pool backward", static_cast<int64_t>(x.size()), false,
                                              [&](InputGrad m, float* buf) {
                                                PoolParams q = p;
                                                q.dinp = m;
                                                be->pool_backward(buf, dout.data(), q);
                                              });
        // written: a copy of dout (last, first: exact) or dout * fl(1/T) (mean: two roundings of |dout| <= 1)
        expect_within("pool backward (write)", written, dwrite_d, gamma(2));
      }
    }
  }
}

TEST(Backend, gather_rows) {
  // A copy: exact. Rows out of order and repeated, as the last position of each sequence.
  struct Case { int64_t R, N, C; };
  for (const Case& c : {Case{1, 1, 1}, Case{3, 7, 5}, Case{6, 4, 33}, Case{1, 9, 770}}) {
    std::vector<int32_t> rows(c.R);
    for (int64_t r = 0; r < c.R; ++r) rows[r] = static_cast<int32_t>((r * 5 + 3) % c.N);
    const GatherRowsParams p{c.R, c.N, c.C};
    auto x = randf(c.N * c.C, 1);
    auto x_d = to_double(x);
    std::vector<double> want(c.R * c.C);
    ref::gather_rows_forward(want.data(), x_d.data(), rows.data(), p);
    for (const Backend* be : f32_cpu_backends()) {
      SCOPED_TRACE(trace(be));
      std::vector<float> out = garbage<float>(c.R * c.C);
      be->gather_rows_forward(out.data(), x.data(), rows.data(), p);
      expect_same_bits("gather_rows", out, std::vector<float>(want.begin(), want.end()));
    }
  }
}

TEST(Backend, adamw) {
  // Same float32 formula in both: the CPU kernel must agree with the reference run in float to
  // within the rounding of the vectorized sqrt/divide (none: both are IEEE-exact), i.e. bitwise,
  // and with the double reference within the error of ~12 rounded operations per step.
  const int64_t n = 1001;
  for (const Backend* be : f32_cpu_backends()) {
    SCOPED_TRACE(trace(be));
    auto param = randf(n, 1);
    std::vector<float> m(n, 0.0f), v(n, 0.0f);
    auto param_f = param, m_f = m, v_f = v;
    auto param_d = to_double(param), m_d = to_double(m), v_d = to_double(v);
    for (int64_t step = 1; step <= 3; ++step) {
      const AdamWParams p{n, 1e-3, 0.9, 0.999, 1e-8, 0.1, step};
      auto g = randf(n, 10 + step);
      auto g_d = to_double(g);
      be->adamw_step(param.data(), g.data(), m.data(), v.data(), p);
      ref::adamw_step(param_f.data(), g.data(), m_f.data(), v_f.data(), p);
      ref::adamw_step(param_d.data(), g_d.data(), m_d.data(), v_d.data(), p);
    }
    EXPECT_EQ(param, param_f);
    EXPECT_EQ(m, m_f);
    EXPECT_EQ(v, v_f);
    // Each step moves a parameter by at most ~lr * |m/denom| <= 3.2 lr; the update's relative error
    // is about 12 u, and the decayed parameter (<= 1) adds 2 u per step.
    expect_within("adamw vs double", param, param_d, 3 * (3.2e-3 * 12 * kU32 + 2 * kU32) * 2);
  }
}

TEST(Backend, sum_squares_and_scale) {
  for (const Backend* be : f32_cpu_backends()) {
    SCOPED_TRACE(trace(be));
    for (int64_t n : {1, 7, 200001}) {
      auto x = randf(n, 3);
      double want = 0;
      for (float v : x) want += double(v) * v;
      EXPECT_NEAR(be->sum_squares(x.data(), n), want, want * 1e-12 + 1e-300);
      auto y = x;
      be->scale(y.data(), 0.5f, n);
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], x[i] * 0.5f);
    }
  }
}

// The decode engine promises a sequence the same numbers alone or batched with others, so an
// elementwise op's result for an element must not depend on where the element sits in the buffer
// or on the buffer's length (vectorized bodies, peeled heads and scalar tails, thread splits must
// all compute the same bits). Each element of 100 random tuples is computed alone (n = 1) once,
// then inside buffers of every length 1..100 at every offset (the tuples rotated through the
// buffer), and in one long buffer across dropout's 4096-element mask chunks, with one and two
// OpenMP threads; every result must match bit for bit. Dropout's mask is by design a function of
// the element's index, so there "alone" is the element at that index of a 100-element buffer on
// one thread, and the check is that nothing else (length, threads) changes its bits.
TEST(Invariance, elementwise_ops_ignore_position_and_length) {
  using Arrays = std::vector<std::vector<float>>;
  struct Op {
    std::string name;
    int arrays;        // random arrays per element; with `accumulates` the last is the output's prior value
    bool accumulates;  // the output buffer's prior contents are an input
    bool index_keyed;  // dropout
    std::function<void(const Backend&, int64_t n, const Arrays& in, float* out)> run;
  };
  const DropoutParams drop{0, 0.3f, 5};
  const std::vector<Op> ops = {
      {"gelu forward", 1, false, false,
       [](const Backend& be, int64_t n, const Arrays& in, float* out) { be.gelu_forward(out, in[0].data(), GeluParams{n}); }},
      {"gelu backward (write)", 2, false, false,
       [](const Backend& be, int64_t n, const Arrays& in, float* out) {
         be.gelu_backward(out, in[0].data(), in[1].data(), GeluParams{n, InputGrad::Write});
       }},
      {"gelu backward (accumulate)", 3, true, false,
       [](const Backend& be, int64_t n, const Arrays& in, float* out) {
         be.gelu_backward(out, in[0].data(), in[1].data(), GeluParams{n, InputGrad::Accumulate});
       }},
      {"residual forward", 2, false, false,
       [](const Backend& be, int64_t n, const Arrays& in, float* out) {
         be.residual_forward(out, in[0].data(), in[1].data(), ResidualParams{n});
       }},
      {"residual backward (da)", 2, true, false,
       [](const Backend& be, int64_t n, const Arrays& in, float* out) {
         be.residual_backward(out, nullptr, in[0].data(), ResidualParams{n});
       }},
      {"residual backward (db)", 2, true, false,
       [](const Backend& be, int64_t n, const Arrays& in, float* out) {
         be.residual_backward(nullptr, out, in[0].data(), ResidualParams{n});
       }},
      {"dropout forward", 1, false, true,
       [drop](const Backend& be, int64_t n, const Arrays& in, float* out) {
         DropoutParams q = drop;
         q.n = n;
         be.dropout_forward(out, in[0].data(), q);
       }},
      {"dropout backward (write)", 1, false, true,
       [drop](const Backend& be, int64_t n, const Arrays& in, float* out) {
         DropoutParams q = drop;
         q.n = n;
         q.dinp = InputGrad::Write;
         be.dropout_backward(out, in[0].data(), q);
       }},
      {"dropout backward (accumulate)", 2, true, true,
       [drop](const Backend& be, int64_t n, const Arrays& in, float* out) {
         DropoutParams q = drop;
         q.n = n;
         be.dropout_backward(out, in[0].data(), q);
       }},
  };
  constexpr int64_t M = 100, kLong = 2 * 4096 + 37;
  for (const Backend* be : f32_cpu_backends()) {
    SCOPED_TRACE(trace(be));
    for (const Op& op : ops) {
      Arrays tuples(static_cast<size_t>(op.arrays));
      for (int a = 0; a < op.arrays; ++a) {
        tuples[a] = randf(M, 50 + static_cast<uint64_t>(a));
        if (a == 0) for (float& v : tuples[a]) v *= 6;  // gelu's saturated tails
      }
      // the tuples rotated by r through a buffer of n elements: element i holds tuple (i + r) % M
      auto compute = [&](int64_t n, int64_t r) {
        Arrays in(tuples.size(), std::vector<float>(static_cast<size_t>(n)));
        for (size_t a = 0; a < tuples.size(); ++a)
          for (int64_t i = 0; i < n; ++i) in[a][i] = tuples[a][(i + r) % M];
        std::vector<float> out = op.accumulates ? in.back() : garbage<float>(n);
        op.run(*be, n, in, out.data());
        return out;
      };
      std::vector<float> alone(M);                 // tuple j computed alone
      std::vector<std::vector<float>> keyed(M);    // dropout: rotation r at n = M
      std::vector<float> keyed_long;
      {
        const ScopedThreads scoped(1);
        for (int64_t j = 0; j < M; ++j) {
          if (op.index_keyed) keyed[j] = compute(M, j);
          else alone[j] = compute(1, j)[0];
        }
        if (op.index_keyed) keyed_long = compute(kLong, 0);
      }
      for (int threads : {1, 2}) {
        const ScopedThreads scoped(threads);
        int64_t failures = 0;
        std::string first;
        auto check = [&](int64_t n, int64_t r, int64_t i, float got, float want) {
          if (bits_of(got) == bits_of(want)) return;
          if (!failures++) {
            std::ostringstream os;
            os << "n " << n << " offset " << i << " (tuple " << (i + r) % M << "): got " << std::hexfloat << got
               << " alone " << want;
            first = os.str();
          }
        };
        for (int64_t n = 1; n <= M; ++n)
          for (int64_t r = 0; r < M; ++r) {
            const auto out = compute(n, r);
            for (int64_t i = 0; i < n; ++i) check(n, r, i, out[i], op.index_keyed ? keyed[r][i] : alone[(i + r) % M]);
          }
        if (op.index_keyed)  // the long buffer's head is the 100-element buffer
          for (int64_t i = 0; i < M; ++i) check(kLong, 0, i, keyed_long[i], keyed[0][i]);
        const auto out = compute(kLong, 0);
        for (int64_t i = 0; i < kLong; ++i) check(kLong, 0, i, out[i], op.index_keyed ? keyed_long[i] : alone[i % M]);
        EXPECT_EQ(failures, 0) << op.name << " with " << threads << " thread(s): " << failures
                               << " elements differ from the element computed alone; first at " << first;
      }
    }
  }
}

}  // namespace
}  // namespace gptrain::test
