// export-gguf on the committed fixtures (tests/fixtures/gguf, from tests/tools/gen_gguf_fixtures.py):
// each file parsed back by the test reader and checked against the Hugging Face tensors read
// straight from the fixture's safetensors (not through gptrain's model loader) and against what
// the generator computed with torch, transformers and PEFT (expected.safetensors).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

#include "convert/gguf_lora.h"
#include "convert/gguf_model.h"
#include "convert/gguf_vocab.h"
#include "io/safetensors.h"
#include "model/model_dir.h"
#include "model/peft_pattern.h"
#include "tests/common/gguf_reader.h"
#include "tests/common/temp_dir.h"
#include "util/error.h"

namespace gptrain::convert {
namespace {

namespace fs = std::filesystem;
using testing_util::TempDir;
using json = nlohmann::json;

const fs::path kFixtures = fs::path(GPTRAIN_FIXTURES_DIR) / "gguf";

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<float> hf_tensor(const fs::path& file, const std::string& name) {
  const io::SafeTensorsFile f = io::SafeTensorsFile::open(file);
  const Tensor t = f.load(name);
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

std::vector<float> transposed(const std::vector<float>& v, int64_t rows, int64_t cols) {
  std::vector<float> t(v.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[static_cast<size_t>(c * rows + r)] = v[static_cast<size_t>(r * cols + c)];
  return t;
}

// As `gptrain export-gguf` writes it: straight from the checkpoint.
test::GgufFile export_dir(const fs::path& model_dir, GgufFileType type, const fs::path& out) {
  export_model_dir_gguf(model_dir, model_dir, out, type);
  return test::read_gguf(out);
}

TEST(GgufExport, FromTheCheckpointEqualsFromTheLoadedModel) {
  // The streaming path (ModelDirWeights rows: Conv1D transposed, fused rows sliced) and the loaded
  // Transformer's parameters give the same bytes.
  TempDir dir;
  for (const char* name : {"gpt2", "llama", "qwen3"})
    for (GgufFileType type : {GgufFileType::F32, GgufFileType::F16, GgufFileType::Q8_0}) {
      const fs::path src = kFixtures / name;
      export_model_dir_gguf(src, src, dir / "streamed.gguf", type);
      const std::unique_ptr<Transformer> model = load_model_dir(src);
      export_model_gguf(*model, src, src, dir / "loaded.gguf", type);
      EXPECT_EQ(read_text(dir / "streamed.gguf"), read_text(dir / "loaded.gguf")) << name << " " << gguf_file_type_name(type);
    }
}

std::vector<std::string> tensor_names(const test::GgufFile& f) {
  std::vector<std::string> names;
  for (const test::GgufTensor& t : f.tensors) names.push_back(t.name);
  return names;
}

TEST(GgufExport, Gpt2TensorsKeysAndVocabulary) {
  TempDir dir;
  const fs::path src = kFixtures / "gpt2";
  const test::GgufFile f = export_dir(src, GgufFileType::F32, dir / "gpt2.gguf");
  const json config = json::parse(read_text(src / "config.json"));
  const json vocab = json::parse(read_text(src / "vocab.json"));
  const int64_t V = config["vocab_size"], C = config["n_embd"], P = config["n_positions"];
  EXPECT_EQ(f.at("general.architecture").s, "gpt2");
  EXPECT_EQ(f.at("general.type").s, "model");
  EXPECT_EQ(f.at("general.file_type").u, 0u);
  EXPECT_EQ(f.at("gpt2.context_length").u, static_cast<uint64_t>(P));
  EXPECT_EQ(f.at("gpt2.embedding_length").u, static_cast<uint64_t>(C));
  EXPECT_EQ(f.at("gpt2.block_count").u, 2u);
  EXPECT_EQ(f.at("gpt2.feed_forward_length").u, static_cast<uint64_t>(4 * C));
  EXPECT_EQ(f.at("gpt2.attention.head_count").u, 2u);
  EXPECT_EQ(static_cast<float>(f.at("gpt2.attention.layer_norm_epsilon").f), 1e-5f);

  // Tokens: vocab.json's spellings by id; <|endoftext|> a control token; the merges file's lines.
  EXPECT_EQ(f.at("tokenizer.ggml.model").s, "gpt2");
  EXPECT_EQ(f.at("tokenizer.ggml.pre").s, "gpt-2");
  const std::vector<std::string>& tokens = f.at("tokenizer.ggml.tokens").strings;
  ASSERT_EQ(static_cast<int64_t>(tokens.size()), V);
  for (const auto& [spelled, id] : vocab.items()) EXPECT_EQ(tokens[id.get<size_t>()], spelled);
  const int64_t eot = vocab["<|endoftext|>"];
  const std::vector<int64_t>& types = f.at("tokenizer.ggml.token_type").ints;
  for (int64_t id = 0; id < V; ++id) EXPECT_EQ(types[static_cast<size_t>(id)], id == eot ? 3 : 1) << id;
  std::vector<std::string> merges;
  std::istringstream lines(read_text(src / "merges.txt"));
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && !line.starts_with("#version")) merges.push_back(line);
  EXPECT_EQ(f.at("tokenizer.ggml.merges").strings, merges);
  EXPECT_EQ(f.at("tokenizer.ggml.bos_token_id").u, static_cast<uint64_t>(eot));
  EXPECT_EQ(f.at("tokenizer.ggml.eos_token_id").u, static_cast<uint64_t>(eot));
  EXPECT_EQ(f.at("tokenizer.ggml.add_bos_token").u, 0u);

  std::vector<std::string> expected = {"token_embd.weight", "position_embd.weight"};
  for (int l = 0; l < 2; ++l)
    for (const char* t : {"attn_norm.weight", "attn_norm.bias", "attn_qkv.weight", "attn_qkv.bias", "attn_output.weight",
                          "attn_output.bias", "ffn_norm.weight", "ffn_norm.bias", "ffn_up.weight", "ffn_up.bias",
                          "ffn_down.weight", "ffn_down.bias"})
      expected.push_back("blk." + std::to_string(l) + "." + t);
  expected.insert(expected.end(), {"output_norm.weight", "output_norm.bias"});  // tied head: no output.weight
  EXPECT_EQ(tensor_names(f), expected);
  EXPECT_EQ(f.tensor("token_embd.weight").ne, (std::vector<uint64_t>{static_cast<uint64_t>(C), static_cast<uint64_t>(V)}));
  EXPECT_EQ(f.tensor("blk.0.attn_qkv.weight").ne, (std::vector<uint64_t>{static_cast<uint64_t>(C), static_cast<uint64_t>(3 * C)}));

  // Values: HF's Conv1D [in, out] transposed to [out, in], as convert_hf_to_gguf's GPT-2 does.
  const fs::path st = src / "model.safetensors";
  EXPECT_EQ(f.values("token_embd.weight"), hf_tensor(st, "transformer.wte.weight"));
  EXPECT_EQ(f.values("position_embd.weight"), hf_tensor(st, "transformer.wpe.weight"));
  EXPECT_EQ(f.values("blk.1.attn_qkv.weight"), transposed(hf_tensor(st, "transformer.h.1.attn.c_attn.weight"), C, 3 * C));
  EXPECT_EQ(f.values("blk.1.attn_qkv.bias"), hf_tensor(st, "transformer.h.1.attn.c_attn.bias"));
  EXPECT_EQ(f.values("blk.0.ffn_up.weight"), transposed(hf_tensor(st, "transformer.h.0.mlp.c_fc.weight"), C, 4 * C));
  EXPECT_EQ(f.values("blk.0.ffn_down.weight"), transposed(hf_tensor(st, "transformer.h.0.mlp.c_proj.weight"), 4 * C, C));
  EXPECT_EQ(f.values("blk.0.attn_output.weight"), transposed(hf_tensor(st, "transformer.h.0.attn.c_proj.weight"), C, C));
  EXPECT_EQ(f.values("output_norm.bias"), hf_tensor(st, "transformer.ln_f.bias"));
}

TEST(GgufExport, TypesFollowTheConverter) {
  TempDir dir;
  const fs::path src = kFixtures / "gpt2";
  const test::GgufFile h = export_dir(src, GgufFileType::F16, dir / "f16.gguf");
  const test::GgufFile q = export_dir(src, GgufFileType::Q8_0, dir / "q8.gguf");
  EXPECT_EQ(h.at("general.file_type").u, 1u);
  EXPECT_EQ(q.at("general.file_type").u, 7u);
  for (const test::GgufTensor& t : h.tensors) {
    const bool stays_f32 = t.ne.size() == 1 || t.name == "position_embd.weight";
    EXPECT_EQ(t.type, stays_f32 ? 0u : 1u) << t.name;
  }
  // Q8_0 where a row is a multiple of 32 (ffn_down's 64), F16 where not (width 16).
  EXPECT_EQ(q.tensor("blk.0.ffn_down.weight").type, 8u);
  EXPECT_EQ(q.tensor("blk.0.attn_qkv.weight").type, 1u);
  EXPECT_EQ(q.tensor("token_embd.weight").type, 1u);
  EXPECT_EQ(q.tensor("position_embd.weight").type, 0u);
  EXPECT_EQ(q.tensor("blk.0.ffn_down.bias").type, 0u);
  EXPECT_EQ(q.tensor("blk.0.attn_norm.weight").type, 0u);
  // The quantized values lie within Q8_0's bound of the source (gguf_test derives it).
  const std::vector<float> src_values = transposed(hf_tensor(src / "model.safetensors", "transformer.h.0.mlp.c_proj.weight"), 64, 16);
  const std::vector<float> got = q.values("blk.0.ffn_down.weight");
  for (size_t b = 0; b < got.size(); b += 32) {
    float amax = 0;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(src_values[b + j]));
    for (size_t j = 0; j < 32; ++j)
      ASSERT_LE(std::fabs(got[b + j] - src_values[b + j]), amax / 127 * (0.5f + 127.0f / 2048 + 1e-5f)) << b + j;
  }
}

TEST(GgufExport, LlamaPermutedQkSplitMlpRopeFactorsAndTokenizer) {
  TempDir dir;
  const fs::path src = kFixtures / "llama";
  const test::GgufFile f = export_dir(src, GgufFileType::F32, dir / "llama.gguf");
  const json config = json::parse(read_text(src / "config.json"));
  const int64_t C = config["hidden_size"], M = config["intermediate_size"], H = config["num_attention_heads"],
                KVH = config["num_key_value_heads"], HD = config["head_dim"];
  EXPECT_EQ(f.at("general.architecture").s, "llama");
  EXPECT_EQ(f.at("llama.attention.head_count").u, static_cast<uint64_t>(H));
  EXPECT_EQ(f.at("llama.attention.head_count_kv").u, static_cast<uint64_t>(KVH));
  EXPECT_EQ(f.at("llama.rope.dimension_count").u, static_cast<uint64_t>(HD));
  EXPECT_EQ(f.at("llama.attention.key_length").u, static_cast<uint64_t>(HD));
  EXPECT_EQ(f.at("llama.rope.freq_base").f, 500000.0);
  EXPECT_EQ(static_cast<float>(f.at("llama.attention.layer_norm_rms_epsilon").f), 1e-5f);
  EXPECT_EQ(f.at("llama.feed_forward_length").u, static_cast<uint64_t>(M));

  const fs::path st = src / "model.safetensors", expected = src / "expected.safetensors";
  for (int l = 0; l < 2; ++l) {
    const std::string g = "blk." + std::to_string(l) + ".", p = "model.layers." + std::to_string(l) + ".";
    EXPECT_EQ(f.values(g + "attn_q.weight"), hf_tensor(expected, g + "attn_q.weight")) << l;  // torch's permutation
    EXPECT_EQ(f.values(g + "attn_k.weight"), hf_tensor(expected, g + "attn_k.weight")) << l;
    EXPECT_NE(f.values(g + "attn_q.weight"), hf_tensor(st, p + "self_attn.q_proj.weight"));  // it did move rows
    EXPECT_EQ(f.values(g + "attn_v.weight"), hf_tensor(st, p + "self_attn.v_proj.weight"));
    EXPECT_EQ(f.values(g + "attn_output.weight"), hf_tensor(st, p + "self_attn.o_proj.weight"));
    EXPECT_EQ(f.values(g + "ffn_gate.weight"), hf_tensor(st, p + "mlp.gate_proj.weight"));
    EXPECT_EQ(f.values(g + "ffn_up.weight"), hf_tensor(st, p + "mlp.up_proj.weight"));
    EXPECT_EQ(f.values(g + "ffn_down.weight"), hf_tensor(st, p + "mlp.down_proj.weight"));
    EXPECT_EQ(f.values(g + "ffn_norm.weight"), hf_tensor(st, p + "post_attention_layernorm.weight"));
  }
  EXPECT_EQ(f.values("output.weight"), hf_tensor(st, "lm_head.weight"));
  EXPECT_EQ(f.tensor("blk.0.attn_k.weight").ne, (std::vector<uint64_t>{static_cast<uint64_t>(C), static_cast<uint64_t>(KVH * HD)}));
  // rope_freqs against transformers' own llama3 frequencies: a few float32 roundings apart.
  const std::vector<float> factors = f.values("rope_freqs.weight"), want = hf_tensor(expected, "rope_freqs.weight");
  ASSERT_EQ(factors.size(), static_cast<size_t>(HD / 2));
  for (size_t i = 0; i < factors.size(); ++i) EXPECT_NEAR(factors[i], want[i], 4e-6 * want[i]) << i;

  // Llama 3.2's tokenizer: Llama 3's regex without ignore_merges (llama.cpp's smaug-bpe), a BOS put
  // before the text, the specials as control tokens.
  const json tj = json::parse(read_text(src / "tokenizer.json"));
  ASSERT_FALSE(tj["model"]["ignore_merges"].get<bool>());
  EXPECT_EQ(f.at("tokenizer.ggml.pre").s, "smaug-bpe");
  EXPECT_EQ(f.at("tokenizer.ggml.add_bos_token").u, 1u);
  const int64_t bos = tj["added_tokens"][0]["id"], eos = tj["added_tokens"][1]["id"];
  EXPECT_EQ(f.at("tokenizer.ggml.bos_token_id").u, static_cast<uint64_t>(bos));
  EXPECT_EQ(f.at("tokenizer.ggml.eos_token_id").u, static_cast<uint64_t>(eos));
  EXPECT_EQ(f.at("tokenizer.ggml.tokens").strings[static_cast<size_t>(bos)], "<|begin_of_text|>");
  EXPECT_EQ(f.at("tokenizer.ggml.token_type").ints[static_cast<size_t>(bos)], 3);
  const std::vector<std::string>& merges = f.at("tokenizer.ggml.merges").strings;
  ASSERT_EQ(merges.size(), tj["model"]["merges"].size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = tj["model"]["merges"][i];
    EXPECT_EQ(merges[i], m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
  }
  for (const auto& [spelled, id] : tj["model"]["vocab"].items())
    EXPECT_EQ(f.at("tokenizer.ggml.tokens").strings[id.get<size_t>()], spelled);
}

TEST(GgufExport, Qwen3QkNormsNoPermutationPaddedVocabulary) {
  TempDir dir;
  const fs::path src = kFixtures / "qwen3";
  const test::GgufFile f = export_dir(src, GgufFileType::F32, dir / "qwen3.gguf");
  const json config = json::parse(read_text(src / "config.json"));
  const json tj = json::parse(read_text(src / "tokenizer.json"));
  const int64_t V = config["vocab_size"];
  EXPECT_EQ(f.at("general.architecture").s, "qwen3");
  EXPECT_EQ(f.at("qwen3.attention.key_length").u, 8u);
  EXPECT_EQ(f.at("qwen3.embedding_length").u, 16u);
  const fs::path st = src / "model.safetensors";
  EXPECT_EQ(f.values("blk.0.attn_q.weight"), hf_tensor(st, "model.layers.0.self_attn.q_proj.weight"));  // NEOX: as is
  EXPECT_EQ(f.values("blk.0.attn_k.weight"), hf_tensor(st, "model.layers.0.self_attn.k_proj.weight"));
  EXPECT_EQ(f.values("blk.1.attn_q_norm.weight"), hf_tensor(st, "model.layers.1.self_attn.q_norm.weight"));
  EXPECT_EQ(f.values("blk.1.attn_k_norm.weight"), hf_tensor(st, "model.layers.1.self_attn.k_norm.weight"));
  EXPECT_FALSE(f.has_tensor("output.weight"));  // tied
  EXPECT_FALSE(f.has_tensor("rope_freqs.weight"));

  EXPECT_EQ(f.at("tokenizer.ggml.pre").s, "qwen2");
  EXPECT_EQ(f.at("tokenizer.ggml.add_bos_token").u, 0u);
  const std::vector<std::string>& tokens = f.at("tokenizer.ggml.tokens").strings;
  const std::vector<int64_t>& types = f.at("tokenizer.ggml.token_type").ints;
  ASSERT_EQ(static_cast<int64_t>(tokens.size()), V);
  int64_t last_added = 0;
  for (const json& a : tj["added_tokens"]) {
    const auto id = a["id"].get<size_t>();
    last_added = std::max<int64_t>(last_added, static_cast<int64_t>(id));
    EXPECT_EQ(tokens[id], a["content"].get<std::string>());
    EXPECT_EQ(types[id], a["special"].get<bool>() ? 3 : 4) << a["content"];  // <think>: user-defined
  }
  for (int64_t id = last_added + 1; id < V; ++id) {  // the embedding's rows past the tokenizer
    EXPECT_EQ(tokens[static_cast<size_t>(id)], "[PAD" + std::to_string(id) + "]");
    EXPECT_EQ(types[static_cast<size_t>(id)], 5);
  }
  auto id_of = [&](const std::string& text) {
    for (const json& a : tj["added_tokens"])
      if (a["content"] == text) return a["id"].get<uint64_t>();
    return uint64_t{0};
  };
  EXPECT_EQ(f.at("tokenizer.ggml.eos_token_id").u, id_of("<|im_end|>"));
  EXPECT_EQ(f.at("tokenizer.ggml.padding_token_id").u, id_of("<|endoftext|>"));
  EXPECT_EQ(f.at("tokenizer.chat_template").s,
            json::parse(read_text(src / "tokenizer_config.json"))["chat_template"].get<std::string>());
}

TEST(GgufExport, RopePermutationInterleavesHalves) {
  // one head of 4 rows [h0 h1 | h2 h3] -> [h0 h2 h1 h3]; two values per row
  const std::vector<float> src = {0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5};
  std::vector<float> dst(src.size());
  permute_llama_rope_rows(src, dst, 1, 2);
  EXPECT_EQ(dst, (std::vector<float>{0, 0.5, 2, 2.5, 1, 1.5, 3, 3.5}));
}

TEST(GgufExport, RefusesWhatLlamaCppCannotRun) {
  ModelConfig cls;
  ASSERT_TRUE(preset_config("gpt2-small", cls));
  cls.head = HeadType::Classifier;
  cls.n_classes = 2;
  try {
    gguf_architecture(cls);
    FAIL() << "a classifier exported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("classifier"), std::string::npos) << e.what();
  }
  ModelConfig custom;
  ASSERT_TRUE(preset_config("gpt2-small", custom));
  custom.norm = NormKind::RMSNorm;  // no family's keys can say it: gptrain.architecture
  EXPECT_THROW(gguf_architecture(custom), Error);
  ModelConfig qwen;
  ASSERT_TRUE(preset_config("qwen3-tiny", qwen));
  qwen.qkv_bias = qwen.out_bias = true;
  EXPECT_THROW(gguf_architecture(qwen), Error);
}

// ---------------------------------------------------------------------------------------------
// LoRA adapters

void expect_within_one_rounding(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  // lora_b = float(B * factor): the generator's factor (PEFT's scaling * r / alpha) and ours
  // (alpha_m / alpha * sqrt(r) ...) may differ in the last bit of a double, so one float rounding apart.
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_LE(std::fabs(got[i] - want[i]), std::ldexp(std::fabs(want[i]), -23)) << what << " [" << i << "]";
}

TEST(GgufLora, Gpt2PatternsBakedIntoLoraB) {
  TempDir dir;
  const fs::path adapter = kFixtures / "gpt2_lora";
  const ModelConfig base = read_model_config(kFixtures / "gpt2");
  export_lora_gguf(base, adapter, dir / "lora.gguf", GgufFileType::F32);
  const test::GgufFile f = test::read_gguf(dir / "lora.gguf");
  EXPECT_EQ(f.at("general.architecture").s, "gpt2");
  EXPECT_EQ(f.at("general.type").s, "adapter");
  EXPECT_EQ(f.at("adapter.type").s, "lora");
  EXPECT_EQ(f.at("adapter.lora.alpha").type, 6u);
  EXPECT_EQ(f.at("adapter.lora.alpha").f, 8.0);
  std::vector<std::string> names;
  for (int l = 0; l < 2; ++l)
    for (const char* t : {"attn_qkv", "attn_output", "ffn_up", "ffn_down"})
      for (const char* ab : {".weight.lora_a", ".weight.lora_b"}) names.push_back("blk." + std::to_string(l) + "." + t + ab);
  EXPECT_EQ(tensor_names(f), names);
  EXPECT_EQ(f.tensor("blk.0.attn_qkv.weight.lora_a").ne, (std::vector<uint64_t>{16, 6}));  // [n_in, r]
  EXPECT_EQ(f.tensor("blk.0.attn_qkv.weight.lora_b").ne, (std::vector<uint64_t>{6, 48}));  // [r, n_out]
  const fs::path st = adapter / "adapter_model.safetensors", expected = adapter / "expected.safetensors";
  const std::string k = "base_model.model.transformer.h.";
  for (int l = 0; l < 2; ++l) {
    const std::string g = "blk." + std::to_string(l) + ".", h = k + std::to_string(l) + ".";
    const std::pair<const char*, const char*> modules[] = {
        {"attn_qkv", "attn.c_attn"}, {"attn_output", "attn.c_proj"}, {"ffn_up", "mlp.c_fc"}, {"ffn_down", "mlp.c_proj"}};
    for (const auto& [t, m] : modules) {
      EXPECT_EQ(f.values(g + t + ".weight.lora_a"), hf_tensor(st, h + m + ".lora_A.weight")) << t;
      expect_within_one_rounding(f.values(g + t + ".weight.lora_b"), hf_tensor(expected, g + t + ".weight.lora_b"), g + t);
    }
    // c_fc has the default scaling (alpha 8 / r 4, as the file's alpha says): lora_B untouched
    EXPECT_EQ(f.values(g + "ffn_up.weight.lora_b"), hf_tensor(st, h + "mlp.c_fc.lora_B.weight"));
    // c_proj's alpha_pattern 12 (the first key that matches, as PEFT) triples it
    EXPECT_NE(f.values(g + "attn_output.weight.lora_b"), hf_tensor(st, h + "attn.c_proj.lora_B.weight"));
  }
  const LoraPlan plan = plan_lora_adapter(base, adapter);
  for (const LoraModulePlan& m : plan.modules) {
    if (m.module.ends_with("c_attn")) {
      EXPECT_DOUBLE_EQ(m.lora_b_factor, 1.0) << "rank_pattern 6, alpha 8: 8/6 * 6/8";
    }
    if (m.module.ends_with("c_proj")) {
      EXPECT_DOUBLE_EQ(m.lora_b_factor, 1.5) << m.module;  // alpha_pattern c_proj 12 over lora_alpha 8
    }
  }
}

TEST(GgufLora, LlamaRsLoraPermutedQkAndHead) {
  TempDir dir;
  const fs::path adapter = kFixtures / "llama_lora";
  export_lora_gguf(read_model_config(kFixtures / "llama"), adapter, dir / "lora.gguf", GgufFileType::F32);
  const test::GgufFile f = test::read_gguf(dir / "lora.gguf");
  EXPECT_EQ(f.at("general.architecture").s, "llama");
  EXPECT_EQ(f.at("adapter.lora.alpha").f, 16.0);
  const fs::path expected = adapter / "expected.safetensors";
  const io::SafeTensorsFile e = io::SafeTensorsFile::open(expected);
  ASSERT_EQ(f.tensors.size(), 2 * e.tensors().size());  // every module's pair, nothing else
  for (const io::TensorInfo& t : e.tensors()) expect_within_one_rounding(f.values(t.name), hf_tensor(expected, t.name), t.name);
  EXPECT_TRUE(f.has_tensor("output.weight.lora_a"));
  EXPECT_EQ(f.tensor("blk.0.attn_k.weight.lora_b").ne, (std::vector<uint64_t>{2, 8}));  // rank_pattern k_proj 2
  EXPECT_EQ(f.values("blk.1.attn_q.weight.lora_a"),
            hf_tensor(adapter / "adapter_model.safetensors", "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"));
}

TEST(GgufLora, PeftPatternKeysMatchAsPeft) {
  const std::vector<std::string> keys = {"c_proj", "h.1.mlp.c_proj"};
  EXPECT_EQ(match_peft_pattern(keys, "transformer.h.1.mlp.c_proj"), "c_proj");  // first match wins
  EXPECT_EQ(match_peft_pattern({"h.1.mlp.c_proj"}, "transformer.h.1.mlp.c_proj"), "h.1.mlp.c_proj");
  EXPECT_EQ(match_peft_pattern(keys, "transformer.h.0.attn.c_attn"), "");
  EXPECT_EQ(match_peft_pattern({"c_proj"}, "transformer.h.0.attn.xc_proj"), "");  // whole name parts only
  EXPECT_EQ(match_peft_pattern({"h\\.[01]\\.attn\\.c_attn"}, "transformer.h.1.attn.c_attn"), "h\\.[01]\\.attn\\.c_attn");
}

// A copy of an adapter fixture with its config edited and/or tensors replaced.
fs::path edited_adapter(const TempDir& dir, const fs::path& from, const std::function<void(json&)>& edit_config,
                        const std::vector<std::pair<std::string, Tensor>>* tensors = nullptr) {
  const fs::path out = dir / "adapter";
  fs::create_directories(out);
  json config = json::parse(read_text(from / "adapter_config.json"));
  edit_config(config);
  std::ofstream(out / "adapter_config.json") << config.dump(2);
  if (tensors) io::save_safetensors(out / "adapter_model.safetensors", *tensors);
  else fs::copy_file(from / "adapter_model.safetensors", out / "adapter_model.safetensors");
  return out;
}

void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one naming " << parts.front();
  } catch (const Error& e) {
    for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

Tensor filled(Shape shape, float v) {
  Tensor t = Tensor::empty(shape, DType::F32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = v;
  return t;
}

TEST(GgufLora, BadAdaptersAreErrorsNamingFileAndKey) {
  const ModelConfig gpt2 = read_model_config(kFixtures / "gpt2");
  const fs::path gpt2_lora = kFixtures / "gpt2_lora";
  auto run = [&gpt2](const fs::path& adapter) {
    return [adapter, &gpt2] {
      const fs::path out = fs::path(::testing::TempDir()) / ("gptrain_gguf_lora_error_" + std::to_string(::getpid()) + ".gguf");
      export_lora_gguf(gpt2, adapter, out, GgufFileType::F32);
      fs::remove(out);
    };
  };
  {
    TempDir dir;
    expect_error(run(dir.path()), {"adapter_config.json", "missing"});
  }
  {
    TempDir dir;
    expect_error(run(edited_adapter(dir, gpt2_lora, [](json& c) { c["modules_to_save"] = {"score"}; })),
                 {"adapter_config.json", "modules_to_save", "score"});
  }
  {
    TempDir dir;
    expect_error(run(edited_adapter(dir, gpt2_lora, [](json& c) { c["use_dora"] = true; })), {"use_dora"});
  }
  for (const char* key : {"use_dora", "use_rslora", "lora_bias"}) {
    TempDir dir;  // found by fuzz/adapter_config_fuzz: a string here threw nlohmann's type_error
    expect_error(run(edited_adapter(dir, gpt2_lora, [key](json& c) { c[key] = "no"; })),
                 {"adapter_config.json: key '" + std::string(key) + "' must be true or false, got \"no\""});
  }
  {
    TempDir dir;  // a pattern key the linear-time matcher refuses, named with the file and the field
    expect_error(run(edited_adapter(dir, gpt2_lora, [](json& c) { c["alpha_pattern"] = {{"(\\w)\\1", 2}}; })),
                 {"adapter_config.json: alpha_pattern: pattern key '(\\w)\\1': a backreference"});
  }
  {
    TempDir dir;  // r says 5, the tensors say 4 (rank_pattern covers only c_attn)
    expect_error(run(edited_adapter(dir, gpt2_lora, [](json& c) { c["r"] = 5; })), {"adapter_config.json", "key 'r'", "rank 5", "has rank 4"});
  }
  {
    TempDir dir;  // a block the base lacks
    const std::vector<std::pair<std::string, Tensor>> t = {
        {"base_model.model.transformer.h.7.mlp.c_fc.lora_A.weight", filled({4, 16}, 0.1f)},
        {"base_model.model.transformer.h.7.mlp.c_fc.lora_B.weight", filled({64, 4}, 0.1f)}};
    expect_error(run(edited_adapter(dir, gpt2_lora, [](json&) {}, &t)), {"adapter_model.safetensors", "block 7", "2 blocks"});
  }
  {
    TempDir dir;  // lora_A of the wrong width
    const std::vector<std::pair<std::string, Tensor>> t = {
        {"base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight", filled({4, 17}, 0.1f)},
        {"base_model.model.transformer.h.0.mlp.c_fc.lora_B.weight", filled({64, 4}, 0.1f)}};
    expect_error(run(edited_adapter(dir, gpt2_lora, [](json&) {}, &t)),
                 {"base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight", "[4, 17]", "16 inputs"});
  }
  {
    TempDir dir;  // a module the architecture does not have
    const std::vector<std::pair<std::string, Tensor>> t = {
        {"base_model.model.transformer.h.0.attn.q_proj.lora_A.weight", filled({4, 16}, 0.1f)},
        {"base_model.model.transformer.h.0.attn.q_proj.lora_B.weight", filled({16, 4}, 0.1f)}};
    expect_error(run(edited_adapter(dir, gpt2_lora, [](json&) {}, &t)), {"transformer.h.0.attn.q_proj", "no linear module"});
  }
  {
    TempDir dir;  // the tied head of GPT-2 cannot be adapted
    const std::vector<std::pair<std::string, Tensor>> t = {{"base_model.model.lm_head.lora_A.weight", filled({4, 16}, 0.1f)},
                                                           {"base_model.model.lm_head.lora_B.weight", filled({280, 4}, 0.1f)}};
    expect_error(run(edited_adapter(dir, gpt2_lora, [](json&) {}, &t)), {"lm_head", "tied"});
  }
  {
    TempDir dir;  // a lone lora_A
    const std::vector<std::pair<std::string, Tensor>> t = {
        {"base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight", filled({4, 16}, 0.1f)}};
    expect_error(run(edited_adapter(dir, gpt2_lora, [](json&) {}, &t)), {"mlp.c_fc.lora_B.weight"});
  }
  {
    TempDir dir;  // a full weight saved beside the pairs (modules_to_save's copy)
    const std::vector<std::pair<std::string, Tensor>> t = {{"base_model.model.score.weight", filled({2, 16}, 0.1f)}};
    expect_error(run(edited_adapter(dir, gpt2_lora, [](json&) {}, &t)), {"base_model.model.score.weight", "not a lora_A/lora_B"});
  }
  // The Llama adapter on the GPT-2 base: its lm_head pair meets GPT-2's tied head first.
  expect_error(run(kFixtures / "llama_lora"), {"llama_lora/adapter_model.safetensors", "lm_head", "tied"});
}

}  // namespace
}  // namespace gptrain::convert
