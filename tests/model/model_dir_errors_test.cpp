// Bad model dirs, one per row: each is rejected with a message that names the file and the key or
// tensor at fault (docs/reference/ecosystem-and-users.md §4.4: mismatched shapes, missing and
// unexpected tensors, truncated files, pickles).
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "model/model_dir.h"
#include "tests/model/hf_test_util.h"
#include "util/error.h"

namespace gptrain {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Tensors = std::vector<std::pair<std::string, Tensor>>;

void edit_config(const fs::path& dir, const std::function<void(json&)>& edit) {
  json j;
  {
    std::ifstream in(dir / "config.json");
    j = json::parse(in);
  }
  edit(j);
  std::ofstream(dir / "config.json") << j.dump(2);
}

Tensors read_all(const fs::path& file) {
  const io::SafeTensorsFile f = io::SafeTensorsFile::open(file);
  Tensors out;
  for (const io::TensorInfo& t : f.tensors()) out.emplace_back(t.name, f.load(t.name));
  return out;
}

void edit_weights(const fs::path& dir, const std::function<void(Tensors&)>& edit) {
  Tensors tensors = read_all(dir / "model.safetensors");
  edit(tensors);
  io::save_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
}

// Splits model.safetensors into two shards and an index, as save_pretrained(max_shard_size=...) does.
void make_sharded(const fs::path& dir, const std::function<void(json&)>& edit_index = {}) {
  const Tensors all = read_all(dir / "model.safetensors");
  fs::remove(dir / "model.safetensors");
  const size_t half = all.size() / 2;
  json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", json::object()}};
  for (int shard = 0; shard < 2; ++shard) {
    const std::string name = "model-0000" + std::to_string(shard + 1) + "-of-00002.safetensors";
    Tensors part(all.begin() + (shard ? half : 0), shard ? all.end() : all.begin() + half);
    for (const auto& [tensor, value] : part) index["weight_map"][tensor] = name;
    io::save_safetensors(dir / name, part, {{"format", "pt"}});
  }
  if (edit_index) edit_index(index);
  std::ofstream(dir / "model.safetensors.index.json") << index.dump(2);
}

struct BadDir {
  const char* name;
  std::function<void(const fs::path&)> spoil;
  std::vector<std::string> expect;  // substrings of the message
};

std::vector<BadDir> bad_dirs() {
  auto config = [](std::function<void(json&)> edit) { return [edit](const fs::path& d) { edit_config(d, edit); }; };
  auto weights = [](std::function<void(Tensors&)> edit) { return [edit](const fs::path& d) { edit_weights(d, edit); }; };
  std::vector<BadDir> rows;
  rows.push_back({"no_config", [](const fs::path& d) { fs::remove(d / "config.json"); }, {"config.json: not found"}});
  rows.push_back({"config_not_json", [](const fs::path& d) { std::ofstream(d / "config.json") << "{\"n_embd\": 16,"; },
                  {"config.json: not valid JSON"}});
  rows.push_back({"n_embd_as_string", config([](json& j) { j["n_embd"] = "16"; }),
                  {"config.json: key 'n_embd' must be a positive integer, got \"16\""}});
  rows.push_back({"n_head_not_a_divisor", config([](json& j) { j["n_head"] = 5; }),
                  {"config.json: key 'n_embd' (16) must be divisible by 'n_head' (5)"}});
  rows.push_back({"erf_gelu", config([](json& j) { j["activation_function"] = "gelu"; }),
                  {"config.json: key 'activation_function' is \"gelu\""}});
  rows.push_back({"unknown_model_type", config([](json& j) { j["model_type"] = "mamba"; }),
                  {"config.json: key 'model_type' is \"mamba\"; gptrain reads \"gpt2\", \"llama\", \"qwen3\""}});
  // n_inner (the MLP width) is read; weights of the 4 x n_embd MLP then do not fit it.
  rows.push_back({"mlp_width_not_the_weights", config([](json& j) { j["n_inner"] = 100; }),
                  {"mlp.c_fc.weight' has shape [16, 64] but [16, 100] was expected"}});
  rows.push_back({"mlp_width_not_an_integer", config([](json& j) { j["n_inner"] = "wide"; }),
                  {"config.json: key 'n_inner' must be a positive integer or null, got \"wide\""}});
  rows.push_back({"unknown_head", config([](json& j) { j["gptrain"]["head"] = "regression"; }),
                  {"config.json (object 'gptrain'): key 'head' is \"regression\""}});
  rows.push_back({"dropout_out_of_range", config([](json& j) { j["gptrain"]["drop_rate"] = 1.5; }),
                  {"key 'drop_rate' must be in [0, 1), got 1.5"}});
  rows.push_back({"sequence_classification_checkpoint",
                  config([](json& j) {
                    j.erase("gptrain");
                    j["architectures"] = {"GPT2ForSequenceClassification"};
                  }),
                  {"config.json: key 'architectures' names \"GPT2ForSequenceClassification\""}});
  rows.push_back({"n_embd_not_the_files", config([](json& j) { j["n_embd"] = 8; }),
                  {"model.safetensors: tensor 'transformer.wte.weight' has shape [41, 16] but [41, 8] was expected",
                   "n_embd 8"}});
  rows.push_back({"padded_vocab", config([](json& j) { j["vocab_size"] = 48; }),
                  {"tensor 'transformer.wte.weight' has shape [41, 16] but [48, 16] was expected"}});
  rows.push_back({"more_layers_than_the_file", config([](json& j) { j["n_layer"] = 3; }),
                  {"model.safetensors: missing 12 tensors: h.2.ln_1.weight, h.2.ln_1.bias"}});
  rows.push_back({"fewer_layers_than_the_file", config([](json& j) { j["n_layer"] = 1; }),
                  {"model.safetensors: 12 unexpected tensors: transformer.h.1."}});
  rows.push_back({"untied_without_lm_head", config([](json& j) { j["tie_word_embeddings"] = false; }),
                  {"missing 1 tensor: lm_head.weight", "untied head"}});
  rows.push_back({"qkv_bias_off_but_bias_in_file", config([](json& j) { j["gptrain"]["qkv_bias"] = false; }),
                  {"model.safetensors: tensor 'transformer.h.0.attn.c_attn.bias' is not zero"}});
  rows.push_back({"extra_tensor", weights([](Tensors& t) { t.emplace_back("transformer.h.0.attn.rotary", Tensor::zeros({2})); }),
                  {"1 unexpected tensor: transformer.h.0.attn.rotary"}});
  rows.push_back({"missing_tensor", weights([](Tensors& t) {
                    std::erase_if(t, [](const auto& p) { return p.first == "transformer.ln_f.bias"; });
                  }),
                  {"model.safetensors: missing 1 tensor: ln_f.bias"}});
  rows.push_back({"transposed_weight", weights([](Tensors& t) {
                    for (auto& [name, value] : t)
                      if (name == "transformer.h.1.mlp.c_fc.weight") value = value.reshape({64, 16});
                  }),
                  {"tensor 'transformer.h.1.mlp.c_fc.weight' has shape [64, 16] but [16, 64] was expected"}});
  rows.push_back({"both_spellings", weights([](Tensors& t) { t.emplace_back("wte.weight", Tensor::zeros({41, 16})); }),
                  {"tensor 'wte.weight' appears twice"}});
  rows.push_back({"no_weights", [](const fs::path& d) { fs::remove(d / "model.safetensors"); },
                  {"no model.safetensors or model.safetensors.index.json found"}});
  rows.push_back({"pickle_only",
                  [](const fs::path& d) {
                    fs::rename(d / "model.safetensors", d / "pytorch_model.bin");
                  },
                  {"pytorch_model.bin (PyTorch pickle)", "save_pretrained"}});
  rows.push_back({"truncated_download",
                  [](const fs::path& d) { fs::resize_file(d / "model.safetensors", fs::file_size(d / "model.safetensors") - 4); },
                  {"model.safetensors: tensor", "run past the end of the data", "truncated"}});
  rows.push_back({"shard_missing",
                  [](const fs::path& d) {
                    make_sharded(d);
                    fs::remove(d / "model-00002-of-00002.safetensors");
                  },
                  {"model.safetensors.index.json: shard model-00002-of-00002.safetensors", "is missing"}});
  rows.push_back({"shard_outside_the_dir",
                  [](const fs::path& d) {
                    make_sharded(d, [](json& index) { index["weight_map"]["transformer.wte.weight"] = "../x.safetensors"; });
                  },
                  {"model.safetensors.index.json: weight_map names shard \"../x.safetensors\""}});
  rows.push_back({"index_points_to_the_wrong_shard",
                  [](const fs::path& d) {
                    make_sharded(d, [](json& index) {
                      index["weight_map"]["transformer.ln_f.bias"] = "model-00001-of-00002.safetensors";
                    });
                  },
                  {"weight_map puts 'transformer.ln_f.bias' in model-00001-of-00002.safetensors, but that shard does "
                   "not hold it"}});
  rows.push_back({"index_without_weight_map",
                  [](const fs::path& d) { make_sharded(d, [](json& index) { index.erase("weight_map"); }); },
                  {"model.safetensors.index.json: expected an object with a 'weight_map'"}});
  return rows;
}

class BadModelDir : public ::testing::TestWithParam<BadDir> {};

TEST_P(BadModelDir, is_rejected_with_a_clear_message) {
  const testing_util::TempDir tmp;
  ModelConfig c;
  c.vocab_size = 41;
  c.context_length = 12;
  c.emb_dim = 16;
  c.n_heads = 4;
  c.n_layers = 2;
  c.qkv_bias = true;
  c.tie_weights = true;
  Transformer model(c);
  testing_util::randomize(model, 3);
  const fs::path dir = tmp / "model";
  save_model_dir(model, dir);
  ASSERT_NO_THROW(load_model_dir(dir));
  GetParam().spoil(dir);
  try {
    load_model_dir(dir);
    FAIL() << GetParam().name << " was accepted";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(dir.string()), std::string::npos) << message;
    for (const std::string& part : GetParam().expect)
      EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
  }
}

