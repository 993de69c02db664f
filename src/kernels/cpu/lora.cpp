// LoRA adapters on a Linear (kernels/params.h, LoraParams): the down projection h = inp A^T and the
// up projection of each segment through OpenBLAS with strides (the segment's columns of out, its
// columns of h), so no slice is copied; beta = 1 adds to what the base Linear wrote. Decode rows
// (batch_invariant) go through matmul's batch-invariant product instead, so a sequence's logits
// do not depend on the others in the pass.
#include <cblas.h>

#include <vector>

#include "kernels/cpu/cpu.h"

namespace gptrain::cpu {

namespace {

void lora_forward_batch_invariant(float* out, const float* inp, const float* A, const float* B, const LoraParams& p) {
  const int64_t SR = p.S * p.R;
  std::vector<float> h(static_cast<size_t>(p.N * SR)), part, up;
  MatmulParams down{p.N, p.IC, SR};
  down.batch_invariant = true;
  matmul_forward(h.data(), inp, A, nullptr, down);
  for (int s = 0; s < p.S; ++s) {
    const int64_t begin = p.seg[s], width = p.seg[s + 1] - begin;
    part.resize(static_cast<size_t>(p.N * p.R));
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t r = 0; r < p.R; ++r) part[static_cast<size_t>(n * p.R + r)] = h[static_cast<size_t>(n * SR + s * p.R + r)];
    up.resize(static_cast<size_t>(p.N * width));
    MatmulParams q{p.N, p.R, width};
    q.batch_invariant = true;
    matmul_forward(up.data(), part.data(), B + begin * p.R, nullptr, q);
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t o = 0; o < width; ++o) out[n * p.OC + p.col[s] + o] += p.scaling * up[static_cast<size_t>(n * width + o)];
  }
}

}  // namespace

void lora_forward(float* out, const float* inp, const float* A, const float* B, const LoraParams& p) {
  if (p.N == 0 || p.R == 0) return;
  if (p.batch_invariant) {
    lora_forward_batch_invariant(out, inp, A, B, p);
    return;
  }
  const int64_t SR = p.S * p.R;
  std::vector<float> h(static_cast<size_t>(p.N * SR));
  // h = scaling * inp A^T, then out[:, segment s] += h[:, sR..] B_s^T
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p.N, SR, p.IC, p.scaling, inp, p.IC, A, p.IC, 0.0f, h.data(), SR);
  for (int s = 0; s < p.S; ++s) {
    const int64_t begin = p.seg[s], width = p.seg[s + 1] - begin;
    if (width == 0) continue;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p.N, width, p.R, 1.0f, h.data() + s * p.R, SR,
                B + begin * p.R, p.R, 1.0f, out + p.col[s], p.OC);
  }
}

void lora_backward(float* dinp, float* dA, float* dB, const float* dout, const float* inp, const float* A,
                   const float* B, const LoraParams& p) {
  if (p.N == 0 || p.R == 0) return;
  const int64_t SR = p.S * p.R;
  std::vector<float> dh(static_cast<size_t>(p.N * SR));
  // dh[:, sR..] = scaling * dout[:, segment s] B_s
  for (int s = 0; s < p.S; ++s) {
    const int64_t begin = p.seg[s], width = p.seg[s + 1] - begin;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p.N, p.R, width, p.scaling, dout + p.col[s], p.OC,
                B + begin * p.R, p.R, 0.0f, dh.data() + s * p.R, SR);
  }
  if (dB) {  // dB_s += dout[:, segment s]^T (scaling * inp A_s^T), h recomputed
    std::vector<float> h(static_cast<size_t>(p.N * SR));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p.N, SR, p.IC, p.scaling, inp, p.IC, A, p.IC, 0.0f, h.data(),
                SR);
    for (int s = 0; s < p.S; ++s) {
      const int64_t begin = p.seg[s], width = p.seg[s + 1] - begin;
      if (width == 0) continue;
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, width, p.R, p.N, 1.0f, dout + p.col[s], p.OC,
                  h.data() + s * p.R, SR, 1.0f, dB + begin * p.R, p.R);
    }
  }
  if (dA) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, SR, p.IC, p.N, 1.0f, dh.data(), SR, inp, p.IC, 1.0f, dA, p.IC);
  if (dinp) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p.N, p.IC, SR, 1.0f, dh.data(), SR, A, p.IC, 1.0f, dinp, p.IC);
}

void lora_merge(float* weight, const float* A, const float* B, const LoraParams& p) {
  // rows [col, col + width) of W += scaling B_s [width, R] A_s [R, IC]
  for (int s = 0; s < p.S; ++s) {
    const int64_t width = p.seg[s + 1] - p.seg[s];
    if (width == 0 || p.R == 0) continue;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, width, p.IC, p.R, p.scaling, B + p.seg[s] * p.R, p.R,
                A + s * p.R * p.IC, p.IC, 1.0f, weight + p.col[s] * p.IC, p.IC);
  }
}

}  // namespace gptrain::cpu
