// The dropout mask every backend shares, so that a CPU and a CUDA run with the same seed drop the
// same elements and the reference kernels can check both.
#pragma once

#include <cstdint>

#include "util/rng.h"

namespace gptrain::kernels {

struct DropoutMask {
  CounterRng rng;
  float p;
  float scale;  // 1 / (1 - p), as torch computes it in float; 0 when p >= 1 (everything dropped)

  DropoutMask(uint64_t seed, float p_)
      : rng(seed, 0x64726f70ULL), p(p_), scale(p_ < 1.0f ? 1.0f / (1.0f - p_) : 0.0f) {}

  // Multiplier for element i: scale when kept, 0 when dropped.
  float factor(uint64_t i) const { return rng.uniform(i) >= p ? scale : 0.0f; }
};

}  // namespace gptrain::kernels
