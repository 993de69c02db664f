// The ops of Llama and Qwen3 (RMSNorm, the per-head query/key norms, rotary embeddings and their
// tables, SwiGLU): every float32 CPU backend against the reference in double on awkward shapes,
// with bounds derived from float32 rounding as in backend_test.cpp, the InputGrad::Write contract,
// the in-place backward where the op allows it; and each backward in double against central
// differences (harness.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

#include "kernels/backend.h"
#include "kernels/ref/ref.h"
#include "tests/kernels/harness.h"

namespace gptrain::test {
namespace {

using namespace gptrain::kernels;
using V = std::vector<double>;

std::vector<float> randf(int64_t n, uint64_t seed, float scale = 1.0f) {
  std::vector<float> v = random_floats(n, seed);
  for (float& x : v) x *= scale;
  return v;
}

V randd(int64_t n, uint64_t seed, double scale = 1.0) { return to_double(randf(n, seed, static_cast<float>(scale))); }

std::string trace(const Backend* be) { return std::string("backend ") + be->name(); }

// The written gradient must equal the accumulate-mode gradient on a -0 buffer bit for bit (see
// check_write_mode in backend_test.cpp; every op here adds a term to every element).
std::vector<float> write_vs_accumulate(const std::string& what, int64_t n,
                                       const std::function<void(InputGrad, float*)>& run) {
  std::vector<float> written = garbage<float>(n);
  run(InputGrad::Write, written.data());
  std::vector<float> accumulated(static_cast<size_t>(n), -0.0f);
  run(InputGrad::Accumulate, accumulated.data());
  expect_same_bits(what + ": write mode over garbage vs accumulate mode onto zeros", written, accumulated);
  return written;
}

// rstd = 1/sqrt(sum(x^2)/C + eps): the C-term sum errs by gamma(C) relatively, the division, the
// addition, sqrt and the reciprocal by one rounding each (sqrt halves the input's error), so
// rstd's relative error is within gamma(C + 4); out = x rstd w adds two roundings: gamma(C + 6).
double rms_forward_bound(double out_mag, int64_t C) { return gamma(C + 6) * out_mag + 1e-30; }

TEST(Backend, rmsnorm) {
  struct Case { int64_t N, C; };
  for (const Case& c : {Case{1, 1}, Case{1, 2}, Case{5, 7}, Case{9, 67}, Case{3, 768}}) {
    const RmsNormParams p{c.N, c.C, 1e-6f};
    auto x = randf(c.N * c.C, 1, 3.0f), w = randf(c.C, 2), dout = randf(c.N * c.C, 3), dinp0 = randf(c.N * c.C, 4);
    auto dw0 = randf(c.C, 5);
    auto x_d = to_double(x), w_d = to_double(w), dout_d = to_double(dout);
    V out_d(x.size()), rstd_d(c.N), dinp_d = to_double(dinp0), dw_d = to_double(dw0), dwrite_d = garbage<double>(x.size());
    ref::rmsnorm_forward(out_d.data(), rstd_d.data(), x_d.data(), w_d.data(), p);
    ref::rmsnorm_backward(dinp_d.data(), dw_d.data(), dout_d.data(), x_d.data(), w_d.data(), rstd_d.data(), p);
    V dw_unused(c.C);
    RmsNormParams pw = p;
    pw.dinp = InputGrad::Write;
    ref::rmsnorm_backward(dwrite_d.data(), dw_unused.data(), dout_d.data(), x_d.data(), w_d.data(), rstd_d.data(), pw);
    std::vector<double> fb(out_d.size()), rb(c.N), db(x.size()), wb(c.C, 0.0);
    for (size_t i = 0; i < out_d.size(); ++i) fb[i] = rms_forward_bound(std::fabs(out_d[i]), c.C);
    for (int64_t r = 0; r < c.N; ++r) rb[r] = gamma(c.C + 4) * rstd_d[r];
    // dx = s (w dy - x s^2 mean(w dy x)): the C-term dot errs by gamma(C + 2) on sum |w dy x| and
    // the rest by a few roundings (gamma(2C + 16) times the terms' sizes); ours runs on its own
    // rstd, within gamma(C + 4) of the exact one, which moves the first term by that and the s^3
    // term by three times that.
    for (int64_t r = 0; r < c.N; ++r) {
      double dot = 0;
      for (int64_t k = 0; k < c.C; ++k) dot += std::fabs(w_d[k] * dout_d[r * c.C + k] * x_d[r * c.C + k]);
      const double s = rstd_d[r];
      for (int64_t k = 0; k < c.C; ++k) {
        const size_t i = static_cast<size_t>(r * c.C + k);
        db[i] = (gamma(2 * c.C + 16) + 3 * gamma(c.C + 4)) * s *
                    (std::fabs(w_d[k] * dout_d[i]) + std::fabs(x_d[i]) * s * s * dot / c.C) +
                gamma(2) * std::fabs(dinp_d[i]);
        wb[k] += gamma(c.N + c.C + 8) * std::fabs(x_d[i] * s * dout_d[i]);
      }
    }
    for (int64_t k = 0; k < c.C; ++k) wb[k] += gamma(c.N + 2) * std::fabs(dw_d[k]);
    for (const Backend* be : f32_cpu_backends()) {
      SCOPED_TRACE(trace(be));
      std::vector<float> out(x.size()), rstd(c.N);
      be->rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), p);
      expect_within("rmsnorm forward", out, out_d, fb);
      expect_within("rmsnorm rstd", rstd, rstd_d, rb);
      // backward against the reference on the reference's statistics' float rounding
      auto dinp = dinp0, dw = dw0;
      be->rmsnorm_backward(dinp.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), p);
      expect_within("rmsnorm dinp", dinp, dinp_d, db);
      expect_within("rmsnorm dweight", dw, dw_d, wb);
      const auto written = write_vs_accumulate("rmsnorm backward", static_cast<int64_t>(x.size()), [&](InputGrad mode, float* buf) {
        RmsNormParams q = p;
        q.dinp = mode;
        be->rmsnorm_backward(buf, nullptr, dout.data(), x.data(), w.data(), rstd.data(), q);
      });
      expect_within("rmsnorm dinp (write)", written, dwrite_d, db);
      auto inplace = dout;  // in place: the gradient replaces dout
      be->rmsnorm_backward(inplace.data(), nullptr, inplace.data(), x.data(), w.data(), rstd.data(), pw);
      expect_same_bits("rmsnorm backward in place", inplace, written);
    }
  }
}

