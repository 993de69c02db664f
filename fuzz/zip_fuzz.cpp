// libFuzzer target for the zip reader (data/zip_file.h): the input is the archive. zip_member_names
// and read_zip_member of every member it lists must either refuse it with gptrain::Error or give
// bytes within deflate's bound (1032 times the archive); a member read again with its size as
// expected_size gives the same bytes, and with another size is refused. Any other exception, a
// sanitizer report, a leak or a hang is a bug. Build and run as in fuzz/CMakeLists.txt, with
// -dict=fuzz/zip.dict and the corpus fuzz/corpus/zip.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "data/zip_file.h"
#include "fuzz_common.h"

namespace {

using gptrain::fuzz::expect_clean_rejection;

// Members read per input: an archive of 65535 tiny entries would otherwise make one input take
// 65535 reads of the whole archive.
constexpr size_t kMaxMembers = 64;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  gptrain::fuzz::temp_dir("zip");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::filesystem::path zip = gptrain::fuzz::temp_dir() / "archive.zip";
  gptrain::fuzz::write_file(zip, std::string_view(reinterpret_cast<const char*>(data), size));
  std::vector<std::string> names;
  try {
    names = gptrain::data::zip_member_names(zip);
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);
    return 0;
  }
  GPTRAIN_FUZZ_REQUIRE(names.size() <= size / 46);  // each central-directory entry takes 46 bytes at least
  const uint64_t bound = 1032 * (static_cast<uint64_t>(size) + 1);
  std::set<std::string> seen;
  for (const std::string& name : names) {
    if (seen.size() == kMaxMembers) break;
    if (!seen.insert(name).second) continue;
    std::optional<std::string> bytes;
    try {
      bytes = gptrain::data::read_zip_member(zip, name);
    } catch (const gptrain::Error& e) {
      expect_clean_rejection(e);
    }
    try {  // a bounded expected size: larger members are refused before anything is allocated
      const std::string small = gptrain::data::read_zip_member(zip, name, 64);
      GPTRAIN_FUZZ_REQUIRE(bytes && *bytes == small && small.size() == 64);
    } catch (const gptrain::Error& e) {
      expect_clean_rejection(e);
      GPTRAIN_FUZZ_REQUIRE(!bytes || bytes->size() != 64);
    }
    if (!bytes) continue;
    GPTRAIN_FUZZ_REQUIRE(bytes->size() <= bound);
    // The same member again, by its exact size: the same bytes; by any other: refused.
    GPTRAIN_FUZZ_REQUIRE(gptrain::data::read_zip_member(zip, name, bytes->size()) == *bytes);
    bool refused = false;
    try {
      (void)gptrain::data::read_zip_member(zip, name, bytes->size() + 1);
    } catch (const gptrain::Error& e) {
      expect_clean_rejection(e);
      refused = true;
    }
    GPTRAIN_FUZZ_REQUIRE(refused);
  }
  return 0;
}
