#include "tokenizer/json_reader.h"

#include <algorithm>
#include <cstring>

#include "util/error.h"

namespace gptrain::tokenizer_detail {

JsonValue::JsonValue() = default;
JsonValue::~JsonValue() = default;
JsonValue::JsonValue(const JsonValue&) = default;
JsonValue::JsonValue(JsonValue&&) noexcept = default;
JsonValue& JsonValue::operator=(const JsonValue&) = default;
JsonValue& JsonValue::operator=(JsonValue&&) noexcept = default;


namespace {
constexpr int kMaxDepth = 256;
}

const JsonValue* JsonValue::find(std::string_view key) const {
  const JsonValue* found = nullptr;
  for (const auto& [name, value] : members)
    if (name == key) found = &value;
  return found;
}

const char* JsonValue::kind_name(Kind kind) {
  switch (kind) {
    case kNull: return "null";
    case kBool: return "a boolean";
    case kNumber: return "a number";
    case kString: return "a string";
    case kArray: return "an array";
    case kObject: return "an object";
  }
  return "?";
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string quoted(std::string_view s, size_t max_chars) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < max_chars; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\\' || c == '"') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  out += s.size() > max_chars ? "...\"" : "\"";
  return out;
}

std::string JsonReader::position(size_t offset) const {
  offset = std::min(offset, text_.size());
  const auto begin = text_.begin(), at = text_.begin() + static_cast<ptrdiff_t>(offset);
  const size_t line = 1 + static_cast<size_t>(std::count(begin, at, '\n'));
  const size_t line_start = offset == 0 ? std::string_view::npos : text_.rfind('\n', offset - 1);
  const size_t column = line_start == std::string_view::npos ? offset + 1 : offset - line_start;
  return fmt::format("line {}, column {}", line, column);
}

void JsonReader::error_at(size_t offset, const std::string& what) const { fail("{}: {}", where(offset), what); }

void JsonReader::field_error(size_t offset, const std::string& field, const std::string& what) const {
  fail("{}: {}: {} ({})", path_, field, what, position(offset));
}

void JsonReader::error(const std::string& what) const {
  fail("{}: {}; the file is not valid JSON (replace it with the original)", where(pos_), what);
}

std::string JsonReader::found() const {
  if (pos_ >= text_.size()) return "the end of the file";
  const std::string q = quoted(text_.substr(pos_, 1));  // "x" with its escapes
  return fmt::format("'{}'", std::string_view(q).substr(1, q.size() - 2));
}

void JsonReader::expect(char c, const char* what) {
  if (peek() != c) error(fmt::format("expected {}, found {}", what, found()));
  ++pos_;
}

JsonValue::Kind JsonReader::peek_kind() {
  skip_space();
  switch (peek()) {
    case '{': return JsonValue::kObject;
    case '[': return JsonValue::kArray;
    case '"': return JsonValue::kString;
    case 't':
    case 'f': return JsonValue::kBool;
    case 'n': return JsonValue::kNull;
    default: return JsonValue::kNumber;  // read_value() reports anything that is not one
  }
}

uint32_t JsonReader::read_hex4() {
  if (pos_ + 4 > text_.size()) error("truncated \\u escape");
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    const char c = text_[pos_];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= static_cast<uint32_t>(c - '0');
    else if (c >= 'a' && c <= 'f') v |= static_cast<uint32_t>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= static_cast<uint32_t>(c - 'A' + 10);
    else error("bad hex digit in a \\u escape");
    ++pos_;
  }
  return v;
}

