// Named data sets: the table's sizes and sha256 against the copies in the data dir, downloads on a
// miss from a local HTTP server (plain files, a mirror after a failing URL, the SMS zip, corrupt
// content), the zip reader, and the offline errors that say which file to put where.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "data/data_dir.h"
#include "data/datasets.h"
#include "data/zip_file.h"
#include "net/sha256.h"
#include "tests/common/temp_dir.h"
#include "tests/net/http_test_server.h"
#include "util/error.h"

namespace gptrain::data {
namespace {

namespace fs = std::filesystem;
using testing_util::HttpTestServer;
using testing_util::Route;
using testing_util::TempDir;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

template <class F>
std::string expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const std::string& p : parts) EXPECT_NE(message.find(p), std::string::npos) << "missing '" << p << "' in: " << message;
    return message;
  }
  ADD_FAILURE() << "no error thrown";
  return "";
}

void put_u16(std::string& s, uint32_t v) {
  s += static_cast<char>(v & 0xff);
  s += static_cast<char>((v >> 8) & 0xff);
}
void put_u32(std::string& s, uint32_t v) {
  put_u16(s, v & 0xffff);
  put_u16(s, v >> 16);
}

// A zip archive of (name, bytes, deflate?) members, as Info-ZIP writes them (no data descriptors).
std::string make_zip(const std::vector<std::tuple<std::string, std::string, bool>>& members) {
  std::string out, central;
  for (const auto& [name, bytes, compress] : members) {
    std::string data = bytes;
    if (compress) {
      z_stream z{};
      deflateInit2(&z, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
      data.resize(deflateBound(&z, static_cast<uLong>(bytes.size())));
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
      z.avail_in = static_cast<uInt>(bytes.size());
      z.next_out = reinterpret_cast<Bytef*>(data.data());
      z.avail_out = static_cast<uInt>(data.size());
      EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
      data.resize(z.total_out);
      deflateEnd(&z);
    }
    const auto crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
    const auto offset = static_cast<uint32_t>(out.size());
    std::string common;
    put_u16(common, 20);               // version needed
    put_u16(common, 0);                // flags
    put_u16(common, compress ? 8 : 0);  // method
    put_u32(common, 0);                // time, date
    put_u32(common, crc);
    put_u32(common, static_cast<uint32_t>(data.size()));
    put_u32(common, static_cast<uint32_t>(bytes.size()));
    put_u16(common, static_cast<uint32_t>(name.size()));
    put_u16(common, 0);  // extra length
    put_u32(out, 0x04034b50);
    out += common + name + data;
    put_u32(central, 0x02014b50);
    put_u16(central, 20);  // version made by
    central += common;
    put_u16(central, 0);  // comment length
    put_u16(central, 0);  // disk
    put_u16(central, 0);  // internal attributes
    put_u32(central, 0);  // external attributes
    put_u32(central, offset);
    central += name;
  }
  const auto central_offset = static_cast<uint32_t>(out.size());
  out += central;
  put_u32(out, 0x06054b50);
  put_u16(out, 0);
  put_u16(out, 0);
  put_u16(out, static_cast<uint32_t>(members.size()));
  put_u16(out, static_cast<uint32_t>(members.size()));
  put_u32(out, static_cast<uint32_t>(central.size()));
  put_u32(out, central_offset);
  put_u16(out, 0);
  return out;
}

net::DownloadOptions fast() {
  net::DownloadOptions o;
  o.retry_delay_s = 0;
  o.max_attempts = 2;
  return o;
}

// Keeps tests that must not download from touching the network, whatever the machine has.
struct Offline {
  Offline() { ::setenv("GPTRAIN_OFFLINE", "1", 1); }
  ~Offline() { ::unsetenv("GPTRAIN_OFFLINE"); }
};

TEST(NamedDataFiles, sizes_and_sha256_match_the_copies_in_the_data_dir) {
  const char* env = std::getenv("GPTRAIN_TEST_DATA_DIR");
  if (!env || !fs::is_directory(env)) GTEST_SKIP() << "GPTRAIN_TEST_DATA_DIR not set (CTest sets it to ../shared/data)";
  for (const DataFileSource& f : named_data_files()) {
    const fs::path path = fs::path(env) / f.relative;
    if (!fs::exists(path)) {
      ADD_FAILURE() << path << " missing";
      continue;
    }
    EXPECT_EQ(fs::file_size(path), f.size) << f.relative;
    EXPECT_EQ(net::sha256_file(path), f.sha256) << f.relative;
    EXPECT_FALSE(f.urls.empty());
  }
  EXPECT_NE(find_named_data_file("gpt2_tokenizer/vocab.bpe"), nullptr);
  EXPECT_NE(find_named_data_file("./the-verdict.txt"), nullptr);
  EXPECT_EQ(find_named_data_file("corpus/tinyshakespeare.txt"), nullptr);
}

TEST(FetchDataFile, downloads_checks_and_places_a_file) {
  HttpTestServer server;
  const std::string text = "I HAD always thought Jack Gisburn rather a cheap genius--\n";
  server.set("/the-verdict.txt", Route::file(text).drop(1, 10));
  TempDir dir;
  const DataFileSource source{"the-verdict.txt", "a text", {server.url("/the-verdict.txt")}, "", text.size(),
                              net::sha256_hex(text)};
  EXPECT_EQ(fetch_data_file(dir.path(), source, fast()), dir / "the-verdict.txt");
  EXPECT_EQ(read_file(dir / "the-verdict.txt"), text);
}

TEST(FetchDataFile, tries_the_mirror_after_a_failing_url_and_creates_directories) {
  HttpTestServer server;
  const std::string merges = "#version: 0.2\nĠ t\n";
  server.set("/mirror/vocab.bpe", Route::file(merges));
  TempDir dir;
  const DataFileSource source{"gpt2_tokenizer/vocab.bpe", "merges",
                              {server.url("/gone/vocab.bpe"), server.url("/mirror/vocab.bpe")}, "", merges.size(),
                              net::sha256_hex(merges)};
  fetch_data_file(dir.path(), source, fast());
  EXPECT_EQ(read_file(dir / "gpt2_tokenizer" / "vocab.bpe"), merges);
}

TEST(FetchDataFile, wrong_content_is_an_error_naming_every_url) {
  HttpTestServer server;
  server.set("/a.txt", Route::file("not the book"));
  TempDir dir;
  const DataFileSource source{"a.txt", "the text", {server.url("/a.txt"), "http://127.0.0.1:1/a.txt"}, "", 12,
                              net::sha256_hex("the real text")};
  expect_error([&] { fetch_data_file(dir.path(), source, fast()); },
               {"could not download the text", server.url("/a.txt"), "sha256", "http://127.0.0.1:1/a.txt"});
  EXPECT_FALSE(fs::exists(dir / "a.txt"));
  EXPECT_FALSE(fs::exists(dir / "a.txt.part"));
}

TEST(FetchDataFile, extracts_and_checks_a_zip_member) {
  HttpTestServer server;
  std::string sms;
  for (int i = 0; i < 200; ++i) sms += (i % 7 ? "ham\tOk lar... Joking wif u oni...\n" : "spam\tWINNER!! Claim now\n");
  server.set("/sms.zip", Route::file(make_zip({{"readme", "about the data", false}, {"SMSSpamCollection", sms, true}})));
  TempDir dir;
  const DataFileSource source{"sms_spam/SMSSpamCollection", "SMS", {server.url("/sms.zip")}, "SMSSpamCollection",
                              sms.size(), net::sha256_hex(sms)};
  fetch_data_file(dir.path(), source, fast());
  EXPECT_EQ(read_file(dir / "sms_spam" / "SMSSpamCollection"), sms);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir / "sms_spam"), fs::directory_iterator()), 1);  // zip removed
  // A zip whose member differs from the expected file (same size, other bytes).
  std::string altered = sms;
  altered[5] = 'X';
  server.set("/other.zip", Route::file(make_zip({{"SMSSpamCollection", altered, true}})));
  const DataFileSource other{"sms2/SMSSpamCollection", "SMS", {server.url("/other.zip")}, "SMSSpamCollection",
                             sms.size(), net::sha256_hex(sms)};
  expect_error([&] { fetch_data_file(dir.path(), other, fast()); }, {"SMSSpamCollection", "sha256", "expected"});
  EXPECT_FALSE(fs::exists(dir / "sms2" / "SMSSpamCollection"));
  // F7: a member of another size is refused by the directory's size, before it is inflated.
  server.set("/short.zip", Route::file(make_zip({{"SMSSpamCollection", "ham\thi\n", true}})));
  const DataFileSource short_member{"sms3/SMSSpamCollection", "SMS", {server.url("/short.zip")}, "SMSSpamCollection",
                                    sms.size(), net::sha256_hex(sms)};
  expect_error([&] { fetch_data_file(dir.path(), short_member, fast()); },
               {"SMSSpamCollection has 7 bytes by the archive's directory, expected " + std::to_string(sms.size())});
  // F7: the archive's own size is unknown, but bounded: one far larger than its member is not kept.
  server.set("/huge.zip", Route::file(std::string(2 * sms.size() + (1u << 20) + 1, 'z')));
  const DataFileSource huge{"sms4/SMSSpamCollection", "SMS", {server.url("/huge.zip")}, "SMSSpamCollection",
                            sms.size(), net::sha256_hex(sms)};
  expect_error([&] { fetch_data_file(dir.path(), huge, fast()); }, {"larger than the", "bytes expected"});
  EXPECT_FALSE(fs::exists(dir / "sms4"/ "SMSSpamCollection.download.zip.part"));
  EXPECT_FALSE(fs::exists(dir / "sms4"/ "SMSSpamCollection.download.zip"));
}

