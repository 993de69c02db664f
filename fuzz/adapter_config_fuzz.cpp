// libFuzzer target for a LoRA adapter dir's adapter_config.json (model/adapter_dir.h): the first
// byte picks the base (even: a tiny GPT-2, odd: a tiny Llama), the rest replaces the
// adapter_config.json of an adapter dir that save_adapter_dir wrote for that base (so
// adapter_model.safetensors matches it). adapter_base_model and read_adapter_plan must either
// refuse it with gptrain::Error or give a plan that builds a model, into which
// load_adapter_weights loads the stored adapters; plan_lora_adapter (export-gguf's reader of the same
// files) must refuse it with gptrain::Error or plan every stored module. Any other exception (e.g. nlohmann's
// type_error), a sanitizer report, a leak or a hang (e.g. a pathological rank_pattern regex) is a
// bug. Build and run as in fuzz/CMakeLists.txt, with -dict=fuzz/adapter_config.dict and the
// corpus fuzz/corpus/adapter_config.
#include <cstddef>
#include <cstdint>
#include <string>

#include "convert/gguf_lora.h"
#include "fuzz_common.h"
#include "model/adapter_dir.h"
#include "model/lora.h"
#include "model/transformer.h"

namespace {

namespace fs = std::filesystem;
using gptrain::fuzz::expect_clean_rejection;

struct Base {
  gptrain::ModelConfig config;
  fs::path dir;
};
Base bases[2];

gptrain::ModelConfig tiny(const std::string& family) {
  gptrain::ModelConfig c;
  c.family = family;
  c.vocab_size = 16;
  c.context_length = 8;
  c.emb_dim = 8;
  c.n_layers = 2;
  c.n_heads = 2;
  if (family == "llama") {
    c.n_kv_heads = 1;
    c.mlp_dim = 12;
    c.norm = gptrain::NormKind::RMSNorm;
    c.norm_bias = false;
    c.mlp = gptrain::MlpKind::SwiGLU;
    c.positions = gptrain::PositionKind::Rotary;
    c.qkv_bias = c.out_bias = c.mlp_bias = false;
    c.tie_weights = true;
    c.drop_rate = 0.0f;
  } else {
    c.qkv_bias = true;
  }
  c.validate();
  return c;
}

// An adapter dir as gptrain writes it: rank 2 on every Linear of the blocks.
Base make_base(const std::string& family, const fs::path& dir) {
  Base b{tiny(family), dir};
  gptrain::LoraOptions o;
  o.rank = 2;
  o.alpha = 4.0;
  gptrain::Transformer model(b.config, 7, gptrain::DType::F32, gptrain::plan_adapters(b.config, o));
  gptrain::save_adapter_dir(model, dir, "tiny-" + family);
  return b;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const fs::path& dir = gptrain::fuzz::temp_dir("adapter_config");
  bases[0] = make_base("gpt2", dir / "gpt2");
  bases[1] = make_base("llama", dir / "llama");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Base& base = bases[data[0] & 1];
  gptrain::fuzz::write_file(base.dir / "adapter_config.json",
                            std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
  try {
    (void)gptrain::adapter_base_model(base.dir);
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);
  }
  try {
    const gptrain::AdapterPlan plan = gptrain::read_adapter_plan(base.dir, base.config);
    GPTRAIN_FUZZ_REQUIRE(!plan.empty());
    for (const auto& [name, a] : plan.linears) GPTRAIN_FUZZ_REQUIRE(a.rank >= 1 && !a.segments.empty());
    gptrain::Transformer model(base.config, std::nullopt, gptrain::DType::F32, plan);
    gptrain::load_adapter_weights(model, base.dir);
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);
  }
  try {
    const gptrain::convert::LoraPlan plan = gptrain::convert::plan_lora_adapter(base.config, base.dir);
    GPTRAIN_FUZZ_REQUIRE(!plan.modules.empty());
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);
  }
  return 0;
}
