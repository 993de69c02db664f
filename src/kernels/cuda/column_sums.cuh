// Parameter gradients that sum a term over the rows for each column (a bias's sum of dout, a
// norm's weight gradient): deterministic and parallel in two passes. The rows are cut into fixed
// chunks of kColumnChunk; one thread per (column, chunk) sums its chunk's rows in order into a
// float32 partial (a warp reads 32 adjacent columns of a row: coalesced), then one thread per
// column adds its chunks' partials in chunk order onto the old gradient and stores once. The
// order depends only on the shapes, never on the scheduling, so every run gives the same bits;
// one thread a column over every row (the first version) had only C threads to hide the latency
// of N reads each.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/check.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/launch.h"

namespace gptrain::kernels::cuda {

// A term adds row r's contribution to column c onto its two sums (the second unused by most).
template <class Term>
__global__ void column_partials_kernel(float* partial_a, float* partial_b, Term term, int64_t rows, int64_t C,
                                       int64_t chunks) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  for (int64_t k = blockIdx.y; k < chunks; k += gridDim.y) {
    const int64_t end = std::min(rows, (k + 1) * kColumnChunk);
    float a = 0.0f, b = 0.0f;
    for (int64_t r = k * kColumnChunk; r < end; ++r) term(r, c, a, b);
    partial_a[k * C + c] = a;
    if (partial_b) partial_b[k * C + c] = b;
  }
}

// out[c] = round(out[c] + sum over chunks of partial[chunk][c]), the chunks in order.
template <class T>
__global__ void column_partials_finish_kernel(T* out, const float* partial, int64_t chunks, int64_t C) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  float s = 0.0f;
  for (int64_t k = 0; k < chunks; ++k) s += partial[k * C + c];
  store(out + c, load(out + c) + s);
}

// Sums `term` over `rows` rows for C columns onto out_a (and out_b, when the term has a second
// sum and out_b is given); `partial` holds column_partials(rows, C) floats per output.
template <class T, class Term>
void column_sums(T* out_a, T* out_b, Term term, int64_t rows, int64_t C, float* partial, const char* what) {
  if (C == 0) return;
  const int64_t chunks = column_chunks(rows);
  float* partial_b = out_b ? partial + chunks * C : nullptr;
  const dim3 grid(blocks_for(C), static_cast<unsigned>(std::min<int64_t>(chunks, 65535)));
  column_partials_kernel<<<grid, kThreads>>>(partial, partial_b, term, rows, C, chunks);
  check_launch(what);
  if (out_a) column_partials_finish_kernel<<<blocks_for(C), kThreads>>>(out_a, partial, chunks, C);
  if (out_b) column_partials_finish_kernel<<<blocks_for(C), kThreads>>>(out_b, partial_b, chunks, C);
  check_launch(what);
}

}  // namespace gptrain::kernels::cuda
