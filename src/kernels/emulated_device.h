// A stand-in for a GPU where none is visible: Device::CUDA tensors in host memory, every op run by
// the CPU backend of their element type on them. It tests what sits above the kernels (a job moving its model to the
// device, workspaces, KV caches, checkpoints and logits crossing between devices) on machines
// without a GPU, such as CI: host code that reads a device tensor directly fails here as it would
// on a GPU (Tensor::data refuses it), and every result must equal the CPU's bit for bit. The CLI
// turns it on for --device cuda when GPTRAIN_TEST_EMULATE_CUDA=1 (tests only; never by default).
#pragma once

namespace gptrain::kernels {

// Registers the emulating allocator and backend for Device::CUDA (once; later calls do nothing).
void emulate_cuda_on_host();

}  // namespace gptrain::kernels
