// Reference kernel: embedding. Scalar loops templated on the element type (see ref.h).
#pragma once

#include <cstdint>

#include "kernels/params.h"

namespace gptrain::ref {

using namespace gptrain::kernels;

inline int64_t embedding_position(const int32_t* positions, const EmbeddingParams& p, int64_t n) {
  return positions ? positions[n] : p.pos_offset + n % p.T;
}

template <class T>
void embedding_forward(T* out, const int32_t* tokens, const int32_t* positions, const T* wte, const T* wpe,
                       const EmbeddingParams& p) {
  for (int64_t n = 0; n < p.B * p.T; ++n) {
    const T* tok = wte + static_cast<int64_t>(tokens[n]) * p.C;
    const T* pos = wpe ? wpe + embedding_position(positions, p, n) * p.C : nullptr;
    for (int64_t c = 0; c < p.C; ++c) out[n * p.C + c] = pos ? tok[c] + pos[c] : tok[c];
  }
}

template <class T>
void embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* tokens, const int32_t* positions,
                        const EmbeddingParams& p) {
  for (int64_t n = 0; n < p.B * p.T; ++n)
    for (int64_t c = 0; c < p.C; ++c) {
      if (dwte) dwte[static_cast<int64_t>(tokens[n]) * p.C + c] += dout[n * p.C + c];
      if (dwpe) dwpe[embedding_position(positions, p, n) * p.C + c] += dout[n * p.C + c];
    }
}

}  // namespace gptrain::ref
