// The f32 CUDA backend: the Backend interface over the kernels of the .cu files (launch.h) and
// cuBLASLt's matrix products (fp32 compute, so a product's error is the CPU's gamma(IC) bound).
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/launch.h"
#include "util/error.h"

namespace gptrain::kernels::cuda {

namespace {

void check_cublas(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) fail("{}: cuBLASLt error {} ({})", what, static_cast<int>(s), cublasLtGetStatusString(s));
}

// Device scratch for a call (the caching allocator makes it cheap).
Tensor scratch(int64_t elements, DType dtype = DType::F32) {
  return Tensor::empty({std::max<int64_t>(1, elements)}, dtype, Device::CUDA);
}

void check_head_size(int64_t head_size, const char* op) {
  if (head_size > kMaxHeadSize)
    fail("{}: head size {} is above the CUDA backend's {} (its kernels keep a head row in registers)", op, head_size,
         kMaxHeadSize);
}

// One handle and one workspace for the process (cuBLASLt needs both; 32 MiB as PyTorch's default
// for Hopper).
class Lt {
 public:
  static Lt& get() {
    static Lt lt;
    return lt;
  }
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 32u << 20;

 private:
  Lt() {
    check_cublas(cublasLtCreate(&handle), "cublasLtCreate");
    check_cuda(cudaMalloc(&workspace, workspace_bytes), "cuBLASLt workspace");
  }
};

// RAII for cuBLASLt's descriptors.
struct Layout {
  cublasLtMatrixLayout_t d = nullptr;
  Layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld) {
    check_cublas(cublasLtMatrixLayoutCreate(&d, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld),
                 "cublasLtMatrixLayoutCreate");
  }
  ~Layout() { cublasLtMatrixLayoutDestroy(d); }
};

}  // namespace

namespace {
std::atomic<bool> tf32_products{false};
}  // namespace

void set_tf32(bool enabled) { tf32_products = enabled; }
bool tf32() { return tf32_products; }

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* A, int64_t lda, const void* B,
          int64_t ldb, void* D, int64_t ldd, float beta, const void* bias, GemmType element) {
  if (m == 0 || n == 0) return;
  const bool bf16 = element == GemmType::BF16;
  const cudaDataType_t type = bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const size_t size = bf16 ? 2 : 4;
  if (k == 0) {  // an empty sum: D = beta D (beta is 0 or 1 here)
    if (beta == 0.0f) check_cuda(cudaMemset2D(D, ldd * size, 0, m * size, n), "gemm: zero D");
    return;
  }
  Lt& lt = Lt::get();
  cublasLtMatmulDesc_t desc = nullptr;
  // float32 accumulation and scalars in both modes: a bf16 product's error is then one bf16
  // rounding of its output on top of the float32 gamma(k) bound. TF32 (set_tf32) rounds a float32
  // product's inputs to 10-bit significands on the tensor cores, and accumulates in float32 too.
  const cublasComputeType_t compute = !bf16 && tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  check_cublas(cublasLtMatmulDescCreate(&desc, compute, CUDA_R_32F), "cublasLtMatmulDescCreate");
  struct DescGuard {
    cublasLtMatmulDesc_t d;
    ~DescGuard() { cublasLtMatmulDescDestroy(d); }
  } guard{desc};
  const cublasOperation_t ta = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  check_cublas(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "TRANSA");
  check_cublas(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "TRANSB");
  if (bias) {
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    check_cublas(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), "EPILOGUE");
    check_cublas(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias), "BIAS");
    check_cublas(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &type, sizeof type),
                 "BIAS_DATA_TYPE");  // the bias is of the operands' type
  }
  const Layout a(type, trans_a ? k : m, trans_a ? m : k, lda), b(type, trans_b ? n : k, trans_b ? k : n, ldb),
      d(type, m, n, ldd);
  cublasLtMatmulPreference_t pref = nullptr;
  check_cublas(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
  struct PrefGuard {
    cublasLtMatmulPreference_t p;
    ~PrefGuard() { cublasLtMatmulPreferenceDestroy(p); }
  } pref_guard{pref};
  check_cublas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &lt.workspace_bytes, sizeof lt.workspace_bytes),
               "MAX_WORKSPACE_BYTES");
  // Operands are often views into a flat buffer or the arena: tell the heuristic their real
  // alignment (it assumes 256 bytes otherwise, and may pick a kernel that faults on less).
  const auto alignment = [](const void* ptr) {
    const auto a = reinterpret_cast<uintptr_t>(ptr);
    return static_cast<uint32_t>(std::min<uintptr_t>(256, a & (~a + 1)));
  };
  const uint32_t align_a = alignment(A), align_b = alignment(B), align_d = alignment(D);
  check_cublas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                                                    sizeof align_a), "MIN_ALIGNMENT_A");
  check_cublas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b,
                                                    sizeof align_b), "MIN_ALIGNMENT_B");
  check_cublas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d,
                                                    sizeof align_d), "MIN_ALIGNMENT_C");
  check_cublas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d,
                                                    sizeof align_d), "MIN_ALIGNMENT_D");
  if (bf16) {  // split-k partial sums in float32 only, never in the bf16 output (one rounding per product)
    const uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    check_cublas(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes,
                                                      sizeof schemes), "REDUCTION_SCHEME_MASK");
  }
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  check_cublas(cublasLtMatmulAlgoGetHeuristic(lt.handle, desc, a.d, b.d, d.d, d.d, pref, 1, &heuristic, &found),
               "cublasLtMatmulAlgoGetHeuristic");
  if (found == 0)
    fail("cuBLASLt has no algorithm for a {}x{}x{} {} product", m, n, k, bf16 ? "bf16" : tf32() ? "tf32" : "f32");
  const float alpha = 1.0f;
  check_cublas(cublasLtMatmul(lt.handle, desc, &alpha, A, a.d, B, b.d, &beta, D, d.d, D, d.d, &heuristic.algo,
                              lt.workspace, lt.workspace_bytes, nullptr),
               "cublasLtMatmul");
}

