// The bound check of tests/kernels/cuda_flash_attention_test.cpp: causal grouped-query attention
// on bf16 tensor cores (kernels/cuda/flash_attention.cu) against exact arithmetic (double) on its
// bf16 operands, every output element within a bound derived from the kernels' roundings.
//
// The roundings, with u = 2^-24 (float32, to nearest), ut = 2^-23 (a tensor core's float32
// accumulation, allowed to truncate), ue = 2^-22 (expf, 2 ulp) and ub = 2^-8 (a bf16 store):
// - a score: a product of HS terms on the tensor cores, then times the scale: within
//   e = scale gt(HS) sum |q k| (1 + u) + u |s| of the exact s, where gt(n), for a chain of
//   16-term mma steps over n terms, is gamma(17 (ceil(n/16) + 1) + 2 ceil(n/64)) with ut;
//   per row E = the largest e;
// - a weight exp(x - m_j) (x the computed score, m_j the running maximum, one of the computed
//   scores): the exponent rounded (relative u |x - m_j|, |x - m_j| <= Z = range of the row's
//   exact scores + 2E), expf's ue, and each later tile's rescale by exp(m_j - m_j+1), the
//   accumulator's and the sum's own products (u each): R = 1.01 (tiles + 1) (ue + 1.01 Z u + u);
//   against exp(s - m) the weight is off by at most 1.01 E besides (the common factor
//   exp(m - m_final) cancels between the output's sum and the normaliser);
// - the output's weights are multiplied by the dropout factor (u), rounded to bf16 (ub) and
//   summed on the tensor cores (gt(T)); the normaliser l sums the unrounded weights in float32
//   (gamma(T + 8 tiles) with ut). With each output weight within eps and each normaliser weight
//   within lam of exact, o = sum w f v / sum w is within (eps + lam) / (1 - lam) sum P f |v|;
//   1 / l and its product add 2u of |o|; the bf16 store ub (|o| + e) + e.
// - the backward's probabilities P = expf(x - m) / l from the host's exact statistics rounded to
//   float32 are within Pi = 1.02 (1.01 E + 1.01 u |m| + ue + 1.01 (Z + u |m|) u + 2u) of exact,
//   relatively; dP = dO . v within gt(HS) sum |dO v|; D = sum P f dP (float32 sums over the
//   lanes' tiles and a warp's tree: gamma(2 tiles + 6)) within e_D from those; dS = scale P (dP f
//   - D) rounded to bf16; dq, dk, dv sum their terms on the tensor cores (gt over the chain) onto
//   the old gradient (u) and store to bf16 (ub). Each bound sums the first-order terms; the factors
//   1.01 and the products kept (1 + Pi)(1 + theta) cover the second-order ones.
// Weights below float32's normal range lose their relative accuracy; they are below 2^-126 and
// each product with a value below 2^2, over fewer than 2^16 terms: an absolute 2^-100 covers them.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/dropout_mask.h"
#include "kernels/params.h"
#include "tensor/dtype.h"
#include "tests/kernels/harness.h"

