// A backend: the kernels of one device for one floating-point element type, behind one interface,
// so that the ops (kernels/ops.h) choose at a single point which code runs. Buffers are untyped
// here; each backend reads them as its element type, and the statistics (norms' mean and rstd,
// attention's stats, cross-entropy's losses, lse and row weights, rotary cos/sin) as
// stats_dtype of it (tensor/dtype.h: float32 beside half storage); the ops have checked the
// tensors' dtypes and devices. Token ids, targets, positions and row lists are int32. Semantics: kernels/params.h.
//
// Registered backends: "cpu" (float32; OpenMP + OpenBLAS), "cpu-bf16" (bf16 storage: operands
// widened, the float32 kernels run, results rounded; the bf16 mode's semantics) and "ref"
// (float64; the scalar reference kernels, the ground truth of every test). A GPU backend registers itself for its
// device (register_backend) and brings the device's allocator (tensor/tensor.h).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/params.h"
#include "tensor/tensor.h"
#include "util/error.h"

namespace gptrain::kernels {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual Device device() const = 0;
  virtual DType dtype() const = 0;

  virtual void embedding_forward(void* out, const int32_t* tokens, const int32_t* positions, const void* wte,
                                 const void* wpe, const EmbeddingParams& p) const = 0;
  virtual void embedding_backward(void* dwte, void* dwpe, const void* dout, const int32_t* tokens,
                                  const int32_t* positions, const EmbeddingParams& p) const = 0;
  virtual void dropout_forward(void* out, const void* inp, const DropoutParams& p) const = 0;
  virtual void dropout_backward(void* dinp, const void* dout, const DropoutParams& p) const = 0;
  virtual void layernorm_forward(void* out, void* mean, void* rstd, const void* inp, const void* weight,
                                 const void* bias, const LayerNormParams& p) const = 0;
  virtual void layernorm_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp,
                                  const void* weight, const void* mean, const void* rstd,
                                  const LayerNormParams& p) const = 0;
  virtual void matmul_forward(void* out, const void* inp, const void* weight, const void* bias,
                              const MatmulParams& p) const = 0;
  virtual void matmul_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp,
                               const void* weight, const MatmulParams& p) const = 0;
  // The batch-invariant forward with weight[OC, IC] stored as `weight_type` (F16 or BF16): each
  // output equals matmul_forward's batch-invariant one on the weight converted to this backend's
  // type, bit for bit (decoding reads half the bytes).
  virtual void matmul_forward_half(void* out, const void* inp, const uint16_t* weight, DType weight_type,
                                   const void* bias, const MatmulParams& p) const = 0;
  virtual void lora_forward(void* out, const void* inp, const void* A, const void* B, const LoraParams& p) const = 0;
  virtual void lora_backward(void* dinp, void* dA, void* dB, const void* dout, const void* inp, const void* A,
                             const void* B, const LoraParams& p) const = 0;
  // weight[OC, IC] rows of each segment += scaling B_s A_s (p.N unused).
  virtual void lora_merge(void* weight, const void* A, const void* B, const LoraParams& p) const = 0;
  virtual void attention_forward(void* out, void* stats, const void* qkv, const AttentionParams& p) const = 0;
  virtual void attention_backward(void* dqkv, const void* dout, const void* qkv, const void* stats,
                                  const AttentionParams& p) const = 0;
  virtual void attention_decode_forward(void* out, const void* qkv, const DecodeSeq* seqs,
                                        const AttentionDecodeParams& p) const = 0;
  virtual void rmsnorm_forward(void* out, void* rstd, const void* inp, const void* weight,
                               const RmsNormParams& p) const = 0;
  virtual void rmsnorm_backward(void* dinp, void* dweight, const void* dout, const void* inp, const void* weight,
                                const void* rstd, const RmsNormParams& p) const = 0;
  virtual void qk_norm_forward(void* out, void* rstd, const void* inp, const void* q_weight, const void* k_weight,
                               const QkNormParams& p) const = 0;
  virtual void qk_norm_backward(void* dinp, void* dq_weight, void* dk_weight, const void* dout, const void* inp,
                                const void* q_weight, const void* k_weight, const void* rstd,
                                const QkNormParams& p) const = 0;
  virtual void rope_table(void* cos_out, void* sin_out, const void* inv_freq, const int32_t* positions,
                          const RopeTableParams& p) const = 0;
  virtual void rope_forward(void* qkv, const void* cos_t, const void* sin_t, const RopeParams& p) const = 0;
  virtual void rope_backward(void* dqkv, const void* cos_t, const void* sin_t, const RopeParams& p) const = 0;
  virtual void swiglu_forward(void* out, const void* inp, const SwigluParams& p) const = 0;
  virtual void swiglu_backward(void* dinp, const void* inp, const void* dout, const SwigluParams& p) const = 0;
  virtual void gelu_forward(void* out, const void* inp, const GeluParams& p) const = 0;
  virtual void gelu_backward(void* dinp, const void* inp, const void* dout, const GeluParams& p) const = 0;
  virtual void residual_forward(void* out, const void* a, const void* b, const ResidualParams& p) const = 0;
  virtual void residual_backward(void* da, void* db, const void* dout, const ResidualParams& p) const = 0;
  virtual void cross_entropy_forward(void* losses, void* lse, const void* logits, const int32_t* targets,
                                     const CrossEntropyParams& p) const = 0;
  virtual void cross_entropy_backward(void* dlogits, const void* logits, const void* lse, const int32_t* targets,
                                      const void* dloss, const CrossEntropyParams& p) const = 0;
  virtual LossTotal loss_total(const void* losses, const int32_t* targets, const CrossEntropyParams& p) const = 0;
  virtual void pool_forward(void* out, const void* inp, const PoolParams& p) const = 0;
  virtual void pool_backward(void* dinp, const void* dout, const PoolParams& p) const = 0;
  virtual void gather_rows_forward(void* out, const void* inp, const int32_t* rows,
                                   const GatherRowsParams& p) const = 0;
  virtual void adamw_step(void* param, const void* grad, void* m, void* v, const AdamWParams& p) const = 0;
  // The bf16 mode's update (half-precision backends only): float32 master weights, moments m and
  // v, and this backend's gradients; the master weights are updated as adamw_step does, then
  // written into `copy` (what the passes read) by stochastic rounding (kernels/stochastic_rounding.h
  // at p.rounding_seed, p.step, p.element_offset).
  // Other backends refuse it (inline: the interface keeps no key function, so its vtable is
  // emitted wherever a backend is defined, whatever the libraries' link order).
  virtual void adamw_step_mixed(float*, uint16_t*, const void*, float*, float*, const AdamWParams&) const {
    fail("the {} backend keeps no separate master weights: AdamW updates its {} weights in place", name(),
         dtype_name(dtype()));
  }
  virtual double sum_squares(const void* x, int64_t n) const = 0;
  virtual void scale(void* x, float factor, int64_t n) const = 0;
};

// The backend for tensors of `dtype` on `device`; fails with a message naming both when there is
// none (f16 is a storage format on the CPU: convert with Tensor::to(DType::F32)).
const Backend& backend_for(Device device, DType dtype);
// Every registered backend (the test harness runs each against the reference).
std::vector<const Backend*> backends();
// A backend of another build part (a GPU) announces itself; `backend` must outlive the program.
void register_backend(const Backend* backend);

// The three built in.
const Backend& cpu_backend();
const Backend& cpu_bf16_backend();
const Backend& ref_backend();

}  // namespace gptrain::kernels
