#include "data/text_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace gptrain::data {

namespace fs = std::filesystem;

std::string read_text_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("{}: no such file", path.string());
  if (fs::is_directory(path, ec)) fail("{}: is a directory, expected a text file", path.string());
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open: {}", path.string(), std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.empty()) fail("{}: the file is empty; give a text with at least one training window", path.string());
  return text;
}

namespace {
// Length of the UTF-8 sequence starting at s[i] (1 for an invalid or truncated sequence).
size_t sequence_length(const std::string& s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
  if (i + n > s.size()) return 1;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 1;
  return n;
}
}  // namespace

int64_t count_code_points(const std::string& text) {
  int64_t n = 0;
  for (size_t i = 0; i < text.size(); i += sequence_length(text, i)) ++n;
  return n;
}

std::pair<std::string, std::string> split_by_characters(const std::string& text, double fraction) {
  if (!(fraction > 0 && fraction < 1)) fail("the train split must be between 0 and 1, got {}", fraction);
  const int64_t split = static_cast<int64_t>(fraction * static_cast<double>(count_code_points(text)));
  size_t byte = 0;
  for (int64_t k = 0; k < split; ++k) byte += sequence_length(text, byte);
  return {text.substr(0, byte), text.substr(byte)};
}

}  // namespace gptrain::data