TEST(ZipFile, stored_and_deflated_members_and_damage) {
  TempDir dir;
  const std::string big(100000, 'x');
  std::string zip = make_zip({{"a.txt", "alpha", false}, {"dir/b.txt", big, true}});
  std::ofstream(dir / "t.zip", std::ios::binary) << zip;
  EXPECT_EQ(zip_member_names(dir / "t.zip"), (std::vector<std::string>{"a.txt", "dir/b.txt"}));
  EXPECT_EQ(read_zip_member(dir / "t.zip", "a.txt"), "alpha");
  EXPECT_EQ(read_zip_member(dir / "t.zip", "b.txt"), big);  // by its last path component
  expect_error([&] { read_zip_member(dir / "t.zip", "c.txt"); }, {"no member named c.txt", "a.txt, dir/b.txt"});
  // Flip a byte of the stored member: the CRC catches it.
  zip[30 + 5 + 2] ^= 1;
  std::ofstream(dir / "bad.zip", std::ios::binary) << zip;
  expect_error([&] { read_zip_member(dir / "bad.zip", "a.txt"); }, {"bad.zip", "CRC-32"});
  std::ofstream(dir / "not.zip", std::ios::binary) << "this is no zip archive at all, just text";
  expect_error([&] { read_zip_member(dir / "not.zip", "a.txt"); }, {"not.zip", "not a zip archive"});
}

