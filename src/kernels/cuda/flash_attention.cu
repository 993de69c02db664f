// Causal grouped-query attention on bf16 tensor cores (WMMA 16x16x16, bf16 operands, float32
// accumulation), flash-style: no T x T matrix, 64-row query and key tiles in shared memory, four
// warps a block each owning 16 rows of its tile. cuda-bf16 runs it for head sizes 64 and 128 on
// 16-byte-aligned tensors (flash_attention_supported); everything else takes the warp kernels.
//
// Forward, per (query tile, head, batch): scores S = Q K^T tile by tile, an online maximum and sum
// per row (float32), the probabilities times the dropout factor rounded to bf16 and multiplied
// into a float32 output accumulator that is rescaled when a row's maximum grows; stats [m, 1/l]
// as the warp kernels write them. Backward: one kernel per (query tile, head, batch) forms
// D = sum_s P dP f in a first pass over the key tiles and dQ = scale sum_s P (dP f - D) K in a
// second (dP = dO V^T), writing D to dsum; one per (key tile, kv head, batch) then forms
// dV = sum (P f)^T dO and dK = scale sum (P (dP f - D))^T Q over its group's heads and the query
// tiles at or after it, so no two blocks write one row (no atomics; deterministic).
//
// Not bit-equal to the warp kernels: the products' accumulation order is the tensor cores' and
// the probabilities enter the products rounded to bf16. cuda_bf16_test checks every output
// against exact arithmetic within bounds derived from those roundings.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cstdint>

#include "kernels/cuda/check.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/launch.h"

