// Why the pre-tokenizers are hand-written scanners and not a regex engine: splits the same text
// with PCRE2's JIT (UTF + UCP, the pattern verbatim: GPT-2's, Llama 3's or Qwen2's) and with
// tokenizer_detail::pretokenize, checks that both give the same pieces, and prints MB/s of each.
// Built when libpcre2-8 is found. (PCRE2 is not the reference: its \s and Unicode tables differ
// from tiktoken's and tokenizers' in a few code points; the tests compare with those.)
//
//   pretokenizer_vs_pcre2 FILE [--repeat R] [--pattern gpt2|llama3|qwen2]
#define PCRE2_CODE_UNIT_WIDTH 8
#include <fmt/core.h>
#include <pcre2.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/pretokenizer.h"
#include "util/timer.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: pretokenizer_vs_pcre2 FILE [--repeat R] [--pattern gpt2|llama3|qwen2]\n");
    return 2;
  }
  int repeat = 5;
  std::string pattern_name = "gpt2";
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--repeat") repeat = std::max(1, std::stoi(argv[i + 1]));
    else if (std::string(argv[i]) == "--pattern") pattern_name = argv[i + 1];
  }
  using gptrain::tokenizer_detail::Pattern;
  const Pattern kind = pattern_name == "llama3" ? Pattern::kLlama3 : pattern_name == "qwen2" ? Pattern::kQwen2 : Pattern::kGpt2;
  std::ifstream in(argv[1], std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());

  const char* pattern =
      kind == Pattern::kLlama3
          ? R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"
      : kind == Pattern::kQwen2
          ? R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"
          : R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                 &error, &error_offset, nullptr);
  if (!re || pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) != 0) {
    fmt::print(stderr, "PCRE2 could not compile or JIT the pattern\n");
    return 1;
  }
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(re, nullptr);

  std::vector<size_t> pcre_ends, scan_ends;  // end offset of every piece
  double pcre_best = 1e30, scan_best = 1e30;
  for (int r = 0; r < repeat; ++r) {
    pcre_ends.clear();
    gptrain::Timer timer;
    for (size_t pos = 0; pos < text.size();) {
      const int rc = pcre2_jit_match(re, s, text.size(), pos, PCRE2_NO_UTF_CHECK, match, nullptr);
      if (rc < 0) break;  // the text is not valid UTF-8 past here; the scanner handles that, PCRE2 cannot
      pos = pcre2_get_ovector_pointer(match)[1];
      pcre_ends.push_back(pos);
    }
    pcre_best = std::min(pcre_best, timer.seconds());
    scan_ends.clear();
    timer.reset();
    auto on_piece = [&](size_t, size_t end) { scan_ends.push_back(end); };
    gptrain::tokenizer_detail::pretokenize(kind, s, text.size(), on_piece, on_piece);
    scan_best = std::min(scan_best, timer.seconds());
  }
  if (pcre_ends != scan_ends) {
    size_t k = 0;
    while (k < pcre_ends.size() && k < scan_ends.size() && pcre_ends[k] == scan_ends[k]) ++k;
    const size_t at = k > 0 ? scan_ends[k - 1] : 0;
    std::string context;
    for (size_t i = at; i < std::min(text.size(), at + 24); ++i) context += fmt::format("{:02x} ", s[i]);
    fmt::print("first difference: piece {} starting at byte {}: PCRE2 ends it at {}, the scanner at {} (bytes: {})\n",
               k, at, k < pcre_ends.size() ? pcre_ends[k] : 0, k < scan_ends.size() ? scan_ends[k] : 0, context);
  }
  const double mb = static_cast<double>(text.size()) / 1e6;
  fmt::print("{} pattern: {} bytes, {} pieces; identical pieces: {}\n", pattern_name, text.size(), scan_ends.size(),
             pcre_ends == scan_ends ? "yes" : "NO");
  fmt::print("PCRE2 JIT  {:8.1f} MB/s\nscanner    {:8.1f} MB/s  ({:.1f}x)\n", mb / pcre_best, mb / scan_best,
             pcre_best / scan_best);
  pcre2_match_data_free(match);
  pcre2_code_free(re);
  return pcre_ends == scan_ends ? 0 : 1;
}
