// gptrain tokenize: text to token ids, as text or as a raw little-endian u16/u32 shard that
// `gptrain pretrain` reads; with --decode, ids back to text. The vocabulary is GPT-2's (tiktoken's
// "gpt2" encoding) unless --model names a directory: its tokenizer.json (Llama 3, Qwen3, ...,
// equal to Hugging Face tokenizers), else its GPT-2 files.
#include <fmt/core.h>

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "data/data_dir.h"
#include "io/atomic_file.h"
#include "tokenizer/bpe.h"
#include "util/error.h"
#include "util/timer.h"

namespace gptrain::cli {

namespace {

struct TokenizeOptions {
  std::string input;
  bool decode = false;
  bool allow_special = false;
  std::string format = "text";
  std::string output;
  std::string data_dir;
  std::string model;
  std::string vocab;
  std::string merges;
  int threads = 0;
  bool raw_bytes = false;
  bool quiet = false;
};

std::string read_input(const std::string& path) {
  if (path == "-") {
    std::ostringstream buffer;
    buffer << std::cin.rdbuf();
    return buffer.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open the input file {}", path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_output(const std::string& path, const std::string& bytes) {
  if (path.empty()) {
    if (std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size() || std::fflush(stdout) != 0)
      fail("cannot write to standard output");
    return;
  }
  io::AtomicFile file(path);
  file.write(bytes);
  file.commit();
}

Tokenizer load_tokenizer(const TokenizeOptions& o) {
  if (o.vocab.empty() != o.merges.empty())
    fail("--vocab and --merges go together (encoder.json + vocab.bpe, or vocab.json + merges.txt); got only {}",
         o.vocab.empty() ? "--merges" : "--vocab");
  if (!o.model.empty()) {
    if (!o.vocab.empty()) fail("--model {} and --vocab/--merges both name a vocabulary; give one of them", o.model);
    std::error_code ec;
    if (!std::filesystem::is_directory(o.model, ec))
      fail("--model {}: no such directory; expected a model or tokenizer directory (tokenizer.json, or vocab.json + "
           "merges.txt)", o.model);
    return Tokenizer::from_dir(o.model);
  }
  if (!o.vocab.empty()) return Tokenizer::from_files(o.vocab, o.merges);
  const auto dir = data::resolve_data_dir(o.data_dir);
  return Tokenizer::from_files(data::require_data_file(dir, "gpt2_tokenizer/encoder.json", "GPT-2 vocabulary").string(),
                               data::require_data_file(dir, "gpt2_tokenizer/vocab.bpe", "GPT-2 merges").string());
}

// Ids as decimal text separated by single spaces, or little-endian u16/u32.
std::string format_ids(const std::vector<int32_t>& ids, const std::string& format) {
  std::string out;
  if (format == "text") {
    out.resize(ids.size() * 7 + 1);  // ids < 10^6: at most 6 digits and a separator each
    char* p = out.data();
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) *p++ = ' ';
      p = std::to_chars(p, out.data() + out.size(), ids[i]).ptr;
    }
    *p++ = '\n';
    out.resize(static_cast<size_t>(p - out.data()));
    return out;
  }
  const size_t width = format == "u16" ? 2 : 4;
  out.resize(ids.size() * width);
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto id = static_cast<uint32_t>(ids[i]);
    if (width == 2 && id > UINT16_MAX) fail("token id {} does not fit --format u16; use u32", id);
    for (size_t b = 0; b < width; ++b) out[i * width + b] = static_cast<char>(id >> (8 * b));
  }
  return out;
}

std::vector<int32_t> parse_ids(const std::string& bytes, const std::string& format, const std::string& path) {
  std::vector<int32_t> ids;
  if (format != "text") {
    const size_t width = format == "u16" ? 2 : 4;
    if (bytes.size() % width != 0)
      fail("{}: {} bytes is not a whole number of {} ids; is --format right?", path, bytes.size(), format);
    ids.resize(bytes.size() / width);
    for (size_t i = 0; i < ids.size(); ++i) {
      uint32_t id = 0;
      for (size_t b = 0; b < width; ++b) id |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[i * width + b])) << (8 * b);
      ids[i] = static_cast<int32_t>(id);
    }
    return ids;
  }
  int line = 1;
  for (size_t i = 0; i < bytes.size();) {
    const char c = bytes[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',') {
      line += c == '\n';
      ++i;
      continue;
    }
    int32_t id = 0;
    const auto [end, error] = std::from_chars(bytes.data() + i, bytes.data() + bytes.size(), id);
    if (error != std::errc() || id < 0) {
      const size_t stop = bytes.find_first_of(" \t\r\n,", i);
      fail("{} line {}: expected a token id (a non-negative integer), found \"{}\"", path, line,
           bytes.substr(i, std::min<size_t>(stop == std::string::npos ? bytes.size() - i : stop - i, 40)));
    }
    ids.push_back(id);
    i = static_cast<size_t>(end - bytes.data());
  }
  return ids;
}