TEST(Backend, qk_norm) {
  struct Case { int64_t N, NH, NKV, HS; };
  for (const Case& c : {Case{1, 1, 1, 1}, Case{3, 4, 2, 6}, Case{5, 3, 1, 9}, Case{2, 16, 8, 128}}) {
    const QkNormParams p{c.N, c.NH, c.NKV, c.HS, 1e-6f};
    const int64_t W = p.qkv_width(), n = c.N * W, heads = c.NH + c.NKV;
    auto x = randf(n, 1, 2.0f), qw = randf(c.HS, 2), kw = randf(c.HS, 3), dout = randf(n, 4);
    auto x_d = to_double(x), qw_d = to_double(qw), kw_d = to_double(kw), dout_d = to_double(dout);
    V out_d(n), rstd_d(c.N * heads), dwrite_d = garbage<double>(n), dqw_d(c.HS), dkw_d(c.HS);
    QkNormParams pw = p;
    pw.dinp = InputGrad::Write;
    ref::qk_norm_forward(out_d.data(), rstd_d.data(), x_d.data(), qw_d.data(), kw_d.data(), p);
    ref::qk_norm_backward(dwrite_d.data(), dqw_d.data(), dkw_d.data(), dout_d.data(), x_d.data(), qw_d.data(),
                          kw_d.data(), rstd_d.data(), pw);
    std::vector<double> fb(n), db(n), qb(c.HS, 0.0), kb(c.HS, 0.0);
    for (int64_t i = 0; i < n; ++i) fb[i] = rms_forward_bound(std::fabs(out_d[i]), c.HS);
    for (int64_t t = 0; t < c.N; ++t) {
      for (int64_t h = 0; h < heads; ++h) {
        const double* w = h < c.NH ? qw_d.data() : kw_d.data();
        const double s = rstd_d[t * heads + h];
        double dot = 0;
        for (int64_t k = 0; k < c.HS; ++k) {
          const size_t i = static_cast<size_t>(t * W + h * c.HS + k);
          dot += std::fabs(w[k] * dout_d[i] * x_d[i]);
        }
        for (int64_t k = 0; k < c.HS; ++k) {
          const size_t i = static_cast<size_t>(t * W + h * c.HS + k);
          db[i] = (gamma(2 * c.HS + 16) + 3 * gamma(c.HS + 4)) * s *
                  (std::fabs(w[k] * dout_d[i]) + std::fabs(x_d[i]) * s * s * dot / c.HS);
          (h < c.NH ? qb : kb)[k] += gamma(c.N * heads + c.HS + 8) * std::fabs(x_d[i] * s * dout_d[i]);
        }
      }
      for (int64_t k = heads * c.HS; k < W; ++k) {  // value heads pass through exactly
        fb[t * W + k] = 0;
        db[t * W + k] = 0;
      }
    }
    for (const Backend* be : f32_cpu_backends()) {
      SCOPED_TRACE(trace(be));
      std::vector<float> out(n), rstd(c.N * heads);
      be->qk_norm_forward(out.data(), rstd.data(), x.data(), qw.data(), kw.data(), p);
      expect_within("qk_norm forward", out, out_d, fb);
      std::vector<float> dqw(c.HS, 0.0f), dkw(c.HS, 0.0f);
      const auto written = write_vs_accumulate("qk_norm backward", n, [&](InputGrad mode, float* buf) {
        QkNormParams q = p;
        q.dinp = mode;
        be->qk_norm_backward(buf, nullptr, nullptr, dout.data(), x.data(), qw.data(), kw.data(), rstd.data(), q);
      });
      expect_within("qk_norm dinp", written, dwrite_d, db);
      be->qk_norm_backward(nullptr, dqw.data(), dkw.data(), dout.data(), x.data(), qw.data(), kw.data(), rstd.data(), p);
      expect_within("qk_norm dq_weight", dqw, dqw_d, qb);
      expect_within("qk_norm dk_weight", dkw, dkw_d, kb);
      auto inplace = dout;
      be->qk_norm_backward(inplace.data(), nullptr, nullptr, inplace.data(), x.data(), qw.data(), kw.data(),
                           rstd.data(), pw);
      expect_same_bits("qk_norm backward in place", inplace, written);
    }
  }
}

