#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

#include "util/error.h"

namespace gptrain::io {

namespace {

std::string errno_text(int error) {
  std::string text = std::strerror(error);
  if (error == ENOSPC || error == EDQUOT) text += "; free some disk space or choose another --out-dir";
  if (error == EACCES || error == EROFS || error == EPERM) text += "; check that the directory is writable";
  return text;
}

// Unique within the process (counter) and across processes (pid); O_EXCL catches the rest.
std::filesystem::path temp_name_for(const std::filesystem::path& path) {
  static std::atomic<uint64_t> counter{0};
  const std::string name = fmt::format(".{}.tmp.{}.{}", path.filename().string(), ::getpid(), counter.fetch_add(1));
  return path.parent_path() / name;
}

void fsync_directory(const std::filesystem::path& dir, const std::filesystem::path& target) {
  const std::filesystem::path d = dir.empty() ? std::filesystem::path(".") : dir;
  const int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open directory {} to flush the rename: {}", target.string(), d.string(), errno_text(errno));
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  // Some file systems (and /proc-like mounts) reject fsync on directories; the rename is done.
  if (rc != 0 && error != EINVAL && error != EROFS)
    fail("{}: cannot flush directory {}: {}", target.string(), d.string(), errno_text(error));
}

}  // namespace

void sync_directory(const std::filesystem::path& dir) { fsync_directory(dir, dir); }

AtomicFile::AtomicFile(const std::filesystem::path& path) : path_(path), temp_(temp_name_for(path)) {
  if (path.filename().empty()) fail("cannot write '{}': the path names a directory, not a file", path.string());
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int error = errno;
    const std::filesystem::path dir = path.parent_path().empty() ? "." : path.parent_path();
    if (error == ENOENT) fail("cannot write {}: directory {} does not exist", path.string(), dir.string());
    fail("cannot write {}: creating the temporary file {} failed: {}", path.string(), temp_.string(), errno_text(error));
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  if (fd_ < 0) fail("{}: write after commit", path_.string());
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    // Linux transfers at most 0x7ffff000 bytes per call; loop for partial writes and EINTR.
    const ssize_t n = ::write(fd_, p, size < (size_t{1} << 30) ? size : (size_t{1} << 30));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write {} (after {} bytes): {}", path_.string(), written_, errno_text(errno));
    }
    p += n;
    size -= static_cast<size_t>(n);
    written_ += static_cast<uint64_t>(n);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) fail("{}: committed twice", path_.string());
  if (::fsync(fd_) != 0) fail("cannot flush {} to disk: {}", path_.string(), errno_text(errno));
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) fail("cannot close {}: {}", path_.string(), errno_text(errno));
  // rename() replaces the directory entry; a reader that still maps the old file keeps the old
  // inode, so overwriting a model that is open elsewhere cannot SIGBUS it (torchtune#1018).
  if (::rename(temp_.c_str(), path_.c_str()) != 0)
    fail("cannot rename {} to {}: {}", temp_.string(), path_.string(), errno_text(errno));
  committed_ = true;
  fsync_directory(path_.parent_path(), path_);
}

void write_file_atomic(const std::filesystem::path& path, std::string_view contents) {
  AtomicFile file(path);
  file.write(contents);
  file.commit();
}

}  // namespace gptrain::io
