// Files from a Hugging Face Hub model repository: <endpoint>/<repo>/resolve/<revision>/<file>.
// The Hub answers such a URL for a large (LFS) file with a redirect to its storage that carries
// X-Linked-Size and X-Linked-Etag (the file's sha256); small files come directly, with a git-blob
// id as their ETag. So large files are verified by size and sha256, small ones by size.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "net/download.h"

namespace gptrain::net {

// `cli_value` when given, else $HF_ENDPOINT, else https://huggingface.co; no trailing slash.
std::string hub_endpoint(const std::string& cli_value = "");
std::string hub_file_url(const std::string& endpoint, const std::string& repo, const std::string& revision,
                         const std::string& file);

struct HubFileReport {
  std::string name;
  uint64_t size = 0;
  std::string sha256;         // "" when the Hub sends none (small files: checked by size only)
  bool already_present = false;  // an existing file matched; nothing was downloaded
  DownloadResult download;
};

// Downloads each file into `dir` (created when missing). A file already there is kept when its
// size (and sha256, when the Hub gives one) match; otherwise it is replaced, atomically.
// on_file(report) runs after each file.
std::vector<HubFileReport> download_hub_files(const std::string& endpoint, const std::string& repo,
                                              const std::string& revision, const std::vector<std::string>& files,
                                              const std::filesystem::path& dir, const DownloadOptions& options,
                                              const std::function<void(const HubFileReport&)>& on_file = {});

}  // namespace gptrain::net
