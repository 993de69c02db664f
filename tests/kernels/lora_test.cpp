// The LoRA op (kernels/params.h, LoraParams): every float32 CPU backend against the reference in
// double on awkward shapes (one segment, the three of a fused q|k|v of unequal widths, an empty
// segment, rank 1, one row), in training and in batch-invariant decode mode, with bounds derived
// from float32 rounding; a decode row gives the same bits alone and in a batch; and the backward
// in double against central differences (harness.h).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "kernels/backend.h"
#include "kernels/ref/ref.h"
#include "tests/kernels/harness.h"

namespace gptrain::test {
namespace {

using namespace gptrain::kernels;
using V = std::vector<double>;

std::vector<float> randf(int64_t n, uint64_t seed) { return random_floats(n, seed); }

struct Case {
  int64_t N, IC, R;
  std::vector<int64_t> widths;  // of the segments
  float scaling;
};

LoraParams params_of(const Case& c) {
  LoraParams p{c.N, c.IC, 0, c.R};
  p.S = static_cast<int>(c.widths.size());
  for (int s = 0; s < p.S; ++s) p.seg[s + 1] = p.seg[s] + c.widths[static_cast<size_t>(s)];
  p.OC = p.seg[p.S];
  p.scaling = c.scaling;
  return p;
}

V abs_v(const V& v) { return abs_of(v); }

TEST(Backend, lora) {
  const std::vector<Case> cases = {{1, 1, 1, {1}, 1.0f},          {5, 7, 3, {9}, 2.0f},
                                   {9, 33, 4, {16, 8, 8}, 0.5f},  {3, 17, 2, {5, 0, 7}, 1.0f},
                                   {1, 65, 16, {40, 12, 12}, 1.0f}, {13, 20, 5, {3, 2, 1, 4}, -1.5f}};
  for (const Case& c : cases) {
    const LoraParams p = params_of(c);
    const int64_t SR = p.S * p.R;
    SCOPED_TRACE("N " + std::to_string(p.N) + " IC " + std::to_string(p.IC) + " OC " + std::to_string(p.OC) + " R " +
                 std::to_string(p.R) + " S " + std::to_string(p.S));
    auto x = randf(p.N * p.IC, 1), A = randf(SR * p.IC, 2), B = randf(p.OC * p.R, 3), out0 = randf(p.N * p.OC, 4);
    auto dout = randf(p.N * p.OC, 5), dx0 = randf(p.N * p.IC, 6), dA0 = randf(SR * p.IC, 7), dB0 = randf(p.OC * p.R, 8);
    auto x_d = to_double(x), A_d = to_double(A), B_d = to_double(B), dout_d = to_double(dout);
    V out_d = to_double(out0), dx_d = to_double(dx0), dA_d = to_double(dA0), dB_d = to_double(dB0);
    ref::lora_forward(out_d.data(), x_d.data(), A_d.data(), B_d.data(), p);
    ref::lora_backward(dx_d.data(), dA_d.data(), dB_d.data(), dout_d.data(), x_d.data(), A_d.data(), B_d.data(), p);
    // Bounds: every result is a sum of products along chains of at most D = N + IC + OC + S R + 4
    // roundings (an IC-term dot, an R- or OC-term dot, an N-term sum, the scaling and the final
    // add), so it is within gamma(D) of the same computation on absolute values (Higham 3.1),
    // which the reference gives when run on |inputs| with |scaling|.
    LoraParams pa = p;
    pa.scaling = std::fabs(p.scaling);
    V mag_out = abs_v(to_double(out0)), mag_dx = abs_v(to_double(dx0)), mag_dA = abs_v(to_double(dA0)),
      mag_dB = abs_v(to_double(dB0));
    const V ax = abs_v(x_d), aA = abs_v(A_d), aB = abs_v(B_d), adout = abs_v(dout_d);
    ref::lora_forward(mag_out.data(), ax.data(), aA.data(), aB.data(), pa);
    ref::lora_backward(mag_dx.data(), mag_dA.data(), mag_dB.data(), adout.data(), ax.data(), aA.data(), aB.data(), pa);
    const double g = gamma(p.N + p.IC + p.OC + SR + 4);
    for (V* m : {&mag_out, &mag_dx, &mag_dA, &mag_dB})
      for (double& v : *m) v = g * v + 1e-30;
    for (const Backend* be : f32_cpu_backends()) {
      SCOPED_TRACE(std::string("backend ") + be->name());
      for (bool invariant : {false, true}) {
        LoraParams q = p;
        q.batch_invariant = invariant;
        auto out = out0;
        be->lora_forward(out.data(), x.data(), A.data(), B.data(), q);
        expect_within(invariant ? "lora forward (batch invariant)" : "lora forward", out, out_d, mag_out);
      }
      auto dx = dx0, dA = dA0, dB = dB0;
      be->lora_backward(dx.data(), dA.data(), dB.data(), dout.data(), x.data(), A.data(), B.data(), p);
      expect_within("lora dinp", dx, dx_d, mag_dx);
      expect_within("lora dA", dA, dA_d, mag_dA);
      expect_within("lora dB", dB, dB_d, mag_dB);
      // Null gradients are skipped: the others come out the same.
      auto dA2 = dA0;
      be->lora_backward(nullptr, dA2.data(), nullptr, dout.data(), x.data(), A.data(), B.data(), p);
      expect_same_bits("lora dA alone", dA2, dA);
    }
  }
}

TEST(Backend, lora_decode_rows_are_batch_invariant) {
  const Case c{7, 37, 4, {12, 6, 6}, 1.0f};
  for (const Backend* be : f32_cpu_backends()) {
    SCOPED_TRACE(std::string("backend ") + be->name());
    LoraParams p = params_of(c);
    p.batch_invariant = true;
    auto x = randf(p.N * p.IC, 1), A = randf(p.S * p.R * p.IC, 2), B = randf(p.OC * p.R, 3);
    std::vector<float> batch(static_cast<size_t>(p.N * p.OC), 0.0f);
    be->lora_forward(batch.data(), x.data(), A.data(), B.data(), p);
    for (int64_t n = 0; n < p.N; ++n) {
      LoraParams one = p;
      one.N = 1;
      std::vector<float> row(static_cast<size_t>(p.OC), 0.0f), xr(x.begin() + n * p.IC, x.begin() + (n + 1) * p.IC);
      be->lora_forward(row.data(), xr.data(), A.data(), B.data(), one);
      expect_same_bits("row " + std::to_string(n) + " alone vs in the batch", row,
                       std::vector<float>(batch.begin() + n * p.OC, batch.begin() + (n + 1) * p.OC));
    }
  }
}

TEST(Gradcheck, lora) {
  const Case c{3, 5, 2, {4, 2, 3}, 1.5f};
  const LoraParams p = params_of(c);
  const int64_t SR = p.S * p.R;
  gradcheck("lora", {to_double(randf(p.N * p.IC, 1)), to_double(randf(SR * p.IC, 2)), to_double(randf(p.OC * p.R, 3))},
            {0, 1, 2},
            [&](const Inputs& in) {
              V out(static_cast<size_t>(p.N * p.OC), 0.0);
              ref::lora_forward(out.data(), in[0].data(), in[1].data(), in[2].data(), p);
              return out;
            },
            [&](const Inputs& in, const V& cot) {
              Inputs g = {V(in[0].size()), V(in[1].size()), V(in[2].size())};
              ref::lora_backward(g[0].data(), g[1].data(), g[2].data(), cot.data(), in[0].data(), in[1].data(),
                                 in[2].data(), p);
              return g;
            });
}

}  // namespace
}  // namespace gptrain::test
