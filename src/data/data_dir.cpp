#include "data/data_dir.h"

#include <unistd.h>

#include <cstdlib>
#include <system_error>

#include "data/datasets.h"
#include "util/error.h"

namespace gptrain::data {

namespace fs = std::filesystem;

namespace {

fs::path executable_dir() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : self.parent_path();
}

// ancestor/../shared/data for the start directory and each of its ancestors.
fs::path find_shared_data(fs::path start) {
  std::error_code ec;
  for (fs::path dir = fs::absolute(start, ec); !dir.empty(); dir = dir.parent_path()) {
    const fs::path candidate = dir.parent_path() / "shared" / "data";
    if (fs::is_directory(candidate, ec)) return fs::weakly_canonical(candidate, ec);
    if (dir == dir.root_path()) break;
  }
  return {};
}

}  // namespace

fs::path resolve_data_dir(const std::string& cli_value) {
  if (!cli_value.empty()) {
    if (!fs::is_directory(cli_value)) fail("--data-dir {}: no such directory", cli_value);
    return fs::path(cli_value);
  }
  if (const char* env = std::getenv("GPTRAIN_DATA_DIR"); env && *env) {
    if (!fs::is_directory(env)) fail("GPTRAIN_DATA_DIR={}: no such directory", env);
    return fs::path(env);
  }
  for (const fs::path& start : {fs::current_path(), executable_dir()})
    if (!start.empty())
      if (fs::path found = find_shared_data(start); !found.empty()) return found;
  const char* home = std::getenv("HOME");
  return fs::path(home && *home ? home : "/tmp") / ".cache" / "gptrain";
}

fs::path require_data_file(const fs::path& data_dir, const std::string& relative, const std::string& what) {
  const fs::path path = data_dir / relative;
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return path;
  if (find_named_data_file(relative)) return ensure_data_file(data_dir, relative, what);  // download on a miss
  fail("{} not found: expected the file {} (data directory {}; set it with --data-dir or GPTRAIN_DATA_DIR)", what,
       path.string(), data_dir.string());
}

}  // namespace gptrain::data
