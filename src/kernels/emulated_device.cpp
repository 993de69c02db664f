#include "kernels/emulated_device.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/backend.h"

namespace gptrain::kernels {

namespace {

class HostAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (!p) throw std::bad_alloc();
    return p;
  }
  void deallocate(void* p) override { std::free(p); }
  void zero(void* p, size_t bytes) override { std::memset(p, 0, bytes); }
  void copy(void* dst, Device, const void* src, Device, size_t bytes) override { std::memmove(dst, src, bytes); }
};

// Every op forwarded to a CPU backend of the same element type, unchanged.
class EmulatedCudaBackend final : public Backend {
 public:
  EmulatedCudaBackend(const Backend& target, const char* name) : target_(target), name_(name) {}
  const char* name() const override { return name_; }
  Device device() const override { return Device::CUDA; }
  DType dtype() const override { return target_.dtype(); }

  void embedding_forward(void* out, const int32_t* tokens, const int32_t* positions, const void* wte, const void* wpe,
                         const EmbeddingParams& p) const override {
    target_.embedding_forward(out, tokens, positions, wte, wpe, p);
  }
  void embedding_backward(void* dwte, void* dwpe, const void* dout, const int32_t* tokens, const int32_t* positions,
                          const EmbeddingParams& p) const override {
    target_.embedding_backward(dwte, dwpe, dout, tokens, positions, p);
  }
  void dropout_forward(void* out, const void* inp, const DropoutParams& p) const override {
    target_.dropout_forward(out, inp, p);
  }
  void dropout_backward(void* dinp, const void* dout, const DropoutParams& p) const override {
    target_.dropout_backward(dinp, dout, p);
  }
  void layernorm_forward(void* out, void* mean, void* rstd, const void* inp, const void* weight, const void* bias,
                         const LayerNormParams& p) const override {
    target_.layernorm_forward(out, mean, rstd, inp, weight, bias, p);
  }
  void layernorm_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight,
                          const void* mean, const void* rstd, const LayerNormParams& p) const override {
    target_.layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, p);
  }
  void matmul_forward(void* out, const void* inp, const void* weight, const void* bias,
                      const MatmulParams& p) const override {
    target_.matmul_forward(out, inp, weight, bias, p);
  }
  void matmul_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight,
                       const MatmulParams& p) const override {
    target_.matmul_backward(dinp, dweight, dbias, dout, inp, weight, p);
  }
  void matmul_forward_half(void* out, const void* inp, const uint16_t* weight, DType weight_type, const void* bias,
                           const MatmulParams& p) const override {
    target_.matmul_forward_half(out, inp, weight, weight_type, bias, p);
  }
  void lora_forward(void* out, const void* inp, const void* A, const void* B, const LoraParams& p) const override {
    target_.lora_forward(out, inp, A, B, p);
  }
  void lora_backward(void* dinp, void* dA, void* dB, const void* dout, const void* inp, const void* A, const void* B,
                     const LoraParams& p) const override {
    target_.lora_backward(dinp, dA, dB, dout, inp, A, B, p);
  }
  void lora_merge(void* weight, const void* A, const void* B, const LoraParams& p) const override {
    target_.lora_merge(weight, A, B, p);
  }
  void attention_forward(void* out, void* stats, const void* qkv, const AttentionParams& p) const override {
    target_.attention_forward(out, stats, qkv, p);
  }
  void attention_backward(void* dqkv, const void* dout, const void* qkv, const void* stats,
                          const AttentionParams& p) const override {
    target_.attention_backward(dqkv, dout, qkv, stats, p);
  }
  void attention_decode_forward(void* out, const void* qkv, const DecodeSeq* seqs,
                                const AttentionDecodeParams& p) const override {
    target_.attention_decode_forward(out, qkv, seqs, p);
  }
  void rmsnorm_forward(void* out, void* rstd, const void* inp, const void* weight,
                       const RmsNormParams& p) const override {
    target_.rmsnorm_forward(out, rstd, inp, weight, p);
  }
  void rmsnorm_backward(void* dinp, void* dweight, const void* dout, const void* inp, const void* weight,
                        const void* rstd, const RmsNormParams& p) const override {
    target_.rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, p);
  }
  void qk_norm_forward(void* out, void* rstd, const void* inp, const void* q_weight, const void* k_weight,
                       const QkNormParams& p) const override {
    target_.qk_norm_forward(out, rstd, inp, q_weight, k_weight, p);
  }
  void qk_norm_backward(void* dinp, void* dq_weight, void* dk_weight, const void* dout, const void* inp,
                        const void* q_weight, const void* k_weight, const void* rstd,
                        const QkNormParams& p) const override {
    target_.qk_norm_backward(dinp, dq_weight, dk_weight, dout, inp, q_weight, k_weight, rstd, p);
  }
  void rope_table(void* cos_out, void* sin_out, const void* inv_freq, const int32_t* positions,
                  const RopeTableParams& p) const override {
    target_.rope_table(cos_out, sin_out, inv_freq, positions, p);
  }
  void rope_forward(void* qkv, const void* cos_t, const void* sin_t, const RopeParams& p) const override {
    target_.rope_forward(qkv, cos_t, sin_t, p);
  }
  void rope_backward(void* dqkv, const void* cos_t, const void* sin_t, const RopeParams& p) const override {
    target_.rope_backward(dqkv, cos_t, sin_t, p);
  }
  void swiglu_forward(void* out, const void* inp, const SwigluParams& p) const override {
    target_.swiglu_forward(out, inp, p);
  }
  void swiglu_backward(void* dinp, const void* inp, const void* dout, const SwigluParams& p) const override {
    target_.swiglu_backward(dinp, inp, dout, p);
  }
  void gelu_forward(void* out, const void* inp, const GeluParams& p) const override {
    target_.gelu_forward(out, inp, p);
  }
  void gelu_backward(void* dinp, const void* inp, const void* dout, const GeluParams& p) const override {
    target_.gelu_backward(dinp, inp, dout, p);
  }
  void residual_forward(void* out, const void* a, const void* b, const ResidualParams& p) const override {
    target_.residual_forward(out, a, b, p);
  }
  void residual_backward(void* da, void* db, const void* dout, const ResidualParams& p) const override {
    target_.residual_backward(da, db, dout, p);
  }
  void cross_entropy_forward(void* losses, void* lse, const void* logits, const int32_t* targets,
                             const CrossEntropyParams& p) const override {
    target_.cross_entropy_forward(losses, lse, logits, targets, p);
  }
  void cross_entropy_backward(void* dlogits, const void* logits, const void* lse, const int32_t* targets,
                              const void* dloss, const CrossEntropyParams& p) const override {
    target_.cross_entropy_backward(dlogits, logits, lse, targets, dloss, p);
  }
  LossTotal loss_total(const void* losses, const int32_t* targets, const CrossEntropyParams& p) const override {
    return target_.loss_total(losses, targets, p);
  }
  void pool_forward(void* out, const void* inp, const PoolParams& p) const override {
    target_.pool_forward(out, inp, p);
  }
  void pool_backward(void* dinp, const void* dout, const PoolParams& p) const override {
    target_.pool_backward(dinp, dout, p);
  }
  void gather_rows_forward(void* out, const void* inp, const int32_t* rows, const GatherRowsParams& p) const override {
    target_.gather_rows_forward(out, inp, rows, p);
  }
  void adamw_step(void* param, const void* grad, void* m, void* v, const AdamWParams& p) const override {
    target_.adamw_step(param, grad, m, v, p);
  }
  double sum_squares(const void* x, int64_t n) const override { return target_.sum_squares(x, n); }
  void scale(void* x, float factor, int64_t n) const override { target_.scale(x, factor, n); }
  void adamw_step_mixed(float* master, uint16_t* copy, const void* grad, float* m, float* v,
                        const AdamWParams& p) const override {
    target_.adamw_step_mixed(master, copy, grad, m, v, p);
  }

 private:
  const Backend& target_;
  const char* name_;
};

}  // namespace

void emulate_cuda_on_host() {
  static HostAllocator allocator;
  static const EmulatedCudaBackend f32(cpu_backend(), "cuda-emulated");
  static const EmulatedCudaBackend bf16(cpu_bf16_backend(), "cuda-emulated-bf16");
  static const bool registered = [] {
    register_allocator(Device::CUDA, &allocator);
    register_backend(&f32);
    register_backend(&bf16);
    return true;
  }();
  (void)registered;
}

}  // namespace gptrain::kernels
