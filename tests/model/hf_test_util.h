// Shared helpers of the Hugging Face model-dir tests: fixtures, random models, and the float32
// error model of tests/tools/hf_error_model.py.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "model/transformer.h"
#include "tests/common/temp_dir.h"

namespace gptrain::testing_util {

inline std::filesystem::path fixtures_dir() { return std::filesystem::path(GPTRAIN_FIXTURES_DIR) / "hf"; }

// The error model (derivation in tests/tools/hf_error_model.py): a float32 forward of this
// config over T positions has ||logits - exact|| <= k * u * ||exact|| with u = 2^-24 and k the sum
// over the ops on the path of sqrt(reduction length) (plus a few u for elementwise ops):
//   per block: LayerNorm 1 and 2 (sqrt(C) each), qkv (sqrt(C)), scores q.k (sqrt(HS)), softmax
//   sum and att@v (sqrt(T) each), attention proj (sqrt(C)), fc (sqrt(C)), MLP proj (sqrt(4C)),
//   8 u for GELU, exp and the residual adds; then ln_f and the head (sqrt(C) each), and 2 u for
//   the embedding add and the rounding of the float64 reference to float32.
inline double error_k(const ModelConfig& c, int64_t T) {
  const double C = static_cast<double>(c.emb_dim), HS = static_cast<double>(c.head_size());
  const double t = static_cast<double>(T);
  const double per_block = 2 * std::sqrt(C) + std::sqrt(C) + std::sqrt(HS) + 2 * std::sqrt(t) + std::sqrt(C) +
                           std::sqrt(C) + std::sqrt(4 * C) + 8;
  return static_cast<double>(c.n_layers) * per_block + 2 * std::sqrt(C) + 2;
}
inline constexpr double kUnitRoundoff = 0x1p-24;

// Random values for every parameter, deterministic in seed: weights and embeddings N(0, scale),
// LayerNorm scales 1 + N(0, 0.1), biases and shifts N(0, 0.1), so that a mix-up of any two
// parameters changes the logits.
inline void randomize(Transformer& model, uint64_t seed, float scale = 0.1f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (Parameter& p : model.params().all()) {
    const bool norm_scale = p.kind == ParamKind::Norm && p.name.ends_with(".weight");
    const float s = p.is_bias_or_norm() ? 0.1f : scale;
    for (int64_t i = 0; i < p.value.numel(); ++i) p.value[i] = (norm_scale ? 1.0f : 0.0f) + s * normal(rng);
  }
}

inline std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
  return tokens;
}

}  // namespace gptrain::testing_util
