// Reference kernel: embedding. Scalar loops templated on the element type (see ref.h).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/params.h"

namespace gptrain::ref {

using namespace gptrain::kernels;

template <class T>
void embedding_forward(T* out, const int32_t* tokens, const T* wte, const T* wpe, const EmbeddingParams& p) {
  for (int64_t bt = 0; bt < p.B * p.T; ++bt) {
    const int64_t t = bt % p.T;
    const T* tok = wte + static_cast<int64_t>(tokens[bt]) * p.C;
    const T* pos = wpe + (p.pos_offset + t) * p.C;
    for (int64_t c = 0; c < p.C; ++c) out[bt * p.C + c] = tok[c] + pos[c];
  }
}

template <class T>
void embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* tokens, const EmbeddingParams& p) {
  for (int64_t bt = 0; bt < p.B * p.T; ++bt) {
    const int64_t t = bt % p.T;
    for (int64_t c = 0; c < p.C; ++c) {
      if (dwte) dwte[static_cast<int64_t>(tokens[bt]) * p.C + c] += dout[bt * p.C + c];
      if (dwpe) dwpe[(p.pos_offset + t) * p.C + c] += dout[bt * p.C + c];
    }
  }
}

}  // namespace gptrain::ref
