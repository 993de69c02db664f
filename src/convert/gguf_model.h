// A model dir as a GGUF file llama.cpp runs (convert_hf_to_gguf.py's output for GPT2LMHeadModel,
// LlamaForCausalLM and Qwen3ForCausalLM), written from our parameters one tensor at a time.
//
// Architectures and tensors (ours -> llama.cpp's; shapes row-major, ggml's ne is the reverse):
//   all      token_embd.weight [V,C] = tok_emb.weight; output_norm.{weight,bias} = ln_f.*;
//            output.weight = head.weight (absent when tied: llama.cpp reuses token_embd);
//            blk.N.attn_norm.* = blocks.N.ln1.*; blk.N.ffn_norm.* = ln2.*; blk.N.attn_output.* = attn.proj.*
//   gpt2     position_embd.weight [P,C] = pos_emb.weight; blk.N.attn_qkv.{weight,bias} = attn.qkv.*
//            (llama.cpp requires every bias: zeros for a model without qkv bias);
//            blk.N.ffn_up.* = mlp.fc.*, blk.N.ffn_down.* = mlp.proj.* ([out, in] as ours: the converter
//            transposes HF's Conv1D back to nn.Linear's layout)
//   llama    blk.N.attn_{q,k,v}.* = row ranges q | k | v of attn.qkv.*, q and k rows permuted within each
//            head as LlamaModel.permute does (llama.cpp rotates adjacent pairs, transformers the two
//            halves); blk.N.ffn_{gate,up}.* = rows gate | up of mlp.fc.*; ffn_down = mlp.proj; with the
//            llama3 rope scaling, rope_freqs.weight [head_dim/2] holds each frequency's divisor
//   qwen3    as llama without the permutation (llama.cpp's qwen3 rotates halves, NEOX style), plus
//            blk.N.attn_{q,k}_norm.weight = attn.{q,k}_norm.weight
// Types as the converter chooses: 1-D tensors, *_norm.weight, position_embd and biases stay F32;
// the other weights take the file's type (F32, F16, or Q8_0 when a row is a multiple of 32, else F16).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "model/config.h"
#include "model/transformer.h"

namespace gptrain::convert {

enum class GgufFileType { F32, F16, Q8_0 };
// "f32", "f16", "q8_0"; anything else throws naming the choices.
GgufFileType parse_gguf_file_type(const std::string& text);
const char* gguf_file_type_name(GgufFileType type);
uint32_t llama_file_type_id(GgufFileType type);  // general.file_type: 0 ALL_F32, 1 MOSTLY_F16, 7 MOSTLY_Q8_0

// The llama.cpp architecture that runs `config`: "gpt2", "llama" or "qwen3". Throws naming what
// llama.cpp cannot express (a classifier head, gptrain's own architectures, Qwen3 with biases).
std::string gguf_architecture(const ModelConfig& config);

// The ggml type of a tensor in a file of `type` (convert_hf_to_gguf.py's rules).
io::GgmlType gguf_tensor_type(const std::string& name, const Shape& shape, GgufFileType type);

// One tensor of the file and where its values come from.
struct GgufTensorPlan {
  io::GgufTensorDecl decl;
  std::string param;          // our parameter; empty: `values` (computed) or zeros
  int64_t row_offset = 0;     // the first row of `param` it takes (fused q | k | v, gate | up)
  int64_t permute_heads = 0;  // > 0: Llama's rotary row permutation over this many heads
  std::vector<float> values;  // computed tensors (rope_freqs)
};
std::vector<GgufTensorPlan> plan_model_tensors(const ModelConfig& config, GgufFileType type);

// LlamaModel.permute on `rows` rows of `row_len` values: within each of `heads` heads, the rows of
// the first half and the second half are interleaved (row j of the first half, then row j of the
// second, ...), turning transformers' rotate-half pairs into llama.cpp's adjacent pairs.
void permute_llama_rope_rows(std::span<const float> src, std::span<float> dst, int64_t heads, int64_t row_len);

// Llama 3's rope scaling as llama.cpp's rope_freqs.weight: per frequency pair, the divisor of its
// angle (1 for high frequencies, `factor` for low ones, smoothed between), as the converter computes.
std::vector<float> llama3_rope_freq_factors(const ModelConfig& config);

// general.* and <arch>.* keys of the model (not the tokenizer).
io::GgufMetadata model_metadata(const ModelConfig& config, const std::string& name, GgufFileType type);

struct GgufExportSummary {
  std::string architecture;
  int64_t tensors = 0;
  uint64_t bytes = 0;
  std::map<std::string, int64_t> tensors_by_type;  // "F32" -> count
};

// Rows [row_begin, row_end) of one of our parameters, as float32.
using ParameterRows = std::function<std::vector<float>(const std::string& param, int64_t row_begin, int64_t row_end)>;

// Writes a model of `config` whose weights `rows` gives, with the tokenizer of tokenizer_dir, as
// GGUF to `out`, atomically: one tensor's values in memory at a time. `model_dir` names the model
// (general.name) and supplies fallback special ids.
GgufExportSummary write_model_gguf(const ModelConfig& config, const ParameterRows& rows,
                                   const std::filesystem::path& model_dir, const std::filesystem::path& tokenizer_dir,
                                   const std::filesystem::path& out, GgufFileType type);

// A model dir straight from its checkpoint (ModelDirWeights: the model is never built), as
// `gptrain export-gguf` does.
GgufExportSummary export_model_dir_gguf(const std::filesystem::path& model_dir,
                                        const std::filesystem::path& tokenizer_dir, const std::filesystem::path& out,
                                        GgufFileType type);

// A model in memory (float32 parameters), e.g. right after training.
GgufExportSummary export_model_gguf(const Transformer& model, const std::filesystem::path& model_dir,
                                    const std::filesystem::path& tokenizer_dir, const std::filesystem::path& out,
                                    GgufFileType type);

// general.name for a model dir: its folder's name.
std::string model_name_of(const std::filesystem::path& model_dir);

}  // namespace gptrain::convert
