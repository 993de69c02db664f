// Atomic writes: the target holds the old contents or the new, never a mix, and no temporary
// file survives a failed or abandoned write.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "io/atomic_file.h"
#include "tests/common/temp_dir.h"
#include "util/error.h"

namespace gptrain::io {
namespace {

using testing_util::TempDir;

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

size_t entries(const std::filesystem::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

TEST(AtomicFile, writes_and_replaces_whole_files) {
  const TempDir dir;
  const auto path = dir / "config.json";
  write_file_atomic(path, "{\"a\": 1}\n");
  EXPECT_EQ(read_text(path), "{\"a\": 1}\n");
  write_file_atomic(path, "{}");
  EXPECT_EQ(read_text(path), "{}");
  EXPECT_EQ(entries(dir.path()), 1u);
}

TEST(AtomicFile, an_abandoned_write_leaves_the_old_file_and_no_temporary) {
  const TempDir dir;
  const auto path = dir / "model.safetensors";
  write_file_atomic(path, "old");
  {
    AtomicFile file(path);
    file.write("new contents that never get committed");
    EXPECT_TRUE(std::filesystem::exists(file.temp_path()));
    EXPECT_EQ(file.temp_path().parent_path(), path.parent_path());  // same file system: rename is atomic
  }  // e.g. an exception unwinding through the writer
  EXPECT_EQ(read_text(path), "old");
  EXPECT_EQ(entries(dir.path()), 1u);
}

TEST(AtomicFile, errors_name_the_path) {
  const TempDir dir;
  const auto path = dir / "no_such_dir" / "config.json";
  try {
    write_file_atomic(path, "x");
    FAIL() << "wrote into a missing directory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
  AtomicFile file(dir / "once");
  file.commit();
  EXPECT_THROW(file.commit(), Error);
  EXPECT_THROW(file.write("late"), Error);
}

}  // namespace
}  // namespace gptrain::io
