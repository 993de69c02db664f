// Parsers for encoder.json / vocab.json (a flat JSON object: token -> id) and vocab.bpe /
// merges.txt (one merge "A B" per line after a "#version" header). Hand-written rather than a JSON
// library so that every error can name the line and column and the token involved.
#include "tokenizer/vocab_files.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "tokenizer/json_reader.h"
#include "tokenizer/token_table.h"
#include "tokenizer/unicode_classes.h"
#include "util/error.h"

namespace gptrain::tokenizer_detail {

namespace {

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    fail("cannot open {} ({}): {}; expected GPT-2's {} (pass the file or a directory holding "
         "encoder.json + vocab.bpe or vocab.json + merges.txt)",
         path, what, std::strerror(errno), what);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// bytes_to_unicode() of GPT-2's encoder.py: printable Latin-1 bytes stand for themselves, the
// other 68 bytes (controls, space, 0x7F..0xA0, 0xAD) for U+0100.. in byte order.
struct ByteAlphabet {
  uint32_t to_unicode[256];
  int16_t to_byte[324];  // -1 where a code point stands for no byte
  ByteAlphabet() {
    for (int16_t& b : to_byte) b = -1;
    uint32_t extra = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_unicode[b] = printable ? static_cast<uint32_t>(b) : extra++;
      to_byte[to_unicode[b]] = static_cast<int16_t>(b);
    }
  }
};
const ByteAlphabet& alphabet() {
  static const ByteAlphabet table;
  return table;
}

std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\\' || c == '\'') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}


struct VocabEntry {
  std::string spelled;
  int64_t id;
  int line, column;
};

// A flat JSON object of string -> non-negative integer, with positions for error messages.
class FlatJsonReader {
 public:
  FlatJsonReader(const std::string& path, const std::string& text) : path_(path), text_(text) {}

  std::vector<VocabEntry> read() {
    std::vector<VocabEntry> entries;
    skip_space();
    expect('{', "the file to start with '{' (a JSON object mapping each token to its id)");
    skip_space();
    if (peek() == '}') {
      ++pos_;
    } else {
      for (;;) {
        skip_space();
        VocabEntry entry;
        entry.line = line_;
        entry.column = column();
        entry.spelled = read_string();
        skip_space();
        expect(':', "':' after the token");
        skip_space();
        entry.id = read_id(entry.spelled);
        entries.push_back(std::move(entry));
        skip_space();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        expect('}', "',' or '}' after the id");
        break;
      }
    }
    skip_space();
    if (pos_ != text_.size()) error("expected the end of the file after the closing '}'");
    return entries;
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    fail("{} line {}, column {}: {}; the file is not a valid GPT-2 encoder.json/vocab.json "
         "(replace it with the original)", path_, line_, column(), what);
  }
  int column() const { return static_cast<int>(pos_ - line_start_) + 1; }
  int peek() const { return pos_ < text_.size() ? static_cast<unsigned char>(text_[pos_]) : -1; }
  void expect(char c, const char* what) {
    if (peek() != c)
      error(fmt::format("expected {}, found {}", what,
                        pos_ < text_.size() ? "'" + printable(text_.substr(pos_, 1)) + "'" : "the end of the file"));
    ++pos_;
  }
  void skip_space() {
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == '\n') {
        ++line_;
        line_start_ = pos_ + 1;
      } else if (c != ' ' && c != '\t' && c != '\r') {
        return;
      }
      ++pos_;
    }
  }
  uint32_t read_hex4() {
    if (pos_ + 4 > text_.size()) error("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<uint32_t>(c - 'A' + 10);
      else error("bad hex digit in a \\u escape");
    }
    return v;
  }
  std::string read_string() {
    expect('"', "a token in double quotes");
    std::string out;
    for (;;) {
      if (pos_ >= text_.size()) error("unterminated string");
      const unsigned char c = static_cast<unsigned char>(text_[pos_++]);
      if (c == '"') return out;
      if (c < 0x20) error("raw control character in a string (JSON needs it escaped)");
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
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
            if (text_.compare(pos_, 2, "\\u") != 0) error("high surrogate without its low half");
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
        default: error(fmt::format("unknown escape '\\{}'", printable(std::string(1, e))));
      }
    }
  }
  int64_t read_id(const std::string& token) {
    const size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
    const size_t digits = pos_ - start;
    const int next = peek();
    if (digits == 0 || digits > 10 || next == '.' || next == 'e' || next == 'E')
      error(fmt::format("the id of token \"{}\" must be a non-negative integer below 2^31", printable(token)));
    const int64_t id = std::stoll(text_.substr(start, digits));
    if (id > INT32_MAX) error(fmt::format("the id {} of token \"{}\" is not below 2^31", id, printable(token)));
    return id;
  }

  const std::string& path_;
  const std::string& text_;
  size_t pos_ = 0;
  int line_ = 1;
  size_t line_start_ = 0;
};

}  // namespace

