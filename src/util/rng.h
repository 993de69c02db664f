// Counter-based random numbers: value i of stream (seed, stream) is a pure function of
// (seed, stream, i). Any thread can compute any element, so results do not depend on the thread
// count, and a checkpoint only needs the seed and the step to restore every future random draw.
#pragma once

#include <cmath>
#include <cstdint>

namespace gptrain {

// SplitMix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit mixer that passes
// BigCrush when applied to a Weyl sequence, which is how CounterRng uses it.
inline constexpr uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

class CounterRng {
 public:
  static constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

  constexpr CounterRng(uint64_t seed, uint64_t stream)
      : key_(splitmix64_mix(splitmix64_mix(seed + kGolden) ^ (stream * 0xD1B54A32D192ED03ULL + 1))) {}

  // 64 random bits for counter i.
  constexpr uint64_t bits(uint64_t i) const { return splitmix64_mix(key_ + (i + 1) * kGolden); }

  // Uniform float in [0, 1) with 24 random bits: every value is exactly representable.
  float uniform(uint64_t i) const { return static_cast<float>(bits(i) >> 40) * 0x1.0p-24f; }

  // Uniform double in [0, 1) with 53 random bits.
  double uniform_double(uint64_t i) const { return static_cast<double>(bits(i) >> 11) * 0x1.0p-53; }

  // Standard normal by Box-Muller from counters 2i and 2i+1 (the cosine branch only, so element i
  // never depends on any other element).
  double normal(uint64_t i) const {
    const double u1 = 1.0 - uniform_double(2 * i);  // (0, 1]: log() stays finite
    const double u2 = uniform_double(2 * i + 1);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925 * u2);
  }

  // Uniform integer in [0, n) without modulo bias worth measuring for n < 2^32 (Lemire's method
  // without the rejection step: the bias is below n / 2^64).
  uint64_t below(uint64_t i, uint64_t n) const {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(bits(i)) * n) >> 64);
  }

  uint64_t key() const { return key_; }

 private:
  uint64_t key_;
};

// Derives an independent seed for a named purpose (e.g. the dropout masks of step 17) so callers
// never reuse one stream for two purposes.
inline constexpr uint64_t derive_seed(uint64_t seed, uint64_t a, uint64_t b = 0) {
  return splitmix64_mix(splitmix64_mix(seed ^ splitmix64_mix(a + 0x632BE59BD9B4E019ULL)) + b);
}

}  // namespace gptrain
