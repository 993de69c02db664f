// The CUDA backend's ops at GPT-2 shapes, through the ops front (kernels/ops.h) on device tensors,
// each timed over repeated calls after a warm-up, with the GPU synchronised around the loop.
// bench/cuda_ops_torch.py times PyTorch's float32 ops (TF32 off) on the same shapes; run both on
// one card (scripts/gpu-check.sh does) and compare the lines: op, milliseconds per call,
// GFLOP/s where the op has a standard count. Attention also in bf16: the tensor-core kernels
// beside the warp kernels (PyTorch's line for it is SDPA's flash attention in bf16).
//   cuda_ops [B T C NH V]   (default 8 1024 768 12 50257: GPT-2 small, batch 8)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda/cuda.h"
#include "kernels/cuda/launch.h"
#include "kernels/ops.h"
#include "tensor/tensor.h"
#include "util/rng.h"

using namespace gptrain;

namespace {

Tensor device_random(const Shape& shape, uint64_t seed, float scale = 1.0f, DType dtype = DType::F32) {
  Tensor host = Tensor::empty(shape);
  const CounterRng rng(seed, 3);
  float* x = host.data<float>();
  for (int64_t i = 0; i < host.numel(); ++i) x[i] = scale * (2.0f * rng.uniform(static_cast<uint64_t>(i)) - 1.0f);
  return host.to(dtype).to(Device::CUDA);
}

void time_op(const char* name, double flops, int iters, const std::function<void()>& op) {
  op();
  op();
  kernels::cuda::synchronize();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) op();
  kernels::cuda::synchronize();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / iters;
  if (flops > 0) std::printf("%-28s %10.3f ms %10.1f GFLOP/s\n", name, ms, flops / (ms * 1e6));
  else std::printf("%-28s %10.3f ms\n", name, ms);
}

}  // namespace

