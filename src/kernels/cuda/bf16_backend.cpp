// "cuda-bf16": --dtype bf16 on the GPU, the widening backend (kernels/widening_backend.h) over the
// float32 CUDA kernels, its conversions device kernels (bf16_kernels.cu) into scratch from the
// caching allocator. Its results have the cpu-bf16 reference's semantics (each op computed in
// float32 from its bf16 operands and rounded once), with the CUDA kernels' own accumulation order.
// The ops with bf16 kernels of their own replace the widened ones one by one (docs/DESIGN.md,
// "bf16 mode"); so far the matrix products: cuBLASLt on bf16 operands (tensor cores) with
// float32 accumulation and one rounding of the output (dweight += as round(old + product) by
// beta = 1), the bias gradient through the widened column sums.
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

class CudaBf16Backend final : public WideningBackend<DeviceConversions> {
 public:
  CudaBf16Backend() : WideningBackend("cuda-bf16", Device::CUDA, f32_backend()) {}

  // Row-major out[N,OC] is column-major out^T[OC,N] = W^T-view times inp^T (backend.cpp's layout).
  void matmul_forward(void* out, const void* inp, const void* weight, const void* bias,
                      const MatmulParams& p) const override {
    if (p.batch_invariant) return WideningBackend::matmul_forward(out, inp, weight, bias, p);  // decode rows
    gemm(true, false, p.OC, p.N, p.IC, weight, p.IC, inp, p.IC, out, p.OC, 0.0f, bias, GemmType::BF16);
  }
  void matmul_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight,
                       const MatmulParams& p) const override {
    if (dinp)
      gemm(false, false, p.IC, p.N, p.OC, weight, p.IC, dout, p.OC, dinp, p.IC,
           p.dinp == InputGrad::Write ? 0.0f : 1.0f, nullptr, GemmType::BF16);
    if (dweight)
      gemm(false, true, p.IC, p.OC, p.N, inp, p.IC, dout, p.OC, dweight, p.IC, 1.0f, nullptr, GemmType::BF16);
    if (dbias) {
      Widened<DeviceConversions> w;
      column_sums_add(w.out(dbias, p.OC), w.in(dout, p.N * p.OC), p.N, p.OC);
      w.finish();
    }
  }
};

}  // namespace

const Backend& bf16_backend() {
  static const CudaBf16Backend backend;
  return backend;
}

}  // namespace gptrain::kernels::cuda
