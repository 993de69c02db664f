// Reference kernel: a LoRA adapter's contribution to a Linear (kernels/params.h, LoraParams).
// Scalar loops in the order of the definition; each row on its own (batch invariant).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/params.h"

namespace gptrain::ref {

using namespace gptrain::kernels;

// h[n, sR + r] = sum_i inp[n, i] A[sR + r, i]
template <class T>
std::vector<T> lora_down(const T* inp, const T* A, const LoraParams& p) {
  const int64_t SR = p.S * p.R;
  std::vector<T> h(static_cast<size_t>(p.N * SR), T(0));
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t j = 0; j < SR; ++j) {
      T acc = T(0);
      for (int64_t i = 0; i < p.IC; ++i) acc += inp[n * p.IC + i] * A[j * p.IC + i];
      h[static_cast<size_t>(n * SR + j)] = acc;
    }
  return h;
}

template <class T>
void lora_forward(T* out, const T* inp, const T* A, const T* B, const LoraParams& p) {
  const int64_t SR = p.S * p.R;
  const std::vector<T> h = lora_down(inp, A, p);
  for (int64_t n = 0; n < p.N; ++n)
    for (int s = 0; s < p.S; ++s)
      for (int64_t o = p.seg[s]; o < p.seg[s + 1]; ++o) {
        T acc = T(0);
        for (int64_t r = 0; r < p.R; ++r) acc += h[static_cast<size_t>(n * SR + s * p.R + r)] * B[o * p.R + r];
        out[n * p.OC + p.col[s] + (o - p.seg[s])] += T(p.scaling) * acc;
      }
}

template <class T>
void lora_backward(T* dinp, T* dA, T* dB, const T* dout, const T* inp, const T* A, const T* B, const LoraParams& p) {
  const int64_t SR = p.S * p.R;
  const std::vector<T> h = lora_down(inp, A, p);
  const T sc = T(p.scaling);
  // dh[n, sR + r] = scaling * sum_{o in s} dout[n, o] B[o, r]
  std::vector<T> dh(static_cast<size_t>(p.N * SR), T(0));
  for (int64_t n = 0; n < p.N; ++n)
    for (int s = 0; s < p.S; ++s)
      for (int64_t r = 0; r < p.R; ++r) {
        T acc = T(0);
        for (int64_t o = p.seg[s]; o < p.seg[s + 1]; ++o)
          acc += dout[n * p.OC + p.col[s] + (o - p.seg[s])] * B[o * p.R + r];
        dh[static_cast<size_t>(n * SR + s * p.R + r)] = sc * acc;
      }
  if (dB)
    for (int s = 0; s < p.S; ++s)
      for (int64_t o = p.seg[s]; o < p.seg[s + 1]; ++o)
        for (int64_t r = 0; r < p.R; ++r) {
          T acc = T(0);
          for (int64_t n = 0; n < p.N; ++n)
            acc += dout[n * p.OC + p.col[s] + (o - p.seg[s])] * h[static_cast<size_t>(n * SR + s * p.R + r)];
          dB[o * p.R + r] += sc * acc;
        }
  if (dA)
    for (int64_t j = 0; j < SR; ++j)
      for (int64_t i = 0; i < p.IC; ++i) {
        T acc = T(0);
        for (int64_t n = 0; n < p.N; ++n) acc += dh[static_cast<size_t>(n * SR + j)] * inp[n * p.IC + i];
        dA[j * p.IC + i] += acc;
      }
  if (dinp)
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t i = 0; i < p.IC; ++i) {
        T acc = T(0);
        for (int64_t j = 0; j < SR; ++j) acc += dh[static_cast<size_t>(n * SR + j)] * A[j * p.IC + i];
        dinp[n * p.IC + i] += acc;
      }
}

// weight[col[s] + j, i] += scaling sum_r B[seg[s] + j, r] A[sR + r, i]
template <class T>
void lora_merge(T* weight, const T* A, const T* B, const LoraParams& p) {
  for (int s = 0; s < p.S; ++s)
    for (int64_t o = p.seg[s]; o < p.seg[s + 1]; ++o)
      for (int64_t i = 0; i < p.IC; ++i) {
        T acc = T(0);
        for (int64_t r = 0; r < p.R; ++r) acc += B[o * p.R + r] * A[(s * p.R + r) * p.IC + i];
        weight[(p.col[s] + (o - p.seg[s])) * p.IC + i] += T(p.scaling) * acc;
      }
}

}  // namespace gptrain::ref
