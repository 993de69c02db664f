// PEFT's rank_pattern / alpha_pattern keys (model/peft_pattern.h) against PEFT's own
// get_pattern_key (tests/fixtures/peft/pattern_cases.json, from tests/tools/gen_peft_pattern_fixtures.py):
// every key Python accepts and the matcher takes gives PEFT's answer, every key Python refuses is
// refused; keys that need backtracking take linear time; and an adapter dir whose patterns are
// regular expressions, tried in the file's order, gives PEFT's logits.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "model/model_dir.h"
#include "model/peft_pattern.h"
#include "tests/common/temp_dir.h"
#include "util/error.h"

namespace gptrain {
namespace {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;
constexpr double kU = 0x1.0p-24;

ordered_json read_json(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ordered_json::parse(ss.str());
}

// Keys Python's re takes that need what a linear-time matcher cannot do: refused, by name.
const std::set<std::string> kRefusedByDesign = {"\\1", "(?=c)c_attn", "(?<=h\\.)0.attn.c_attn", "a*+"};

TEST(PeftPattern, matches_as_pefts_get_pattern_key) {
  const ordered_json f = read_json(fs::path(GPTRAIN_FIXTURES_DIR) / "peft" / "pattern_cases.json");
  int checked = 0, refused = 0;
  for (const ordered_json& c : f.at("cases")) {
    const std::string key = c.at("key"), module = c.at("module");
    const bool python_error = c.value("python_error", false);
    if (python_error || kRefusedByDesign.count(key)) {
      EXPECT_THROW(PeftPattern{key}, Error) << "key '" << key << "' should be refused";
      ++refused;
      continue;
    }
    try {
      EXPECT_EQ(PeftPattern(key).matches(module), c.at("match").get<bool>()) << "key '" << key << "', module '" << module << "'";
      ++checked;
    } catch (const Error& e) {
      ADD_FAILURE() << "key '" << key << "' refused: " << e.what();
    }
  }
  EXPECT_GT(checked, 3000);
  EXPECT_GT(refused, 100);
  for (const ordered_json& o : f.at("first_match"))
    EXPECT_EQ(match_peft_pattern(o.at("keys").get<std::vector<std::string>>(), o.at("module")), o.at("picked"));
}

TEST(PeftPattern, refusals_name_the_key_and_the_position) {
  try {
    PeftPattern{"c_at**tn"};
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "pattern key 'c_at**tn': multiple repeat at position 5");
  }
  try {
    PeftPattern{"(?=c)c_attn"};
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pattern key '(?=c)c_attn': lookaround"), std::string::npos) << e.what();
  }
  EXPECT_THROW(PeftPattern{std::string(100, '(') + "a" + std::string(100, ')')}, Error);  // nesting
  EXPECT_THROW(PeftPattern{"((a{1000}){1000}){1000}"}, Error);                            // unrolled size
  EXPECT_THROW(PeftPattern{"((((){1000}){1000}){1000}){1000}"}, Error);                   // unrolled work
}

// Keys that make a backtracking engine take exponential time (std::regex hung on the first) are
// answered after one pass over the name: a hang here is the failure.
TEST(PeftPattern, backtracking_keys_take_linear_time) {
  const std::string as(20000, 'a');
  EXPECT_FALSE(PeftPattern("(a|aa)*b").matches(as));
  EXPECT_FALSE(PeftPattern("(a*)*b").matches(as));
  EXPECT_FALSE(PeftPattern("(x+x+)+y").matches(std::string(20000, 'x')));
  EXPECT_TRUE(PeftPattern("(a|aa)*").matches(as));
  EXPECT_TRUE(PeftPattern("a{0,1000}a{0,1000}").matches(std::string(2000, 'a')));
  EXPECT_FALSE(PeftPattern("a{0,1000}a{0,1000}").matches(std::string(2001, 'a')));
}

// The Qwen3 PEFT fixture with its pattern keys rewritten as regular expressions gives PEFT's
// logits (tests/model/lora_test.cpp's bound): '\\.', classes and '^' select the same modules. The
// alpha_pattern key that comes first in the file wins, as in PEFT, though another sorts first.
TEST(PeftPattern, an_adapter_with_regex_pattern_keys_gives_pefts_logits) {
  const fs::path fixture = fs::path(GPTRAIN_FIXTURES_DIR) / "peft" / "qwen3";
  testing_util::TempDir tmp;
  const fs::path dir = tmp.path() / "adapter";
  fs::create_directories(dir);
  fs::copy_file(fixture / "adapter_model.safetensors", dir / "adapter_model.safetensors");
  ordered_json cfg = read_json(fixture / "adapter_config.json");
  ASSERT_EQ(cfg["rank_pattern"].dump(), R"({"layers.1.self_attn.o_proj":6})");
  ASSERT_EQ(cfg["alpha_pattern"].dump(), R"({"layers.0.mlp.down_proj":16,"layers.1.self_attn.o_proj":3})");
  cfg["rank_pattern"] = ordered_json::parse(R"({"^model\\.layers\\.[1]\\.self_attn\\.o_proj$": 6})");
  cfg["alpha_pattern"] = ordered_json::parse(
      R"({"layers\\.0\\.mlp\\.(down|sideways)_proj": 16, "layers\\.1\\.self_attn\\.[o]_proj": 3, "layers.1.self_attn.o_proj": 99})");
  std::ofstream(dir / "adapter_config.json") << cfg.dump(2);

  const io::SafeTensorsFile ref = io::SafeTensorsFile::open(fixture / "reference.safetensors");
  const double k = std::stod(ref.metadata().at("error_k"));
  const Tensor tok = ref.load("tokens");
  std::vector<int32_t> tokens;
  for (float v : tok.to_vector()) tokens.push_back(static_cast<int32_t>(v));
  ModelLoadOptions lo;
  lo.adapter = dir;
  const auto model = load_model_dir(fixture / "base", lo);
  const std::vector<float> logits = model->forward(tokens, tok.dim(0), tok.dim(1), ForwardOptions{}).to_vector();
  const std::vector<float> exact = ref.load("logits_f64").to_vector();
  double d = 0, n = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    d += (double(logits[i]) - exact[i]) * (double(logits[i]) - exact[i]);
    n += double(exact[i]) * exact[i];
  }
  EXPECT_LE(std::sqrt(d), k * kU * std::sqrt(n)) << "relative " << std::sqrt(d / n);

  // A key the matcher refuses is an error naming the file and the field.
  cfg["rank_pattern"] = ordered_json::parse(R"({"(?<=layers\\.)1\\.self_attn\\.o_proj": 6})");
  std::ofstream(dir / "adapter_config.json") << cfg.dump(2);
  try {
    load_model_dir(fixture / "base", lo);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("adapter_config.json: rank_pattern: pattern key '(?<=layers\\.)1"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace gptrain