namespace {

const float* f(const void* p) { return static_cast<const float*>(p); }
float* f(void* p) { return static_cast<float*>(p); }

class CudaF32Backend final : public Backend {
 public:
  const char* name() const override { return "cuda"; }
  Device device() const override { return Device::CUDA; }
  DType dtype() const override { return DType::F32; }

  void embedding_forward(void* out, const int32_t* tokens, const int32_t* positions, const void* wte, const void* wpe,
                         const EmbeddingParams& p) const override {
    cuda::embedding_forward(f(out), tokens, positions, f(wte), f(wpe), p);
  }
  void embedding_backward(void* dwte, void* dwpe, const void* dout, const int32_t* tokens, const int32_t* positions,
                          const EmbeddingParams& p) const override {
    const size_t bytes = embedding_backward_scratch_bytes(p);
    const Tensor s = scratch(static_cast<int64_t>((bytes + 3) / 4), DType::I32);
    cuda::embedding_backward(f(dwte), f(dwpe), f(dout), tokens, positions, p, s.raw(), bytes);
  }
  void dropout_forward(void* out, const void* inp, const DropoutParams& p) const override {
    cuda::dropout_forward(f(out), f(inp), p);
  }
  void dropout_backward(void* dinp, const void* dout, const DropoutParams& p) const override {
    cuda::dropout_backward(f(dinp), f(dout), p);
  }
  void layernorm_forward(void* out, void* mean, void* rstd, const void* inp, const void* weight, const void* bias,
                         const LayerNormParams& p) const override {
    cuda::layernorm_forward(f(out), f(mean), f(rstd), f(inp), f(weight), f(bias), p);
  }
  void layernorm_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight,
                          const void* mean, const void* rstd, const LayerNormParams& p) const override {
    const Tensor partial = scratch(layernorm_backward_partials(p));
    cuda::layernorm_backward(f(dinp), f(dweight), f(dbias), f(dout), f(inp), f(weight), f(mean), f(rstd), p,
                             partial.device_data<float>());
  }

