// Downloading one file over HTTP(S) with libcurl: the bytes go to <dest>.part, a dropped or
// stalled connection resumes from where it stopped (an HTTP Range request), the finished file is
// checked against the expected size and sha256, then flushed and renamed onto <dest> so that
// <dest> is either absent, the old file, or the complete verified new one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace gptrain::net {

struct DownloadOptions {
  int max_attempts = 5;          // transfers per file; each one after a failure resumes the .part
  double retry_delay_s = 1.0;    // wait before the second attempt; doubles after each, at most 30 s
  long connect_timeout_s = 30;
  long stall_timeout_s = 60;     // a transfer that moves less than 1 byte/s for this long is retried
  bool progress = false;         // a progress line on standard error
  std::string label;             // the file's name in progress and messages ("" : the URL's last part)
  // Without an expected size: the most bytes accepted; a larger file is an error, not a full disk.
  std::optional<uint64_t> max_size;
};

// What a server says about a file before it is downloaded (a HEAD request, redirects followed).
struct RemoteFile {
  std::string url;                // as asked
  std::string final_url;          // after redirects
  std::optional<uint64_t> size;   // X-Linked-Size when present (the Hub's size of an LFS file), else Content-Length
  // Lowercase hex when the first response carrying an entity tag has X-Linked-Etag, or else ETag,
  // holding a sha256 (the Hub does so for LFS files); "" otherwise (a git-blob id, an MD5, none).
  std::string sha256;
  std::string etag;               // that entity tag as sent, quotes and W/ removed
};

// Errors (a gptrain::Error) name the URL and the HTTP status or the transport error.
RemoteFile probe(const std::string& url, const DownloadOptions& options = {});

struct Expected {
  std::optional<uint64_t> size;  // checked when known
  std::string sha256;            // checked when not empty (lowercase or uppercase hex)
};

struct DownloadResult {
  uint64_t bytes_received = 0;   // over the network in this call
  int transfers = 0;             // HTTP transfers made (0: a complete .part was already there)
  bool resumed = false;          // some transfer continued a partial file
  bool restarted = false;        // a complete file failed its check and was downloaded again
};

// Downloads `url` to `dest` (whose directory must exist). Resumes an existing <dest>.part. A file
// whose sha256 does not match is deleted and downloaded once more from the start; a second
// mismatch, HTTP errors other than 408/429/5xx, and exhausting max_attempts are errors that name the
// URL and say what to do. A server that ignores Range gets the file from the start.
DownloadResult download_file(const std::string& url, const std::filesystem::path& dest, const Expected& expected,
                             const DownloadOptions& options = {});

// True when $GPTRAIN_OFFLINE (or Hugging Face's $HF_HUB_OFFLINE) is set to a value other than 0:
// callers then never touch the network.
bool offline_requested();

}  // namespace gptrain::net
