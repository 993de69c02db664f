// The host stand-in's bf16 (cuda_runtime.h): the bits, rounded to nearest, ties to even.
#pragma once

#include "cuda_runtime.h"

struct __nv_bfloat16 {
  uint16_t x;
};
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return {static_cast<uint16_t>((bits >> 16) | 0x0040u)};  // NaN
  return {static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16)};
}
namespace sim {
inline float value(__nv_bfloat16 h) { return std::bit_cast<float>(static_cast<uint32_t>(h.x) << 16); }
}  // namespace sim
