// numpy's legacy np.random.RandomState, as far as pandas' DataFrame.sample uses it: the book's
// balanced set and 70/10/20 split come from df.sample(n, random_state=123) and
// df.sample(frac=1, random_state=123), which call RandomState(123).choice(N, size, replace=False),
// which is permutation(N)[:size]. Reproduced from numpy's source (numpy/random/_mt19937.pyx
// _legacy_seeding, mtrand.pyx shuffle, distributions.c random_interval) and checked against
// pandas in tests/train/cls_data_test.cpp:
// - an integer seed goes through init_genrand (std::mt19937's seeding, not init_by_array);
// - shuffle is Fisher-Yates from the end, j = random_interval(i) for i = n-1 .. 1;
// - random_interval(max) draws 32-bit outputs masked to the smallest 2^k - 1 >= max and rejects
//   values above max (64-bit draws, hi word first, when max >= 2^32).
#pragma once

#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

namespace gptrain::data {

class NumpyRandomState {
 public:
  explicit NumpyRandomState(uint32_t seed) : mt_(seed) {}

  uint64_t random_interval(uint64_t max) {
    if (max == 0) return 0;
    uint64_t mask = max;
    for (int shift = 1; shift <= 32; shift *= 2) mask |= mask >> shift;
    uint64_t value;
    if (max <= 0xffffffffULL) {
      while ((value = (static_cast<uint64_t>(mt_()) & mask)) > max) {
      }
    } else {
      while ((value = (next_uint64() & mask)) > max) {
      }
    }
    return value;
  }

  // np.random.RandomState(seed).permutation(n)
  std::vector<int64_t> permutation(int64_t n) {
    std::vector<int64_t> a(static_cast<size_t>(n));
    std::iota(a.begin(), a.end(), int64_t{0});
    for (int64_t i = n - 1; i > 0; --i)
      std::swap(a[static_cast<size_t>(i)], a[random_interval(static_cast<uint64_t>(i))]);
    return a;
  }

 private:
  uint64_t next_uint64() {
    const uint64_t hi = mt_();
    return hi << 32 | static_cast<uint64_t>(mt_());
  }
  std::mt19937 mt_;
};

}  // namespace gptrain::data
