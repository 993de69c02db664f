// libFuzzer target for a checkpoint's trainer_state.json (train/checkpoint.h read_trainer_state):
// the input is the file, written into a checkpoint dir. It must either be refused with
// gptrain::Error or give a state whose counts are not negative, whose options are an object and
// whose inputs a list. Any other exception (e.g. nlohmann's type_error), a sanitizer report, a
// leak or a hang is a bug. Build and run as in fuzz/CMakeLists.txt, with -dict=fuzz/trainer_state.dict
// and the corpus fuzz/corpus/trainer_state.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_common.h"
#include "train/checkpoint.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  gptrain::fuzz::temp_dir("trainer_state");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::filesystem::path& dir = gptrain::fuzz::temp_dir();
  gptrain::fuzz::write_file(dir / "trainer_state.json", std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    const gptrain::TrainerState s = gptrain::read_trainer_state(dir);
    GPTRAIN_FUZZ_REQUIRE(s.step >= 0 && s.epoch >= 0 && s.batch >= 0 && s.tokens_seen >= 0 && s.examples_seen >= 0);
    GPTRAIN_FUZZ_REQUIRE(s.options.is_object() && s.inputs.is_array());
    (void)s.options.dump();  // save_checkpoint writes them back
    (void)s.inputs.dump();
  } catch (const gptrain::Error& e) {
    gptrain::fuzz::expect_clean_rejection(e);
  }
  return 0;
}
