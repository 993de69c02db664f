#include "model/config.h"

#include "util/error.h"

namespace gptrain {

void GPT2Config::validate() const {
  if (vocab_size <= 0) fail("config: vocab_size must be positive, got {}", vocab_size);
  if (context_length <= 0) fail("config: context_length must be positive, got {}", context_length);
  if (emb_dim <= 0) fail("config: emb_dim must be positive, got {}", emb_dim);
  if (n_heads <= 0) fail("config: n_heads must be positive, got {}", n_heads);
  if (n_layers < 0) fail("config: n_layers must not be negative, got {}", n_layers);
  if (emb_dim % n_heads != 0)
    fail("config: emb_dim {} is not divisible by n_heads {}", emb_dim, n_heads);
  if (!(drop_rate >= 0.0f && drop_rate < 1.0f)) fail("config: drop_rate must be in [0, 1), got {}", drop_rate);
  if (!(layer_norm_eps > 0.0f)) fail("config: layer_norm_eps must be positive, got {}", layer_norm_eps);
  if (head == HeadType::Classifier) {
    if (n_classes < 2) fail("config: a classifier needs at least 2 classes, got {}", n_classes);
    if (tie_weights) fail("config: a classifier head cannot be tied to the token embedding");
  }
}

bool preset_config(const std::string& name, GPT2Config& config) {
  struct Row {
    const char* name;
    const char* alias;
    int64_t emb_dim, n_layers, n_heads;
  };
  static const Row rows[] = {{"gpt2-small", "124M", 768, 12, 12},
                             {"gpt2-medium", "355M", 1024, 24, 16},
                             {"gpt2-large", "774M", 1280, 36, 20},
                             {"gpt2-xl", "1558M", 1600, 48, 25}};
  for (const Row& row : rows)
    if (name == row.name || name == row.alias || (name == "gpt2" && row.emb_dim == 768)) {
      config = GPT2Config{};
      config.emb_dim = row.emb_dim;
      config.n_layers = row.n_layers;
      config.n_heads = row.n_heads;
      return true;
    }
  return false;
}

std::vector<std::string> preset_names() { return {"gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"}; }

ParameterCounts count_parameters(const GPT2Config& c) {
  const int64_t C = c.emb_dim;
  const int64_t block = 2 * C                            // ln1
                        + 3 * C * C + (c.qkv_bias ? 3 * C : 0)  // qkv
                        + C * C + C                      // attention output projection
                        + 2 * C                          // ln2
                        + 4 * C * C + 4 * C              // mlp fc
                        + 4 * C * C + C;                 // mlp proj
  const int64_t body = c.vocab_size * C + c.context_length * C + c.n_layers * block + 2 * C;
  int64_t head = 0;
  if (c.head == HeadType::Classifier)
    head = c.n_classes * C + c.n_classes;
  else if (!c.tie_weights)
    head = c.vocab_size * C;
  return {body + head, body, head};
}

}  // namespace gptrain
