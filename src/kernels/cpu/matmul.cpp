// Linear layer through OpenBLAS sgemm; weight is [OC, IC] as in PyTorch's nn.Linear.
#include <cblas.h>

#include "kernels/cpu/cpu.h"

namespace gptrain::cpu {

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias,
                    const MatmulParams& p) {
  const int64_t N = p.N, IC = p.IC, OC = p.OC;
  if (N == 0 || OC == 0) return;
  float beta = 0.0f;
  if (bias) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n)
#pragma omp simd
      for (int64_t o = 0; o < OC; ++o) out[n * OC + o] = bias[o];
    beta = 1.0f;
  }
  if (N == 1) {  // one row (decoding a token): gemv streams the weight once, where OpenBLAS
                 // 0.3.21's sgemm packs it first: 3-4x slower for [1,768] x [768,3072] here
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
  if (dinp)  // dinp[N,IC] += dout[N,OC] @ weight[OC,IC]
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC, 1.0f, dout, OC, weight, IC,
                1.0f, dinp, IC);
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