namespace gptrain::test::flash {

constexpr double kU = 0x1.0p-24, kUt = 0x1.0p-23, kUe = 0x1.0p-22, kUb = 0x1.0p-8, kTiny = 0x1.0p-100;

inline double gamma_t(double n) { return n * kUt / (1 - n * kUt); }
// A tensor-core chain over n terms: 16-term mma steps, each onto the accumulator, and the
// accumulator's reloads between tiles.
inline double chain(int64_t n) { return gamma_t(17.0 * (static_cast<double>((n + 15) / 16) + 1) + 2.0 * ((n + 63) / 64)); }

// Host values rounded to bf16: the operands' bits and their values.
struct Operand {
  std::vector<uint16_t> bits;
  std::vector<float> host;
};
inline Operand operand(int64_t n, uint64_t seed, float lo, float hi) {
  Operand o;
  for (const float x : random_floats(n, seed, lo, hi)) {
    o.bits.push_back(float_to_bf16(x));
    o.host.push_back(bf16_to_float(o.bits.back()));
  }
  return o;
}
inline std::vector<float> widened(const std::vector<uint16_t>& bits) {
  std::vector<float> v(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) v[i] = bf16_to_float(bits[i]);
  return v;
}

// What one row (b, h, t) of the exact forward holds, and its derived error terms.
struct RowForward {
  double m = 0, l = 0, E = 0, Z = 0, Pi = 0;
  std::vector<double> P, f;  // over s <= t
};

// Runs the attention under test on host copies of its operands (bf16 bits) and gives back what it
// wrote: the forward's output and stats, the backward's dqkv (holding the old gradient on entry).
struct FlashAttentionRun {
  std::function<void(const std::vector<uint16_t>& qkv, std::vector<uint16_t>& out, std::vector<float>& stats)>
      forward;
  std::function<void(const std::vector<uint16_t>& qkv, const std::vector<uint16_t>& dout,
                     const std::vector<float>& stats, std::vector<uint16_t>& dqkv)>
      backward;
};

inline void expect_flash_attention_within_bounds(const kernels::AttentionParams& p, const FlashAttentionRun& run) {
  const int64_t B = p.B, T = p.T, NH = p.NH, NKV = p.NKV, HS = p.HS, W = p.qkv_width(), group = NH / NKV;
  const std::string name = "HS " + std::to_string(HS) + ", T " + std::to_string(T) + ", dropout " +
                           std::to_string(p.dropout_p) +
                           (p.dinp == kernels::InputGrad::Write ? ", writing" : ", accumulating");
  const Operand qkv = operand(B * T * W, 71, -1.5f, 1.5f), dout = operand(B * T * NH * HS, 72, -1.0f, 1.0f),
                dqkv0 = operand(B * T * W, 73, -0.5f, 0.5f);
  const float scale_f = 1.0f / std::sqrt(static_cast<float>(HS));
  const double scale = scale_f;
  const kernels::DropoutMask mask(p.seed, p.dropout_p, p.dropout_offset);
  const auto& x = qkv.host;
  const auto q = [&](int64_t b, int64_t t, int64_t h, int64_t c) { return double(x[(b * T + t) * W + h * HS + c]); };
  const auto k = [&](int64_t b, int64_t s, int64_t kh, int64_t c) {
    return double(x[(b * T + s) * W + (NH + kh) * HS + c]);
  };
  const auto v = [&](int64_t b, int64_t s, int64_t kh, int64_t c) {
    return double(x[(b * T + s) * W + (NH + NKV + kh) * HS + c]);
  };
  const auto dy = [&](int64_t b, int64_t t, int64_t h, int64_t c) {
    return double(dout.host[(b * T + t) * NH * HS + h * HS + c]);
  };
  const double g_hs = chain(HS);

  // The exact forward, its bounds, and the statistics the backward gets (the exact ones in float32).
  std::vector<RowForward> rows(static_cast<size_t>(B * NH * T));
  std::vector<double> out_want(static_cast<size_t>(B * T * NH * HS)), out_bound(out_want.size());
  std::vector<double> m_want(rows.size()), m_bound(rows.size()), inv_want(rows.size()), inv_bound(rows.size());
  std::vector<float> stats_host(rows.size() * 2);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t row = (b * NH + h) * T + t, kh = h / group, nt = t / 64 + 1;
        RowForward& r = rows[static_cast<size_t>(row)];
        std::vector<double> s(static_cast<size_t>(t + 1));
        r.m = -INFINITY;
        for (int64_t j = 0; j <= t; ++j) {
          double dot = 0, abs = 0;
          for (int64_t c = 0; c < HS; ++c) {
            dot += q(b, t, h, c) * k(b, j, kh, c);
            abs += std::fabs(q(b, t, h, c) * k(b, j, kh, c));
          }
          s[j] = scale * dot;
          r.E = std::max(r.E, scale * g_hs * abs * (1 + kU) + kU * std::fabs(s[j]));
          r.m = std::max(r.m, s[j]);
        }
        double lo = INFINITY;
        for (int64_t j = 0; j <= t; ++j) {
          r.l += std::exp(s[j] - r.m);
          lo = std::min(lo, s[j]);
        }
        r.Z = r.m - lo + 2 * r.E;
        r.P.resize(s.size());
        r.f.resize(s.size());
        for (int64_t j = 0; j <= t; ++j) {
          r.P[j] = std::exp(s[j] - r.m) / r.l;
          r.f[j] = p.dropout_p > 0 ? mask.factor(static_cast<uint64_t>(row * T + j)) : 1.0;
        }
        const double R = 1.01 * static_cast<double>(nt + 1) * (kUe + 1.01 * r.Z * kU + kU);
        const double eps = 1.01 * (1.01 * r.E + R + kU + kUb + chain(t + 64));
        const double lam = 1.01 * (1.01 * r.E + R + gamma_t(static_cast<double>(t + 1 + 8 * nt)));
        for (int64_t c = 0; c < HS; ++c) {
          double o = 0, a = 0;
          for (int64_t j = 0; j <= t; ++j) {
            o += r.P[j] * r.f[j] * v(b, j, kh, c);
            a += r.P[j] * r.f[j] * std::fabs(v(b, j, kh, c));
          }
          const double E_o = (eps + lam) / (1 - lam) * a;
          const double e = E_o + 2.01 * kU * (std::fabs(o) + E_o) + kTiny;
          const size_t at = static_cast<size_t>((b * T + t) * NH * HS + h * HS + c);
          out_want[at] = o;
          out_bound[at] = kUb * (std::fabs(o) + e) + e;
        }
        // 1 / l: the computed normaliser is exp(m - m_hat) l (1 + kappa) with |kappa| <= 1.01 E + lam, and
        // |m_hat - m| <= E; the reciprocal rounds once.
        const double kappa = 1.01 * r.E + lam, rel = std::exp(r.E) * (1 + kappa) * (1 + kU) - 1;
        m_want[row] = r.m;
        m_bound[row] = r.E;
        inv_want[row] = 1 / r.l;
        inv_bound[row] = rel / (1 - rel) / r.l;
        stats_host[row * 2] = static_cast<float>(r.m);
        stats_host[row * 2 + 1] = static_cast<float>(1 / r.l);
        r.Pi = 1.02 * (1.01 * r.E + 1.01 * kU * std::fabs(r.m) + kUe + 1.01 * (r.Z + kU * std::fabs(r.m)) * kU + 2 * kU);
      }

