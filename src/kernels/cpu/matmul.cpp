// Linear layer; weight is [OC, IC] as in PyTorch's nn.Linear. Matrix products go through OpenBLAS,
// except the batch-invariant forward of the decode engine, which is our own kernel (below), also
// for weights kept in f16 or bf16 (gptrain serve --weights-dtype).
#include <cblas.h>
#if defined(__F16C__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu.h"
#include "tensor/dtype.h"

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

// Weights as stored: f32, f16 or bf16, read eight at a time as eight floats (a half is converted
// exactly, so the products and sums are the f32 kernel's on the converted weights).
struct F32Weights {
  using Elem = float;
  static v8 load(const float* p) { return load8(p); }
  static float one(const float* p) { return *p; }
};
struct BF16Weights {
  using Elem = uint16_t;
  static v8 load(const uint16_t* p) {
    typedef uint16_t u16x8 __attribute__((vector_size(16), aligned(2)));
    typedef uint32_t u32x8 __attribute__((vector_size(32)));
    const u32x8 wide = __builtin_convertvector(*reinterpret_cast<const u16x8*>(p), u32x8) << 16;
    return reinterpret_cast<const v8&>(wide);
  }
  static float one(const uint16_t* p) { return bf16_to_float(*p); }
};
struct F16Weights {
  using Elem = uint16_t;
  static v8 load(const uint16_t* p) {
#if defined(__F16C__)
    const __m256 w = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return reinterpret_cast<const v8&>(w);
#else
    v8 w;
    for (int i = 0; i < 8; ++i) w[i] = f16_to_float(p[i]);
    return w;
#endif
  }
  static float one(const uint16_t* p) { return f16_to_float(*p); }
};

// rows x outs dot products (rows <= 2, outs <= 4) of inp rows [n, n + rows) with weight rows
// [o, o + outs), written to out[n.., o..] with the bias added last.
template <class W, int kRows, int kOuts>
inline void dot_block(float* out, const float* inp, const typename W::Elem* weight, const float* bias, int64_t IC,
                      int64_t OC, int64_t n, int64_t o) {
  const int64_t K8 = IC / 8 * 8;
  v8 acc[kRows][kOuts];
  for (int r = 0; r < kRows; ++r)
    for (int j = 0; j < kOuts; ++j) acc[r][j] = v8{};
  const float* x[kRows];
  for (int r = 0; r < kRows; ++r) x[r] = inp + (n + r) * IC;
  const typename W::Elem* w[kOuts];
  for (int j = 0; j < kOuts; ++j) w[j] = weight + (o + j) * IC;
  for (int64_t k = 0; k < K8; k += 8) {
    v8 xv[kRows];
    for (int r = 0; r < kRows; ++r) xv[r] = load8(x[r] + k);
    for (int j = 0; j < kOuts; ++j) {
      const v8 wv = W::load(w[j] + k);
      for (int r = 0; r < kRows; ++r) acc[r][j] += xv[r] * wv;
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int j = 0; j < kOuts; ++j) {
      float s = reduce8(acc[r][j]);
      // One rounding per tail term (an explicit fma), so every weight type's instantiation does
      // the same arithmetic whatever the compiler contracts.
      for (int64_t k = K8; k < IC; ++k) s = std::fma(x[r][k], W::one(w[j] + k), s);
      out[(n + r) * OC + o + j] = bias ? s + bias[o + j] : s;
    }
}

template <class W, int kRows>
inline void dot_rows(float* out, const float* inp, const typename W::Elem* weight, const float* bias, int64_t IC,
                     int64_t OC, int64_t n, int64_t o, int64_t outs) {
  switch (outs) {
    case 4: dot_block<W, kRows, 4>(out, inp, weight, bias, IC, OC, n, o); break;
    case 3: dot_block<W, kRows, 3>(out, inp, weight, bias, IC, OC, n, o); break;
    case 2: dot_block<W, kRows, 2>(out, inp, weight, bias, IC, OC, n, o); break;
    default: dot_block<W, kRows, 1>(out, inp, weight, bias, IC, OC, n, o); break;
  }
}

template <class W>
void matmul_forward_batch_invariant(float* out, const float* inp, const typename W::Elem* weight, const float* bias,
                                    const MatmulParams& p) {
  const int64_t N = p.N, IC = p.IC, OC = p.OC;
  const int64_t blocks = (OC + 3) / 4;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t o = blk * 4, outs = std::min<int64_t>(4, OC - o);
    int64_t n = 0;
    for (; n + 2 <= N; n += 2) dot_rows<W, 2>(out, inp, weight, bias, IC, OC, n, o, outs);
    if (n < N) dot_rows<W, 1>(out, inp, weight, bias, IC, OC, n, o, outs);
  }
}

}  // namespace

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias,
                    const MatmulParams& p) {
  const int64_t N = p.N, IC = p.IC, OC = p.OC;
  if (N == 0 || OC == 0) return;
  if (p.batch_invariant) {
    matmul_forward_batch_invariant<F32Weights>(out, inp, weight, bias, p);
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

void matmul_forward_half(float* out, const float* inp, const uint16_t* weight, bool bf16, const float* bias,
                         const MatmulParams& p) {
  if (p.N == 0 || p.OC == 0) return;
  if (bf16)
    matmul_forward_batch_invariant<BF16Weights>(out, inp, weight, bias, p);
  else
    matmul_forward_batch_invariant<F16Weights>(out, inp, weight, bias, p);
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
