// The CPU kernels (float32) behind the Backend interface.
#include "kernels/backend.h"
#include "kernels/cpu/cpu.h"

namespace gptrain::kernels {

namespace {

inline float* f(void* p) { return static_cast<float*>(p); }
inline const float* f(const void* p) { return static_cast<const float*>(p); }

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  Device device() const override { return Device::CPU; }
  DType dtype() const override { return DType::F32; }

  void embedding_forward(void* out, const int32_t* tokens, const int32_t* positions, const void* wte, const void* wpe,
                         const EmbeddingParams& p) const override {
    cpu::embedding_forward(f(out), tokens, positions, f(wte), f(wpe), p);
  }
  void embedding_backward(void* dwte, void* dwpe, const void* dout, const int32_t* tokens, const int32_t* positions,
                          const EmbeddingParams& p) const override {
    cpu::embedding_backward(f(dwte), f(dwpe), f(dout), tokens, positions, p);
  }
  void dropout_forward(void* out, const void* inp, const DropoutParams& p) const override {
    cpu::dropout_forward(f(out), f(inp), p);
  }
  void dropout_backward(void* dinp, const void* dout, const DropoutParams& p) const override {
    cpu::dropout_backward(f(dinp), f(dout), p);
  }
  void layernorm_forward(void* out, void* mean, void* rstd, const void* inp, const void* weight, const void* bias,
                         const LayerNormParams& p) const override {
    cpu::layernorm_forward(f(out), f(mean), f(rstd), f(inp), f(weight), f(bias), p);
  }
  void layernorm_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight,
                          const void* mean, const void* rstd, const LayerNormParams& p) const override {
    cpu::layernorm_backward(f(dinp), f(dweight), f(dbias), f(dout), f(inp), f(weight), f(mean), f(rstd), p);
  }
  void matmul_forward_half(void* out, const void* inp, const uint16_t* weight, DType weight_type, const void* bias,
                           const MatmulParams& p) const override {
    cpu::matmul_forward_half(f(out), f(inp), weight, weight_type == DType::BF16, f(bias), p);
  }
  void matmul_forward(void* out, const void* inp, const void* weight, const void* bias,
                      const MatmulParams& p) const override {
    cpu::matmul_forward(f(out), f(inp), f(weight), f(bias), p);
  }
  void matmul_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight,
                       const MatmulParams& p) const override {
    cpu::matmul_backward(f(dinp), f(dweight), f(dbias), f(dout), f(inp), f(weight), p);
  }
  void attention_forward(void* out, void* stats, const void* qkv, const AttentionParams& p) const override {
    cpu::attention_forward(f(out), f(stats), f(qkv), p);
  }
  void attention_backward(void* dqkv, const void* dout, const void* qkv, const void* stats,
                          const AttentionParams& p) const override {
    cpu::attention_backward(f(dqkv), f(dout), f(qkv), f(stats), p);
  }
  void attention_decode_forward(void* out, const void* qkv, const DecodeSeq* seqs,
                                const AttentionDecodeParams& p) const override {
    cpu::attention_decode_forward(f(out), f(qkv), seqs, p);
  }
  void rmsnorm_forward(void* out, void* rstd, const void* inp, const void* weight,
                       const RmsNormParams& p) const override {
    cpu::rmsnorm_forward(f(out), f(rstd), f(inp), f(weight), p);
  }
  void rmsnorm_backward(void* dinp, void* dweight, const void* dout, const void* inp, const void* weight,
                        const void* rstd, const RmsNormParams& p) const override {
    cpu::rmsnorm_backward(f(dinp), f(dweight), f(dout), f(inp), f(weight), f(rstd), p);
  }
  void qk_norm_forward(void* out, void* rstd, const void* inp, const void* q_weight, const void* k_weight,
                       const QkNormParams& p) const override {
    cpu::qk_norm_forward(f(out), f(rstd), f(inp), f(q_weight), f(k_weight), p);
  }
  void qk_norm_backward(void* dinp, void* dq_weight, void* dk_weight, const void* dout, const void* inp,
                        const void* q_weight, const void* k_weight, const void* rstd,
                        const QkNormParams& p) const override {
    cpu::qk_norm_backward(f(dinp), f(dq_weight), f(dk_weight), f(dout), f(inp), f(q_weight), f(k_weight),
                          f(rstd), p);
  }
  void rope_table(void* cos_out, void* sin_out, const void* inv_freq, const int32_t* positions,
                  const RopeTableParams& p) const override {
    cpu::rope_table(f(cos_out), f(sin_out), f(inv_freq), positions, p);
  }
  void rope_forward(void* qkv, const void* cos_t, const void* sin_t, const RopeParams& p) const override {
    cpu::rope_forward(f(qkv), f(cos_t), f(sin_t), p);
  }
  void rope_backward(void* dqkv, const void* cos_t, const void* sin_t, const RopeParams& p) const override {
    cpu::rope_backward(f(dqkv), f(cos_t), f(sin_t), p);
  }
  void lora_forward(void* out, const void* inp, const void* A, const void* B, const LoraParams& p) const override {
    cpu::lora_forward(f(out), f(inp), f(A), f(B), p);
  }
  void lora_backward(void* dinp, void* dA, void* dB, const void* dout, const void* inp, const void* A, const void* B,
                     const LoraParams& p) const override {
    cpu::lora_backward(f(dinp), f(dA), f(dB), f(dout), f(inp), f(A), f(B), p);
  }
  void lora_merge(void* weight, const void* A, const void* B, const LoraParams& p) const override {
    cpu::lora_merge(f(weight), f(A), f(B), p);
  }
  void swiglu_forward(void* out, const void* inp, const SwigluParams& p) const override {
    cpu::swiglu_forward(f(out), f(inp), p);
  }
  void swiglu_backward(void* dinp, const void* inp, const void* dout, const SwigluParams& p) const override {
    cpu::swiglu_backward(f(dinp), f(inp), f(dout), p);
  }
  void gelu_forward(void* out, const void* inp, const GeluParams& p) const override {
    cpu::gelu_forward(f(out), f(inp), p);
  }
  void gelu_backward(void* dinp, const void* inp, const void* dout, const GeluParams& p) const override {
    cpu::gelu_backward(f(dinp), f(inp), f(dout), p);
  }
  void residual_forward(void* out, const void* a, const void* b, const ResidualParams& p) const override {
    cpu::residual_forward(f(out), f(a), f(b), p);
  }
  void residual_backward(void* da, void* db, const void* dout, const ResidualParams& p) const override {
    cpu::residual_backward(f(da), f(db), f(dout), p);
  }
  void cross_entropy_forward(void* losses, void* lse, const void* logits, const int32_t* targets,
                             const CrossEntropyParams& p) const override {
    cpu::cross_entropy_forward(f(losses), f(lse), f(logits), targets, p);
  }
  void cross_entropy_backward(void* dlogits, const void* logits, const void* lse, const int32_t* targets,
                              const void* dloss, const CrossEntropyParams& p) const override {
    cpu::cross_entropy_backward(f(dlogits), f(logits), f(lse), targets, f(dloss), p);
  }
  LossTotal loss_total(const void* losses, const int32_t* targets, const CrossEntropyParams& p) const override {
    return cpu::loss_total(f(losses), targets, p);
  }
  void pool_forward(void* out, const void* inp, const PoolParams& p) const override {
    cpu::pool_forward(f(out), f(inp), p);
  }
  void pool_backward(void* dinp, const void* dout, const PoolParams& p) const override {
    cpu::pool_backward(f(dinp), f(dout), p);
  }
  void gather_rows_forward(void* out, const void* inp, const int32_t* rows, const GatherRowsParams& p) const override {
    cpu::gather_rows_forward(f(out), f(inp), rows, p);
  }
  void adamw_step(void* param, const void* grad, void* m, void* v, const AdamWParams& p) const override {
    cpu::adamw_step(f(param), f(grad), f(m), f(v), p);
  }
  double sum_squares(const void* x, int64_t n) const override { return cpu::sum_squares(f(x), n); }
  void scale(void* x, float factor, int64_t n) const override { cpu::scale(f(x), factor, n); }
};

}  // namespace

const Backend& cpu_backend() {
  static const CpuBackend backend;
  return backend;
}

}  // namespace gptrain::kernels