// inv_freq as a float model holds it: theta^(-2i/HS) rounded to float.
std::vector<float> inv_freq_of(int64_t HS, double theta) {
  std::vector<float> f(static_cast<size_t>(HS / 2));
  for (int64_t i = 0; i < HS / 2; ++i) f[i] = static_cast<float>(std::pow(theta, -2.0 * i / HS));
  return f;
}

TEST(Backend, rope_table) {
  // The CPU rounds angle = inv_freq * pos to float once, as transformers does; the reference keeps
  // it exact. cos and sin then differ by at most u |angle| (the angle's rounding) plus the final
  // rounding of each.
  struct Case { int64_t N, T, HS, offset; bool explicit_positions; };
  for (const Case& c : {Case{1, 1, 2, 0, false}, Case{7, 7, 10, 3, false}, Case{12, 5, 64, 0, false},
                        Case{6, 1, 128, 0, true}}) {
    const std::vector<float> inv = inv_freq_of(c.HS, 10000.0);
    std::vector<int32_t> pos(static_cast<size_t>(c.N));
    for (int64_t n = 0; n < c.N; ++n) pos[n] = static_cast<int32_t>((n * 977 + 13) % 40960);  // up to Qwen3's context
    const int32_t* positions = c.explicit_positions ? pos.data() : nullptr;
    const RopeTableParams p{c.N, c.T, c.HS / 2, c.offset};
    const V inv_d = to_double(inv);
    V cos_d(c.N * c.HS / 2), sin_d(cos_d.size());
    ref::rope_table(cos_d.data(), sin_d.data(), inv_d.data(), positions, p);
    std::vector<double> bound(cos_d.size());
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t i = 0; i < c.HS / 2; ++i) {
        const double position = positions ? positions[n] : c.offset + n % c.T;
        bound[n * c.HS / 2 + i] = kU32 * std::fabs(inv_d[i] * position) + 2 * kU32;
      }
    for (const Backend* be : f32_cpu_backends()) {
      SCOPED_TRACE(trace(be));
      std::vector<float> cos(cos_d.size()), sin(cos_d.size());
      be->rope_table(cos.data(), sin.data(), inv.data(), positions, p);
      expect_within("rope cos", cos, cos_d, bound);
      expect_within("rope sin", sin, sin_d, bound);
    }
  }
}

