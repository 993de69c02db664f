// Token + position embedding, forward and backward.
#include "kernels/cpu/cpu.h"

namespace gptrain::cpu {

namespace {
inline int64_t position(const int32_t* positions, const EmbeddingParams& p, int64_t n) {
  return positions ? positions[n] : p.pos_offset + n % p.T;
}
}  // namespace

void embedding_forward(float* out, const int32_t* tokens, const int32_t* positions, const float* wte,
                       const float* wpe, const EmbeddingParams& p) {
  const int64_t C = p.C;
#pragma omp parallel for schedule(static)
  for (int64_t bt = 0; bt < p.B * p.T; ++bt) {
    const float* tok = wte + static_cast<int64_t>(tokens[bt]) * C;
    float* o = out + bt * C;
    if (wpe) {
      const float* pos = wpe + position(positions, p, bt) * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) o[c] = tok[c] + pos[c];
    } else {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) o[c] = tok[c];
    }
  }
}

void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                        const int32_t* positions, const EmbeddingParams& p) {
  // Threads own disjoint channel ranges and walk the tokens in order: no races, and the sum order
  // (hence the result) does not depend on the number of threads.
  const int64_t C = p.C, N = p.B * p.T;
  constexpr int64_t kBlock = 64;
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
    const int64_t c1 = c0 + kBlock < C ? c0 + kBlock : C;
    for (int64_t bt = 0; bt < N; ++bt) {
      const float* d = dout + bt * C;
      if (dwte) {
        float* g = dwte + static_cast<int64_t>(tokens[bt]) * C;
#pragma omp simd
        for (int64_t c = c0; c < c1; ++c) g[c] += d[c];
      }
      if (dwpe) {
        float* g = dwpe + position(positions, p, bt) * C;
#pragma omp simd
        for (int64_t c = c0; c < c1; ++c) g[c] += d[c];
      }
    }
  }
}

}  // namespace gptrain::cpu