int main(int argc, char** argv) {
  if (!kernels::cuda::init()) {
    std::printf("cuda_ops: %s\n", kernels::cuda::device_description().c_str());
    return 77;
  }
  const int64_t B = argc > 1 ? std::atoll(argv[1]) : 8, T = argc > 2 ? std::atoll(argv[2]) : 1024,
                C = argc > 3 ? std::atoll(argv[3]) : 768, NH = argc > 4 ? std::atoll(argv[4]) : 12,
                V = argc > 5 ? std::atoll(argv[5]) : 50257;
  const int64_t N = B * T, HS = C / NH;
  std::printf("cuda_ops on %s: B %lld T %lld C %lld NH %lld V %lld (float32)\n",
              kernels::cuda::device_description().c_str(), static_cast<long long>(B), static_cast<long long>(T),
              static_cast<long long>(C), static_cast<long long>(NH), static_cast<long long>(V));
  const Tensor x = device_random({N, C}, 1), w_qkv = device_random({3 * C, C}, 2, 0.02f),
               b_qkv = device_random({3 * C}, 3, 0.02f), qkv = Tensor::empty({N, 3 * C}, DType::F32, Device::CUDA);
  const Tensor w_fc = device_random({4 * C, C}, 4, 0.02f), fc = Tensor::empty({N, 4 * C}, DType::F32, Device::CUDA),
               dfc = device_random({N, 4 * C}, 5), dx = Tensor::zeros({N, C}, DType::F32, Device::CUDA),
               dw_fc = Tensor::zeros({4 * C, C}, DType::F32, Device::CUDA);
  time_op("matmul_forward qkv", 2.0 * N * C * 3 * C, 10, [&] { ops::matmul_forward(qkv, x, w_qkv, b_qkv); });
  time_op("matmul_forward fc", 2.0 * N * C * 4 * C, 10, [&] { ops::matmul_forward(fc, x, w_fc, Tensor()); });
  time_op("matmul_backward fc", 4.0 * N * C * 4 * C, 10,
          [&] { ops::matmul_backward(dx, dw_fc, Tensor(), dfc, x, w_fc, kernels::InputGrad::Write); });
  const Tensor qkv_r = device_random({B, T, 3 * C}, 6), att = Tensor::empty({B, T, C}, DType::F32, Device::CUDA),
               stats = Tensor::empty({B, NH, T, 2}, DType::F32, Device::CUDA), datt = device_random({B, T, C}, 7),
               dqkv = Tensor::empty({B, T, 3 * C}, DType::F32, Device::CUDA);
  const ops::AttentionShape shape{NH, NH, HS};
  const double att_flops = 4.0 * B * NH * (T * (T + 1) / 2.0) * HS;  // QK^T and PV over the causal half
  time_op("attention_forward", att_flops, 3, [&] { ops::attention_forward(att, stats, qkv_r, shape); });
  time_op("attention_backward", 2.5 * att_flops, 3,
          [&] { ops::attention_backward(dqkv, datt, qkv_r, stats, shape, 0.0f, 0, kernels::InputGrad::Write); });
  {
    // bf16: the tensor-core kernels cuda-bf16 runs at this head size (flash_attention.cu) beside
    // the warp kernels it runs for other head sizes.
    const Tensor qkv_h = device_random({B, T, 3 * C}, 6, 1.0f, DType::BF16),
                 datt_h = device_random({B, T, C}, 7, 1.0f, DType::BF16),
                 att_h = Tensor::empty({B, T, C}, DType::BF16, Device::CUDA),
                 dqkv_h = Tensor::empty({B, T, 3 * C}, DType::BF16, Device::CUDA),
                 dsum = Tensor::empty({B * NH * T}, DType::F32, Device::CUDA);
    const kernels::AttentionParams p{B, T, NH, NH, HS, 0.0f, 0, kernels::InputGrad::Write};
    uint16_t *o = att_h.device_data<uint16_t>(), *d = dqkv_h.device_data<uint16_t>();
    const uint16_t *in = qkv_h.device_data<uint16_t>(), *g = datt_h.device_data<uint16_t>();
    float *st = stats.device_data<float>(), *ds = dsum.device_data<float>();
    if (kernels::cuda::flash_attention_supported(p, in, g)) {
      time_op("attention_forward bf16", att_flops, 5, [&] { kernels::cuda::flash_attention_forward(o, st, in, p); });
      time_op("attention_backward bf16", 2.5 * att_flops, 5,
              [&] { kernels::cuda::flash_attention_backward(d, ds, g, in, st, p); });
    }
    time_op("attention_forward bf16 warp", att_flops, 3, [&] { kernels::cuda::attention_forward(o, st, in, p); });
    time_op("attention_backward bf16 warp", 2.5 * att_flops, 3,
            [&] { kernels::cuda::attention_backward(d, ds, g, in, st, p); });
  }
  const Tensor ln_w = device_random({C}, 8), ln_b = device_random({C}, 9), ln_out = Tensor::empty({N, C}, DType::F32, Device::CUDA),
               mean = Tensor::empty({N}, DType::F32, Device::CUDA), rstd = Tensor::empty({N}, DType::F32, Device::CUDA),
               dln_w = Tensor::zeros({C}, DType::F32, Device::CUDA), dln_b = Tensor::zeros({C}, DType::F32, Device::CUDA);
  time_op("layernorm_forward", 0, 20, [&] { ops::layernorm_forward(ln_out, mean, rstd, x, ln_w, ln_b); });
  time_op("layernorm_backward", 0, 20,
          [&] { ops::layernorm_backward(dx, dln_w, dln_b, ln_out, x, ln_w, mean, rstd, kernels::InputGrad::Write); });
  time_op("gelu_forward", 0, 20, [&] { ops::gelu_forward(dfc, fc); });
  {
    const Tensor logits = device_random({N, V}, 10, 4.0f), losses = Tensor::empty({N}, DType::F32, Device::CUDA),
                 lse = Tensor::empty({N}, DType::F32, Device::CUDA);
    std::vector<int32_t> t(static_cast<size_t>(N));
    for (int64_t i = 0; i < N; ++i) t[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7919) % V);
    const Tensor targets = Tensor::from_ids({N}, t).to(Device::CUDA);
    time_op("cross_entropy_forward", 0, 5, [&] { ops::cross_entropy_forward(losses, lse, logits, targets); });
    time_op("cross_entropy_backward", 0, 5, [&] { ops::cross_entropy_backward(logits, logits, lse, targets); });
  }
  {
    const int64_t P = 124439808;  // GPT-2 small's parameters (tied head)
    const Tensor p = device_random({P}, 11), g = device_random({P}, 12), m = Tensor::zeros({P}, DType::F32, Device::CUDA),
                 v = Tensor::zeros({P}, DType::F32, Device::CUDA);
    int64_t step = 0;
    time_op("adamw_step 124M", 0, 10, [&] {
      kernels::AdamWParams a{P, 1e-4, 0.9, 0.95, 1e-8, 0.1, ++step};
      ops::adamw_step(p, g, m, v, a);
    });
    time_op("sum_squares 124M", 0, 10, [&] { (void)ops::sum_squares(g); });
  }
  return 0;
}