TEST(Backend, rope) {
  struct Case { int64_t N, NH, NKV, HS; };
  for (const Case& c : {Case{1, 1, 1, 2}, Case{5, 4, 2, 6}, Case{3, 3, 1, 18}, Case{2, 32, 8, 64}}) {
    const RopeParams p{c.N, c.NH, c.NKV, c.HS};
    const int64_t W = p.qkv_width(), n = c.N * W, half = c.HS / 2;
    auto qkv = randf(n, 1), cos = randf(c.N * half, 2), sin = randf(c.N * half, 3);
    for (int64_t i = 0; i < c.N * half; ++i) {  // a real rotation: cos^2 + sin^2 = 1
      const float a = 3.1f * cos[i] * static_cast<float>(i + 1);
      cos[i] = std::cos(a);
      sin[i] = std::sin(a);
    }
    auto qkv_d = to_double(qkv), cos_d = to_double(cos), sin_d = to_double(sin);
    V fwd_d = qkv_d, bwd_d = qkv_d;
    ref::rope_forward(fwd_d.data(), cos_d.data(), sin_d.data(), p);
    ref::rope_backward(bwd_d.data(), cos_d.data(), sin_d.data(), p);
    // each output: two products and a sum (or difference): gamma(3) (|a c| + |b s|); value heads exact
    std::vector<double> bound(n, 0.0);
    for (int64_t t = 0; t < c.N; ++t)
      for (int64_t h = 0; h < c.NH + c.NKV; ++h)
        for (int64_t i = 0; i < half; ++i) {
          const int64_t a = t * W + h * c.HS + i, b = a + half;
          const double m = gamma(3) * (std::fabs(qkv_d[a]) + std::fabs(qkv_d[b]));
          bound[a] = bound[b] = m;
        }
    for (const Backend* be : f32_cpu_backends()) {
      SCOPED_TRACE(trace(be));
      auto fwd = qkv, bwd = qkv;
      be->rope_forward(fwd.data(), cos.data(), sin.data(), p);
      be->rope_backward(bwd.data(), cos.data(), sin.data(), p);
      expect_within("rope forward", fwd, fwd_d, bound);
      expect_within("rope backward", bwd, bwd_d, bound);
      for (int64_t t = 0; t < c.N; ++t)  // the value heads are untouched, bit for bit
        for (int64_t k = (c.NH + c.NKV) * c.HS; k < W; ++k) {
          ASSERT_EQ(fwd[t * W + k], qkv[t * W + k]);
          ASSERT_EQ(bwd[t * W + k], qkv[t * W + k]);
        }
    }
  }
}

TEST(Backend, swiglu) {
  struct Case { int64_t N, M; };
  for (const Case& c : {Case{1, 1}, Case{3, 7}, Case{4, 100}, Case{2, 1001}}) {
    const SwigluParams p{c.N, c.M};
    const int64_t n_in = c.N * 2 * c.M, n_out = c.N * c.M;
    auto inp = randf(n_in, 1, 6.0f), dout = randf(n_out, 2), dinp0 = randf(n_in, 3);  // saturated tails too
    auto inp_d = to_double(inp), dout_d = to_double(dout);
    V out_d(n_out), dinp_d = to_double(dinp0), dwrite_d = garbage<double>(n_in);
    ref::swiglu_forward(out_d.data(), inp_d.data(), p);
    ref::swiglu_backward(dinp_d.data(), inp_d.data(), dout_d.data(), p);
    SwigluParams pw = p;
    pw.dinp = InputGrad::Write;
    ref::swiglu_backward(dwrite_d.data(), inp_d.data(), dout_d.data(), pw);
    // s = 1/(1 + e), e = exp_fast(-g) within 2 ulp: s errs relatively by at most 2u (e) + 2u (the
    // sum and the division); out = g s u two more roundings: gamma(6) |g s u|. Backward:
    // du = d g s: gamma(6) |d g s|; dg = d u s (1 + g (1 - s)): 1 - s carries s's absolute error
    // (4u s), so gamma(10) |d u| s (1 + |g| (1 - s) + |g| s).
    std::vector<double> fb(n_out), db(n_in);
    for (int64_t t = 0; t < c.N; ++t)
      for (int64_t m = 0; m < c.M; ++m) {
        const double g = inp_d[t * 2 * c.M + m], u = inp_d[t * 2 * c.M + c.M + m], d = dout_d[t * c.M + m];
        const double s = 1 / (1 + std::exp(-g));
        fb[t * c.M + m] = gamma(6) * std::fabs(g * s * u) + 1e-38;
        db[t * 2 * c.M + m] = gamma(10) * std::fabs(d * u) * s * (1 + std::fabs(g)) + 1e-38;
        db[t * 2 * c.M + c.M + m] = gamma(6) * std::fabs(d * g * s) + 1e-38;
      }
    std::vector<double> dacc_b = db;
    for (int64_t i = 0; i < n_in; ++i) dacc_b[i] += gamma(1) * std::fabs(dinp_d[i]);
    for (const Backend* be : f32_cpu_backends()) {
      SCOPED_TRACE(trace(be));
      std::vector<float> out(n_out);
      be->swiglu_forward(out.data(), inp.data(), p);
      expect_within("swiglu forward", out, out_d, fb);
      auto dinp = dinp0;
      be->swiglu_backward(dinp.data(), inp.data(), dout.data(), p);
      expect_within("swiglu backward", dinp, dinp_d, dacc_b);
      const auto written = write_vs_accumulate("swiglu backward", n_in, [&](InputGrad mode, float* buf) {
        SwigluParams q = p;
        q.dinp = mode;
        be->swiglu_backward(buf, inp.data(), dout.data(), q);
      });
      expect_within("swiglu backward (write)", written, dwrite_d, db);
    }
  }
}

