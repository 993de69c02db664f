#include "data/zip_file.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>

#include "util/error.h"

namespace gptrain::data {

namespace {

constexpr uint32_t kLocalHeader = 0x04034b50, kCentralHeader = 0x02014b50, kEndOfCentralDir = 0x06054b50;
constexpr uint64_t kMaxArchive = uint64_t(1) << 31;  // zip without zip64 tops out at 4 GiB anyway

struct Member {
  std::string name;
  uint16_t method = 0, flags = 0;
  uint32_t crc = 0;
  uint64_t compressed = 0, size = 0, local_offset = 0;
};

struct Archive {
  std::string path;
  std::string bytes;
  std::vector<Member> members;

  uint32_t u32(uint64_t at) const {
    if (at + 4 > bytes.size()) fail("{}: truncated zip archive (reading byte {})", path, at);
    uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(bytes[at + static_cast<uint64_t>(i)]);
    return v;
  }
  uint16_t u16(uint64_t at) const {
    if (at + 2 > bytes.size()) fail("{}: truncated zip archive (reading byte {})", path, at);
    return static_cast<uint16_t>(static_cast<uint8_t>(bytes[at]) | static_cast<uint8_t>(bytes[at + 1]) << 8);
  }
};

Archive open_archive(const std::filesystem::path& zip) {
  Archive a;
  a.path = zip.string();
  std::error_code ec;
  const auto size = std::filesystem::file_size(zip, ec);
  if (ec) fail("cannot open the zip archive {}: {}", a.path, ec.message());
  if (size > kMaxArchive) fail("{}: {} bytes is more than this zip reader handles (2 GiB)", a.path, size);
  std::ifstream in(zip, std::ios::binary);
  a.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (a.bytes.size() != size) fail("cannot read the zip archive {}", a.path);
  // The end-of-central-directory record sits in the last 22 + 65535 (comment) bytes.
  if (a.bytes.size() < 22) fail("{}: not a zip archive (too short)", a.path);
  int64_t eocd = -1;
  const int64_t lowest = std::max<int64_t>(0, static_cast<int64_t>(a.bytes.size()) - 22 - 65535);
  for (int64_t at = static_cast<int64_t>(a.bytes.size()) - 22; at >= lowest; --at)
    if (a.u32(static_cast<uint64_t>(at)) == kEndOfCentralDir) {
      eocd = at;
      break;
    }
  if (eocd < 0) fail("{}: not a zip archive (no end-of-central-directory record)", a.path);
  const uint64_t e = static_cast<uint64_t>(eocd);
  const uint16_t count = a.u16(e + 10);
  uint64_t at = a.u32(e + 16);
  if (count == 0xffff || at == 0xffffffff) fail("{}: zip64 archives are not supported", a.path);
  for (uint16_t i = 0; i < count; ++i) {
    if (a.u32(at) != kCentralHeader) fail("{}: corrupt central directory (entry {})", a.path, i);
    Member m;
    m.flags = a.u16(at + 8);
    m.method = a.u16(at + 10);
    m.crc = a.u32(at + 16);
    m.compressed = a.u32(at + 20);
    m.size = a.u32(at + 24);
    const uint16_t name_len = a.u16(at + 28), extra_len = a.u16(at + 30), comment_len = a.u16(at + 32);
    m.local_offset = a.u32(at + 42);
    if (at + 46 + name_len > a.bytes.size()) fail("{}: corrupt central directory (entry {})", a.path, i);
    m.name = a.bytes.substr(at + 46, name_len);
    a.members.push_back(m);
    at += 46u + name_len + extra_len + comment_len;
  }
  return a;
}

}  // namespace

std::vector<std::string> zip_member_names(const std::filesystem::path& zip) {
  std::vector<std::string> names;
  for (const Member& m : open_archive(zip).members) names.push_back(m.name);
  return names;
}

std::string read_zip_member(const std::filesystem::path& zip, const std::string& name,
                            std::optional<uint64_t> expected_size) {
  const Archive a = open_archive(zip);
  const Member* found = nullptr;
  for (const Member& m : a.members)
    if (m.name == name) found = &m;
  if (!found)
    for (const Member& m : a.members)
      if (m.name.size() > name.size() && m.name.compare(m.name.size() - name.size(), name.size(), name) == 0 &&
          m.name[m.name.size() - name.size() - 1] == '/')
        found = &m;
  if (!found) {
    std::string names;
    for (const Member& m : a.members) names += (names.empty() ? "" : ", ") + m.name;
    fail("{}: no member named {} (the archive holds: {})", a.path, name, names);
  }
  const Member& m = *found;
  if (m.flags & 1) fail("{}: {} is encrypted", a.path, m.name);
  if (a.u32(m.local_offset) != kLocalHeader) fail("{}: corrupt local header of {}", a.path, m.name);
  const uint64_t data = m.local_offset + 30 + a.u16(m.local_offset + 26) + a.u16(m.local_offset + 28);
  if (data + m.compressed > a.bytes.size()) fail("{}: {} runs past the end of the archive", a.path, m.name);
  if (expected_size && m.size != *expected_size)
    fail("{}: {} has {} bytes by the archive's directory, expected {}", a.path, m.name, m.size, *expected_size);
  // Deflate's densest code (258-byte matches in 2 bits) expands 1032-fold at most.
  constexpr uint64_t kMaxDeflateRatio = 1032;
  if (m.method == 8 && m.size > (static_cast<uint64_t>(m.compressed) + 1) * kMaxDeflateRatio)
    fail("{}: {} claims {} bytes from {} compressed, more than deflate can produce; the archive is corrupt", a.path,
         m.name, m.size, m.compressed);
  if (m.method == 0 && m.size != m.compressed)
    fail("{}: {} is stored with {} bytes, the directory says {}; the archive is corrupt", a.path, m.name,
         m.compressed, m.size);
  std::string out;
  if (m.method == 0) {
    out = a.bytes.substr(data, m.compressed);
  } else if (m.method == 8) {
    out.resize(m.size);
    z_stream z{};
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) fail("zlib: inflateInit2 failed");
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(a.bytes.data() + data));
    z.avail_in = static_cast<uInt>(m.compressed);
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    const int rc = inflate(&z, Z_FINISH);
    const uint64_t produced = z.total_out;
    const std::string why = z.msg ? z.msg : "code " + std::to_string(rc);
    inflateEnd(&z);
    if (rc != Z_STREAM_END || produced != m.size)
      fail("{}: {} does not inflate to its recorded {} bytes (zlib: {}); the archive is corrupt", a.path, m.name,
           m.size, why);
  } else {
    fail("{}: {} uses compression method {}; only stored (0) and deflate (8) are supported", a.path, m.name, m.method);
  }
  if (out.size() != m.size) fail("{}: {} has {} bytes, the directory says {}", a.path, m.name, out.size(), m.size);
  const uint32_t crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(out.data()), static_cast<uInt>(out.size())));
  if (crc != m.crc) fail("{}: {} fails its CRC-32 check (0x{:08x}, expected 0x{:08x}); the archive is corrupt", a.path, m.name, crc, m.crc);
  return out;
}

}  // namespace gptrain::data
