#include "cli/device_option.h"

#include <fmt/core.h>

#include <cstdlib>
#include <cstring>

#include "dist/communicator.h"
#include "kernels/backend.h"
#include "kernels/emulated_device.h"
#include "util/error.h"
#if GPTRAIN_HAVE_CUDA
#include "kernels/cuda/cuda.h"
#endif

namespace gptrain::cli {

void add_device_option(CLI::App* s, std::string& device, bool& tf32) {
  s->add_option("--device", device,
                "Where the model runs: cpu, or cuda (the current GPU; CUDA_VISIBLE_DEVICES chooses it)")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
  s->add_flag("--tf32", tf32,
              "With --device cuda in the f32 mode: the matrix products on TF32 tensor cores (inputs rounded to 10-bit "
              "significands, float32 accumulation; PyTorch's allow_tf32); H100/H200 tensor cores run TF32 at about 7x "
              "their float32 rate");
}

void add_dtype_option(CLI::App* s, std::string& dtype) {
  s->add_option("--dtype", dtype,
                "Training precision: f32, or bf16 (mixed precision: float32 weights stay the model and the "
                "optimizer's; the passes read their bf16 copy, written by stochastic rounding after each update, "
                "and keep bf16 activations and gradients)")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16"}));
}

namespace {

bool emulating() {
  const char* e = std::getenv("GPTRAIN_TEST_EMULATE_CUDA");
  return e && std::strcmp(e, "1") == 0;
}

Device activate(const std::string& device) {
  if (device_named(device) == Device::CPU) return Device::CPU;
  if (emulating()) {
    std::fprintf(stderr, "note: GPTRAIN_TEST_EMULATE_CUDA=1: --device cuda runs the CPU kernels on host memory\n");
    kernels::emulate_cuda_on_host();
    return Device::CUDA;
  }
#if GPTRAIN_HAVE_CUDA
  // One GPU per rank of a node: a data-parallel run's ranks take GPU local_rank.
  if (!kernels::cuda::init(dist::detect_launch().local_rank))
    fail("--device cuda: {}; run on a machine with an NVIDIA GPU and driver, or use --device cpu",
         kernels::cuda::device_description());
  return Device::CUDA;
#else
  fail("--device cuda: this gptrain was built without CUDA (no nvcc was found when it was configured); rebuild with "
       "the CUDA toolkit installed, or use --device cpu");
#endif
}

}  // namespace

Device activate_device(const std::string& device, const std::string& dtype, bool tf32) {
  if (tf32 && device_named(device) != Device::CUDA) fail("--tf32: TF32 products are the GPU's; add --device cuda");
  if (tf32 && dtype == "bf16") fail("--tf32: --dtype bf16 multiplies bf16 operands already; drop one of them");
  const Device d = activate(device);
  if (tf32 && emulating())
    std::fprintf(stderr, "note: --tf32 does nothing on the emulated device (its products are the CPU's float32)\n");
#if GPTRAIN_HAVE_CUDA
  else if (tf32)
    kernels::cuda::set_tf32(true);
#endif
  // A device without kernels of the type is refused here too, before any file is read.
  if (dtype == "bf16") (void)kernels::backend_for(d, DType::BF16);
  return d;
}

}  // namespace gptrain::cli
