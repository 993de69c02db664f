// Element types of tensors and the host conversions between them. F32 is the compute type of the
// CPU kernels; F64 runs the scalar reference kernels (tests check every op and layer unit in
// double); BF16 and F16 are storage formats (Hugging Face checkpoints), converted on load; I32
// holds token ids, targets and positions.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace gptrain {

enum class DType : uint8_t { F32, F64, BF16, F16, I32 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::BF16: return 2;
    case DType::F16: return 2;
    case DType::I32: return 4;
  }
  return 0;
}
const char* dtype_name(DType t);  // "f32", "f64", "bf16", "f16", "i32"
constexpr bool is_floating(DType t) { return t != DType::I32; }
// The type of a computation's statistics beside tensors of type t: norms' means and reciprocal
// deviations, attention's softmax statistics, losses and log-sum-exps, rotary tables. float32 beside
// half-precision storage (a bf16 log-sum-exp of 10 is off by 0.03, a 3% error in every softmax
// gradient), the tensors' own type otherwise.
constexpr DType stats_dtype(DType t) { return t == DType::BF16 || t == DType::F16 ? DType::F32 : t; }

// bfloat16: the top 16 bits of a float32. Rounding to nearest, ties to even; NaN stays NaN (a
// quiet NaN with the sign kept), infinities and overflow to infinity as IEEE rounding gives.
inline float bf16_to_float(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }
inline uint16_t float_to_bf16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // NaN
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

// Stochastic rounding to bfloat16 (the bf16 mode's weight updates, docs/DESIGN.md): `random`'s
// 16 bits added below the kept ones, then truncated, so f rounds up with probability equal to its
// distance from the bf16 value below it over the gap: over all 2^16 values of `random` the mean
// is f exactly. bf16 values stay themselves; NaN stays NaN; beyond the largest bf16 it may reach
// infinity, as the gap rounds.
inline uint16_t float_to_bf16_stochastic(float f, uint16_t random) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // NaN
  if ((bits & 0x7fffffffu) == 0x7f800000u) return static_cast<uint16_t>(bits >> 16);  // infinity
  return static_cast<uint16_t>((bits + random) >> 16);
}

// IEEE half precision (binary16).
float f16_to_float(uint16_t h);
uint16_t float_to_f16(float f);  // round to nearest even; overflow to infinity; NaN stays NaN

}  // namespace gptrain
