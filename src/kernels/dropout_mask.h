// The dropout mask every backend shares, so that a CPU and a CUDA run with the same seed drop the
// same elements and the reference kernels can check both.
#pragma once

#include <cmath>
#include <cstdint>

#include "util/rng.h"

namespace gptrain::kernels {

// Element i is kept when 16 random bits of it are at least round(p * 2^16): p is honoured to
// within 2^-17, and one 64-bit counter draw serves four consecutive elements (hashing is the
// mask's whole cost).
struct DropoutMask {
  CounterRng rng;
  uint32_t threshold;
  float scale;  // 1 / (1 - p), as torch computes it in float; 0 when p >= 1 (everything dropped)

  uint64_t offset;  // element i draws the bits of element offset + i (a micro-batch inside a larger batch)

  DropoutMask(uint64_t seed, float p, uint64_t element_offset = 0)
      : rng(seed, 0x64726f70ULL),
        threshold(p >= 1.0f ? 65536u : static_cast<uint32_t>(std::lround(static_cast<double>(p) * 65536.0))),
        scale(p < 1.0f ? 1.0f / (1.0f - p) : 0.0f),
        offset(element_offset) {}

  // 16 random bits of element i.
  uint32_t bits16(uint64_t i) const { return bits_at(i + offset); }

  // Multiplier for element i: scale when kept, 0 when dropped.
  float factor(uint64_t i) const { return bits16(i) >= threshold ? scale : 0.0f; }

  // Multipliers of elements [begin, begin + n) into out, one draw per aligned group of four.
  void factors(uint64_t begin, int64_t n, float* out) const {
    begin += offset;
    const auto at = [&](uint64_t i) { return bits_at(i) >= threshold ? scale : 0.0f; };
    int64_t k = 0;
    for (; k < n && ((begin + k) & 3) != 0; ++k) out[k] = at(begin + k);
    for (; k + 4 <= n; k += 4) {
      const uint64_t h = rng.bits((begin + k) >> 2);
      for (int j = 0; j < 4; ++j) out[k + j] = ((h >> (16 * j)) & 0xFFFFu) >= threshold ? scale : 0.0f;
    }
    for (; k < n; ++k) out[k] = at(begin + k);
  }

 private:
  // The bits of counter element i (the offset already applied).
  uint32_t bits_at(uint64_t i) const { return static_cast<uint32_t>(rng.bits(i >> 2) >> ((i & 3) * 16)) & 0xFFFFu; }
};

}  // namespace gptrain::kernels
