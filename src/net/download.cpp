#include "net/download.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include "net/sha256.h"
#include "util/error.h"
#include "util/timer.h"

namespace gptrain::net {

namespace fs = std::filesystem;

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) fail("libcurl could not be initialised");
  });
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return s;
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return std::string(s);
}

// An entity tag without W/ and quotes.
std::string unquote_etag(std::string tag) {
  if (tag.rfind("W/", 0) == 0) tag = tag.substr(2);
  if (tag.size() >= 2 && tag.front() == '"' && tag.back() == '"') tag = tag.substr(1, tag.size() - 2);
  return tag;
}

std::optional<uint64_t> parse_u64(const std::string& text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

std::string last_path_part(const std::string& url) {
  std::string path = url.substr(0, url.find_first_of("?#"));
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string mb(uint64_t bytes) { return fmt::format("{:.1f} MB", static_cast<double>(bytes) / 1e6); }

// One HTTP response of a redirect chain: its status and its headers (names lowercased).
struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;
  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// State shared with curl's callbacks during one transfer.
struct Transfer {
  std::vector<Response> responses;
  // Body handling (GET only).
  int fd = -1;
  uint64_t offset = 0;          // bytes of the .part kept before this transfer
  uint64_t written = 0;         // bytes written by this transfer
  bool body_started = false;
  bool restarted_from_zero = false;  // the server ignored Range
  std::string error_body;       // the start of an error response's body
  std::string abort_reason;     // why a callback stopped the transfer
  std::optional<uint64_t> limit;  // the most bytes the whole file may have
  bool too_big = false;
  // Progress.
  std::string label;
  bool tty = false;
  Timer timer;
  double last_draw = 0;
  bool drawn = false;
};

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string_view line(data, size * count);
  if (line.rfind("HTTP/", 0) == 0) {
    Response r;
    const size_t space = line.find(' ');
    if (space != std::string_view::npos) r.status = std::strtol(std::string(line.substr(space + 1, 3)).c_str(), nullptr, 10);
    t->responses.push_back(std::move(r));
  } else if (const size_t colon = line.find(':'); colon != std::string_view::npos && !t->responses.empty()) {
    t->responses.back().headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
  }
  return size * count;
}

bool write_all(int fd, const char* data, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  const long status = t->responses.empty() ? 0 : t->responses.back().status;
  if (status != 200 && status != 206) {  // an error page: keep its start for the message
    t->error_body.append(data, std::min(n, 2000 - std::min<size_t>(2000, t->error_body.size())));
    return n;
  }
  if (!t->body_started) {
    t->body_started = true;
    if (status == 206) {
      // Content-Range: bytes START-END/TOTAL must start where the .part ends.
      const std::string range = t->responses.back().header("content-range");
      const size_t dash = range.find('-');
      const std::string start = dash == std::string::npos ? "" : trim(range.substr(range.find(' ') + 1, dash - range.find(' ') - 1));
      if (parse_u64(start) != std::optional<uint64_t>(t->offset)) {
        t->abort_reason = fmt::format("the server resumed at the wrong place (Content-Range '{}', asked for byte {})", range, t->offset);
        return 0;
      }
    } else if (t->offset > 0) {  // 200 to a Range request: the whole file comes again
      if (::ftruncate(t->fd, 0) != 0 || ::lseek(t->fd, 0, SEEK_SET) != 0) {
        t->abort_reason = fmt::format("cannot truncate the partial file: {}", std::strerror(errno));
        return 0;
      }
      t->offset = 0;
      t->restarted_from_zero = true;
    }
  }
  if (t->limit && t->offset + t->written + n > *t->limit) {
    t->too_big = true;
    t->abort_reason = fmt::format("the file is larger than the {} bytes expected; it was not kept", *t->limit);
    return 0;
  }
  if (!write_all(t->fd, data, n)) {
    t->abort_reason = fmt::format("cannot write the downloaded bytes: {}", std::strerror(errno));
    return 0;
  }
  t->written += n;
  return n;
}

// Redrawn in place twice a second on a terminal; a plain line every 30 s otherwise.
int on_progress(void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  const double now = t->timer.seconds();
  if (now - t->last_draw < (t->tty ? 0.5 : 30.0)) return 0;
  t->last_draw = now;
  const uint64_t done = t->offset + static_cast<uint64_t>(dlnow);
  const std::string total = dltotal > 0 ? mb(t->offset + static_cast<uint64_t>(dltotal)) : "?";
  fmt::print(stderr, "{}  {}: {} / {} ({:.1f} MB/s){}", t->tty ? "\r" : "", t->label, mb(done), total,
             static_cast<double>(dlnow) / 1e6 / std::max(now, 1e-3), t->tty ? "   " : "\n");
  t->drawn = t->tty;
  return 0;
}

struct CurlHandle {
  CURL* curl;
  CurlHandle() : curl(curl_easy_init()) {
    if (!curl) fail("libcurl could not create a transfer handle");
  }
  ~CurlHandle() { curl_easy_cleanup(curl); }
};

void common_options(CURL* curl, const std::string& url, const DownloadOptions& o, Transfer& t, char* error) {
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, o.connect_timeout_s);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, o.stall_timeout_s);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "gptrain/0.1");
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  // Only http(s), also after redirects.
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
}