namespace gptrain::kernels::cuda {

namespace {

namespace wmma = nvcuda::wmma;
using bf16 = __nv_bfloat16;

constexpr int kTile = 64;  // query and key rows a tile
constexpr int kWarps = 4;  // each owns 16 rows of its block's tile
constexpr int kFlashThreads = 32 * kWarps;
constexpr int kRows = kTile / kWarps;
static_assert(kRows == 16, "a warp's rows are one fragment high");

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;     // B = X (row-major X)
using FragBt = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;    // B = X^T (row-major X)
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// Shared-memory tiles, rows padded by 16 bytes against bank conflicts; every region starts on a
// 128-byte boundary and every fragment's first element on a 32-byte one (WMMA's requirement).
template <int HS>
struct Strides {
  static constexpr int head = HS + 8;      // bf16 [kTile][HS] tiles: Q, K, V, dO
  static constexpr int score = kTile + 4;  // float [kTile][kTile]: S, dP
  static constexpr int prob = kTile + 8;   // bf16 [kTile][kTile]: P, dS
  static constexpr int acc = HS + 4;       // float [kTile][HS]: O, dQ, dK, dV
};
// Each kernel's shared memory as one struct: the device takes its regions from it, the launch its
// size. Every region starts on a 128-byte boundary.
template <int HS>
using HeadTile = bf16[kTile * Strides<HS>::head];
template <int HS>
using AccTile = float[kTile * Strides<HS>::acc];
using ScoreTile = float[kTile * Strides<64>::score];
using ProbTile = bf16[kTile * Strides<64>::prob];

template <int HS>
struct ForwardSmem {
  alignas(128) HeadTile<HS> q, k, v;
  alignas(128) ScoreTile s;
  alignas(128) ProbTile p;
  alignas(128) AccTile<HS> o;
};
template <int HS>
struct QueryGradSmem {
  alignas(128) HeadTile<HS> q, dout, k, v;
  alignas(128) ScoreTile s, dp;
  alignas(128) ProbTile ds;
  alignas(128) AccTile<HS> dq;
};
template <int HS>
struct KeyGradSmem {
  alignas(128) HeadTile<HS> k, v, q, dout;
  alignas(128) ScoreTile st, dpt;  // transposed: a row per key
  alignas(128) ProbTile pt, dst;
  alignas(128) AccTile<HS> dk, dv;
  alignas(128) float m[kTile], inv[kTile], D[kTile];  // the query tile's rows' statistics
};
static_assert(sizeof(KeyGradSmem<128>) <= 227 * 1024, "over the opt-in shared memory of sm_90 (and sm_80)");

template <class Layout>
__device__ Layout& smem_as(unsigned char* smem) {
  return *reinterpret_cast<Layout*>(smem);
}

// Rows r0.. r0+kTile-1 of a head's [T, HS] slice (row stride `stride` elements) into a tile; rows
// at or past T zeroed. 16 bytes a thread a step (the caller checked the alignment).
template <int HS>
__device__ void load_tile(bf16* tile, const uint16_t* src, int64_t stride, int64_t r0, int64_t T) {
  constexpr int chunks = HS / 8;
  for (int i = threadIdx.x; i < kTile * chunks; i += blockDim.x) {
    const int r = i / chunks, c = (i % chunks) * 8;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (r0 + r < T) v = *reinterpret_cast<const uint4*>(src + (r0 + r) * stride + c);
    *reinterpret_cast<uint4*>(tile + r * Strides<HS>::head + c) = v;
  }
}

template <int HS>
__device__ void zero_acc(float* acc) {
  for (int i = threadIdx.x; i < kTile * Strides<HS>::acc; i += blockDim.x) acc[i] = 0.0f;
}

// The warp's 16 x 64 block C = A B^T: A its 16 rows of a head tile, B a whole head tile (K or V).
template <int HS>
__device__ void rows_times_tile_transposed(float* C, const bf16* A, const bf16* B) {
  constexpr int ld = Strides<HS>::head;
  for (int n = 0; n < kTile; n += 16) {
    FragC c;
    wmma::fill_fragment(c, 0.0f);
    for (int k = 0; k < HS; k += 16) {
      FragA a;
      FragBt b;
      wmma::load_matrix_sync(a, A + k, ld);
      wmma::load_matrix_sync(b, B + n * ld + k, ld);
      wmma::mma_sync(c, a, b, c);
    }
    wmma::store_matrix_sync(C + n, c, Strides<HS>::score, wmma::mem_row_major);
  }
}

// The warp's 16 x HS accumulator rows += P B: P its 16 rows of a bf16 [kTile][kTile] tile, B a
// head tile.
template <int HS>
__device__ void accumulate_rows_times_tile(float* acc, const bf16* P, const bf16* B) {
  for (int n = 0; n < HS; n += 16) {
    FragC c;
    wmma::load_matrix_sync(c, acc + n, Strides<HS>::acc, wmma::mem_row_major);
    for (int k = 0; k < kTile; k += 16) {
      FragA a;
      FragB b;
      wmma::load_matrix_sync(a, P + k, Strides<HS>::prob);
      wmma::load_matrix_sync(b, B + k * Strides<HS>::head + n, Strides<HS>::head);
      wmma::mma_sync(c, a, b, c);
    }
    wmma::store_matrix_sync(acc + n, c, Strides<HS>::acc, wmma::mem_row_major);
  }
}

struct FlashShape {
  int64_t T, NH, NKV, W, group, tiles;  // W: a qkv row's width; tiles: ceil(T / kTile)
};

template <int HS>
__global__ void __launch_bounds__(kFlashThreads)
    flash_forward_kernel(uint16_t* out, float* stats, const uint16_t* qkv, FlashShape L, DeviceMask mask,
                         float scale) {
  extern __shared__ __align__(128) unsigned char smem[];
  using S = Strides<HS>;
  ForwardSmem<HS>& sm = smem_as<ForwardSmem<HS>>(smem);
  bf16 *Qs = sm.q, *Ks = sm.k, *Vs = sm.v, *Ps = sm.p;
  float *Ss = sm.s, *Os = sm.o;

  const int64_t i = L.tiles - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z, kh = h / L.group;  // longest first
  const uint16_t* base = qkv + b * L.T * L.W;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r0 = warp * kRows;
  load_tile<HS>(Qs, base + h * HS, L.W, i * kTile, L.T);
  zero_acc<HS>(Os);
  float m[kRows], l[kRows];  // the warp's rows' running maximum and sum, in every lane
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
  }
  for (int64_t j = 0; j <= i; ++j) {
    __syncthreads();  // every warp is done with the previous K and V
    load_tile<HS>(Ks, base + (L.NH + kh) * HS, L.W, j * kTile, L.T);
    load_tile<HS>(Vs, base + (L.NH + L.NKV + kh) * HS, L.W, j * kTile, L.T);
    __syncthreads();
    rows_times_tile_transposed<HS>(Ss + r0 * S::score, Qs + r0 * S::head, Ks);
    __syncwarp();
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int64_t t = i * kTile + r0 + r;
      float x[2];
      for (int u = 0; u < 2; ++u) {
        const int64_t s = j * kTile + lane + 32 * u;
        x[u] = s <= t ? Ss[(r0 + r) * S::score + lane + 32 * u] * scale : -INFINITY;
      }
      // Column 0 of tile 0 is every row's, so the maximum is finite from the first tile on.
      const float m_new = fmaxf(m[r], warp_max(fmaxf(x[0], x[1])));
      const float alpha = expf(m[r] - m_new);
      float sum = 0.0f;
      for (int u = 0; u < 2; ++u) {
        const int64_t s = j * kTile + lane + 32 * u;
        const float e = expf(x[u] - m_new);
        sum += e;
        float w = e;
        if (mask.active && s <= t && t < L.T)
          w *= mask_factor(mask, static_cast<uint64_t>(((b * L.NH + h) * L.T + t) * L.T + s));
        Ps[(r0 + r) * S::prob + lane + 32 * u] = __float2bfloat16_rn(w);
      }
      l[r] = l[r] * alpha + warp_sum(sum);
      m[r] = m_new;
      for (int c = lane; c < HS; c += 32) Os[(r0 + r) * S::acc + c] *= alpha;
    }
    __syncwarp();
    accumulate_rows_times_tile<HS>(Os + r0 * S::acc, Ps + r0 * S::prob, Vs);
  }
  __syncwarp();
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t t = i * kTile + r0 + r;
    if (t >= L.T) continue;
    const float inv = 1.0f / l[r];
    uint16_t* o = out + (b * L.T + t) * (L.NH * HS) + h * HS;
    for (int c = lane; c < HS; c += 32) store(o + c, Os[(r0 + r) * S::acc + c] * inv);
    if (lane == 0) {
      const int64_t row = (b * L.NH + h) * L.T + t;
      stats[row * 2] = m[r];
      stats[row * 2 + 1] = inv;
    }
  }
}

