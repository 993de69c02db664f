// Attention of new positions against KV caches, for any number of sequences at once: the new
// keys and values are appended to each sequence's cache, then one task per (sequence, head, new
// position) takes the dot products and the weighted sum, vectorized over the head size.
// Memory-bound for one new token, so no BLAS. A row's result depends only on its own sequence.
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/vec_math.h"

namespace gptrain::cpu {

void attention_decode_forward(float* out, const float* qkv, const DecodeSeq* seqs, const AttentionDecodeParams& p) {
  const int64_t HS = p.HS, C = p.NH * HS, KV = p.NKV * HS, W = p.qkv_width(), group = p.NH / p.NKV;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  // Append every new row's key and value; task i covers (sequence, head, row) from its prefix.
  std::vector<int64_t> first_task(static_cast<size_t>(p.n_seqs) + 1, 0);
  int64_t longest = 0;
  for (int64_t i = 0; i < p.n_seqs; ++i) {
    const DecodeSeq& sq = seqs[i];
    for (int64_t t = 0; t < sq.rows; ++t) {
      const float* row = qkv + (sq.first_row + t) * W;
      std::memcpy(static_cast<float*>(sq.k_cache) + (sq.past + t) * KV, row + C, sizeof(float) * static_cast<size_t>(KV));
      std::memcpy(static_cast<float*>(sq.v_cache) + (sq.past + t) * KV, row + C + KV,
                  sizeof(float) * static_cast<size_t>(KV));
    }
    first_task[static_cast<size_t>(i) + 1] = first_task[static_cast<size_t>(i)] + p.NH * sq.rows;
    longest = std::max(longest, sq.past + sq.rows);
  }
  const int64_t tasks = first_task.back();
#pragma omp parallel
  {
    std::vector<float> w(static_cast<size_t>(longest));
    int64_t i = 0;
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      while (first_task[static_cast<size_t>(i) + 1] <= task) ++i;  // tasks ascend within a thread
      while (first_task[static_cast<size_t>(i)] > task) --i;
      const DecodeSeq& sq = seqs[i];
      const int64_t local = task - first_task[static_cast<size_t>(i)];
      const int64_t h = local / sq.rows, t = local % sq.rows;
      const int64_t last = sq.past + t;
      const float* q = qkv + (sq.first_row + t) * W + h * HS;
      const float* kc = static_cast<const float*>(sq.k_cache) + (h / group) * HS;
      const float* vc = static_cast<const float*>(sq.v_cache) + (h / group) * HS;
      float maxv = -INFINITY;
      for (int64_t s = 0; s <= last; ++s) {
        const float* k = kc + s * KV;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int64_t d = 0; d < HS; ++d) dot += q[d] * k[d];
        w[s] = dot * scale;
        maxv = w[s] > maxv ? w[s] : maxv;
      }
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t s = 0; s <= last; ++s) {
        w[s] = exp_fast(w[s] - maxv);
        sum += w[s];
      }
      const float inv = 1.0f / sum;
      float* o = out + (sq.first_row + t) * C + h * HS;
      for (int64_t d = 0; d < HS; ++d) o[d] = 0.0f;
      for (int64_t s = 0; s <= last; ++s) {
        const float ws = w[s] * inv;
        const float* v = vc + s * KV;
#pragma omp simd
        for (int64_t d = 0; d < HS; ++d) o[d] += ws * v[d];
      }
    }
  }
}

}  // namespace gptrain::cpu
