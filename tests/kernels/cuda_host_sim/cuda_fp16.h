// The host stand-in's f16 (cuda_runtime.h): IEEE binary16 bits widened to float32.
#pragma once

#include "cuda_runtime.h"

struct __half {
  uint16_t x;
};
inline __half __ushort_as_half(unsigned short bits) { return {bits}; }
inline float __half2float(__half h) {
  const uint32_t sign = static_cast<uint32_t>(h.x & 0x8000u) << 16, exp = (h.x >> 10) & 0x1fu, frac = h.x & 0x3ffu;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (frac << 13));         // infinity, NaN
  if (exp != 0) return std::bit_cast<float>(sign | ((exp + 112) << 23) | (frac << 13));   // normal
  const float magnitude = std::ldexp(static_cast<float>(frac), -24);                       // subnormal, zero
  return sign ? -magnitude : magnitude;
}