void JsonReader::read_string_into(std::string& out) {
  skip_space();
  expect('"', "'\"' (a string)");
  out.clear();
  for (;;) {
    // Copy the run up to the next quote, backslash or control byte at once.
    size_t run = pos_;
    while (run < text_.size()) {
      const unsigned char c = static_cast<unsigned char>(text_[run]);
      if (c == '"' || c == '\\' || c < 0x20) break;
      ++run;
    }
    out.append(text_.data() + pos_, run - pos_);
    pos_ = run;
    if (pos_ >= text_.size()) error("unterminated string");
    const unsigned char c = static_cast<unsigned char>(text_[pos_]);
    if (c == '"') {
      ++pos_;
      return;
    }
    if (c < 0x20) error("raw control character in a string (JSON needs it escaped)");
    ++pos_;  // the backslash
    if (pos_ >= text_.size()) error("unterminated escape");
    const char e = text_[pos_++];
    switch (e) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        uint32_t cp = read_hex4();
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (text_.substr(pos_, 2) != "\\u") error("high surrogate without its low half");
          pos_ += 2;
          const uint32_t low = read_hex4();
          if (low < 0xDC00 || low > 0xDFFF) error("high surrogate without its low half");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          error("lone low surrogate in a \\u escape");
        }
        append_utf8(out, cp);
        break;
      }
      default:
        --pos_;
        error(fmt::format("unknown escape '\\' followed by {}", found()));
    }
  }
}

std::string JsonReader::read_string() {
  std::string s;
  read_string_into(s);
  return s;
}

int64_t JsonReader::read_id() {
  skip_space();
  const size_t start = pos_;
  while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
  const size_t digits = pos_ - start;
  const int next = peek();
  if (digits == 0 || digits > 10 || next == '.' || next == 'e' || next == 'E') {
    pos_ = start;
    error_at(start, fmt::format("expected a token id (a non-negative integer below 2^31), found {}", found()));
  }
  const int64_t id = std::stoll(std::string(text_.substr(start, digits)));
  if (id > INT32_MAX) error_at(start, fmt::format("the id {} is not below 2^31", id));
  return id;
}

void JsonReader::read_literal(std::string_view word) {
  if (text_.substr(pos_, word.size()) != word) error(fmt::format("expected a JSON value, found {}", found()));
  pos_ += word.size();
}

// One function for both, so that skipping checks exactly what reading does.
template <bool kKeep>
JsonValue JsonReader::value() {
  skip_space();
  JsonValue v;
  v.offset = pos_;
  const int c = peek();
  if (c == '{' || c == '[') {
    if (++depth_ > kMaxDepth) error(fmt::format("more than {} nested arrays and objects", kMaxDepth));
    if (c == '{') {
      v.kind = JsonValue::kObject;
      read_object([&](const std::string& key, size_t) {
        if constexpr (kKeep) v.members.emplace_back(key, value<true>());
        else value<false>();
      });
    } else {
      v.kind = JsonValue::kArray;
      read_array([&](size_t) {
        if constexpr (kKeep) v.items.push_back(value<true>());
        else value<false>();
      });
    }
    --depth_;
  } else if (c == '"') {
    v.kind = JsonValue::kString;
    read_string_into(v.text);
  } else if (c == 't') {
    read_literal("true");
    v.kind = JsonValue::kBool;
    v.boolean = true;
  } else if (c == 'f') {
    read_literal("false");
    v.kind = JsonValue::kBool;
  } else if (c == 'n') {
    read_literal("null");
  } else if (c == '-' || (c >= '0' && c <= '9')) {
    // JSON's number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
    const size_t start = pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
      if (pos_ == from) error(fmt::format("expected a digit in a number, found {}", found()));
    };
    if (peek() == '-') ++pos_;
    digits();
    if (peek() == '.') {
      ++pos_;
      digits();
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      digits();
    }
    v.kind = JsonValue::kNumber;
    if constexpr (kKeep) v.text = std::string(text_.substr(start, pos_ - start));
  } else {
    error(fmt::format("expected a JSON value, found {}", found()));
  }
  return v;
}

JsonValue JsonReader::read_value() { return value<true>(); }

void JsonReader::skip_value() { value<false>(); }

void JsonReader::expect_end() {
  skip_space();
  if (pos_ != text_.size()) error(fmt::format("expected the end of the file after the document, found {}", found()));
}

JsonValue JsonReader::read_document() {
  JsonValue v = read_value();
  expect_end();
  return v;
}

}  // namespace gptrain::tokenizer_detail
