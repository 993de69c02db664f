// A bf16 backend over a float32 one, the bf16 mode's semantics (docs/DESIGN.md "bf16 mode"):
// every op widens its bf16 operands to float32, runs the float32 backend's kernel on them and
// rounds what it wrote back to bf16 (to nearest, ties to even). An accumulated output (a
// parameter gradient, a residual stream's gradient) is widened too, so it becomes
// round(old + contribution): one rounding per op, as a kernel that loads bf16, computes in float32
// and stores bf16 has. Statistics (norms' mean and rstd, attention stats, losses, log-sum-exps,
// rotary tables, row weights) are float32 (stats_dtype) and pass through untouched. Operands
// sharing a pointer share one widened copy, so in-place ops stay in place.
//
// `Conv` moves the values on the device: Buffer (float32 scratch of n elements, with data()),
// widen(float* dst, const uint16_t* src, n), round(uint16_t* dst, const float* src, n) and
// round_stochastic(uint16_t* dst, const float* src, n, const StochasticRounding&). The CPU's
// (kernels/cpu/bf16_backend.cpp, "cpu-bf16") is the mode's reference; the GPU's
// (kernels/cuda/bf16_backend.cpp) is the same ops over the CUDA float32 kernels, with the ops that
// have bf16 kernels of their own overridden.
#pragma once

#include <map>
#include <vector>

#include "kernels/backend.h"
#include "kernels/stochastic_rounding.h"
#include "util/error.h"

namespace gptrain::kernels {

namespace widening {

inline const float* S(const void* p) { return static_cast<const float*>(p); }  // a statistics operand (float32)
inline float* S(void* p) { return static_cast<float*>(p); }

// The float32 copies of one call's bf16 operands, by pointer.
template <class Conv>
class Widened {
 public:
  const float* in(const void* p, int64_t n) { return copy_of(p, n, false); }
  // An operand the op writes or accumulates into: widened now (accumulation reads it), rounded
  // back by finish().
  float* out(void* p, int64_t n) { return copy_of(p, n, true); }
  void finish() {
    for (auto& [p, b] : buffers_)
      if (b.written) Conv::round(static_cast<uint16_t*>(const_cast<void*>(p)), b.buffer.data(), b.n);
  }

 private:
  struct Entry {
    typename Conv::Buffer buffer;
    int64_t n = 0;
    bool written = false;
  };
  float* copy_of(const void* p, int64_t n, bool written) {
    if (!p) return nullptr;
    auto it = buffers_.find(p);
    if (it != buffers_.end()) {
      GPTRAIN_CHECK(it->second.n == n, "bf16 backend: an aliased operand of two sizes");
      it->second.written |= written;
      return it->second.buffer.data();
    }
    Entry& e = buffers_[p];
    e.buffer = typename Conv::Buffer(n);
    e.n = n;
    e.written = written;
    Conv::widen(e.buffer.data(), static_cast<const uint16_t*>(p), n);
    return e.buffer.data();
  }
  std::map<const void*, Entry> buffers_;
};

}  // namespace widening

using widening::S;
using widening::Widened;

template <class Conv>
class WideningBackend : public Backend {
 public:
  // `f32`: the float32 backend of `device` that runs every op (it must outlive this one).
  WideningBackend(const char* name, Device device, const Backend& f32) : name_(name), device_(device), f32_(f32) {}
  const char* name() const override { return name_; }
  Device device() const override { return device_; }
  DType dtype() const override { return DType::BF16; }