std::string curl_message(CURLcode code, const char* error) {
  return error[0] ? trim(error) : std::string(curl_easy_strerror(code));  // the buffer is the more specific
}

// Failures worth another attempt: transport trouble, not a wrong name, no network or a full disk.
bool retryable(CURLcode code) {
  switch (code) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_WRITE_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_ABORTED_BY_CALLBACK:
      return false;
    default:
      return true;
  }
}

bool retryable_status(long status) { return status == 408 || status == 429 || status >= 500; }

std::string http_error(const std::string& url, long status, const std::string& body) {
  std::string hint;
  if (status == 404) hint = "; is the name right?";
  if (status == 401 || status == 403) hint = "; the file does not exist or needs credentials";
  std::string excerpt = trim(body.substr(0, 200));
  for (char& c : excerpt)
    if (c == '\n' || c == '\r') c = ' ';
  return fmt::format("HTTP {} for {}{}{}", status, url, hint, excerpt.empty() ? "" : " (server said: " + excerpt + ")");
}

uint64_t file_size_or_zero(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  return ec ? 0 : size;
}

// fsync the file, rename it onto dest, fsync the directory.
void commit_part(const fs::path& part, const fs::path& dest) {
  const int fd = ::open(part.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    fail("cannot flush {}: {}", part.string(), why);
  }
  ::close(fd);
  if (std::rename(part.c_str(), dest.c_str()) != 0)
    fail("cannot rename {} to {}: {}", part.string(), dest.string(), std::strerror(errno));
  fs::path dir = dest.parent_path();
  if (dir.empty()) dir = ".";
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

// The result of one GET into the .part file.
struct Attempt {
  bool complete = false;        // the server finished the response (CURLE_OK, 200/206, or 416)
  bool fatal = false;           // do not retry
  bool range_not_satisfiable = false;
  std::string error;
  uint64_t received = 0;
  bool resumed = false;
  std::optional<uint64_t> announced_size;  // the whole file's size by Content-Length / Content-Range
};

Attempt get_into(const std::string& url, const fs::path& part, const DownloadOptions& o, const std::string& label,
                 std::optional<uint64_t> limit) {
  Attempt a;
  const uint64_t offset = file_size_or_zero(part);
  const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    a.fatal = true;
    a.error = fmt::format("cannot write {}: {}", part.string(), std::strerror(errno));
    return a;
  }
  if (::lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) {
    ::close(fd);
    a.fatal = true;
    a.error = fmt::format("cannot seek in {}: {}", part.string(), std::strerror(errno));
    return a;
  }
  CurlHandle h;
  Transfer t;
  t.fd = fd;
  t.offset = offset;
  t.label = label;
  t.limit = limit;
  t.tty = ::isatty(2);
  char error[CURL_ERROR_SIZE] = {};
  common_options(h.curl, url, o, t, error);
  curl_easy_setopt(h.curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h.curl, CURLOPT_WRITEDATA, &t);
  const std::string range = fmt::format("{}-", offset);
  if (offset > 0) curl_easy_setopt(h.curl, CURLOPT_RANGE, range.c_str());
  if (o.progress) {
    curl_easy_setopt(h.curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h.curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h.curl, CURLOPT_XFERINFODATA, &t);
  }
  const CURLcode code = curl_easy_perform(h.curl);
  ::close(fd);
  if (t.drawn) fmt::print(stderr, "\n");
  std::error_code ec;
  if (file_size_or_zero(part) == 0) fs::remove(part, ec);  // nothing arrived: leave no empty .part behind
  a.received = t.written;
  a.resumed = offset > 0 && !t.restarted_from_zero && t.written > 0;
  const long status = t.responses.empty() ? 0 : t.responses.back().status;
  if (!t.responses.empty()) {
    const Response& r = t.responses.back();
    if (status == 206) {
      const std::string cr = r.header("content-range");
      if (const size_t slash = cr.find('/'); slash != std::string::npos) a.announced_size = parse_u64(trim(cr.substr(slash + 1)));
    } else if (status == 200) {
      a.announced_size = parse_u64(r.header("content-length"));
    }
  }
  if (!t.abort_reason.empty()) {
    a.error = t.abort_reason;
    // local file trouble or a file too big; a bad Content-Range is retried
    a.fatal = t.too_big || t.abort_reason.rfind("cannot", 0) == 0;
    if (t.too_big) fs::remove(part, ec);
    return a;
  }
  if (status == 416 && offset > 0) {  // the .part already holds the whole file (or more)
    a.complete = true;
    a.range_not_satisfiable = true;
    return a;
  }
  if (status >= 400) {
    a.error = http_error(url, status, t.error_body);
    a.fatal = !retryable_status(status);
    return a;
  }
  if (code != CURLE_OK) {
    a.error = fmt::format("{} ({})", curl_message(code, error), url);
    a.fatal = !retryable(code);
    return a;
  }
  if (status != 200 && status != 206) {
    a.error = fmt::format("unexpected HTTP {} for {}", status, url);
    a.fatal = true;
    return a;
  }
  a.complete = true;
  return a;
}

}  // namespace

