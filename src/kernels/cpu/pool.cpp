// Sequence pooling for classifier heads (last, first or mean position) and row gathering (the
// last position of each sequence of a decode step).
#include <cstring>

#include "kernels/cpu/cpu.h"

namespace gptrain::cpu {

void pool_forward(float* out, const float* inp, const PoolParams& p) {
  const int64_t T = p.T, C = p.C;
  const float inv_t = 1.0f / static_cast<float>(T);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < p.B; ++b) {
    const float* x = inp + b * T * C;
    float* o = out + b * C;
    if (p.mode == PoolMode::Mean) {
      for (int64_t c = 0; c < C; ++c) o[c] = 0.0f;
      for (int64_t t = 0; t < T; ++t)
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) o[c] += x[t * C + c];
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) o[c] *= inv_t;
    } else {
      const float* row = x + (p.mode == PoolMode::Last ? (T - 1) * C : 0);
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) o[c] = row[c];
    }
  }
}

void pool_backward(float* dinp, const float* dout, const PoolParams& p) {
  const int64_t T = p.T, C = p.C;
  const float inv_t = 1.0f / static_cast<float>(T);
  const bool write = p.dinp == InputGrad::Write;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < p.B; ++b) {
    float* dx = dinp + b * T * C;
    const float* d = dout + b * C;
    if (p.mode == PoolMode::Mean) {
      for (int64_t t = 0; t < T; ++t) {
        if (write) {
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) dx[t * C + c] = d[c] * inv_t;
        } else {
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) dx[t * C + c] += d[c] * inv_t;
        }
      }
    } else {
      const int64_t at = p.mode == PoolMode::Last ? T - 1 : 0;
      if (write) std::memset(dx, 0, sizeof(float) * static_cast<size_t>(T * C));
      float* row = dx + at * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) row[c] += d[c];
    }
  }
}

void gather_rows_forward(float* out, const float* inp, const int32_t* rows, const GatherRowsParams& p) {
  for (int64_t r = 0; r < p.R; ++r)
    std::memcpy(out + r * p.C, inp + static_cast<int64_t>(rows[r]) * p.C, sizeof(float) * static_cast<size_t>(p.C));
}

}  // namespace gptrain::cpu
