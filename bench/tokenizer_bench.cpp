// Tokenizer throughput: MB/s of Tokenizer::encode (one thread) and encode_parallel (N threads) on
// one text, by default every corpus file of the data dir concatenated (the same text that
// bench/tokenizer_vs_tiktoken.py gives tiktoken and bench/tokenizer_vs_hf.py gives tokenizers).
// Prints one JSON line per measurement. The tokenizer is GPT-2's of the data dir, or --tokenizer
// (a tokenizer.json, or a directory as Tokenizer::from_dir takes it).
//
//   tokenizer_bench [--data-dir DIR] [--input FILE] [--tokenizer PATH] [--allow-special] [--threads N]
//                   [--repeat R]
//
// "cold" runs start with an empty piece cache (a freshly loaded tokenizer, as on text never seen
// before); "warm" runs repeat on the same tokenizer, so every rare word is already cached.
#include <fmt/core.h>

#include <time.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "data/data_dir.h"
#include "tokenizer/bpe.h"
#include "util/error.h"
#include "util/timer.h"

namespace {

namespace fs = std::filesystem;
using gptrain::bench::median;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) gptrain::fail("cannot read {}", path.string());
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Every corpus/*.txt then the-verdict.txt, in sorted order (the Python script does the same).
std::string corpus_text(const fs::path& data_dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(data_dir / "corpus"))
    if (entry.path().extension() == ".txt") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  files.push_back(data_dir / "the-verdict.txt");
  std::string text;
  for (const fs::path& f : files) text += read_file(f);
  return text;
}

// CPU seconds of the calling thread: on a shared machine wall time also counts other processes.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// `cpu_seconds` empty: not measured (several threads).
void report(const char* mode, int threads, size_t bytes, size_t tokens, const std::vector<double>& seconds,
            const std::vector<double>& cpu_seconds) {
  const double s = median(seconds);
  const double mb = static_cast<double>(bytes) / 1e6;
  const double best = *std::min_element(seconds.begin(), seconds.end());
  fmt::print("{{\"impl\": \"gptrain\", \"mode\": \"{}\", \"threads\": {}, \"bytes\": {}, \"tokens\": {}, "
             "\"median_s\": {:.4f}, \"mb_per_s\": {:.2f}, \"best_mb_per_s\": {:.2f}{}}}\n",
             mode, threads, bytes, tokens, s, mb / s, mb / best,
             cpu_seconds.empty() ? "" : fmt::format(", \"cpu_mb_per_s\": {:.2f}", mb / median(cpu_seconds)));
}

int run(int argc, char** argv) {
  std::string data_dir_option, input, tokenizer_path;
  bool allow_special = false;
  int threads = 2, repeat = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) gptrain::fail("{} needs a value", arg);
      return argv[++i];
    };
    if (arg == "--data-dir") data_dir_option = value();
    else if (arg == "--input") input = value();
    else if (arg == "--tokenizer") tokenizer_path = value();
    else if (arg == "--allow-special") allow_special = true;
    else if (arg == "--threads") threads = std::stoi(value());
    else if (arg == "--repeat") repeat = std::max(1, std::stoi(value()));
    else gptrain::fail("unknown option {} (options: --data-dir DIR, --input FILE, --tokenizer PATH, --allow-special, "
                       "--threads N, --repeat R)", arg);
  }
  const fs::path data_dir = gptrain::data::resolve_data_dir(data_dir_option);
  const fs::path vocab_dir = data_dir / "gpt2_tokenizer";
  const std::string text = input.empty() ? corpus_text(data_dir) : read_file(input);

  // One tokenizer per cold run: the piece cache belongs to a tokenizer instance.
  auto load = [&] {
    if (tokenizer_path.empty()) return gptrain::Tokenizer::from_dir(vocab_dir);
    if (fs::is_directory(tokenizer_path)) return gptrain::Tokenizer::from_dir(tokenizer_path);
    return gptrain::Tokenizer::from_tokenizer_json(tokenizer_path);
  };
  std::vector<gptrain::Tokenizer> tokenizers;
  std::vector<double> load_seconds;
  for (int r = 0; r < repeat; ++r) {
    gptrain::Timer timer;
    tokenizers.push_back(load());
    load_seconds.push_back(timer.seconds());
  }
  std::vector<double> cold, warm, parallel, cold_cpu, warm_cpu;
  size_t tokens = 0;
  for (int r = 0; r < repeat; ++r) {
    const double cpu = thread_cpu_seconds();
    gptrain::Timer timer;
    tokens = tokenizers[r].encode(text, allow_special).size();
    cold.push_back(timer.seconds());
    cold_cpu.push_back(thread_cpu_seconds() - cpu);
  }
  for (int r = 0; r < repeat; ++r) {
    const double cpu = thread_cpu_seconds();
    gptrain::Timer timer;
    tokenizers[0].encode(text, allow_special);
    warm.push_back(timer.seconds());
    warm_cpu.push_back(thread_cpu_seconds() - cpu);
  }
  size_t parallel_tokens = 0;
  for (int r = 0; r < repeat; ++r) {
    gptrain::Timer timer;  // new threads each call: their caches start empty, like "cold"
    parallel_tokens = tokenizers[0].encode_parallel(text, allow_special, threads).size();
    parallel.push_back(timer.seconds());
  }
  if (parallel_tokens != tokens) gptrain::fail("parallel encoding gave {} tokens, serial {}", parallel_tokens, tokens);
  report("cold", 1, text.size(), tokens, cold, cold_cpu);
  report("warm", 1, text.size(), tokens, warm, warm_cpu);
  report("parallel", threads, text.size(), tokens, parallel, {});
  fmt::print("{{\"impl\": \"gptrain\", \"mode\": \"load\", \"median_s\": {:.4f}}}\n", median(load_seconds));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "tokenizer_bench: error: {}\n", e.what());
    return 1;
  }
}