INSTANTIATE_TEST_SUITE_P(HfGpt2, BadModelDir, ::testing::ValuesIn(bad_dirs()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(HfGpt2ModelDir, sharded_checkpoints_load) {
  const testing_util::TempDir tmp;
  ModelConfig c;
  c.vocab_size = 41;
  c.context_length = 12;
  c.emb_dim = 16;
  c.n_heads = 4;
  c.n_layers = 2;
  Transformer model(c);
  testing_util::randomize(model, 5);
  save_model_dir(model, tmp / "m");
  make_sharded(tmp / "m");
  const std::unique_ptr<Transformer> back = load_model_dir(tmp / "m");
  for (const Parameter& p : model.params().all())
    EXPECT_EQ(back->params().at(p.name).value.to_vector(), p.value.to_vector()) << p.name;
}

TEST(HfGpt2ModelDir, class_names_must_match_the_classes) {
  const testing_util::TempDir tmp;
  ModelConfig c;
  c.vocab_size = 41;
  c.context_length = 12;
  c.emb_dim = 16;
  c.n_heads = 4;
  c.n_layers = 1;
  c.head = HeadType::Classifier;
  c.n_classes = 2;
  Transformer model(c);
  EXPECT_THROW(save_model_dir(model, tmp / "m", {"only one"}), Error);
  save_model_dir(model, tmp / "m", {"ham", "spam"});
  edit_config(tmp / "m", [](json& j) { j["gptrain"]["class_names"] = {"a", "b", "c"}; });
  try {
    read_class_names(tmp / "m");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'gptrain.class_names' has 3 names for n_classes 2"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace gptrain
