// The book's named data sets (docs/DESIGN.md §6): where each file sits in the data directory, the
// public URLs it comes from and its sha256. A missing file is downloaded (checked, then renamed
// into place) when the network allows; otherwise the error says which file to put where and
// where to get it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "net/download.h"

namespace gptrain::data {

struct DataFileSource {
  std::string relative;            // path inside the data dir, e.g. "gpt2_tokenizer/vocab.bpe"
  std::string what;                // for messages
  std::vector<std::string> urls;   // tried in order: the book's URL first, then mirrors
  std::string zip_member;          // "": the URL serves the file itself; else the member of a zip
  uint64_t size = 0;               // of the file itself (the extracted member)
  std::string sha256;
};

// the-verdict.txt, instruction-data.json, gpt2_tokenizer/{encoder.json,vocab.bpe},
// sms_spam/SMSSpamCollection (from the UCI zip).
const std::vector<DataFileSource>& named_data_files();
const DataFileSource* find_named_data_file(const std::string& relative);

// data_dir / relative. When it is missing and is a named file, it is downloaded, unless
// $GPTRAIN_OFFLINE is set; when that is impossible, the error names the file, the data dir and the
// URL. `what` describes the file in messages ("" : the table's description).
std::filesystem::path ensure_data_file(const std::filesystem::path& data_dir, const std::string& relative,
                                       const std::string& what = "");

// The directory holding the GPT-2 vocabulary (encoder.json + vocab.bpe), downloading what is missing.
std::filesystem::path gpt2_tokenizer_dir(const std::filesystem::path& data_dir);

// True when dir holds tokenizer files gptrain reads: tokenizer.json, vocab.json + merges.txt, or
// encoder.json + vocab.bpe.
bool has_tokenizer_files(const std::filesystem::path& dir);

// The data dir's tokenizer of a model family: gpt2 (and gptrain's own architectures) ->
// gpt2_tokenizer/, llama -> tokenizers/llama3/, qwen3 -> tokenizers/qwen/. A missing one is an
// error naming the files looked for and where.
std::filesystem::path family_tokenizer_dir(const std::filesystem::path& data_dir, const std::string& family);

// The tokenizer of a job: `option` (--tokenizer DIR) when given; else model_dir when it holds
// tokenizer files; else the family's from the data dir.
std::filesystem::path resolve_tokenizer_dir(const std::string& option, const std::filesystem::path& model_dir,
                                            const std::string& family, const std::filesystem::path& data_dir);

// Downloads `source` into data_dir / source.relative (creating directories), trying each URL in
// turn, and checks size and sha256 (of the extracted member for a zip). Errors list every URL's
// failure. This is ensure_data_file()'s download step; tests call it with a local server's URLs.
std::filesystem::path fetch_data_file(const std::filesystem::path& data_dir, const DataFileSource& source,
                                      const net::DownloadOptions& options);

}  // namespace gptrain::data
