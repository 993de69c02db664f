// LoRA (the book's appendix E; PEFT's LoraConfig): which Linear units carry a low-rank adapter,
// of what rank and scaling, over which of their outputs. An adapter adds scaling * (x A^T) B^T to
// its Linear (kernels: ops::lora_forward), A [S R, in] and B [outputs, R] in PEFT's lora_A / lora_B
// layouts, stacked over S segments: a fused q|k|v Linear adapts query, key and value each on its
// own (the book's W_query, W_key, W_value), a fused SwiGLU gate|up its gate and up, and a part can
// be left out (PEFT's q_proj + v_proj). The plan is fixed when the model's parameters are laid
// out, so adapters live in the one flat ParameterSet beside the weights they adapt, named
// `<linear>.lora_A` and `<linear>.lora_B` (blocks.{i}.attn.qkv, blocks.{i}.attn.proj,
// blocks.{i}.mlp.fc, blocks.{i}.mlp.proj, head).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "model/config.h"

namespace gptrain {

// What a user asks for (the --lora-* options).
struct LoraOptions {
  int64_t rank = 0;              // 0: no adapters
  std::optional<double> alpha;   // absent: the rank (scaling 1)
  std::string scaling = "rank";  // rank: alpha / rank (the book's code, PEFT); none: alpha (the book's first text)
  // default: every Linear of the blocks, plus a classification head (the book's appendix E);
  // all-linear: every Linear of the blocks (PEFT's all-linear: not the LM head); attention; mlp;
  // or a comma list of query, key, value, attn_out, mlp_in, gate, up, mlp_out, head and the
  // families' module names (c_attn, c_proj, c_fc, q_proj, k_proj, v_proj, o_proj, gate_proj,
  // up_proj, down_proj, lm_head, score).
  std::string targets = "default";
  double dropout = 0.0;  // on an adapter's input (PEFT's lora_dropout); the base path has none
  bool enabled() const { return rank > 0; }
};

// One Linear's adapter: each segment is a named part of the Linear's outputs.
struct LinearAdapter {
  int64_t rank = 0;
  float scaling = 1.0f;
  std::vector<std::string> parts;  // query, key, value, gate, up; or the whole unit's target name
  std::vector<ops::LoraSegment> segments;
  int64_t rows() const;  // of B: the adapted outputs
};

struct AdapterPlan {
  std::map<std::string, LinearAdapter> linears;  // by Linear name
  float dropout = 0.0f;
  bool empty() const { return linears.empty(); }
  const LinearAdapter* find(const std::string& linear) const;
};

// A named part of a Linear's outputs that an adapter segment can cover.
struct LinearPart {
  std::string target;  // query, key, value, attn_out, mlp_in, gate, up, mlp_out, head
  ops::LoraSegment columns;
};
// Every Linear of a model of `config` (name, input and output width) with its parts, in layout order.
struct LinearUnit {
  std::string name;
  int64_t in = 0, out = 0;
  std::vector<LinearPart> parts;
};
std::vector<LinearUnit> linear_units(const ModelConfig& config);

// The adapters `options` ask for on a model of `config`. Errors name the option: a rank of 0 or
// above an adapted layer's input width, alpha <= 0, an unknown target or one the model lacks, a
// dropout outside [0, 1).
AdapterPlan plan_adapters(const ModelConfig& config, const LoraOptions& options);

// The adapter names of a parameter: "<linear>.lora_A" / "<linear>.lora_B" -> true and the Linear.
bool is_adapter_name(const std::string& param, std::string* linear = nullptr);

// A one-line description: "rank 16, alpha 16 (scaling 1), 74 Linear layers: query, key, value, ...".
std::string describe(const AdapterPlan& plan);

}  // namespace gptrain