// dQ (and D into dsum), per (query tile, head, batch).
template <int HS>
__global__ void __launch_bounds__(kFlashThreads)
    flash_backward_query_kernel(uint16_t* dqkv, float* dsum, const uint16_t* dout, const uint16_t* qkv,
                                const float* stats, FlashShape L, DeviceMask mask, float scale, bool write) {
  extern __shared__ __align__(128) unsigned char smem[];
  using S = Strides<HS>;
  QueryGradSmem<HS>& sm = smem_as<QueryGradSmem<HS>>(smem);
  bf16 *Qs = sm.q, *dOs = sm.dout, *Ks = sm.k, *Vs = sm.v, *dSs = sm.ds;
  float *Ss = sm.s, *dPs = sm.dp, *dQs = sm.dq;

  const int64_t i = L.tiles - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z, kh = h / L.group;
  const uint16_t* base = qkv + b * L.T * L.W;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r0 = warp * kRows;
  load_tile<HS>(Qs, base + h * HS, L.W, i * kTile, L.T);
  load_tile<HS>(dOs, dout + b * L.T * (L.NH * HS) + h * HS, L.NH * HS, i * kTile, L.T);
  zero_acc<HS>(dQs);
  float m[kRows], inv[kRows], D[kRows];  // a row past T has 1/l = 0: its probabilities vanish
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t t = i * kTile + r0 + r, row = (b * L.NH + h) * L.T + t;
    m[r] = t < L.T ? stats[row * 2] : 0.0f;
    inv[r] = t < L.T ? stats[row * 2 + 1] : 0.0f;
    D[r] = 0.0f;
  }
  // The warp's row r, column lane + 32 u of key tile j: its probability, dropout factor and dP.
  const auto element = [&](int r, int u, int64_t j, float& P, float& f, float& dP) {
    const int64_t t = i * kTile + r0 + r, s = j * kTile + lane + 32 * u;
    const int at = (r0 + r) * S::score + lane + 32 * u;
    const bool live = s <= t && t < L.T;
    P = live ? expf(Ss[at] * scale - m[r]) * inv[r] : 0.0f;
    f = live && mask.active ? mask_factor(mask, static_cast<uint64_t>(((b * L.NH + h) * L.T + t) * L.T + s)) : 1.0f;
    dP = dPs[at];
  };
  for (int pass = 0; pass < 2; ++pass) {
    for (int64_t j = 0; j <= i; ++j) {
      __syncthreads();
      load_tile<HS>(Ks, base + (L.NH + kh) * HS, L.W, j * kTile, L.T);
      load_tile<HS>(Vs, base + (L.NH + L.NKV + kh) * HS, L.W, j * kTile, L.T);
      __syncthreads();
      rows_times_tile_transposed<HS>(Ss + r0 * S::score, Qs + r0 * S::head, Ks);
      rows_times_tile_transposed<HS>(dPs + r0 * S::score, dOs + r0 * S::head, Vs);
      __syncwarp();
#pragma unroll
      for (int r = 0; r < kRows; ++r)
        for (int u = 0; u < 2; ++u) {
          float P, f, dP;
          element(r, u, j, P, f, dP);
          if (pass == 0) D[r] += P * (dP * f);  // the lane's part; summed over the warp after the pass
          else dSs[(r0 + r) * S::prob + lane + 32 * u] = __float2bfloat16_rn(P * (dP * f - D[r]) * scale);
        }
      if (pass == 1) {
        __syncwarp();
        accumulate_rows_times_tile<HS>(dQs + r0 * S::acc, dSs + r0 * S::prob, Ks);
      }
    }
    if (pass == 0) {
#pragma unroll
      for (int r = 0; r < kRows; ++r) D[r] = warp_sum(D[r]);
    }
  }
  __syncwarp();
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t t = i * kTile + r0 + r;
    if (t >= L.T) continue;
    uint16_t* dq = dqkv + b * L.T * L.W + t * L.W + h * HS;
    for (int c = lane; c < HS; c += 32) {
      const float g = dQs[(r0 + r) * S::acc + c];
      store(dq + c, write ? g : load(dq + c) + g);
    }
    if (lane == 0) dsum[(b * L.NH + h) * L.T + t] = D[r];
  }
}

