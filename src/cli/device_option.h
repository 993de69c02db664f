// --device cpu|cuda on every command that runs a model (where its weights, activations, KV caches
// and a training run's optimizer state live), and --dtype of the training commands. cuda needs a
// build with the CUDA toolkit (kernels/cuda) and a visible GPU; either missing is an error naming
// the option, before any file is read.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "tensor/tensor.h"

namespace gptrain::cli {

// --device, and --tf32 (the f32 mode's products on TF32 tensor cores: kernels/cuda/cuda.h).
void add_device_option(CLI::App* s, std::string& device, bool& tf32);
void add_dtype_option(CLI::App* s, std::string& dtype);

// The device, ready for tensors: CUDA's allocator and backend registered (kernels/cuda/cuda.h), or
// with GPTRAIN_TEST_EMULATE_CUDA=1 the host emulation of kernels/emulated_device.h (tests of the
// device plumbing on machines without a GPU). `dtype` is the training precision ("" for commands
// without --dtype). `tf32` needs --device cuda and the f32 mode; it is set for the process.
Device activate_device(const std::string& device, const std::string& dtype = "", bool tf32 = false);

}  // namespace gptrain::cli
