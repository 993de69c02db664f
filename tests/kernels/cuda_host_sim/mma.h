// The host stand-in's WMMA (cuda_runtime.h), for 16x16x16 bf16 fragments with float32
// accumulators: a warp's fragment is held whole by lane 0, which alone loads, multiplies (float32
// sums in k order, one of the orders a tensor core may take) and stores; the other lanes' copies
// are never read, as the kernels touch fragments only through these calls. Pointers must be
// 32-byte aligned and leading dimensions multiples of 8 (bf16) or 4 (float), as on the GPU.
#pragma once

#include <type_traits>

#include "cuda_bf16.h"

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  float x[M * N];
};

inline bool lane0() { return threadIdx.x % 32 == 0; }
inline void check(const void* p, unsigned ldm, unsigned multiple) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0) sim::fail("a fragment's pointer is not 32-byte aligned");
  if (ldm % multiple != 0) sim::fail("a fragment's leading dimension is not a multiple of 16 bytes");
}

template <class U, int M, int N, int K, class T, class L>
void fill_fragment(fragment<U, M, N, K, T, L>& f, float v) {
  if (lane0())
    for (float& e : f.x) e = v;
}
template <class U, class L>
void load_matrix_sync(fragment<U, 16, 16, 16, __nv_bfloat16, L>& f, const __nv_bfloat16* p, unsigned ldm) {
  if (!lane0()) return;
  check(p, ldm, 8);
  for (unsigned r = 0; r < 16; ++r)
    for (unsigned c = 0; c < 16; ++c)
      f.x[r * 16 + c] = sim::value(std::is_same_v<L, row_major> ? p[r * ldm + c] : p[c * ldm + r]);
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p, unsigned ldm, layout_t l) {
  if (!lane0()) return;
  check(p, ldm, 4);
  for (unsigned r = 0; r < 16; ++r)
    for (unsigned c = 0; c < 16; ++c) f.x[r * 16 + c] = l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r];
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm, layout_t l) {
  if (!lane0()) return;
  check(p, ldm, 4);
  for (unsigned r = 0; r < 16; ++r)
    for (unsigned c = 0; c < 16; ++c) (l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[r * 16 + c];
}
template <class LA, class LB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA>& a,
              const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB>& b,
              const fragment<accumulator, 16, 16, 16, float>& c) {
  if (!lane0()) return;
  float out[256];
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 16; ++n) {
      float acc = c.x[r * 16 + n];
      for (int k = 0; k < 16; ++k) acc += a.x[r * 16 + k] * b.x[k * 16 + n];
      out[r * 16 + n] = acc;
    }
  std::memcpy(d.x, out, sizeof out);
}

}  // namespace nvcuda::wmma
