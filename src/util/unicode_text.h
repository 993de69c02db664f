// Python's string helpers on UTF-8 text, where the book's code (and Jinja chat templates) use them.
#pragma once

#include <string>
#include <string_view>

namespace gptrain {

// Python's str.strip(): Unicode whitespace removed at both ends. Bytes that are not valid UTF-8
// are kept as they are (never stripped).
std::string strip_unicode_whitespace(std::string_view text);

// Python's str.lstrip(chars) / str.rstrip(chars) for a set of ASCII characters.
std::string_view lstrip_ascii(std::string_view text, std::string_view chars);
std::string_view rstrip_ascii(std::string_view text, std::string_view chars);

}  // namespace gptrain
