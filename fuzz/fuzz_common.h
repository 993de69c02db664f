// Shared by the libFuzzer targets whose parser reads a path rather than bytes: one temporary
// directory per fuzzing process (created in LLVMFuzzerInitialize; those of finished runs are
// removed by the next start, so runs do not litter /tmp), files written into it for each input,
// and the inputs cut into parts at a separator byte. Also the contract every target checks: a
// rejection is a gptrain::Error, and one from GPTRAIN_CHECK ("internal check failed") is a bug
// too, since no input may break an invariant.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace gptrain::fuzz {

// The process's temporary directory, /tmp/gptrain-fuzz-<name>-<pid>, created by the first call
// (from LLVMFuzzerInitialize). libFuzzer ends with _Exit, so no exit hook can remove it: instead
// each start removes the directories of its target whose process is gone (a finished or crashed
// run). GPTRAIN_FUZZ_KEEP_TEMP=1 keeps them all and names this one on stderr.
inline const std::filesystem::path& temp_dir(const char* name = "fuzz") {
  static const std::filesystem::path dir = [name] {
    namespace fs = std::filesystem;
    const std::string prefix = "gptrain-fuzz-" + std::string(name) + "-";
    const bool keep = std::getenv("GPTRAIN_FUZZ_KEEP_TEMP") != nullptr;
    std::error_code ec;
    if (!keep)
      for (const fs::directory_entry& e : fs::directory_iterator(fs::temp_directory_path(), ec)) {
        const std::string file = e.path().filename().string();
        if (!file.starts_with(prefix)) continue;
        const long pid = std::strtol(file.c_str() + prefix.size(), nullptr, 10);
        if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) fs::remove_all(e.path(), ec);
      }
    const fs::path path = fs::temp_directory_path() / (prefix + std::to_string(::getpid()));
    fs::remove_all(path, ec);
    if (!fs::create_directory(path, ec)) {
      std::fprintf(stderr, "fuzz harness: cannot create %s: %s\n", path.string().c_str(), ec.message().c_str());
      std::abort();
    }
    if (keep) std::fprintf(stderr, "fuzz: keeping %s\n", path.string().c_str());
    return path;
  }();
  return dir;
}

// Writes `bytes` to `path` (replacing it); aborts when the file cannot be written: that is the
// harness's failure, not the parser's.
inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    std::fprintf(stderr, "fuzz harness: cannot write %s\n", path.string().c_str());
    std::abort();
  }
}

inline void remove_file(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
}

// The input cut at every `sep` byte, into at most `max_parts` parts (the last keeps any further
// separators).
inline std::vector<std::string_view> split_input(const uint8_t* data, size_t size, char sep, size_t max_parts) {
  std::vector<std::string_view> parts;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (parts.size() + 1 < max_parts) {
    const size_t at = rest.find(sep);
    if (at == std::string_view::npos) break;
    parts.push_back(rest.substr(0, at));
    rest.remove_prefix(at + 1);
  }
  parts.push_back(rest);
  return parts;
}

// A clean rejection is a gptrain::Error from fail(); an internal check failing is a bug.
// GPTRAIN_FUZZ_VERBOSE=1 prints each rejection (to see what a seed input reaches).
inline void expect_clean_rejection(const gptrain::Error& e) {
  static const bool verbose = std::getenv("GPTRAIN_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "fuzz: rejected: %s\n", e.what());
  if (std::string_view(e.what()).starts_with("internal check failed")) {
    std::fprintf(stderr, "fuzz: an input broke an internal invariant: %s\n", e.what());
    __builtin_trap();
  }
}

#define GPTRAIN_FUZZ_REQUIRE(cond)                                                  \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "fuzz: %s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
      __builtin_trap();                                                             \
    }                                                                               \
  } while (0)

}  // namespace gptrain::fuzz
