// The scalar reference kernels in double behind the Backend interface: F64 tensors run here, so
// every layer unit and the whole model can be checked in double precision.
#include "kernels/backend.h"
#include "kernels/ref/ref.h"

#include <vector>

#include "tensor/dtype.h"

namespace gptrain::kernels {

namespace {

using T = double;
inline T* d(void* p) { return static_cast<T*>(p); }
inline const T* d(const void* p) { return static_cast<const T*>(p); }

class RefBackend final : public Backend {
 public:
  const char* name() const override { return "ref"; }
  Device device() const override { return Device::CPU; }
  DType dtype() const override { return DType::F64; }

  void embedding_forward(void* out, const int32_t* tokens, const int32_t* positions, const void* wte, const void* wpe,
                         const EmbeddingParams& p) const override {
    ref::embedding_forward(d(out), tokens, positions, d(wte), d(wpe), p);
  }
  void embedding_backward(void* dwte, void* dwpe, const void* dout, const int32_t* tokens, const int32_t* positions,
                          const EmbeddingParams& p) const override {
    ref::embedding_backward(d(dwte), d(dwpe), d(dout), tokens, positions, p);
  }
  void dropout_forward(void* out, const void* inp, const DropoutParams& p) const override {
    ref::dropout_forward(d(out), d(inp), p);
  }
  void dropout_backward(void* dinp, const void* dout, const DropoutParams& p) const override {
    ref::dropout_backward(d(dinp), d(dout), p);
  }
  void layernorm_forward(void* out, void* mean, void* rstd, const void* inp, const void* weight, const void* bias,
                         const LayerNormParams& p) const override {
    ref::layernorm_forward(d(out), d(mean), d(rstd), d(inp), d(weight), d(bias), p);
  }
  void layernorm_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight,
                          const void* mean, const void* rstd, const LayerNormParams& p) const override {
    ref::layernorm_backward(d(dinp), d(dweight), d(dbias), d(dout), d(inp), d(weight), d(mean), d(rstd), p);
  }
  void matmul_forward_half(void* out, const void* inp, const uint16_t* weight, DType weight_type, const void* bias,
                           const MatmulParams& p) const override {
    std::vector<T> w(static_cast<size_t>(p.OC * p.IC));
    for (size_t i = 0; i < w.size(); ++i)
      w[i] = static_cast<T>(weight_type == DType::BF16 ? bf16_to_float(weight[i]) : f16_to_float(weight[i]));
    ref::matmul_forward(d(out), d(inp), w.data(), d(bias), p);
  }
  void matmul_forward(void* out, const void* inp, const void* weight, const void* bias,
                      const MatmulParams& p) const override {
    ref::matmul_forward(d(out), d(inp), d(weight), d(bias), p);
  }
  void matmul_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight,
                       const MatmulParams& p) const override {
    ref::matmul_backward(d(dinp), d(dweight), d(dbias), d(dout), d(inp), d(weight), p);
  }
  void attention_forward(void* out, void* stats, const void* qkv, const AttentionParams& p) const override {
    ref::attention_forward(d(out), d(stats), d(qkv), p);
  }
  void attention_backward(void* dqkv, const void* dout, const void* qkv, const void* stats,
                          const AttentionParams& p) const override {
    ref::attention_backward(d(dqkv), d(dout), d(qkv), d(stats), p);
  }
  void attention_decode_forward(void* out, const void* qkv, const DecodeSeq* seqs,
                                const AttentionDecodeParams& p) const override {
    ref::attention_decode_forward(d(out), d(qkv), seqs, p);
  }
  void rmsnorm_forward(void* out, void* rstd, const void* inp, const void* weight,
                       const RmsNormParams& p) const override {
    ref::rmsnorm_forward(d(out), d(rstd), d(inp), d(weight), p);
  }
  void rmsnorm_backward(void* dinp, void* dweight, const void* dout, const void* inp, const void* weight,
                        const void* rstd, const RmsNormParams& p) const override {
    ref::rmsnorm_backward(d(dinp), d(dweight), d(dout), d(inp), d(weight), d(rstd), p);
  }
  void qk_norm_forward(void* out, void* rstd, const void* inp, const void* q_weight, const void* k_weight,
                       const QkNormParams& p) const override {
    ref::qk_norm_forward(d(out), d(rstd), d(inp), d(q_weight), d(k_weight), p);
  }
  void qk_norm_backward(void* dinp, void* dq_weight, void* dk_weight, const void* dout, const void* inp,
                        const void* q_weight, const void* k_weight, const void* rstd,
                        const QkNormParams& p) const override {
    ref::qk_norm_backward(d(dinp), d(dq_weight), d(dk_weight), d(dout), d(inp), d(q_weight), d(k_weight),
                          d(rstd), p);
  }
  void rope_table(void* cos_out, void* sin_out, const void* inv_freq, const int32_t* positions,
                  const RopeTableParams& p) const override {
    ref::rope_table(d(cos_out), d(sin_out), d(inv_freq), positions, p);
  }
  void rope_forward(void* qkv, const void* cos_t, const void* sin_t, const RopeParams& p) const override {
    ref::rope_forward(d(qkv), d(cos_t), d(sin_t), p);
  }
  void rope_backward(void* dqkv, const void* cos_t, const void* sin_t, const RopeParams& p) const override {
    ref::rope_backward(d(dqkv), d(cos_t), d(sin_t), p);
  }
  void lora_forward(void* out, const void* inp, const void* A, const void* B, const LoraParams& p) const override {
    ref::lora_forward(d(out), d(inp), d(A), d(B), p);
  }
  void lora_backward(void* dinp, void* dA, void* dB, const void* dout, const void* inp, const void* A, const void* B,
                     const LoraParams& p) const override {
    ref::lora_backward(d(dinp), d(dA), d(dB), d(dout), d(inp), d(A), d(B), p);
  }
  void lora_merge(void* weight, const void* A, const void* B, const LoraParams& p) const override {
    ref::lora_merge(d(weight), d(A), d(B), p);
  }
  void swiglu_forward(void* out, const void* inp, const SwigluParams& p) const override {
    ref::swiglu_forward(d(out), d(inp), p);
  }
  void swiglu_backward(void* dinp, const void* inp, const void* dout, const SwigluParams& p) const override {
    ref::swiglu_backward(d(dinp), d(inp), d(dout), p);
  }
  void gelu_forward(void* out, const void* inp, const GeluParams& p) const override {
    ref::gelu_forward(d(out), d(inp), p);
  }
  void gelu_backward(void* dinp, const void* inp, const void* dout, const GeluParams& p) const override {
    ref::gelu_backward(d(dinp), d(inp), d(dout), p);
  }
  void residual_forward(void* out, const void* a, const void* b, const ResidualParams& p) const override {
    ref::residual_forward(d(out), d(a), d(b), p);
  }
  void residual_backward(void* da, void* db, const void* dout, const ResidualParams& p) const override {
    ref::residual_backward(d(da), d(db), d(dout), p);
  }
  void cross_entropy_forward(void* losses, void* lse, const void* logits, const int32_t* targets,
                             const CrossEntropyParams& p) const override {
    ref::cross_entropy_forward(d(losses), d(lse), d(logits), targets, p);
  }
  void cross_entropy_backward(void* dlogits, const void* logits, const void* lse, const int32_t* targets,
                              const void* dloss, const CrossEntropyParams& p) const override {
    ref::cross_entropy_backward(d(dlogits), d(logits), d(lse), targets, d(dloss), p);
  }
  LossTotal loss_total(const void* losses, const int32_t* targets, const CrossEntropyParams& p) const override {
    return ref::loss_total(d(losses), targets, p);
  }
  void pool_forward(void* out, const void* inp, const PoolParams& p) const override {
    ref::pool_forward(d(out), d(inp), p);
  }
  void pool_backward(void* dinp, const void* dout, const PoolParams& p) const override {
    ref::pool_backward(d(dinp), d(dout), p);
  }
  void gather_rows_forward(void* out, const void* inp, const int32_t* rows, const GatherRowsParams& p) const override {
    ref::gather_rows_forward(d(out), d(inp), rows, p);
  }
  void adamw_step(void* param, const void* grad, void* m, void* v, const AdamWParams& p) const override {
    ref::adamw_step(d(param), d(grad), d(m), d(v), p);
  }
  double sum_squares(const void* x, int64_t n) const override { return ref::sum_squares(d(x), n); }
  void scale(void* x, float factor, int64_t n) const override { ref::scale(d(x), factor, n); }
};

}  // namespace

const Backend& ref_backend() {
  static const RefBackend backend;
  return backend;
}

}  // namespace gptrain::kernels
