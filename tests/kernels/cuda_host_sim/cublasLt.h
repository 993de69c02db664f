// The host stand-in's cuBLASLt (cuda_runtime.h): the subset backend.cpp's gemm uses, computed on
// the host. D = alpha op(A) op(B) + beta C (column-major, C and D one buffer here), the bias
// epilogue adding bias[i] to row i, float32 accumulation in k order; bf16 operands widened and the
// output rounded once to nearest; FAST_TF32 rounds float32 inputs to 10-bit significands (to
// nearest). It checks the wrapper's transposes, leading dimensions, bias and types, not cuBLASLt.
#pragma once

#include <cstdint>

#include "cuda_bf16.h"

enum cublasStatus_t { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_INVALID_VALUE = 7, CUBLAS_STATUS_NOT_SUPPORTED = 15 };
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 };
enum cublasLtEpilogue_t { CUBLASLT_EPILOGUE_DEFAULT = 1, CUBLASLT_EPILOGUE_BIAS = 4 };
enum cublasLtMatmulDescAttributes_t {
  CUBLASLT_MATMUL_DESC_TRANSA,
  CUBLASLT_MATMUL_DESC_TRANSB,
  CUBLASLT_MATMUL_DESC_EPILOGUE,
  CUBLASLT_MATMUL_DESC_BIAS_POINTER,
  CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE
};
enum cublasLtMatmulPreferenceAttributes_t {
  CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
  CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
  CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK
};
enum cublasLtReductionScheme_t { CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE = 2 };

namespace sim::lt {
struct Desc {
  cublasComputeType_t compute;
  cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  cudaDataType_t bias_type = CUDA_R_32F;
};
struct Layout {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
};
struct Pref {};
struct Handle {};
}  // namespace sim::lt

using cublasLtHandle_t = sim::lt::Handle*;
using cublasLtMatmulDesc_t = sim::lt::Desc*;
using cublasLtMatrixLayout_t = sim::lt::Layout*;
using cublasLtMatmulPreference_t = sim::lt::Pref*;
struct cublasLtMatmulAlgo_t {
  uint64_t data[8];
};
struct cublasLtMatmulHeuristicResult_t {
  cublasLtMatmulAlgo_t algo;
  size_t workspaceSize;
  cublasStatus_t state;
  float wavesCount;
  int reserved[4];
};

inline const char* cublasLtGetStatusString(cublasStatus_t s) { return s == 0 ? "success" : "error (host stand-in)"; }
inline cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) {
  static sim::lt::Handle handle;
  *h = &handle;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute, cudaDataType_t) {
  *d = new sim::lt::Desc{compute};
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
  delete d;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a,
                                                     const void* v, size_t) {
  switch (a) {
    case CUBLASLT_MATMUL_DESC_TRANSA: d->ta = *static_cast<const cublasOperation_t*>(v); break;
    case CUBLASLT_MATMUL_DESC_TRANSB: d->tb = *static_cast<const cublasOperation_t*>(v); break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: d->epilogue = *static_cast<const cublasLtEpilogue_t*>(v); break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: d->bias = *static_cast<const void* const*>(v); break;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: d->bias_type = *static_cast<const cudaDataType_t*>(v); break;
  }
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType_t type, uint64_t rows,
                                                 uint64_t cols, int64_t ld) {
  if (ld < static_cast<int64_t>(rows)) return CUBLAS_STATUS_INVALID_VALUE;
  *l = new sim::lt::Layout{type, rows, cols, ld};
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
  delete l;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* p) {
  *p = new sim::lt::Pref{};
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
  delete p;
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t,
                                                           cublasLtMatmulPreferenceAttributes_t, const void*, size_t) {
  return CUBLAS_STATUS_SUCCESS;
}
inline cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t,
                                                     cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                                     cublasLtMatrixLayout_t, cublasLtMatmulPreference_t, int,
                                                     cublasLtMatmulHeuristicResult_t*, int* found) {
  *found = 1;
  return CUBLAS_STATUS_SUCCESS;
}

namespace sim::lt {
inline float element(const void* p, cudaDataType_t type, int64_t i) {
  return type == CUDA_R_16BF ? sim::value(static_cast<const __nv_bfloat16*>(p)[i]) : static_cast<const float*>(p)[i];
}
inline float tf32(float x) {  // to nearest, ties to even, at 10 stored significand bits
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  if ((bits & 0x7f800000u) == 0x7f800000u) return x;
  return std::bit_cast<float>((bits + 0xfffu + ((bits >> 13) & 1u)) & ~0x1fffu);
}
// Element (i, j) of op(X) for a column-major X of layout l.
inline float op_at(const void* X, const Layout& l, bool trans, int64_t i, int64_t j) {
  return trans ? element(X, l.type, j + i * l.ld) : element(X, l.type, i + j * l.ld);
}
}  // namespace sim::lt

inline cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t d, const void* alpha, const void* A,
                                     cublasLtMatrixLayout_t a, const void* B, cublasLtMatrixLayout_t b,
                                     const void* beta, const void* C, cublasLtMatrixLayout_t c, void* D,
                                     cublasLtMatrixLayout_t dl, const cublasLtMatmulAlgo_t*, void*, size_t,
                                     cudaStream_t) {
  const bool ta = d->ta == CUBLAS_OP_T, tb = d->tb == CUBLAS_OP_T;
  const int64_t m = static_cast<int64_t>(dl->rows), n = static_cast<int64_t>(dl->cols);
  const int64_t k = static_cast<int64_t>(ta ? a->rows : a->cols);
  if (static_cast<int64_t>(ta ? a->cols : a->rows) != m || static_cast<int64_t>(tb ? b->rows : b->cols) != n ||
      static_cast<int64_t>(tb ? b->cols : b->rows) != k || C != D || c->ld != dl->ld)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (d->bias && d->bias_type != dl->type) return CUBLAS_STATUS_NOT_SUPPORTED;
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  const bool tf = d->compute == CUBLAS_COMPUTE_32F_FAST_TF32;
  std::vector<float> out(static_cast<size_t>(m * n));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < m; ++i) {
      float acc = 0.0f;
      for (int64_t p = 0; p < k; ++p) {
        float x = sim::lt::op_at(A, *a, ta, i, p), y = sim::lt::op_at(B, *b, tb, p, j);
        if (tf) x = sim::lt::tf32(x), y = sim::lt::tf32(y);
        acc += x * y;
      }
      float r = al * acc;
      if (be != 0.0f) r += be * sim::lt::element(D, dl->type, i + j * dl->ld);
      if (d->epilogue == CUBLASLT_EPILOGUE_BIAS && d->bias) r += sim::lt::element(d->bias, d->bias_type, i);
      out[static_cast<size_t>(i + j * m)] = r;
    }
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i < m; ++i) {
      const float r = out[static_cast<size_t>(i + j * m)];
      if (dl->type == CUDA_R_16BF) static_cast<__nv_bfloat16*>(D)[i + j * dl->ld] = __float2bfloat16_rn(r);
      else static_cast<float*>(D)[i + j * dl->ld] = r;
    }
  return CUBLAS_STATUS_SUCCESS;
}