  void embedding_forward(void* out, const int32_t* tokens, const int32_t* positions, const void* wte, const void* wpe,
                         const EmbeddingParams& p) const override {
    Widened<Conv> w;
    const int64_t N = p.B * p.T;
    f32_.embedding_forward(w.out(out, N * p.C), tokens, positions, w.in(wte, p.V * p.C), w.in(wpe, p.n_positions * p.C),
                           p);
    w.finish();
  }
  void embedding_backward(void* dwte, void* dwpe, const void* dout, const int32_t* tokens, const int32_t* positions,
                          const EmbeddingParams& p) const override {
    Widened<Conv> w;
    const int64_t N = p.B * p.T;
    f32_.embedding_backward(w.out(dwte, p.V * p.C), w.out(dwpe, p.n_positions * p.C), w.in(dout, N * p.C), tokens,
                            positions, p);
    w.finish();
  }
  void dropout_forward(void* out, const void* inp, const DropoutParams& p) const override {
    Widened<Conv> w;
    f32_.dropout_forward(w.out(out, p.n), w.in(inp, p.n), p);
    w.finish();
  }
  void dropout_backward(void* dinp, const void* dout, const DropoutParams& p) const override {
    Widened<Conv> w;
    f32_.dropout_backward(w.out(dinp, p.n), w.in(dout, p.n), p);
    w.finish();
  }
  void layernorm_forward(void* out, void* mean, void* rstd, const void* inp, const void* weight, const void* bias,
                         const LayerNormParams& p) const override {
    Widened<Conv> w;
    f32_.layernorm_forward(w.out(out, p.N * p.C), S(mean), S(rstd), w.in(inp, p.N * p.C), w.in(weight, p.C),
                           w.in(bias, p.C), p);
    w.finish();
  }
  void layernorm_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight,
                          const void* mean, const void* rstd, const LayerNormParams& p) const override {
    Widened<Conv> w;
    f32_.layernorm_backward(w.out(dinp, p.N * p.C), w.out(dweight, p.C), w.out(dbias, p.C), w.in(dout, p.N * p.C),
                            w.in(inp, p.N * p.C), w.in(weight, p.C), S(mean), S(rstd), p);
    w.finish();
  }
  void matmul_forward(void* out, const void* inp, const void* weight, const void* bias,
                      const MatmulParams& p) const override {
    Widened<Conv> w;
    f32_.matmul_forward(w.out(out, p.N * p.OC), w.in(inp, p.N * p.IC), w.in(weight, p.OC * p.IC), w.in(bias, p.OC), p);
    w.finish();
  }
  void matmul_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight,
                       const MatmulParams& p) const override {
    Widened<Conv> w;
    f32_.matmul_backward(w.out(dinp, p.N * p.IC), w.out(dweight, p.OC * p.IC), w.out(dbias, p.OC),
                         w.in(dout, p.N * p.OC), w.in(inp, p.N * p.IC), w.in(weight, p.OC * p.IC), p);
    w.finish();
  }
  void matmul_forward_half(void* out, const void* inp, const uint16_t* weight, DType weight_type, const void* bias,
                           const MatmulParams& p) const override {
    Widened<Conv> w;
    f32_.matmul_forward_half(w.out(out, p.N * p.OC), w.in(inp, p.N * p.IC), weight, weight_type, w.in(bias, p.OC), p);
    w.finish();
  }
  void lora_forward(void* out, const void* inp, const void* A, const void* B, const LoraParams& p) const override {
    Widened<Conv> w;
    f32_.lora_forward(w.out(out, p.N * p.OC), w.in(inp, p.N * p.IC), w.in(A, p.S * p.R * p.IC),
                      w.in(B, p.seg[p.S] * p.R), p);
    w.finish();
  }
  void lora_backward(void* dinp, void* dA, void* dB, const void* dout, const void* inp, const void* A, const void* B,
                     const LoraParams& p) const override {
    Widened<Conv> w;
    f32_.lora_backward(w.out(dinp, p.N * p.IC), w.out(dA, p.S * p.R * p.IC), w.out(dB, p.seg[p.S] * p.R),
                       w.in(dout, p.N * p.OC), w.in(inp, p.N * p.IC), w.in(A, p.S * p.R * p.IC),
                       w.in(B, p.seg[p.S] * p.R), p);
    w.finish();
  }
  void lora_merge(void* weight, const void* A, const void* B, const LoraParams& p) const override {
    Widened<Conv> w;
    f32_.lora_merge(w.out(weight, p.OC * p.IC), w.in(A, p.S * p.R * p.IC), w.in(B, p.seg[p.S] * p.R), p);
    w.finish();
  }
  void attention_forward(void* out, void* stats, const void* qkv, const AttentionParams& p) const override {
    Widened<Conv> w;
    const int64_t rows = p.B * p.T;
    f32_.attention_forward(w.out(out, rows * p.NH * p.HS), S(stats), w.in(qkv, rows * p.qkv_width()), p);
    w.finish();
  }
  void attention_backward(void* dqkv, const void* dout, const void* qkv, const void* stats,
                          const AttentionParams& p) const override {
    Widened<Conv> w;
    const int64_t rows = p.B * p.T;
    f32_.attention_backward(w.out(dqkv, rows * p.qkv_width()), w.in(dout, rows * p.NH * p.HS),
                            w.in(qkv, rows * p.qkv_width()), S(stats), p);
    w.finish();
  }
  void attention_decode_forward(void* out, const void* qkv, const DecodeSeq* seqs,
                                const AttentionDecodeParams& p) const override {
    Widened<Conv> w;
    int64_t rows = 0;
    std::vector<DecodeSeq> widened(seqs, seqs + p.n_seqs);
    const int64_t KV = p.NKV * p.HS;
    for (DecodeSeq& d : widened) {  // the caches are bf16 too: the new keys and values are rounded into them
      rows += d.rows;
      d.k_cache = w.out(d.k_cache, d.max_T * KV);
      d.v_cache = w.out(d.v_cache, d.max_T * KV);
    }
    f32_.attention_decode_forward(w.out(out, rows * p.NH * p.HS), w.in(qkv, rows * p.qkv_width()), widened.data(), p);
    w.finish();
  }
  void rmsnorm_forward(void* out, void* rstd, const void* inp, const void* weight,
                       const RmsNormParams& p) const override {
    Widened<Conv> w;
    f32_.rmsnorm_forward(w.out(out, p.N * p.C), S(rstd), w.in(inp, p.N * p.C), w.in(weight, p.C), p);
    w.finish();
  }
  void rmsnorm_backward(void* dinp, void* dweight, const void* dout, const void* inp, const void* weight,
                        const void* rstd, const RmsNormParams& p) const override {
    Widened<Conv> w;
    f32_.rmsnorm_backward(w.out(dinp, p.N * p.C), w.out(dweight, p.C), w.in(dout, p.N * p.C), w.in(inp, p.N * p.C),
                          w.in(weight, p.C), S(rstd), p);
    w.finish();
  }
  void qk_norm_forward(void* out, void* rstd, const void* inp, const void* qw, const void* kw,
                       const QkNormParams& p) const override {
    Widened<Conv> w;
    const int64_t W = p.qkv_width();
    f32_.qk_norm_forward(w.out(out, p.N * W), S(rstd), w.in(inp, p.N * W), w.in(qw, p.HS), w.in(kw, p.HS), p);
    w.finish();
  }
  void qk_norm_backward(void* dinp, void* dqw, void* dkw, const void* dout, const void* inp, const void* qw,
                        const void* kw, const void* rstd, const QkNormParams& p) const override {
    Widened<Conv> w;
    const int64_t W = p.qkv_width();
    f32_.qk_norm_backward(w.out(dinp, p.N * W), w.out(dqw, p.HS), w.out(dkw, p.HS), w.in(dout, p.N * W),
                          w.in(inp, p.N * W), w.in(qw, p.HS), w.in(kw, p.HS), S(rstd), p);
    w.finish();
  }
  void rope_table(void* c, void* sn, const void* inv_freq, const int32_t* positions,
                  const RopeTableParams& p) const override {
    f32_.rope_table(c, sn, inv_freq, positions, p);  // every operand is a statistic (float32)
  }
  void rope_forward(void* qkv, const void* c, const void* sn, const RopeParams& p) const override {
    Widened<Conv> w;
    f32_.rope_forward(w.out(qkv, p.N * p.qkv_width()), c, sn, p);
    w.finish();
  }
  void rope_backward(void* dqkv, const void* c, const void* sn, const RopeParams& p) const override {
    Widened<Conv> w;
    f32_.rope_backward(w.out(dqkv, p.N * p.qkv_width()), c, sn, p);
    w.finish();
  }
  void swiglu_forward(void* out, const void* inp, const SwigluParams& p) const override {
    Widened<Conv> w;
    f32_.swiglu_forward(w.out(out, p.N * p.M), w.in(inp, p.N * 2 * p.M), p);
    w.finish();
  }
  void swiglu_backward(void* dinp, const void* inp, const void* dout, const SwigluParams& p) const override {
    Widened<Conv> w;
    f32_.swiglu_backward(w.out(dinp, p.N * 2 * p.M), w.in(inp, p.N * 2 * p.M), w.in(dout, p.N * p.M), p);
    w.finish();
  }
  void gelu_forward(void* out, const void* inp, const GeluParams& p) const override {
    Widened<Conv> w;
    f32_.gelu_forward(w.out(out, p.n), w.in(inp, p.n), p);
    w.finish();
  }
  void gelu_backward(void* dinp, const void* inp, const void* dout, const GeluParams& p) const override {
    Widened<Conv> w;
    f32_.gelu_backward(w.out(dinp, p.n), w.in(inp, p.n), w.in(dout, p.n), p);
    w.finish();
  }
  void residual_forward(void* out, const void* a, const void* b, const ResidualParams& p) const override {
    Widened<Conv> w;
    f32_.residual_forward(w.out(out, p.n), w.in(a, p.n), w.in(b, p.n), p);
    w.finish();
  }
  void residual_backward(void* da, void* db, const void* dout, const ResidualParams& p) const override {
    Widened<Conv> w;
    f32_.residual_backward(w.out(da, p.n), w.out(db, p.n), w.in(dout, p.n), p);
    w.finish();
  }
  void cross_entropy_forward(void* losses, void* lse, const void* logits, const int32_t* targets,
                             const CrossEntropyParams& p) const override {
    Widened<Conv> w;
    f32_.cross_entropy_forward(S(losses), S(lse), w.in(logits, p.N * p.V), targets, p);
  }
  void cross_entropy_backward(void* dlogits, const void* logits, const void* lse, const int32_t* targets,
                              const void* dloss, const CrossEntropyParams& p) const override {
    Widened<Conv> w;
    f32_.cross_entropy_backward(w.out(dlogits, p.N * p.V), w.in(logits, p.N * p.V), S(lse), targets, S(dloss), p);
    w.finish();
  }
  LossTotal loss_total(const void* losses, const int32_t* targets, const CrossEntropyParams& p) const override {
    return f32_.loss_total(losses, targets, p);  // the losses are float32
  }
  void pool_forward(void* out, const void* inp, const PoolParams& p) const override {
    Widened<Conv> w;
    f32_.pool_forward(w.out(out, p.B * p.C), w.in(inp, p.B * p.T * p.C), p);
    w.finish();
  }
  void pool_backward(void* dinp, const void* dout, const PoolParams& p) const override {
    Widened<Conv> w;
    f32_.pool_backward(w.out(dinp, p.B * p.T * p.C), w.in(dout, p.B * p.C), p);
    w.finish();
  }
  void gather_rows_forward(void* out, const void* inp, const int32_t* rows, const GatherRowsParams& p) const override {
    Widened<Conv> w;
    f32_.gather_rows_forward(w.out(out, p.R * p.C), w.in(inp, p.N * p.C), rows, p);
    w.finish();
  }
  void adamw_step(void*, const void*, void*, void*, const AdamWParams&) const override {
    fail("{}: AdamW updates float32 master weights (adamw_step_mixed), never bf16 ones in place", name_);
  }
  // The float32 update of the master weights from the widened gradient, then their bf16 copy by
  // stochastic rounding (kernels/stochastic_rounding.h).
  void adamw_step_mixed(float* master, uint16_t* copy, const void* grad, float* m, float* v,
                        const AdamWParams& p) const override {
    Widened<Conv> w;
    f32_.adamw_step(master, w.in(grad, p.n), m, v, p);
    Conv::round_stochastic(copy, master, p.n, StochasticRounding(p.rounding_seed, p.step, p.element_offset));
  }
  double sum_squares(const void* x, int64_t n) const override {
    Widened<Conv> w;
    return f32_.sum_squares(w.in(x, n), n);
  }
  void scale(void* x, float factor, int64_t n) const override {
    Widened<Conv> w;
    f32_.scale(w.out(x, n), factor, n);
    w.finish();
  }

 private:
  const char* name_;
  Device device_;
  const Backend& f32_;
};

}  // namespace gptrain::kernels