// F7: the directory's sizes are unverified; a few hundred bytes claiming 4 GiB are refused before
// anything is allocated (deflate expands 1032-fold at most; a stored member is its compressed size).
TEST(ZipFile, sizes_the_archive_cannot_hold_are_refused_before_allocating) {
  TempDir dir;
  for (const bool deflated : {true, false}) {
    std::string zip = make_zip({{"a.txt", "alpha alpha alpha", deflated}});
    const size_t central = zip.find("PK\x01\x02");
    ASSERT_NE(central, std::string::npos);
    for (int i = 0; i < 4; ++i) zip[central + 24 + i] = static_cast<char>(i == 0 ? 0xf0 : 0xff);  // 4 GiB - 16
    std::ofstream(dir / "big.zip", std::ios::binary) << zip;
    expect_error([&] { read_zip_member(dir / "big.zip", "a.txt"); },
                 {"big.zip", "4294967280", deflated ? "more than deflate can produce" : "is stored with 17 bytes"});
    expect_error([&] { read_zip_member(dir / "big.zip", "a.txt", 17); },
                 {"big.zip", "a.txt has 4294967280 bytes by the archive's directory, expected 17"});
  }
}

TEST(EnsureDataFile, present_files_need_no_network_and_unknown_files_say_where_to_put_them) {
  Offline offline;
  TempDir dir;
  std::ofstream(dir / "the-verdict.txt") << "local copy";
  EXPECT_EQ(ensure_data_file(dir.path(), "the-verdict.txt"), dir / "the-verdict.txt");
  expect_error([&] { ensure_data_file(dir.path(), "my/own.txt", "my text"); },
               {"my text not found", (dir / "my/own.txt").string(), "--data-dir"});
}

TEST(EnsureDataFile, offline_miss_names_the_file_and_the_url) {
  Offline offline;
  TempDir dir;
  expect_error([&] { ensure_data_file(dir.path(), "gpt2_tokenizer/encoder.json"); },
               {(dir / "gpt2_tokenizer/encoder.json").string(),
                "https://openaipublic.blob.core.windows.net/gpt-2/models/124M/encoder.json", "GPTRAIN_OFFLINE"});
  expect_error([&] { require_data_file(dir.path(), "sms_spam/SMSSpamCollection", "the SMS data"); },
               {"the SMS data not found", "sms+spam+collection.zip", "extract SMSSpamCollection"});
  expect_error([&] { gpt2_tokenizer_dir(dir.path()); }, {"encoder.json"});
  EXPECT_FALSE(fs::exists(dir / "gpt2_tokenizer" / "encoder.json"));
}

}  // namespace
}  // namespace gptrain::data
