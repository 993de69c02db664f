// The random bits of the bf16 mode's weight rounding (docs/DESIGN.md, "bf16 mode"): after AdamW's
// update s, element e of the flat parameter buffer gets its bf16 copy by stochastic rounding
// (float_to_bf16_stochastic, tensor/dtype.h) with 16 bits that are a pure function of
// (seed, s, e). Every backend draws the same bits, so a CPU and a GPU run round alike, a run is
// deterministic whatever the threads or shards, and a resumed run rebuilds the copy exactly from
// the float32 weights and the step count. Element i's copy is float_to_bf16_stochastic(x, bits(i))
// (tensor/dtype.h; bf16_kernels.cu has the device's). C++17, for nvcc.
#pragma once

#include <cstdint>

#include "util/rng.h"

namespace gptrain::kernels {

struct StochasticRounding {
  CounterRng rng;
  uint64_t offset;  // element i of a call is element offset + i of the flat buffer

  constexpr StochasticRounding(uint64_t seed, int64_t step, uint64_t element_offset)
      : rng(derive_seed(seed, 0x62663136ULL /* "bf16" */, static_cast<uint64_t>(step)), 0), offset(element_offset) {}

  // 16 random bits of element i; one 64-bit counter draw serves four consecutive elements.
  constexpr uint16_t bits(uint64_t i) const {
    const uint64_t e = offset + i;
    return static_cast<uint16_t>(rng.bits(e >> 2) >> ((e & 3) * 16));
  }
};

}  // namespace gptrain::kernels
