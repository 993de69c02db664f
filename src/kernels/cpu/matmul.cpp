// Linear layer; weight is [OC, IC] as in PyTorch's nn.Linear. Matrix products go through OpenBLAS,
// except the batch-invariant forward of the decode engine, which is our own kernel (below).
#include <cblas.h>

#include <algorithm>

#include "kernels/cpu/cpu.h"

namespace gptrain::cpu {

namespace {

// The decode engine's product: each output is the dot product of one input row with one weight
// row, computed by the same instructions in the same order whatever N is and wherever the row
// sits (eight-lane partial sums over k, a fixed reduction tree, then the scalar tail), so a
// sequence decoded with others gets exactly the logits it gets alone. Rows go in pairs and
// outputs in fours, so each weight row is read from memory once per step for all rows (decoding
// is bound by reading the weights) and stays in L1 for the other rows.
typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));

inline v8 load8(const float* p) { return *reinterpret_cast<const v8u*>(p); }

inline float reduce8(v8 a) {
  const float b0 = a[0] + a[4], b1 = a[1] + a[5], b2 = a[2] + a[6], b3 = a[3] + a[7];
  return (b0 + b2) + (b1 + b3);
}

// rows x outs dot products (rows <= 2, outs <= 4) of inp rows [n, n + rows) with weight rows
// [o, o + outs), written to out[n.., o..] with the bias added last.
template <int kRows, int kOuts>
inline void dot_block(float* out, const float* inp, const float* weight, const float* bias, int64_t IC, int64_t OC,
                      int64_t n, int64_t o) {
  const int64_t K8 = IC / 8 * 8;
  v8 acc[kRows][kOuts];
  for (int r = 0; r < kRows; ++r)
    for (int j = 0; j < kOuts; ++j) acc[r][j] = v8{};
  const float* x[kRows];
  for (int r = 0; r < kRows; ++r) x[r] = inp + (n + r) * IC;
  const float* w[kOuts];
  for (int j = 0; j < kOuts; ++j) w[j] = weight + (o + j) * IC;
  for (int64_t k = 0; k < K8; k += 8) {
    v8 xv[kRows];
    for (int r = 0; r < kRows; ++r) xv[r] = load8(x[r] + k);
    for (int j = 0; j < kOuts; ++j) {
      const v8 wv = load8(w[j] + k);
      for (int r = 0; r < kRows; ++r) acc[r][j] += xv[r] * wv;
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int j = 0; j < kOuts; ++j) {
      float s = reduce8(acc[r][j]);
      for (int64_t k = K8; k < IC; ++k) s += x[r][k] * w[j][k];
      out[(n + r) * OC + o + j] = bias ? s + bias[o + j] : s;
    }
}

template <int kRows>
inline void dot_rows(float* out, const float* inp, const float* weight, const float* bias, int64_t IC, int64_t OC,
                     int64_t n, int64_t o, int64_t outs) {
  switch (outs) {
    case 4: dot_block<kRows, 4>(out, inp, weight, bias, IC, OC, n, o); break;
    case 3: dot_block<kRows, 3>(out, inp, weight, bias, IC, OC, n, o); break;
    case 2: dot_block<kRows, 2>(out, inp, weight, bias, IC, OC, n, o); break;
    default: dot_block<kRows, 1>(out, inp, weight, bias, IC, OC, n, o); break;
  }
}

void matmul_forward_batch_invariant(float* out, const float* inp, const float* weight, const float* bias,
                                    const MatmulParams& p) {
  const int64_t N = p.N, IC = p.IC, OC = p.OC;
  const int64_t blocks = (OC + 3) / 4;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t o = blk * 4, outs = std::min<int64_t>(4, OC - o);
    int64_t n = 0;
    for (; n + 2 <= N; n += 2) dot_rows<2>(out, inp, weight, bias, IC, OC, n, o, outs);
    if (n < N) dot_rows<1>(out, inp, weight, bias, IC, OC, n, o, outs);
  }
}

}  // namespace

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias,
                    const MatmulParams& p) {
  const int64_t N = p.N, IC = p.IC, OC = p.OC;
  if (N == 0 || OC == 0) return;
  if (p.batch_invariant) {
    matmul_forward_batch_invariant(out, inp, weight, bias, p);
    return;
  }
  float beta = 0.0f;
  if (bias) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n)
#pragma omp simd
      for (int64_t o = 0; o < OC; ++o) out[n * OC + o] = bias[o];
    beta = 1.0f;
  }
  if (N == 1) {  // one row (a classifier head, the last position): gemv streams the weight once,
                 // where OpenBLAS 0.3.21's sgemm packs it first: 3-4x slower for [1,768] x [768,3072]
    cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, IC, 1.0f, weight, IC, inp, 1, beta, out, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f, inp, IC, weight, IC, beta,
              out, OC);
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, const MatmulParams& p) {
  const int64_t N = p.N, IC = p.IC, OC = p.OC;
  if (N == 0) return;
  if (dinp)  // dinp[N,IC] (+)= dout[N,OC] @ weight[OC,IC]
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC, weight, IC,
                p.dinp == InputGrad::Write ? 0.0f : 1.0f, dinp, IC);
  if (dweight)  // dweight[OC,IC] += dout^T @ inp
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f,
                dweight, IC);
  if (dbias) {
    constexpr int64_t kBlock = 64;
#pragma omp parallel for schedule(static)
    for (int64_t o0 = 0; o0 < OC; o0 += kBlock) {
      const int64_t o1 = o0 + kBlock < OC ? o0 + kBlock : OC;
      float acc[kBlock] = {};
      for (int64_t n = 0; n < N; ++n) {
        const float* d = dout + n * OC;
#pragma omp simd
        for (int64_t o = o0; o < o1; ++o) acc[o - o0] += d[o];
      }
      for (int64_t o = o0; o < o1; ++o) dbias[o] += acc[o - o0];
    }
  }
}

}  // namespace gptrain::cpu