uint32_t byte_to_unicode(uint8_t byte) { return alphabet().to_unicode[byte]; }

bool spelled_to_bytes(std::string_view spelled, std::string& bytes, uint32_t& bad) {
  bytes.clear();
  const ByteAlphabet& table = alphabet();  // once: each call checks the static's guard
  const auto* s = reinterpret_cast<const uint8_t*>(spelled.data());
  for (size_t i = 0; i < spelled.size();) {
    uint32_t cp = 0;
    const size_t len = decode_utf8(s + i, spelled.size() - i, cp);
    if (len == 0) {
      bad = 0xFFFD;
      return false;
    }
    if (cp >= 324 || table.to_byte[cp] < 0) {
      bad = cp;
      return false;
    }
    bytes += static_cast<char>(table.to_byte[cp]);
    i += len;
  }
  return true;
}

Vocabulary load_vocabulary(const std::string& vocab_path, const std::string& merges_path) {
  const std::string vocab_text = read_file(vocab_path, "encoder.json/vocab.json");
  const std::vector<VocabEntry> entries = FlatJsonReader(vocab_path, vocab_text).read();
  if (entries.empty()) fail("{}: the vocabulary is empty; expected GPT-2's 50257 tokens", vocab_path);

  // Ids must be 0..V-1, each once: ids index embedding rows.
  const VocabEntry* largest = &entries[0];
  for (const VocabEntry& e : entries)
    if (e.id > largest->id) largest = &e;
  const int64_t max_id = largest->id;
  if (max_id >= static_cast<int64_t>(entries.size()))
    fail("{} line {}, column {}: id {} of token \"{}\" is beyond the {} entries; token ids must be 0..{} without "
         "gaps", vocab_path, largest->line, largest->column, max_id, printable(largest->spelled), entries.size(),
         entries.size() - 1);
  std::vector<const VocabEntry*> by_id(static_cast<size_t>(max_id) + 1, nullptr);
  Vocabulary vocab;
  vocab.token_bytes.resize(by_id.size());
  vocab.merge_rank.assign(by_id.size(), UINT32_MAX);
  std::string bytes;
  for (const VocabEntry& e : entries) {
    if (by_id[e.id])
      fail("{} line {}, column {}: id {} of token \"{}\" is already used by \"{}\" (line {}, column {}); "
           "each id must appear once", vocab_path, e.line, e.column, e.id, printable(e.spelled),
           printable(by_id[e.id]->spelled), by_id[e.id]->line, by_id[e.id]->column);
    by_id[e.id] = &e;
    uint32_t bad = 0;
    if (!spelled_to_bytes(e.spelled, bytes, bad))
      fail("{} line {}, column {}: token \"{}\" has the character U+{:04X}, which stands for no byte in "
           "GPT-2's byte-level alphabet; is this a byte-level BPE (GPT-2) vocabulary?",
           vocab_path, e.line, e.column, printable(e.spelled), bad);
    if (bytes.empty()) fail("{} line {}, column {}: an empty token (id {})", vocab_path, e.line, e.column, e.id);
    vocab.token_bytes[e.id] = bytes;
  }
  for (size_t id = 0; id < by_id.size(); ++id)
    if (!by_id[id])
      fail("{}: no token has id {} (ids run to {}); token ids must be 0..{} without gaps", vocab_path, id,
           max_id, by_id.size() - 1);
  TokenTable table;  // bytes -> id, for the checks below and the merges
  table.build(vocab.token_bytes);
  auto id_of = [&](std::string_view b) { return table.find(reinterpret_cast<const uint8_t*>(b.data()), b.size()); };
  for (size_t id = 0; id < by_id.size(); ++id) {
    const int32_t first = id_of(vocab.token_bytes[id]);
    if (first != static_cast<int32_t>(id)) {
      const VocabEntry& e = *by_id[std::max<size_t>(id, static_cast<size_t>(first))];
      fail("{} line {}, column {}: token \"{}\" appears twice (ids {} and {})", vocab_path, e.line, e.column,
           printable(e.spelled), std::min<size_t>(id, first), std::max<size_t>(id, first));
    }
  }
  for (int b = 0; b < 256; ++b)
    if (id_of(std::string(1, static_cast<char>(b))) < 0)
      fail("{}: no token for the byte 0x{:02x} (spelled U+{:04X}); a byte-level BPE vocabulary needs all "
           "256 single-byte tokens", vocab_path, b, byte_to_unicode(static_cast<uint8_t>(b)));

  const std::string merges_text = read_file(merges_path, "vocab.bpe/merges.txt");
  size_t line_begin = 0;
  int line = 0;
  uint32_t merge_index = 0;
  std::string left, right;
  while (line_begin < merges_text.size()) {
    size_t line_end = merges_text.find('\n', line_begin);
    if (line_end == std::string::npos) line_end = merges_text.size();
    std::string_view text(merges_text.data() + line_begin, line_end - line_begin);
    const size_t next_begin = line_end + 1;
    ++line;
    line_begin = next_begin;
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    if (line == 1 && text.starts_with("#version")) continue;
    if (text.empty()) {
      if (merges_text.find_first_not_of("\r\n", std::min(next_begin, merges_text.size())) == std::string::npos)
        break;  // trailing empty lines
      fail("{} line {}: empty line inside the merges; each line must be one merge \"A B\"", merges_path, line);
    }
    const size_t space = text.find(' ');
    if (space == std::string_view::npos || space == 0 || space + 1 == text.size() ||
        text.find(' ', space + 1) != std::string_view::npos)
      fail("{} line {}: expected two tokens separated by one space, got \"{}\"", merges_path, line,
           printable(text));
    uint32_t bad = 0;
    if (!spelled_to_bytes(text.substr(0, space), left, bad) || !spelled_to_bytes(text.substr(space + 1), right, bad))
      fail("{} line {}: \"{}\" has the character U+{:04X}, which stands for no byte in GPT-2's alphabet",
           merges_path, line, printable(text), bad);
    for (const std::string* part : {&left, &right})
      if (id_of(*part) < 0)
        fail("{} line {}: \"{}\" is not a token of {}; the merges and the vocabulary must come from the "
             "same model", merges_path, line, printable(text.substr(part == &left ? 0 : space + 1,
                                                                   part == &left ? space : std::string::npos)),
             vocab_path);
    const int32_t merged = id_of(left + right);
    if (merged < 0)
      fail("{} line {}: the merge \"{}\" makes a token that is not in {}; the merges and the vocabulary "
           "must come from the same model", merges_path, line, printable(text), vocab_path);
    if (vocab.merge_rank[merged] == UINT32_MAX) vocab.merge_rank[merged] = merge_index;
    ++merge_index;
  }

  // Special tokens: "<|...|>" entries that no merge builds (GPT-2 has one, <|endoftext|> = 50256).
  for (size_t id = 0; id < vocab.token_bytes.size(); ++id) {
    const std::string& b = vocab.token_bytes[id];
    if (b.size() >= 5 && b.starts_with("<|") && b.ends_with("|>") && vocab.merge_rank[id] == UINT32_MAX) {
      vocab.specials.emplace_back(b, static_cast<int32_t>(id));
      vocab.token_bytes[id].clear();
    }
  }
  return vocab;
}

}  // namespace gptrain::tokenizer_detail
