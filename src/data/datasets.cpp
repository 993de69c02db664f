#include "data/datasets.h"

#include <unistd.h>

#include <cstdio>
#include <system_error>

#include <fmt/core.h>

#include "data/zip_file.h"
#include "io/atomic_file.h"
#include "net/sha256.h"
#include "util/error.h"

namespace gptrain::data {

namespace fs = std::filesystem;

const std::vector<DataFileSource>& named_data_files() {
  // Sizes and sha256 as listed in shared/data/SOURCES.md (tests check them against those copies).
  static const std::vector<DataFileSource> files = {
      {"the-verdict.txt",
       "The Verdict (the book's pretraining text)",
       {"https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch02/01_main-chapter-code/the-verdict.txt"},
       "",
       20479,
       "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f"},
      {"instruction-data.json",
       "the book's instruction data set (chapter 7)",
       {"https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/01_main-chapter-code/instruction-data.json"},
       "",
       203524,
       "7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944"},
      {"gpt2_tokenizer/encoder.json",
       "the GPT-2 vocabulary (encoder.json)",
       {"https://openaipublic.blob.core.windows.net/gpt-2/models/124M/encoder.json",
        "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
        "https://f001.backblazeb2.com/file/LLMs-from-scratch/gpt2/124M/encoder.json"},
       "",
       1042301,
       "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"},
      {"gpt2_tokenizer/vocab.bpe",
       "the GPT-2 merges (vocab.bpe)",
       {"https://openaipublic.blob.core.windows.net/gpt-2/models/124M/vocab.bpe",
        "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
        "https://f001.backblazeb2.com/file/LLMs-from-scratch/gpt2/124M/vocab.bpe"},
       "",
       456318,
       "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"},
      {"sms_spam/SMSSpamCollection",
       "the SMS Spam Collection (chapter 6)",
       {"https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
        "https://f001.backblazeb2.com/file/LLMs-from-scratch/sms%2Bspam%2Bcollection.zip"},
       "SMSSpamCollection",
       477907,
       "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d"},
  };
  return files;
}

const DataFileSource* find_named_data_file(const std::string& relative) {
  const std::string key = fs::path(relative).lexically_normal().generic_string();
  for (const DataFileSource& f : named_data_files())
    if (f.relative == key) return &f;
  return nullptr;
}

namespace {

std::string where_to_get(const DataFileSource& s) {
  return s.zip_member.empty() ? fmt::format("download {}", s.urls.front())
                              : fmt::format("download {} and extract {} from it", s.urls.front(), s.zip_member);
}

}  // namespace

fs::path fetch_data_file(const fs::path& data_dir, const DataFileSource& source, const net::DownloadOptions& options) {
  const fs::path dest = data_dir / source.relative;
  std::error_code ec;
  fs::create_directories(dest.parent_path(), ec);
  if (ec) fail("cannot create {}: {}", dest.parent_path().string(), ec.message());
  std::string errors;
  for (const std::string& url : source.urls) {
    fmt::print(stderr, "gptrain: downloading {} from {} to {}\n", source.what, url, dest.string());
    std::fflush(stderr);
    net::DownloadOptions o = options;
    o.label = dest.filename().string();
    try {
      if (source.zip_member.empty()) {
        net::download_file(url, dest, net::Expected{source.size, source.sha256}, o);
        return dest;
      }
      // The archive's own digest is not published; the extracted member's is checked instead.
      const fs::path zip = dest.parent_path() / (dest.filename().string() + ".download.zip");
      o.label = zip.filename().string();
      // Its size is not published either: room for the member stored uncompressed, beside small others.
      o.max_size = 2 * source.size + (1u << 20);
      net::download_file(url, zip, net::Expected{}, o);
      std::string bytes;
      try {
        bytes = read_zip_member(zip, source.zip_member, source.size);
      } catch (...) {
        fs::remove(zip, ec);
        throw;
      }
      fs::remove(zip, ec);
      const std::string sha = net::sha256_hex(bytes);
      if (bytes.size() != source.size || sha != source.sha256)
        fail("{} in the archive has {} bytes and sha256 {}, expected {} bytes and {}", source.zip_member, bytes.size(),
             sha, source.size, source.sha256);
      io::write_file_atomic(dest, bytes);
      return dest;
    } catch (const Error& e) {
      errors += fmt::format("\n  {}: {}", url, e.what());
    }
  }
  fail("could not download {}:{}", source.what, errors);
}

fs::path ensure_data_file(const fs::path& data_dir, const std::string& relative, const std::string& what_in) {
  const fs::path path = data_dir / relative;
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return path;
  const DataFileSource* source = find_named_data_file(relative);
  const std::string what = !what_in.empty() ? what_in : source ? source->what : relative;
  const std::string where = fmt::format("(data directory {}; set it with --data-dir or GPTRAIN_DATA_DIR)", data_dir.string());
  if (!source) fail("{} not found: expected the file {} {}", what, path.string(), where);
  if (net::offline_requested())
    fail("{} not found: expected the file {} {}; downloads are off ($GPTRAIN_OFFLINE): {} and put it there",
         what, path.string(), where, where_to_get(*source));
  net::DownloadOptions options;
  options.max_attempts = 3;
  options.progress = ::isatty(2);
  try {
    return fetch_data_file(data_dir, *source, options);
  } catch (const Error& e) {
    fail("{} not found: expected the file {} {}, and downloading it failed ({}); {} and put it there",
         what, path.string(), where, e.what(), where_to_get(*source));
  }
}

fs::path gpt2_tokenizer_dir(const fs::path& data_dir) {
  ensure_data_file(data_dir, "gpt2_tokenizer/encoder.json");
  ensure_data_file(data_dir, "gpt2_tokenizer/vocab.bpe");
  return data_dir / "gpt2_tokenizer";
}

bool has_tokenizer_files(const fs::path& dir) {
  std::error_code ec;
  const auto file = [&](const char* name) { return fs::is_regular_file(dir / name, ec); };
  return file("tokenizer.json") || (file("vocab.json") && file("merges.txt")) ||
         (file("encoder.json") && file("vocab.bpe"));
}

fs::path family_tokenizer_dir(const fs::path& data_dir, const std::string& family) {
  if (family != "llama" && family != "qwen3") return gpt2_tokenizer_dir(data_dir);
  const fs::path dir = data_dir / "tokenizers" / (family == "llama" ? "llama3" : "qwen");
  std::error_code ec;
  if (!fs::is_regular_file(dir / "tokenizer.json", ec))
    fail("the {} tokenizer not found: expected {} (from the model's Hugging Face repo: tokenizer.json, and "
         "tokenizer_config.json for its chat template), or pass --tokenizer DIR",
         family == "llama" ? "Llama 3" : "Qwen3", (dir / "tokenizer.json").string());
  return dir;
}

fs::path resolve_tokenizer_dir(const std::string& option, const fs::path& model_dir, const std::string& family,
                               const fs::path& data_dir) {
  if (!option.empty()) {
    if (!has_tokenizer_files(option))
      fail("--tokenizer {}: no tokenizer files; expected tokenizer.json (Hugging Face), vocab.json + merges.txt or "
           "encoder.json + vocab.bpe (GPT-2)",
           option);
    return option;
  }
  if (!model_dir.empty() && has_tokenizer_files(model_dir)) return model_dir;
  return family_tokenizer_dir(data_dir, family);
}

}  // namespace gptrain::data
