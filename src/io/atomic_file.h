// Atomic file writes: data goes to a temporary file in the target's directory, which is flushed
// to disk and then renamed over the target, so a reader sees either the old or the new file,
// never a half-written one (a kill, a full disk or a power cut in the middle leaves the old file).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>

namespace gptrain::io {

// Usage: AtomicFile f(path); f.write(...)...; f.commit();
// Destroying it without commit() removes the temporary file and leaves `path` untouched.
class AtomicFile {
 public:
  explicit AtomicFile(const std::filesystem::path& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // fsync the file, rename it over the target, fsync the directory. Without the file fsync a
  // crash after the rename can leave a correctly named file full of zeros; without the
  // directory fsync the rename itself may be lost.
  void commit();

  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& temp_path() const { return temp_; }
  uint64_t bytes_written() const { return written_; }

 private:
  std::filesystem::path path_;
  std::filesystem::path temp_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

// fsync a directory, so that the entries created or renamed in it survive a power cut. Errors name
// the directory (file systems that cannot sync directories, EINVAL/EROFS, are not errors).
void sync_directory(const std::filesystem::path& dir);

// Writes a whole text (JSON, a marker file) atomically.
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

}  // namespace gptrain::io
