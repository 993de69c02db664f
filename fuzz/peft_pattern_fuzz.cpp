// libFuzzer target for PEFT's rank_pattern / alpha_pattern keys (model/peft_pattern.h): the input
// is KEY NUL MODULE [NUL MODULE...]. PeftPattern must either refuse the key with gptrain::Error
// or compile it and answer for every module name, in time linear in both lengths; a key of only
// letters, digits and '_' must match exactly the names (without a newline) that are it or end in
// "." + it. Any other exception, a sanitizer report, a wrong literal answer or a hang (-timeout)
// is a bug. Build and run as in fuzz/CMakeLists.txt, with -dict=fuzz/peft_pattern.dict and the
// corpus fuzz/corpus/peft_pattern.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_common.h"
#include "model/peft_pattern.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string_view> parts = gptrain::fuzz::split_input(data, size, '\0', 8);
  const std::string key(parts[0]);
  bool literal = !key.empty();
  for (const char c : key) literal = literal && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  try {
    const gptrain::PeftPattern pattern(key);
    for (size_t i = 1; i < parts.size(); ++i) {
      const bool m = pattern.matches(parts[i]);
      // (a newline is where Python's '.' stops and its '$' may match early: no such simple rule)
      if (literal && parts[i].find('\n') == std::string_view::npos)
        GPTRAIN_FUZZ_REQUIRE(m == (parts[i] == key || parts[i].ends_with("." + key)));
    }
  } catch (const gptrain::Error& e) {
    GPTRAIN_FUZZ_REQUIRE(!literal);
    gptrain::fuzz::expect_clean_rejection(e);
  }
  return 0;
}