  // Row-major out[N,OC] is column-major out^T[OC,N] = W (stored [OC,IC] row-major = IC x OC
  // column-major, transposed) times inp^T [IC,N].
  void matmul_forward(void* out, const void* inp, const void* weight, const void* bias,
                      const MatmulParams& p) const override {
    if (p.batch_invariant) return matmul_rowwise(f(out), f(inp), weight, 0, f(bias), p);
    gemm(true, false, p.OC, p.N, p.IC, f(weight), p.IC, f(inp), p.IC, f(out), p.OC, 0.0f, f(bias));
  }
  void matmul_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight,
                       const MatmulParams& p) const override {
    // dinp[N,IC] (column-major [IC,N]) = W^T-view [IC,OC] times dout^T [OC,N]
    if (dinp)
      gemm(false, false, p.IC, p.N, p.OC, f(weight), p.IC, f(dout), p.OC, f(dinp), p.IC,
           p.dinp == InputGrad::Write ? 0.0f : 1.0f, nullptr);
    // dweight[OC,IC] (column-major [IC,OC]) += inp^T [IC,N] times dout [N,OC]
    if (dweight) gemm(false, true, p.IC, p.OC, p.N, f(inp), p.IC, f(dout), p.OC, f(dweight), p.IC, 1.0f, nullptr);
    if (dbias) {
      const Tensor partial = scratch(column_partials(p.N, p.OC));
      column_sums_add(f(dbias), f(dout), p.N, p.OC, partial.device_data<float>());
    }
  }
  void matmul_forward_half(void* out, const void* inp, const uint16_t* weight, DType weight_type, const void* bias,
                           const MatmulParams& p) const override {
    if (weight_type != DType::F16 && weight_type != DType::BF16)
      fail("matmul_forward_half: weights must be f16 or bf16, got {}", dtype_name(weight_type));
    matmul_rowwise(f(out), f(inp), weight, weight_type == DType::F16 ? 1 : 2, f(bias), p);
  }
  void lora_forward(void* out, const void* inp, const void* A, const void* B, const LoraParams& p) const override {
    const Tensor h = scratch(p.N * p.S * p.R);
    cuda::lora_forward(f(out), h.device_data<float>(), f(inp), f(A), f(B), p);
  }
  void lora_backward(void* dinp, void* dA, void* dB, const void* dout, const void* inp, const void* A, const void* B,
                     const LoraParams& p) const override {
    const Tensor h = scratch(p.N * p.S * p.R), dh = scratch(p.N * p.S * p.R);
    cuda::lora_backward(f(dinp), f(dA), f(dB), h.device_data<float>(), dh.device_data<float>(), f(dout), f(inp), f(A), f(B), p);
  }
  void lora_merge(void* weight, const void* A, const void* B, const LoraParams& p) const override {
    cuda::lora_merge(f(weight), f(A), f(B), p);
  }
  void attention_forward(void* out, void* stats, const void* qkv, const AttentionParams& p) const override {
    check_head_size(p.HS, "attention_forward");
    cuda::attention_forward(f(out), f(stats), f(qkv), p);
  }
  void attention_backward(void* dqkv, const void* dout, const void* qkv, const void* stats,
                          const AttentionParams& p) const override {
    check_head_size(p.HS, "attention_backward");
    const Tensor dsum = scratch(p.B * p.NH * p.T);
    cuda::attention_backward(f(dqkv), dsum.device_data<float>(), f(dout), f(qkv), f(stats), p);
  }
  void attention_decode_forward(void* out, const void* qkv, const DecodeSeq* seqs,
                                const AttentionDecodeParams& p) const override {
    check_head_size(p.HS, "attention_decode_forward");
    cuda::attention_decode_forward(f(out), f(qkv), seqs, p);
  }
  void rmsnorm_forward(void* out, void* rstd, const void* inp, const void* weight, const RmsNormParams& p) const override {
    cuda::rmsnorm_forward(f(out), f(rstd), f(inp), f(weight), p);
  }
  void rmsnorm_backward(void* dinp, void* dweight, const void* dout, const void* inp, const void* weight,
                        const void* rstd, const RmsNormParams& p) const override {
    const Tensor partial = scratch(rmsnorm_backward_partials(p));
    cuda::rmsnorm_backward(f(dinp), f(dweight), f(dout), f(inp), f(weight), f(rstd), p, partial.device_data<float>());
  }
  void qk_norm_forward(void* out, void* rstd, const void* inp, const void* q_weight, const void* k_weight,
                       const QkNormParams& p) const override {
    cuda::qk_norm_forward(f(out), f(rstd), f(inp), f(q_weight), f(k_weight), p);
  }
  void qk_norm_backward(void* dinp, void* dq_weight, void* dk_weight, const void* dout, const void* inp,
                        const void* q_weight, const void* k_weight, const void* rstd,
                        const QkNormParams& p) const override {
    const Tensor partial = scratch(qk_norm_backward_partials(p));
    cuda::qk_norm_backward(f(dinp), f(dq_weight), f(dk_weight), f(dout), f(inp), f(q_weight), f(k_weight), f(rstd), p,
                           partial.device_data<float>());
  }
  void rope_table(void* cos_out, void* sin_out, const void* inv_freq, const int32_t* positions,
                  const RopeTableParams& p) const override {
    cuda::rope_table(f(cos_out), f(sin_out), f(inv_freq), positions, p);
  }
  void rope_forward(void* qkv, const void* cos_t, const void* sin_t, const RopeParams& p) const override {
    cuda::rope_forward(f(qkv), f(cos_t), f(sin_t), p);
  }
  void rope_backward(void* dqkv, const void* cos_t, const void* sin_t, const RopeParams& p) const override {
    cuda::rope_backward(f(dqkv), f(cos_t), f(sin_t), p);
  }
  void swiglu_forward(void* out, const void* inp, const SwigluParams& p) const override {
    cuda::swiglu_forward(f(out), f(inp), p);
  }
  void swiglu_backward(void* dinp, const void* inp, const void* dout, const SwigluParams& p) const override {
    cuda::swiglu_backward(f(dinp), f(inp), f(dout), p);
  }
  void gelu_forward(void* out, const void* inp, const GeluParams& p) const override { cuda::gelu_forward(f(out), f(inp), p); }
  void gelu_backward(void* dinp, const void* inp, const void* dout, const GeluParams& p) const override {
    cuda::gelu_backward(f(dinp), f(inp), f(dout), p);
  }
  void residual_forward(void* out, const void* a, const void* b, const ResidualParams& p) const override {
    cuda::residual_forward(f(out), f(a), f(b), p);
  }
  void residual_backward(void* da, void* db, const void* dout, const ResidualParams& p) const override {
    cuda::residual_backward(f(da), f(db), f(dout), p);
  }
  void cross_entropy_forward(void* losses, void* lse, const void* logits, const int32_t* targets,
                             const CrossEntropyParams& p) const override {
    cuda::cross_entropy_forward(f(losses), f(lse), f(logits), targets, p);
  }
  void cross_entropy_backward(void* dlogits, const void* logits, const void* lse, const int32_t* targets,
                              const void* dloss, const CrossEntropyParams& p) const override {
    cuda::cross_entropy_backward(f(dlogits), f(logits), f(lse), targets, f(dloss), p);
  }
  // Small (one value per row): summed on the host in row order and in double, as the CPU does.
  LossTotal loss_total(const void* losses, const int32_t* targets, const CrossEntropyParams& p) const override {
    std::vector<int32_t> t(static_cast<size_t>(p.N));
    std::vector<float> l(losses ? static_cast<size_t>(p.N) : 0);
    if (p.N) check_cuda(cudaMemcpy(t.data(), targets, t.size() * sizeof(int32_t), cudaMemcpyDefault), "loss_total");
    if (!l.empty()) check_cuda(cudaMemcpy(l.data(), losses, l.size() * sizeof(float), cudaMemcpyDefault), "loss_total");
    LossTotal total{0.0, 0};
    for (int64_t r = 0; r < p.N; ++r)
      if (t[static_cast<size_t>(r)] != p.ignore_index) {
        ++total.counted;
        if (!l.empty()) total.sum += l[static_cast<size_t>(r)];
      }
    return total;
  }
  void pool_forward(void* out, const void* inp, const PoolParams& p) const override {
    cuda::pool_forward(f(out), f(inp), p);
  }
  void pool_backward(void* dinp, const void* dout, const PoolParams& p) const override {
    cuda::pool_backward(f(dinp), f(dout), p);
  }
  void gather_rows_forward(void* out, const void* inp, const int32_t* rows, const GatherRowsParams& p) const override {
    cuda::gather_rows_forward(f(out), f(inp), rows, p);
  }
  void adamw_step(void* param, const void* grad, void* m, void* v, const AdamWParams& p) const override {
    cuda::adamw_step(f(param), f(grad), f(m), f(v), p);
  }
  double sum_squares(const void* x, int64_t n) const override {
    const Tensor partial = scratch(sum_squares_chunks(n), DType::F64);
    return cuda::sum_squares(f(x), n, partial.device_data<double>());
  }
  void scale(void* x, float factor, int64_t n) const override { cuda::scale(f(x), factor, n); }
};

}  // namespace

const Backend& f32_backend() {
  static const CudaF32Backend backend;
  return backend;
}

}  // namespace gptrain::kernels::cuda