bool offline_requested() {
  for (const char* name : {"GPTRAIN_OFFLINE", "HF_HUB_OFFLINE"})
    if (const char* v = std::getenv(name); v && *v && std::string(v) != "0") return true;
  return false;
}

RemoteFile probe(const std::string& url, const DownloadOptions& o) {
  global_init();
  RemoteFile info;
  info.url = url;
  std::string last_error;
  for (int attempt = 1; attempt <= std::max(1, o.max_attempts); ++attempt) {
    if (attempt > 1)
      std::this_thread::sleep_for(std::chrono::duration<double>(std::min(30.0, o.retry_delay_s * (1 << std::min(attempt - 2, 5)))));
    CurlHandle h;
    Transfer t;
    char error[CURL_ERROR_SIZE] = {};
    common_options(h.curl, url, o, t, error);
    curl_easy_setopt(h.curl, CURLOPT_NOBODY, 1L);
    const CURLcode code = curl_easy_perform(h.curl);
    const long status = t.responses.empty() ? 0 : t.responses.back().status;
    if (code != CURLE_OK) {
      last_error = fmt::format("cannot reach {}: {}", url, curl_message(code, error));
      if (code == CURLE_COULDNT_RESOLVE_HOST || code == CURLE_COULDNT_RESOLVE_PROXY)
        last_error += " (no network? a mirror can be given with --endpoint or $HF_ENDPOINT)";
      if (!retryable(code)) break;
      continue;
    }
    if (status >= 400) {
      last_error = http_error(url, status, "");
      if (!retryable_status(status)) break;
      continue;
    }
    char* effective = nullptr;
    curl_easy_getinfo(h.curl, CURLINFO_EFFECTIVE_URL, &effective);
    info.final_url = effective ? effective : url;
    for (const Response& r : t.responses) {  // the first response with an entity tag is the origin's
      const std::string linked = r.header("x-linked-etag"), plain = r.header("etag");
      if (linked.empty() && plain.empty()) continue;
      info.etag = unquote_etag(linked.empty() ? plain : linked);
      if (is_sha256_hex(info.etag)) info.sha256 = lower(info.etag);
      break;
    }
    for (const Response& r : t.responses)
      if (auto size = parse_u64(r.header("x-linked-size"))) {
        info.size = size;
        break;
      }
    if (!info.size && !t.responses.empty()) info.size = parse_u64(t.responses.back().header("content-length"));
    return info;
  }
  fail("{}", last_error);
}

