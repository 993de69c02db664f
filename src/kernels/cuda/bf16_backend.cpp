// "cuda-bf16": --dtype bf16 on the GPU, the widening backend (kernels/widening_backend.h) over the
// float32 CUDA kernels, its conversions device kernels (bf16_kernels.cu) into scratch from the
// caching allocator. Its results are the cpu-bf16 reference's semantics exactly (each op the
// float32 kernel on widened operands, rounded once), with the CUDA float32 kernels' own
// accumulation order. It makes the mode run end to end on a GPU; the speed of bf16 (tensor-core
// products on bf16 operands, half the bytes per activation) needs the kernels themselves on bf16
// storage, which replace these ops one by one (docs/DESIGN.md, "bf16 mode").
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

}  // namespace

const Backend& bf16_backend() {
  static const WideningBackend<DeviceConversions> backend("cuda-bf16", Device::CUDA, f32_backend());
  return backend;
}

}  // namespace gptrain::kernels::cuda
