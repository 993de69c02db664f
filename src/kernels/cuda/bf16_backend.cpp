// "cuda-bf16": --dtype bf16 on the GPU, the widening backend (kernels/widening_backend.h) over the
// float32 CUDA kernels, its conversions device kernels (bf16_kernels.cu) into scratch from the
// caching allocator. Its results have the cpu-bf16 reference's semantics (each op computed in
// float32 from its bf16 operands and rounded once), with the CUDA kernels' own accumulation order.
// The ops with bf16 kernels of their own replace the widened ones one by one (docs/DESIGN.md,
// "bf16 mode"); all have now: the matrix products, cuBLASLt on bf16 operands (tensor cores) with
// float32 accumulation and one rounding of the output (dweight += as round(old + product) by
// beta = 1); and the float32 kernels instantiated on bf16 storage (launch.h: exact loads, one
// rounding per store, the same arithmetic), which therefore equal the widened op bit for bit
// (tests/kernels/cuda_bf16_test.cpp checks each against widened_bf16_backend()): the embedding
// forward and backward (the backward's rows grouped by id and summed in float32 onto the old
// gradient, rounded once, touching only the rows the batch uses), attention forward and backward
// and against bf16 KV caches, dropout, LayerNorm, RMSNorm, Qwen3's query/key norms, rotary,
// SwiGLU, GELU, residual, cross-entropy, the bias gradient, the row-wise (batch-invariant and
// f16/bf16-weight) products, LoRA, pooling, row gathers, sum of squares, scale and AdamW (one pass
// over masters, moments and the copy). Nothing widens any more in training or decoding; the
// widening base still answers for what these refuse by name (head sizes above 256, other weight
// types). One op leaves the widened semantics on purpose: attention with head size 64 or 128
// (GPT-2's, Llama's, Qwen3's) runs on bf16 tensor cores (flash_attention.cu), its probabilities
// rounded to bf16 before their products, so it is checked against exact arithmetic within derived
// bounds instead (cuda_bf16_test); other head sizes take the bit-equal warp kernels.
#include <algorithm>

#include "kernels/cuda/launch.h"
#include "kernels/widening_backend.h"
#include "tensor/tensor.h"

namespace gptrain::kernels::cuda {

const Backend& f32_backend();  // backend.cpp

namespace {

struct DeviceConversions {
  class Buffer {
   public:
    Buffer() = default;
    explicit Buffer(int64_t n) : values_(Tensor::empty({n > 0 ? n : 1}, DType::F32, Device::CUDA)) {}
    float* data() { return values_.device_data<float>(); }

   private:
    Tensor values_;
  };
  static void widen(float* dst, const uint16_t* src, int64_t n) { widen_bf16(dst, src, n); }
  static void round(uint16_t* dst, const float* src, int64_t n) { round_bf16(dst, src, n); }
  static void round_stochastic(uint16_t* dst, const float* src, int64_t n, const StochasticRounding& rounding) {
    round_bf16_stochastic(dst, src, n, rounding);
  }
};

uint16_t* h(void* p) { return static_cast<uint16_t*>(p); }
const uint16_t* h(const void* p) { return static_cast<const uint16_t*>(p); }
Tensor f32_scratch(int64_t n) { return Tensor::empty({std::max<int64_t>(1, n)}, DType::F32, Device::CUDA); }
const float* S32(const void* p) { return static_cast<const float*>(p); }
float* S32(void* p) { return static_cast<float*>(p); }

class CudaBf16Backend final : public WideningBackend<DeviceConversions> {
 public:
  CudaBf16Backend() : WideningBackend("cuda-bf16", Device::CUDA, f32_backend()) {}