TEST(Gradcheck, rmsnorm) {
  for (InputGrad mode : {InputGrad::Accumulate, InputGrad::Write}) {
    const RmsNormParams p{3, 7, 1e-6f, mode};
    gradcheck(mode == InputGrad::Write ? "rmsnorm (write)" : "rmsnorm", {randd(21, 1, 3.0), randd(7, 2)}, {0, 1},
              [&](const Inputs& x) {
                V out(21), rstd(3);
                ref::rmsnorm_forward(out.data(), rstd.data(), x[0].data(), x[1].data(), p);
                return out;
              },
              [&](const Inputs& x, const V& cot) {
                V out(21), rstd(3);
                ref::rmsnorm_forward(out.data(), rstd.data(), x[0].data(), x[1].data(), p);
                Inputs g = {mode == InputGrad::Write ? garbage<double>(21) : V(21), V(7)};
                ref::rmsnorm_backward(g[0].data(), g[1].data(), cot.data(), x[0].data(), x[1].data(), rstd.data(), p);
                return g;
              });
  }
}

TEST(Gradcheck, qk_norm) {
  for (InputGrad mode : {InputGrad::Accumulate, InputGrad::Write}) {
    const QkNormParams p{2, 4, 2, 3, 1e-6f, mode};
    const int64_t n = 2 * p.qkv_width();
    gradcheck(mode == InputGrad::Write ? "qk_norm (write)" : "qk_norm", {randd(n, 1, 2.0), randd(3, 2), randd(3, 3)},
              {0, 1, 2},
              [&](const Inputs& x) {
                V out(n), rstd(2 * 6);
                ref::qk_norm_forward(out.data(), rstd.data(), x[0].data(), x[1].data(), x[2].data(), p);
                return out;
              },
              [&](const Inputs& x, const V& cot) {
                V out(n), rstd(2 * 6);
                ref::qk_norm_forward(out.data(), rstd.data(), x[0].data(), x[1].data(), x[2].data(), p);
                Inputs g = {mode == InputGrad::Write ? garbage<double>(n) : V(n), V(3), V(3)};
                ref::qk_norm_backward(g[0].data(), g[1].data(), g[2].data(), cot.data(), x[0].data(), x[1].data(),
                                      x[2].data(), rstd.data(), p);
                return g;
              });
  }
}

TEST(Gradcheck, rope) {
  // Rotation is linear in qkv: the backward is its transpose. The tables are fixed inputs.
  const RopeParams p{3, 2, 1, 4};
  const int64_t n = 3 * p.qkv_width();
  V cos(6), sin(6);
  for (int i = 0; i < 6; ++i) {
    cos[i] = std::cos(0.7 * (i + 1));
    sin[i] = std::sin(0.7 * (i + 1));
  }
  gradcheck("rope", {randd(n, 1)}, {0},
            [&](const Inputs& x) {
              V y = x[0];
              ref::rope_forward(y.data(), cos.data(), sin.data(), p);
              return y;
            },
            [&](const Inputs&, const V& cot) {
              V g = cot;
              ref::rope_backward(g.data(), cos.data(), sin.data(), p);
              return Inputs{g};
            });
}

TEST(Gradcheck, swiglu) {
  for (InputGrad mode : {InputGrad::Accumulate, InputGrad::Write}) {
    const SwigluParams p{3, 5, mode};
    gradcheck(mode == InputGrad::Write ? "swiglu (write)" : "swiglu", {randd(30, 1, 4.0)}, {0},
              [&](const Inputs& x) {
                V out(15);
                ref::swiglu_forward(out.data(), x[0].data(), p);
                return out;
              },
              [&](const Inputs& x, const V& cot) {
                Inputs g = {mode == InputGrad::Write ? garbage<double>(30) : V(30)};
                ref::swiglu_backward(g[0].data(), x[0].data(), cot.data(), p);
                return g;
              });
  }
}

}  // namespace
}  // namespace gptrain::test
