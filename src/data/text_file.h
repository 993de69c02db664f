// Reading training text and the book's character split.
#pragma once

#include <filesystem>
#include <string>
#include <utility>

namespace gptrain::data {

// The whole file; errors name it when it is missing, a directory, unreadable or empty.
std::string read_text_file(const std::filesystem::path& path);

// Number of Unicode code points (Python's len(str)) of UTF-8 text; an invalid byte counts as one.
int64_t count_code_points(const std::string& text);

// Splits at code point int(fraction * len(text)), as the book's `text[:split_idx]` on a str.
std::pair<std::string, std::string> split_by_characters(const std::string& text, double fraction);

}  // namespace gptrain::data
