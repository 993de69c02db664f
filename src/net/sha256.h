// SHA-256 of bytes and files (OpenSSL's implementation, which uses the CPU's SHA extensions), for
// verifying downloads against the digest a server or a table of known files gives.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace gptrain::net {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t size);
  std::string hex();  // lowercase; finishes the digest

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::string sha256_hex(std::string_view bytes);
// Reads the file in 1 MiB blocks; an unreadable file is a gptrain::Error naming it.
std::string sha256_file(const std::filesystem::path& path);
// 64 hexadecimal digits (either case).
bool is_sha256_hex(std::string_view text);

}  // namespace gptrain::net