// dK and dV, per (key tile, kv head, batch): over the group's query heads and the query tiles at
// or after the key tile.
template <int HS>
__global__ void __launch_bounds__(kFlashThreads)
    flash_backward_key_kernel(uint16_t* dqkv, const float* dsum, const uint16_t* dout, const uint16_t* qkv,
                              const float* stats, FlashShape L, DeviceMask mask, float scale, bool write) {
  extern __shared__ __align__(128) unsigned char smem[];
  using S = Strides<HS>;
  KeyGradSmem<HS>& sm = smem_as<KeyGradSmem<HS>>(smem);
  bf16 *Ks = sm.k, *Vs = sm.v, *Qs = sm.q, *dOs = sm.dout, *PTs = sm.pt, *dSTs = sm.dst;
  float *STs = sm.st, *dPTs = sm.dpt, *dKs = sm.dk, *dVs = sm.dv, *qm = sm.m, *qinv = sm.inv, *qD = sm.D;

  const int64_t j = blockIdx.x, kh = blockIdx.y, b = blockIdx.z;  // the first key tiles have the most work
  const uint16_t* base = qkv + b * L.T * L.W;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r0 = warp * kRows;
  load_tile<HS>(Ks, base + (L.NH + kh) * HS, L.W, j * kTile, L.T);
  load_tile<HS>(Vs, base + (L.NH + L.NKV + kh) * HS, L.W, j * kTile, L.T);
  zero_acc<HS>(dKs);
  zero_acc<HS>(dVs);
  for (int64_t h = kh * L.group; h < (kh + 1) * L.group; ++h)
    for (int64_t i = j; i < L.tiles; ++i) {
      __syncthreads();
      load_tile<HS>(Qs, base + h * HS, L.W, i * kTile, L.T);
      load_tile<HS>(dOs, dout + b * L.T * (L.NH * HS) + h * HS, L.NH * HS, i * kTile, L.T);
      for (int c = threadIdx.x; c < kTile; c += blockDim.x) {
        const int64_t t = i * kTile + c, row = (b * L.NH + h) * L.T + t;
        qm[c] = t < L.T ? stats[row * 2] : 0.0f;
        qinv[c] = t < L.T ? stats[row * 2 + 1] : 0.0f;
        qD[c] = t < L.T ? dsum[row] : 0.0f;
      }
      __syncthreads();
      rows_times_tile_transposed<HS>(STs + r0 * S::score, Ks + r0 * S::head, Qs);
      rows_times_tile_transposed<HS>(dPTs + r0 * S::score, Vs + r0 * S::head, dOs);
      __syncwarp();
#pragma unroll
      for (int r = 0; r < kRows; ++r)
        for (int u = 0; u < 2; ++u) {
          const int c = lane + 32 * u;
          const int64_t s = j * kTile + r0 + r, t = i * kTile + c;
          const bool live = t >= s && t < L.T;
          const int at = (r0 + r) * S::score + c;
          const float P = live ? expf(STs[at] * scale - qm[c]) * qinv[c] : 0.0f;
          const float f =
              live && mask.active ? mask_factor(mask, static_cast<uint64_t>(((b * L.NH + h) * L.T + t) * L.T + s))
                                  : 1.0f;
          PTs[(r0 + r) * S::prob + c] = __float2bfloat16_rn(P * f);
          dSTs[(r0 + r) * S::prob + c] = __float2bfloat16_rn(P * (dPTs[at] * f - qD[c]) * scale);
        }
      __syncwarp();
      accumulate_rows_times_tile<HS>(dVs + r0 * S::acc, PTs + r0 * S::prob, dOs);
      accumulate_rows_times_tile<HS>(dKs + r0 * S::acc, dSTs + r0 * S::prob, Qs);
    }
  __syncwarp();
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t s = j * kTile + r0 + r;
    if (s >= L.T) continue;
    uint16_t* dk = dqkv + b * L.T * L.W + s * L.W + (L.NH + kh) * HS;
    uint16_t* dv = dqkv + b * L.T * L.W + s * L.W + (L.NH + L.NKV + kh) * HS;
    for (int c = lane; c < HS; c += 32) {
      const float gk = dKs[(r0 + r) * S::acc + c], gv = dVs[(r0 + r) * S::acc + c];
      store(dk + c, write ? gk : load(dk + c) + gk);
      store(dv + c, write ? gv : load(dv + c) + gv);
    }
  }
}