  void embedding_forward(void* out, const int32_t* tokens, const int32_t* positions, const void* wte, const void* wpe,
                         const EmbeddingParams& p) const override {
    cuda::embedding_forward(h(out), tokens, positions, h(wte), h(wpe), p);
  }
  void embedding_backward(void* dwte, void* dwpe, const void* dout, const int32_t* tokens, const int32_t* positions,
                          const EmbeddingParams& p) const override {
    const size_t bytes = embedding_backward_scratch_bytes(p);
    const Tensor s =
        Tensor::empty({std::max<int64_t>(1, static_cast<int64_t>((bytes + 3) / 4))}, DType::I32, Device::CUDA);
    cuda::embedding_backward(h(dwte), h(dwpe), h(dout), tokens, positions, p, s.raw(), bytes);
  }
  void attention_forward(void* out, void* stats, const void* qkv, const AttentionParams& p) const override {
    if (p.HS > kMaxHeadSize) return WideningBackend::attention_forward(out, stats, qkv, p);  // refused there, by name
    if (flash_attention_supported(p, qkv, nullptr)) return flash_attention_forward(h(out), S32(stats), h(qkv), p);
    cuda::attention_forward(h(out), S32(stats), h(qkv), p);
  }
  void attention_backward(void* dqkv, const void* dout, const void* qkv, const void* stats,
                          const AttentionParams& p) const override {
    if (p.HS > kMaxHeadSize) return WideningBackend::attention_backward(dqkv, dout, qkv, stats, p);
    const Tensor dsum = Tensor::empty({std::max<int64_t>(1, p.B * p.NH * p.T)}, DType::F32, Device::CUDA);
    if (flash_attention_supported(p, qkv, dout))
      return flash_attention_backward(h(dqkv), dsum.device_data<float>(), h(dout), h(qkv), S32(stats), p);
    cuda::attention_backward(h(dqkv), dsum.device_data<float>(), h(dout), h(qkv), S32(stats), p);
  }
  void attention_decode_forward(void* out, const void* qkv, const DecodeSeq* seqs,
                                const AttentionDecodeParams& p) const override {
    if (p.HS > kMaxHeadSize) return WideningBackend::attention_decode_forward(out, qkv, seqs, p);
    cuda::attention_decode_forward(h(out), h(qkv), seqs, p);  // the caches are bf16: keys and values copied exactly
  }
  void lora_forward(void* out, const void* inp, const void* A, const void* B, const LoraParams& p) const override {
    const Tensor down = f32_scratch(p.N * p.S * p.R);
    cuda::lora_forward(h(out), down.device_data<float>(), h(inp), h(A), h(B), p);
  }
  void lora_backward(void* dinp, void* dA, void* dB, const void* dout, const void* inp, const void* A, const void* B,
                     const LoraParams& p) const override {
    const Tensor down = f32_scratch(p.N * p.S * p.R), ddown = f32_scratch(p.N * p.S * p.R);
    cuda::lora_backward(h(dinp), h(dA), h(dB), down.device_data<float>(), ddown.device_data<float>(), h(dout), h(inp),
                        h(A), h(B), p);
  }
  void lora_merge(void* weight, const void* A, const void* B, const LoraParams& p) const override {
    cuda::lora_merge(h(weight), h(A), h(B), p);
  }
  void pool_forward(void* out, const void* inp, const PoolParams& p) const override {
    cuda::pool_forward(h(out), h(inp), p);
  }
  void pool_backward(void* dinp, const void* dout, const PoolParams& p) const override {
    cuda::pool_backward(h(dinp), h(dout), p);
  }
  void gather_rows_forward(void* out, const void* inp, const int32_t* rows, const GatherRowsParams& p) const override {
    cuda::gather_rows_forward(h(out), h(inp), rows, p);
  }
  void rmsnorm_forward(void* out, void* rstd, const void* inp, const void* weight,
                       const RmsNormParams& p) const override {
    cuda::rmsnorm_forward(h(out), S32(rstd), h(inp), h(weight), p);
  }
  void rmsnorm_backward(void* dinp, void* dweight, const void* dout, const void* inp, const void* weight,
                        const void* rstd, const RmsNormParams& p) const override {
    const Tensor partial = f32_scratch(rmsnorm_backward_partials(p));
    cuda::rmsnorm_backward(h(dinp), h(dweight), h(dout), h(inp), h(weight), S32(rstd), p, partial.device_data<float>());
  }
  void qk_norm_forward(void* out, void* rstd, const void* inp, const void* q_weight, const void* k_weight,
                       const QkNormParams& p) const override {
    cuda::qk_norm_forward(h(out), S32(rstd), h(inp), h(q_weight), h(k_weight), p);
  }
  void qk_norm_backward(void* dinp, void* dq_weight, void* dk_weight, const void* dout, const void* inp,
                        const void* q_weight, const void* k_weight, const void* rstd,
                        const QkNormParams& p) const override {
    const Tensor partial = f32_scratch(qk_norm_backward_partials(p));
    cuda::qk_norm_backward(h(dinp), h(dq_weight), h(dk_weight), h(dout), h(inp), h(q_weight), h(k_weight), S32(rstd),
                           p, partial.device_data<float>());
  }
  void rope_forward(void* qkv, const void* cos_t, const void* sin_t, const RopeParams& p) const override {
    cuda::rope_forward(h(qkv), S32(cos_t), S32(sin_t), p);
  }
  void rope_backward(void* dqkv, const void* cos_t, const void* sin_t, const RopeParams& p) const override {
    cuda::rope_backward(h(dqkv), S32(cos_t), S32(sin_t), p);
  }
  void swiglu_forward(void* out, const void* inp, const SwigluParams& p) const override {
    cuda::swiglu_forward(h(out), h(inp), p);
  }
  void swiglu_backward(void* dinp, const void* inp, const void* dout, const SwigluParams& p) const override {
    cuda::swiglu_backward(h(dinp), h(inp), h(dout), p);
  }
  void dropout_forward(void* out, const void* inp, const DropoutParams& p) const override {
    cuda::dropout_forward(h(out), h(inp), p);
  }
  void dropout_backward(void* dinp, const void* dout, const DropoutParams& p) const override {
    cuda::dropout_backward(h(dinp), h(dout), p);
  }
  void layernorm_forward(void* out, void* mean, void* rstd, const void* inp, const void* weight, const void* bias,
                         const LayerNormParams& p) const override {
    cuda::layernorm_forward(h(out), S32(mean), S32(rstd), h(inp), h(weight), h(bias), p);
  }
  void layernorm_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight,
                          const void* mean, const void* rstd, const LayerNormParams& p) const override {
    const Tensor partial = f32_scratch(layernorm_backward_partials(p));
    cuda::layernorm_backward(h(dinp), h(dweight), h(dbias), h(dout), h(inp), h(weight), S32(mean), S32(rstd), p,
                             partial.device_data<float>());
  }
  void gelu_forward(void* out, const void* inp, const GeluParams& p) const override {
    cuda::gelu_forward(h(out), h(inp), p);
  }
  void gelu_backward(void* dinp, const void* inp, const void* dout, const GeluParams& p) const override {
    cuda::gelu_backward(h(dinp), h(inp), h(dout), p);
  }
  void residual_forward(void* out, const void* a, const void* b, const ResidualParams& p) const override {
    cuda::residual_forward(h(out), h(a), h(b), p);
  }
  void residual_backward(void* da, void* db, const void* dout, const ResidualParams& p) const override {
    if (da || db) cuda::residual_backward(h(da), h(db), h(dout), p);
  }
  void cross_entropy_forward(void* losses, void* lse, const void* logits, const int32_t* targets,
                             const CrossEntropyParams& p) const override {
    cuda::cross_entropy_forward(S32(losses), S32(lse), h(logits), targets, p);
  }
  void cross_entropy_backward(void* dlogits, const void* logits, const void* lse, const int32_t* targets,
                              const void* dloss, const CrossEntropyParams& p) const override {
    cuda::cross_entropy_backward(h(dlogits), h(logits), S32(lse), targets, S32(dloss), p);
  }
  void adamw_step_mixed(float* master, uint16_t* copy, const void* grad, float* m, float* v,
                        const AdamWParams& p) const override {
    cuda::adamw_step_mixed(master, copy, h(grad), m, v, p);
  }
  double sum_squares(const void* x, int64_t n) const override {
    const Tensor partial = Tensor::empty({std::max<int64_t>(1, sum_squares_chunks(n))}, DType::F64, Device::CUDA);
    return cuda::sum_squares(h(x), n, partial.device_data<double>());
  }
  void scale(void* x, float factor, int64_t n) const override { cuda::scale(h(x), factor, n); }

