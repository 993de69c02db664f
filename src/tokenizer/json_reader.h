// A small JSON reader for tokenizer.json and tokenizer_config.json: a pull parser whose errors name
// the file, line and column, and a tree (JsonValue) whose nodes remember where they start, so that
// an error about a field can also say where it is. Hand-written rather than a JSON library because
// the tokenizer layer sees no external headers but its own (docs/DESIGN.md §1), and because the
// large parts (150k vocabulary entries, 280k merges) are read straight into their final form
// instead of into a tree first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gptrain::tokenizer_detail {

struct JsonValue {
  enum Kind : uint8_t { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = kNull;
  bool boolean = false;
  size_t offset = 0;  // byte offset of the value in the file
  std::string text;   // a string's value, or a number as written
  std::vector<JsonValue> items;
  std::vector<std::pair<std::string, JsonValue>> members;  // in file order

  // Defined in the .cpp, where JsonValue is complete: a vector of pairs holding the type being
  // defined cannot instantiate its destructor here (clang with libstdc++ refuses).
  JsonValue();
  ~JsonValue();
  JsonValue(const JsonValue&);
  JsonValue(JsonValue&&) noexcept;
  JsonValue& operator=(const JsonValue&);
  JsonValue& operator=(JsonValue&&) noexcept;

  // The member named `key`, or nullptr (the last one when a key repeats, as serde keeps it).
  const JsonValue* find(std::string_view key) const;
  static const char* kind_name(Kind kind);
};

class JsonReader {
 public:
  // `path` is only used in messages; `text` must outlive the reader.
  JsonReader(std::string path, std::string_view text) : path_(std::move(path)), text_(text) {}

  // Reads a whole document into a tree.
  JsonValue read_document();

  // Pull interface: each expects the value at the current position (after optional whitespace).
  JsonValue read_value();
  std::string read_string();
  void read_string_into(std::string& out);
  // An integer in [0, 2^31), for ids.
  int64_t read_id();
  // Calls on_member(key, key_offset) for each member; on_member must read the member's value.
  template <class OnMember>
  void read_object(OnMember&& on_member) {
    expect('{', "'{' (a JSON object)");
    skip_space();
    if (peek() == '}') {
      ++pos_;
      return;
    }
    std::string key;
    for (;;) {
      skip_space();
      const size_t key_offset = pos_;
      read_string_into(key);
      skip_space();
      expect(':', "':' after the key");
      on_member(key, key_offset);
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect('}', "',' or '}' after the value");
      return;
    }
  }
  // Calls on_item(index) for each item; on_item must read the item.
  template <class OnItem>
  void read_array(OnItem&& on_item) {
    expect('[', "'[' (a JSON array)");
    skip_space();
    if (peek() == ']') {
      ++pos_;
      return;
    }
    for (size_t index = 0;; ++index) {
      on_item(index);
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect(']', "',' or ']' after the item");
      return;
    }
  }
  // The kind of the value at the current position, without reading it.
  JsonValue::Kind peek_kind();
  void expect_end();
  size_t offset() const { return pos_; }

  // Skips the value at the current position (checking it as read_value() does, without a tree).
  void skip_value();
  // Continues at `offset`, the start of a value found before (e.g. by skip_value()).
  void seek(size_t offset) { pos_ = offset; }

  // "line L, column C" of a byte offset, and "FILE line L, column C".
  std::string position(size_t offset) const;
  std::string where(size_t offset) const { return path_ + " " + position(offset); }
  // An error about the content at `offset` (the JSON itself is fine): "FILE line L, column C: what".
  [[noreturn]] void error_at(size_t offset, const std::string& what) const;
  // The same about a field: "FILE: field: what (line L, column C)".
  [[noreturn]] void field_error(size_t offset, const std::string& field, const std::string& what) const;

 private:
  template <bool kKeep>
  JsonValue value();
  [[noreturn]] void error(const std::string& what) const;  // malformed JSON at the current position
  int peek() const { return pos_ < text_.size() ? static_cast<unsigned char>(text_[pos_]) : -1; }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\r' || text_[pos_] == '\t'))
      ++pos_;
  }
  void expect(char c, const char* what);
  uint32_t read_hex4();
  void read_literal(std::string_view word);
  std::string found() const;  // what is at the current position, for messages

  std::string path_;
  std::string_view text_;
  size_t pos_ = 0;
  int depth_ = 0;  // nesting of read_value, bounded so that a hostile file cannot overflow the stack
};

// UTF-8 of a code point (<= 0x10FFFF, not a surrogate).
void append_utf8(std::string& out, uint32_t cp);

// `s` for a message: quotes, backslashes and control bytes escaped, cut after `max_chars` bytes.
std::string quoted(std::string_view s, size_t max_chars = 120);

}  // namespace gptrain::tokenizer_detail