DownloadResult download_file(const std::string& url, const fs::path& dest, const Expected& expected,
                             const DownloadOptions& o) {
  global_init();
  const std::string label = o.label.empty() ? last_path_part(url) : o.label;
  const fs::path part = fs::path(dest.string() + ".part");
  const std::string want_sha = lower(expected.sha256);
  DownloadResult result;
  std::string last_error;
  int failures = 0;
  std::error_code ec;
  // A .part from an earlier run is resumed only when a sha256 will catch a mix of two versions of
  // the file; without one, it is cheaper to start over than to risk it.
  if (want_sha.empty()) fs::remove(part, ec);
  while (failures < std::max(1, o.max_attempts)) {
    uint64_t have = file_size_or_zero(part);
    if (expected.size && have > *expected.size) {  // not a prefix of this file: start over
      fs::remove(part);
      have = 0;
    }
    std::optional<uint64_t> size = expected.size;
    if (!(expected.size && have == *expected.size)) {  // bytes are missing: one transfer
      if (failures > 0) {
        const double delay = std::min(30.0, o.retry_delay_s * (1 << std::min(failures - 1, 5)));
        const uint64_t kept = file_size_or_zero(part);
        fmt::print(stderr, "  {}: {}; retrying in {:.0f} s (attempt {} of {}){}\n", label, last_error, delay,
                   failures + 1, o.max_attempts, kept ? fmt::format(", resuming at byte {}", kept) : std::string());
        std::this_thread::sleep_for(std::chrono::duration<double>(delay));
      }
      const Attempt a = get_into(url, part, o, label, expected.size ? expected.size : o.max_size);
      ++result.transfers;
      result.bytes_received += a.received;
      result.resumed = result.resumed || a.resumed;
      if (!a.complete) {
        last_error = a.error;
        if (a.fatal) fail("downloading {}: {}", label, a.error);
        ++failures;
        continue;
      }
      if (!size) size = a.announced_size;
    }
    // Verify the whole file.
    if (!fs::exists(part, ec)) std::ofstream(part, std::ios::binary).flush();  // an empty file arrives as no bytes
    const uint64_t got = file_size_or_zero(part);
    if (size && got < *size) {  // the connection ended early without an error: resume
      last_error = fmt::format("the transfer stopped at {} of {} bytes", got, *size);
      ++failures;
      continue;
    }
    std::string problem;
    if (size && got != *size) problem = fmt::format("it has {} bytes, expected {}", got, *size);
    std::string got_sha;
    if (problem.empty() && !want_sha.empty() && (got_sha = sha256_file(part)) != want_sha)
      problem = fmt::format("its sha256 is {}, expected {}", got_sha, want_sha);
    if (problem.empty()) {
      commit_part(part, dest);
      return result;
    }
    fs::remove(part);
    if (result.restarted)
      fail("downloading {}: the file from {} is corrupt again ({}); it was deleted. A proxy or the server is "
           "altering it: try again later or from another network",
           label, url, problem);
    fmt::print(stderr, "  {}: the downloaded file is corrupt ({}); deleted it, downloading again from the start\n",
               label, problem);
    result.restarted = true;
  }
  fail("downloading {} from {} failed {} times; last: {}. The partial file {} is kept: run the same command again "
       "to resume",
       label, url, failures, last_error, part.string());
}

}  // namespace gptrain::net