  // Row-major out[N,OC] is column-major out^T[OC,N] = W^T-view times inp^T (backend.cpp's layout).
  void matmul_forward(void* out, const void* inp, const void* weight, const void* bias,
                      const MatmulParams& p) const override {
    if (p.batch_invariant) return matmul_rowwise(h(out), h(inp), weight, 2, h(bias), p);  // decode rows
    gemm(true, false, p.OC, p.N, p.IC, weight, p.IC, inp, p.IC, out, p.OC, 0.0f, bias, GemmType::BF16);
  }
  void matmul_forward_half(void* out, const void* inp, const uint16_t* weight, DType weight_type, const void* bias,
                           const MatmulParams& p) const override {
    if (weight_type != DType::F16 && weight_type != DType::BF16)
      return WideningBackend::matmul_forward_half(out, inp, weight, weight_type, bias, p);  // refused there, by name
    matmul_rowwise(h(out), h(inp), weight, weight_type == DType::F16 ? 1 : 2, h(bias), p);
  }
  void matmul_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight,
                       const MatmulParams& p) const override {
    if (dinp)
      gemm(false, false, p.IC, p.N, p.OC, weight, p.IC, dout, p.OC, dinp, p.IC,
           p.dinp == InputGrad::Write ? 0.0f : 1.0f, nullptr, GemmType::BF16);
    if (dweight)
      gemm(false, true, p.IC, p.OC, p.N, inp, p.IC, dout, p.OC, dweight, p.IC, 1.0f, nullptr, GemmType::BF16);
    if (dbias) {
      const Tensor partial = f32_scratch(column_partials(p.N, p.OC));
      column_sums_add(h(dbias), h(dout), p.N, p.OC, partial.device_data<float>());
    }
  }
};

}  // namespace

const Backend& bf16_backend() {
  static const CudaBf16Backend backend;
  return backend;
}

void register_device(Allocator* allocator) {
  register_allocator(Device::CUDA, allocator);
  register_backend(&f32_backend());
  register_backend(&bf16_backend());
}

const Backend& widened_bf16_backend() {
  static const WideningBackend<DeviceConversions> backend("cuda-bf16 (widened)", Device::CUDA, f32_backend());
  return backend;
}

}  // namespace gptrain::kernels::cuda
