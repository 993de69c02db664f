// libFuzzer target for a model dir's config.json and generation_config.json (model/model_dir.h,
// model/hf_config.h): the input is config.json's text, optionally followed by a NUL byte and
// generation_config.json's. Any input must either be refused with gptrain::Error or give a
// ModelConfig that validates, survives a round trip through model_config_text (the same model),
// reads the same through read_model_config on a dir, and whose checkpoint layout has positive
// shapes. read_generation_config and read_class_names on the dir must give ids in range or a
// gptrain::Error. Any other exception, a sanitizer report, a leak or a hang is a bug. Build and
// run as in fuzz/CMakeLists.txt, with -dict=fuzz/json.dict and the corpus fuzz/corpus/model_config.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "fuzz_common.h"
#include "model/model_dir.h"

namespace {

namespace fs = std::filesystem;
using gptrain::fuzz::expect_clean_rejection;

// checkpoint_tensors() walks every layer (validate() allows 4096): for speed the fuzzer checks the
// layout of models up to this depth.
constexpr int64_t kMaxLayoutLayers = 256;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  gptrain::fuzz::temp_dir("model_config");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = gptrain::fuzz::split_input(data, size, '\0', 2);
  const std::string config_text(parts[0]);
  const fs::path& dir = gptrain::fuzz::temp_dir();

  // The text entry point.
  std::optional<gptrain::ModelConfig> parsed;
  try {
    parsed = gptrain::parse_model_config_text(config_text, "config.json");
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);
  }
  if (parsed) {
    const gptrain::ModelConfig& c = *parsed;
    c.validate();  // parse_config validated it: throwing here is a bug (propagates)
    // What save_model_dir writes must read back as the same model.
    const std::string text = gptrain::model_config_text(c);
    const gptrain::ModelConfig again = gptrain::parse_model_config_text(text, "config.json (written back)");
    GPTRAIN_FUZZ_REQUIRE(again.same_model(c));
    GPTRAIN_FUZZ_REQUIRE(gptrain::model_config_text(again) == text);
    if (c.n_layers <= kMaxLayoutLayers) {
      for (const gptrain::CheckpointTensor& t : gptrain::checkpoint_tensors(c)) {
        GPTRAIN_FUZZ_REQUIRE(!t.name.empty() && !t.shape.empty());
        for (const int64_t d : t.shape) GPTRAIN_FUZZ_REQUIRE(d > 0);
        GPTRAIN_FUZZ_REQUIRE(t.row_offset >= 0);
      }
    }
  }

  // The file entry points, on a dir holding config.json and (when given) generation_config.json.
  gptrain::fuzz::write_file(dir / "config.json", config_text);
  if (parts.size() > 1)
    gptrain::fuzz::write_file(dir / "generation_config.json", parts[1]);
  else
    gptrain::fuzz::remove_file(dir / "generation_config.json");
  try {
    const gptrain::ModelConfig c = gptrain::read_model_config(dir);
    GPTRAIN_FUZZ_REQUIRE(parsed && c.same_model(*parsed));  // the same text, the same verdict
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);
    GPTRAIN_FUZZ_REQUIRE(!parsed);
  }
  try {
    const gptrain::GenerationConfig g = gptrain::read_generation_config(dir);
    for (const int32_t id : g.eos_ids) GPTRAIN_FUZZ_REQUIRE(id >= 0);
    GPTRAIN_FUZZ_REQUIRE(g.bos_id >= -1 && g.pad_id >= -1);
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);
  }
  try {
    const std::vector<std::string> names = gptrain::read_class_names(dir);
    if (!names.empty()) GPTRAIN_FUZZ_REQUIRE(parsed && static_cast<int64_t>(names.size()) == parsed->n_classes);
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);
  }
  return 0;
}
