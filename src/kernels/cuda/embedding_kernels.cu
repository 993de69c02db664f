// The embedding's backward (launch.h): the rows of dout grouped by their id with a stable radix
// sort of (id, row) pairs (CUB), then one thread per (id, channel) adds that id's rows in row
// order to the old gradient and stores once. That is the reference's order (old + rows in
// order; no atomics, so deterministic) with the work spread over every id in the batch rather
// than one thread per channel walking all rows, and a bf16 gradient is rounded once, as the
// widened op does, touching only the rows the batch uses.
#include <cuda_runtime.h>

#include <algorithm>
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/check.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/launch.h"

namespace gptrain::kernels::cuda {

namespace {

__global__ void iota_kernel(int32_t* out, int64_t n) { GPTRAIN_CUDA_FOR(i, n) out[i] = static_cast<int32_t>(i); }

__global__ void embedding_positions_kernel(int32_t* out, const int32_t* positions, EmbeddingParams p) {
  GPTRAIN_CUDA_FOR(n, p.B * p.T) out[n] = positions ? positions[n] : static_cast<int32_t>(p.pos_offset + n % p.T);
}

// ids[N] sorted, rows[N] their rows (ascending within an id): the thread at the first row of an
// id's run, channel c, sums the run onto grad[id, c].
template <class T>
__global__ void sorted_rows_add_kernel(T* grad, const T* dout, const int32_t* ids, const int32_t* rows, int64_t N,
                                       int64_t C) {
  GPTRAIN_CUDA_FOR(k, N * C) {
    const int64_t i = k / C, c = k % C;
    const int32_t id = ids[i];
    if (i > 0 && ids[i - 1] == id) continue;
    T* g = grad + int64_t(id) * C + c;
    float acc = load(g);
    for (int64_t j = i; j < N && ids[j] == id; ++j) acc += load(dout + int64_t(rows[j]) * C + c);
    store(g, acc);
  }
}

// The key bits of ids in [0, limit).
int bits_for(int64_t limit) {
  int bits = 1;
  while (bits < 31 && (int64_t(1) << bits) < limit) ++bits;
  return bits;
}

size_t aligned(size_t bytes) { return (bytes + 255) / 256 * 256; }

size_t sort_bytes(int64_t N, int64_t limit) {
  size_t bytes = 0;
  check_cuda(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const int32_t*>(nullptr),
                                             static_cast<int32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                             static_cast<int32_t*>(nullptr), static_cast<int>(N), 0, bits_for(limit)),
             "embedding_backward (sort size)");
  return bytes;
}

}  // namespace

size_t embedding_backward_scratch_bytes(const EmbeddingParams& p) {
  const int64_t N = p.B * p.T;
  const size_t sort = std::max(sort_bytes(N, p.V), p.n_positions ? sort_bytes(N, p.n_positions) : size_t(0));
  return 4 * aligned(static_cast<size_t>(N) * sizeof(int32_t)) + aligned(sort);
}

template <class T>
void embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* tokens, const int32_t* positions,
                        const EmbeddingParams& p, void* scratch, size_t scratch_bytes) {
  const int64_t N = p.B * p.T;
  if (!p.n_positions) dwpe = nullptr;
  if ((!dwte && !dwpe) || N == 0 || p.C == 0) return;
  const size_t array = aligned(static_cast<size_t>(N) * sizeof(int32_t));
  char* s = static_cast<char*>(scratch);
  int32_t* keys = reinterpret_cast<int32_t*>(s);
  int32_t* sorted_ids = reinterpret_cast<int32_t*>(s + array);
  int32_t* rows = reinterpret_cast<int32_t*>(s + 2 * array);
  int32_t* sorted_rows = reinterpret_cast<int32_t*>(s + 3 * array);
  void* temp = s + 4 * array;
  size_t temp_bytes = scratch_bytes - 4 * array;  // CUB fails (checked) rather than overrun it
  iota_kernel<<<blocks_for(N), kThreads>>>(rows, N);
  check_launch("embedding_backward (rows)");
  const auto add_rows = [&](T* grad, const int32_t* ids, int64_t limit, const char* what) {
    check_cuda(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, ids, sorted_ids, rows, sorted_rows,
                                               static_cast<int>(N), 0, bits_for(limit)),
               what);
    sorted_rows_add_kernel<<<blocks_for(N * p.C), kThreads>>>(grad, dout, sorted_ids, sorted_rows, N, p.C);
    check_launch(what);
  };
  if (dwte) add_rows(dwte, tokens, p.V, "embedding_backward (tokens)");
  if (dwpe) {
    embedding_positions_kernel<<<blocks_for(N), kThreads>>>(keys, positions, p);
    check_launch("embedding_backward (positions)");
    add_rows(dwpe, keys, p.n_positions, "embedding_backward (positions)");
  }
}

template void embedding_backward<float>(float*, float*, const float*, const int32_t*, const int32_t*,
                                        const EmbeddingParams&, void*, size_t);
template void embedding_backward<uint16_t>(uint16_t*, uint16_t*, const uint16_t*, const int32_t*, const int32_t*,
                                           const EmbeddingParams&, void*, size_t);

}  // namespace gptrain::kernels::cuda
