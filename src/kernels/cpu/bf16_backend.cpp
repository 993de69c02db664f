// "cpu-bf16": the bf16 mode's reference, the widening backend (kernels/widening_backend.h) over
// the float32 CPU kernels, its conversions OpenMP loops on host memory. Speed is not the point:
// it is what the CUDA bf16 backend is checked against, and what --dtype bf16 runs on a CPU.
#include <vector>

#include "kernels/widening_backend.h"
#include "tensor/dtype.h"

namespace gptrain::kernels {

namespace {

struct HostConversions {
  class Buffer {
   public:
    Buffer() = default;
    explicit Buffer(int64_t n) : values_(static_cast<size_t>(n)) {}
    float* data() { return values_.data(); }

   private:
    std::vector<float> values_;
  };
  static void widen(float* dst, const uint16_t* src, int64_t n) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(src[i]);
  }
  static void round(uint16_t* dst, const float* src, int64_t n) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[i] = float_to_bf16(src[i]);
  }
  static void round_stochastic(uint16_t* dst, const float* src, int64_t n, const StochasticRounding& rounding) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[i] = float_to_bf16_stochastic(src[i], rounding.bits(static_cast<uint64_t>(i)));
  }
};

}  // namespace

const Backend& cpu_bf16_backend() {
  static const WideningBackend<HostConversions> backend("cpu-bf16", Device::CPU, cpu_backend());
  return backend;
}

}  // namespace gptrain::kernels