int run_tokenize(const TokenizeOptions& o) {
  const int threads = o.threads > 0 ? o.threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const Tokenizer tokenizer = load_tokenizer(o);
  const std::string input = read_input(o.input);
  Timer timer;
  if (o.decode) {
    const std::vector<int32_t> ids = parse_ids(input, o.format, o.input == "-" ? "standard input" : o.input);
    const std::string bytes = tokenizer.decode(ids);
    // As tiktoken's decode(): bytes of a UTF-8 character split by the ids show as U+FFFD.
    write_output(o.output, o.raw_bytes ? bytes : utf8_lossy(bytes));
    if (!o.quiet) fmt::print(stderr, "gptrain tokenize --decode: {} ids -> {} bytes\n", ids.size(), bytes.size());
    return 0;
  }
  // A tokenizer.json takes text as tokenizers does, valid UTF-8 only; say where bytes are replaced.
  if (const size_t bad = first_invalid_utf8(input); bad != std::string::npos && tokenizer.replaces_invalid_utf8())
    fmt::print(stderr, "gptrain tokenize: warning: {}: not valid UTF-8 at byte {} (0x{:02x}); each invalid sequence is "
               "encoded as U+FFFD, as Python's bytes.decode(\"utf-8\", errors=\"replace\") gives the text to Hugging "
               "Face tokenizers\n", o.input == "-" ? "standard input" : o.input, bad, static_cast<uint8_t>(input[bad]));
  const std::vector<int32_t> ids = tokenizer.encode_parallel(input, o.allow_special, threads);
  const double seconds = timer.seconds();
  write_output(o.output, format_ids(ids, o.format));
  if (!o.quiet)
    fmt::print(stderr, "gptrain tokenize: {} bytes -> {} tokens in {:.3f} s ({:.1f} MB/s, {} threads{})\n",
               input.size(), ids.size(), seconds, static_cast<double>(input.size()) / 1e6 / std::max(seconds, 1e-9),
               threads, o.allow_special ? ", special tokens allowed" : "");
  return 0;
}

}  // namespace

Command register_tokenize(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* s = app.add_subcommand(
      "tokenize", "Text to token ids (GPT-2's, as tiktoken's \"gpt2\"; or a model's tokenizer.json with --model, as "
                  "Hugging Face tokenizers), or back with --decode");
  CLI::Option* positional =
      s->add_option("input", o->input, "Text file to encode (with --decode: a file of ids); - reads standard input");
  s->add_option("--data", o->input, "The same as the positional INPUT")->excludes(positional);
  s->add_flag("--decode", o->decode, "Turn ids back into text (invalid UTF-8 shown as U+FFFD, as tiktoken's decode)");
  s->add_flag("--allow-special", o->allow_special,
              "Encode special tokens written in the text (<|endoftext|>, <|eot_id|>, ...) as their ids (tiktoken's "
              "allowed_special, tokenizers' default); otherwise as plain text. A tokenizer.json's added tokens that are "
              "not special (Qwen3's <think>) are ids either way, as in tokenizers");
  s->add_option("--format", o->format, "Ids as text (separated by single spaces) or little-endian u16/u32 binary")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "u16", "u32"}));
  s->add_option("--output", o->output, "Write here (atomically) instead of standard output");
  s->add_option("--data-dir", o->data_dir, "Data directory holding gpt2_tokenizer/encoder.json and vocab.bpe "
                                           "[default: $GPTRAIN_DATA_DIR or ../shared/data]");
  s->add_option("--model", o->model, "Model or tokenizer directory whose tokenizer to use: its tokenizer.json, else "
                                     "vocab.json + merges.txt or encoder.json + vocab.bpe");
  s->add_option("--vocab", o->vocab, "encoder.json or Hugging Face vocab.json (with --merges) instead of the data dir's");
  s->add_option("--merges", o->merges, "vocab.bpe or Hugging Face merges.txt (with --vocab)");
  s->add_option("--threads", o->threads, "Threads for encoding (0: all cores); the ids do not depend on it")
      ->capture_default_str();
  s->add_flag("--raw-bytes", o->raw_bytes, "With --decode: write the decoded bytes as they are, without U+FFFD");
  s->add_flag("--quiet", o->quiet, "No summary line on standard error");
  return [o] {
    if (o->input.empty()) fail("tokenize: give the file to read, as INPUT or --data FILE (- reads standard input)");
    return run_tokenize(*o);
  };
}

}  // namespace gptrain::cli