FlashShape flash_shape(const AttentionParams& p) {
  return FlashShape{p.T, p.NH, p.NKV, p.qkv_width(), p.NH / p.NKV, (p.T + kTile - 1) / kTile};
}

// Opts the kernel into its dynamic shared memory (over the default 48 KiB) once.
template <class Kernel>
void allow_smem(Kernel kernel, size_t bytes, bool& done) {
  if (done) return;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
             "flash attention: shared memory");
  done = true;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <int HS>
void forward(uint16_t* out, float* stats, const uint16_t* qkv, const AttentionParams& p) {
  static bool opted = false;
  allow_smem(flash_forward_kernel<HS>, sizeof(ForwardSmem<HS>), opted);
  const FlashShape L = flash_shape(p);
  const dim3 grid(static_cast<unsigned>(L.tiles), static_cast<unsigned>(p.NH), static_cast<unsigned>(p.B));
  flash_forward_kernel<HS><<<grid, kFlashThreads, sizeof(ForwardSmem<HS>)>>>(out, stats, qkv, L, attention_mask(p),
                                                                        1.0f / sqrtf(float(HS)));
  check_launch("flash attention forward");
}

template <int HS>
void backward(uint16_t* dqkv, float* dsum, const uint16_t* dout, const uint16_t* qkv, const float* stats,
              const AttentionParams& p) {
  static bool opted_q = false, opted_k = false;
  allow_smem(flash_backward_query_kernel<HS>, sizeof(QueryGradSmem<HS>), opted_q);
  allow_smem(flash_backward_key_kernel<HS>, sizeof(KeyGradSmem<HS>), opted_k);
  const FlashShape L = flash_shape(p);
  const float scale = 1.0f / sqrtf(float(HS));
  const bool write = p.dinp == InputGrad::Write;
  const DeviceMask mask = attention_mask(p);
  const dim3 qgrid(static_cast<unsigned>(L.tiles), static_cast<unsigned>(p.NH), static_cast<unsigned>(p.B));
  flash_backward_query_kernel<HS><<<qgrid, kFlashThreads, sizeof(QueryGradSmem<HS>)>>>(dqkv, dsum, dout, qkv, stats, L,
                                                                                   mask, scale, write);
  check_launch("flash attention backward (queries)");
  const dim3 kgrid(static_cast<unsigned>(L.tiles), static_cast<unsigned>(p.NKV), static_cast<unsigned>(p.B));
  flash_backward_key_kernel<HS><<<kgrid, kFlashThreads, sizeof(KeyGradSmem<HS>)>>>(dqkv, dsum, dout, qkv, stats, L,
                                                                               mask, scale, write);
  check_launch("flash attention backward (keys and values)");
}

}  // namespace

bool flash_attention_supported(const AttentionParams& p, const void* qkv, const void* dout) {
  return (p.HS == 64 || p.HS == 128) && p.NKV > 0 && p.NH % p.NKV == 0 && p.NH <= 65535 && p.NKV <= 65535 &&
         p.B <= 65535 && aligned16(qkv) && (dout == nullptr || aligned16(dout));
}

void flash_attention_forward(uint16_t* out, float* stats, const uint16_t* qkv, const AttentionParams& p) {
  if (p.B * p.T == 0) return;
  if (p.HS == 64) forward<64>(out, stats, qkv, p);
  else forward<128>(out, stats, qkv, p);
}

void flash_attention_backward(uint16_t* dqkv, float* dsum, const uint16_t* dout, const uint16_t* qkv,
                              const float* stats, const AttentionParams& p) {
  if (p.B * p.T == 0) return;
  if (p.HS == 64) backward<64>(dqkv, dsum, dout, qkv, stats, p);
  else backward<128>(dqkv, dsum, dout, qkv, stats, p);
}

}  // namespace gptrain::kernels::cuda
