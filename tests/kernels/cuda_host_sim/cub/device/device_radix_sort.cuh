// The host stand-in's CUB (cuda_runtime.h): DeviceRadixSort::SortPairs as a stable sort of the
// pairs by the key's bits [begin_bit, end_bit), with CUB's two-call protocol (a null temporary
// buffer asks for its size; too small a buffer is an error, as CUB's).
#pragma once

#include <algorithm>
#include <numeric>
#include <vector>

#include "cuda_runtime.h"

namespace cub {

struct DeviceRadixSort {
  template <class K, class V>
  static cudaError_t SortPairs(void* temp, size_t& temp_bytes, const K* keys_in, K* keys_out, const V* values_in,
                               V* values_out, int n, int begin_bit = 0, int end_bit = sizeof(K) * 8,
                               cudaStream_t = nullptr) {
    const size_t needed = 256 + static_cast<size_t>(n) * sizeof(int);
    if (temp == nullptr) {
      temp_bytes = needed;
      return cudaSuccess;
    }
    if (temp_bytes < needed) return 1;
    const auto key = [&](int i) {
      using U = std::make_unsigned_t<K>;
      const U bits = static_cast<U>(keys_in[i]) >> begin_bit;
      return end_bit - begin_bit >= static_cast<int>(sizeof(K) * 8) ? bits : bits & ((U(1) << (end_bit - begin_bit)) - 1);
    };
    std::vector<int> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return key(a) < key(b); });
    std::vector<K> k(static_cast<size_t>(n));
    std::vector<V> v(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      k[i] = keys_in[order[i]];
      v[i] = values_in[order[i]];
    }
    std::copy(k.begin(), k.end(), keys_out);
    std::copy(v.begin(), v.end(), values_out);
    return cudaSuccess;
  }
};

}  // namespace cub