  std::vector<uint16_t> out_bits(out_want.size());
  std::vector<float> st(rows.size() * 2);
  run.forward(qkv.bits, out_bits, st);
  expect_within("flash forward output (" + name + ")", widened(out_bits), out_want, out_bound);
  std::vector<float> m_got(rows.size()), inv_got(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    m_got[i] = st[2 * i];
    inv_got[i] = st[2 * i + 1];
  }
  expect_within("flash forward maxima (" + name + ")", m_got, m_want, m_bound);
  expect_within("flash forward 1/l (" + name + ")", inv_got, inv_want, inv_bound);

  // The exact backward and its bounds. Per (b, h, t, s): dS and its bound, P f and its bound.
  const bool write = p.dinp == kernels::InputGrad::Write;
  const size_t TT = static_cast<size_t>(T * T);
  std::vector<double> dS(static_cast<size_t>(B * NH) * TT, 0.0), e_dS(dS.size(), 0.0);
  const double theta = kUb + 2.02 * kU;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t row = (b * NH + h) * T + t, kh = h / group, nt = t / 64 + 1;
        const RowForward& r = rows[static_cast<size_t>(row)];
        std::vector<double> dP(static_cast<size_t>(t + 1)), delta(dP.size());
        double D = 0, e_D = 0, mag = 0;
        for (int64_t j = 0; j <= t; ++j) {
          double dot = 0, abs = 0;
          for (int64_t c = 0; c < HS; ++c) {
            dot += dy(b, t, h, c) * v(b, j, kh, c);
            abs += std::fabs(dy(b, t, h, c) * v(b, j, kh, c));
          }
          dP[j] = dot;
          delta[j] = g_hs * abs;
          const double Pf = r.P[j] * r.f[j];
          D += Pf * dP[j];
          e_D += Pf * (r.Pi * std::fabs(dP[j]) + (1 + r.Pi) * delta[j] +
                       2.01 * kU * (1 + r.Pi) * (std::fabs(dP[j]) + delta[j]));
          mag += (1 + r.Pi) * Pf * (std::fabs(dP[j]) + delta[j]);
        }
        e_D += gamma_t(static_cast<double>(2 * nt + 6)) * mag * 1.01;
        for (int64_t j = 0; j <= t; ++j) {
          const double G = dP[j] * r.f[j] - D;
          const double eG = (r.f[j] * delta[j] + e_D) * (1 + kU) * (1 + kU) +
                            2.01 * kU * (std::fabs(dP[j] * r.f[j]) + std::fabs(D));
          const size_t at = static_cast<size_t>(b * NH + h) * TT + static_cast<size_t>(t * T + j);
          dS[at] = scale * r.P[j] * G;
          e_dS[at] = scale * r.P[j] * (std::fabs(G) * (r.Pi + theta + r.Pi * theta) + eG * (1 + r.Pi) * (1 + theta));
        }
      }
  // A sum old + sum of terms y_i (each within e_i of exact) on a tensor-core chain of n terms,
  // onto `old` in float32 and stored to bf16.
  struct Sum {
    double y = 0, e = 0, mag = 0;
    void add(double term, double err) {
      y += term;
      e += err;
      mag += std::fabs(term) + err;
    }
    double bound(double old, int64_t n) const {
      const double total = e + chain(n) * mag + kU * (std::fabs(old) + mag * (1 + chain(n))) + kTiny;
      return kUb * (std::fabs(old + y) + total) + total;
    }
  };
  std::vector<double> d_want(dqkv0.host.begin(), dqkv0.host.end()), d_bound(d_want.size(), 0.0);
  if (write) std::fill(d_want.begin(), d_want.end(), 0.0);
  const auto old_of = [&](size_t at) { return write ? 0.0 : double(dqkv0.host[at]); };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < HS; ++c) {
          const int64_t kh = h / group;
          Sum sum;
          for (int64_t j = 0; j <= t; ++j) {
            const size_t at = static_cast<size_t>(b * NH + h) * TT + static_cast<size_t>(t * T + j);
            sum.add(dS[at] * k(b, j, kh, c), e_dS[at] * std::fabs(k(b, j, kh, c)));
          }
          const size_t at = static_cast<size_t>((b * T + t) * W + h * HS + c);
          d_want[at] = old_of(at) + sum.y;
          d_bound[at] = sum.bound(old_of(at), t + 64);  // the key tiles up to t's, whole
        }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t kh = 0; kh < NKV; ++kh)
      for (int64_t s = 0; s < T; ++s)
        for (int64_t c = 0; c < HS; ++c) {
          Sum dk, dv;
          for (int64_t h = kh * group; h < (kh + 1) * group; ++h)
            for (int64_t t = s; t < T; ++t) {
              const RowForward& r = rows[static_cast<size_t>((b * NH + h) * T + t)];
              const size_t at = static_cast<size_t>(b * NH + h) * TT + static_cast<size_t>(t * T + s);
              dk.add(dS[at] * q(b, t, h, c), e_dS[at] * std::fabs(q(b, t, h, c)));
              const double Pf = r.P[s] * r.f[s];
              dv.add(Pf * dy(b, t, h, c), Pf * std::fabs(dy(b, t, h, c)) * ((1 + r.Pi) * (1 + kU) * (1 + kUb) - 1));
            }
          const int64_t n = group * (T - s);
          const size_t ak = static_cast<size_t>((b * T + s) * W + (NH + kh) * HS + c),
                       av = static_cast<size_t>((b * T + s) * W + (NH + NKV + kh) * HS + c);
          d_want[ak] = old_of(ak) + dk.y;
          d_bound[ak] = dk.bound(old_of(ak), n + 64 * group);  // the chain starts at the key tile's first row
          d_want[av] = old_of(av) + dv.y;
          d_bound[av] = dv.bound(old_of(av), n + 64 * group);
        }

  std::vector<uint16_t> grad = dqkv0.bits;
  run.backward(qkv.bits, dout.bits, stats_host, grad);
  expect_within("flash backward dqkv (" + name + ")", widened(grad), d_want, d_bound);
}

// GPT-2's head size: four query heads over two kv heads, T 150 (tiles of 64, 64, 22), dropout,
// written and accumulated; one whole tile; Llama's and Qwen3's head size, two query heads over
// one kv head, T 100, with and without dropout.
inline std::vector<kernels::AttentionParams> bound_cases() {
  return {{2, 150, 4, 2, 64, 0.1f, 17, kernels::InputGrad::Write},
          {2, 150, 4, 2, 64, 0.1f, 17, kernels::InputGrad::Accumulate},
          {1, 64, 2, 2, 64, 0.0f, 0, kernels::InputGrad::Write},
          {1, 100, 2, 1, 128, 0.0f, 0, kernels::InputGrad::Accumulate},
          {1, 100, 2, 1, 128, 0.2f, 5, kernels::InputGrad::Write}};
}

}  // namespace gptrain::test::flash
