// Downloads against a local HTTP server (tests/net/http_test_server.h): verification by size and
// sha256, resuming after dropped connections and from a .part left by an earlier run, corrupted
// bytes, servers that ignore Range, retries on 503, errors that name the URL, and the Hub's
// redirect + X-Linked-Etag convention.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "net/download.h"
#include "net/hub.h"
#include "net/sha256.h"
#include "tests/common/temp_dir.h"
#include "tests/net/http_test_server.h"
#include "util/error.h"

namespace gptrain::net {
namespace {

namespace fs = std::filesystem;
using testing_util::HttpTestServer;
using testing_util::Route;
using testing_util::TempDir;

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

DownloadOptions fast() {
  DownloadOptions o;
  o.retry_delay_s = 0;
  o.max_attempts = 5;
  return o;
}

// Runs f, expecting a gptrain::Error whose message contains every one of `parts`.
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

TEST(Sha256, known_vectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  TempDir dir;
  const std::string big = random_bytes(3 << 20, 1);  // several read blocks
  write_file(dir / "f", big);
  EXPECT_EQ(sha256_file(dir / "f"), sha256_hex(big));
  EXPECT_TRUE(is_sha256_hex(sha256_hex("x")));
  EXPECT_FALSE(is_sha256_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4"));  // a git-blob id (40 hex)
}

TEST(Download, verified_file_is_renamed_into_place) {
  HttpTestServer server;
  const std::string body = random_bytes(100000, 2);
  server.set("/f.bin", Route::file(body));
  TempDir dir;
  const auto r = download_file(server.url("/f.bin"), dir / "f.bin", Expected{body.size(), sha256_hex(body)}, fast());
  EXPECT_EQ(read_file(dir / "f.bin"), body);
  EXPECT_FALSE(fs::exists(dir / "f.bin.part"));
  EXPECT_EQ(r.transfers, 1);
  EXPECT_EQ(r.bytes_received, body.size());
  EXPECT_FALSE(r.resumed);
}

TEST(Download, dropped_connections_resume_with_range_requests) {
  HttpTestServer server;
  const std::string body = random_bytes(100000, 3);
  server.set("/f.bin", Route::file(body).drop(2, 30000));
  TempDir dir;
  const auto r = download_file(server.url("/f.bin"), dir / "f.bin", Expected{body.size(), sha256_hex(body)}, fast());
  EXPECT_EQ(read_file(dir / "f.bin"), body);
  EXPECT_EQ(r.transfers, 3);
  EXPECT_TRUE(r.resumed);
  EXPECT_EQ(r.bytes_received, body.size());  // nothing fetched twice
  std::vector<std::string> ranges;
  for (const auto& q : server.requests()) ranges.push_back(q.range);
  EXPECT_EQ(ranges, (std::vector<std::string>{"", "bytes=30000-", "bytes=60000-"}));
}

TEST(Download, resumes_a_part_file_left_by_an_earlier_run) {
  HttpTestServer server;
  const std::string body = random_bytes(50000, 4);
  server.set("/f.bin", Route::file(body));
  TempDir dir;
  write_file(dir / "f.bin.part", body.substr(0, 12345));
  const auto r = download_file(server.url("/f.bin"), dir / "f.bin", Expected{body.size(), sha256_hex(body)}, fast());
  EXPECT_EQ(read_file(dir / "f.bin"), body);
  EXPECT_EQ(r.bytes_received, body.size() - 12345);
  EXPECT_TRUE(r.resumed);
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].range, "bytes=12345-");
}

TEST(Download, a_complete_part_file_needs_no_transfer) {
  HttpTestServer server;
  const std::string body = random_bytes(5000, 5);
  server.set("/f.bin", Route::file(body));
  TempDir dir;
  write_file(dir / "f.bin.part", body);
  const auto r = download_file(server.url("/f.bin"), dir / "f.bin", Expected{body.size(), sha256_hex(body)}, fast());
  EXPECT_EQ(r.transfers, 0);
  EXPECT_EQ(read_file(dir / "f.bin"), body);
  // Without a known size the server's 416 tells that the part is complete.
  write_file(dir / "g.bin.part", body);
  const auto r2 = download_file(server.url("/f.bin"), dir / "g.bin", Expected{std::nullopt, sha256_hex(body)}, fast());
  EXPECT_EQ(r2.transfers, 1);
  EXPECT_EQ(read_file(dir / "g.bin"), body);
}

TEST(Download, without_a_sha256_an_old_part_file_is_not_trusted) {
  HttpTestServer server;
  const std::string body = random_bytes(5000, 15);
  server.set("/small.json", Route::file(body));
  TempDir dir;
  write_file(dir / "small.json.part", random_bytes(2000, 16));  // from another version of the file
  download_file(server.url("/small.json"), dir / "small.json", Expected{body.size(), ""}, fast());
  EXPECT_EQ(read_file(dir / "small.json"), body);
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].range, "");  // started over
  // An empty file is a file too.
  server.set("/empty", Route::file(""));
  download_file(server.url("/empty"), dir / "empty", Expected{0, sha256_hex("")}, fast());
  EXPECT_TRUE(fs::is_regular_file(dir / "empty"));
  EXPECT_EQ(fs::file_size(dir / "empty"), 0u);
}

TEST(Download, corrupt_download_is_deleted_and_fetched_again_once) {
  HttpTestServer server;
  const std::string body = random_bytes(40000, 6);
  server.set("/f.bin", Route::file(body).corrupt(1));
  TempDir dir;
  const auto r = download_file(server.url("/f.bin"), dir / "f.bin", Expected{body.size(), sha256_hex(body)}, fast());
  EXPECT_TRUE(r.restarted);
  EXPECT_EQ(read_file(dir / "f.bin"), body);
}

TEST(Download, corrupt_twice_is_an_error_and_leaves_nothing) {
  HttpTestServer server;
  const std::string body = random_bytes(40000, 7);
  server.set("/f.bin", Route::file(body).corrupt(100));
  TempDir dir;
  expect_error([&] { download_file(server.url("/f.bin"), dir / "f.bin", Expected{body.size(), sha256_hex(body)}, fast()); },
               {"f.bin", "corrupt again", "sha256", sha256_hex(body), server.url("/f.bin")});
  EXPECT_FALSE(fs::exists(dir / "f.bin"));
  EXPECT_FALSE(fs::exists(dir / "f.bin.part"));
}

TEST(Download, corrupted_old_part_file_is_detected_and_replaced) {
  HttpTestServer server;
  const std::string body = random_bytes(40000, 8);
  server.set("/f.bin", Route::file(body));
  TempDir dir;
  write_file(dir / "f.bin.part", random_bytes(10000, 99));  // not a prefix of this file
  const auto r = download_file(server.url("/f.bin"), dir / "f.bin", Expected{body.size(), sha256_hex(body)}, fast());
  EXPECT_TRUE(r.restarted);
  EXPECT_EQ(read_file(dir / "f.bin"), body);
  // A part longer than the file is discarded before any transfer.
  write_file(dir / "g.bin.part", random_bytes(50000, 98));
  download_file(server.url("/f.bin"), dir / "g.bin", Expected{body.size(), sha256_hex(body)}, fast());
  EXPECT_EQ(read_file(dir / "g.bin"), body);
}

TEST(Download, server_ignoring_range_sends_the_whole_file_again) {
  HttpTestServer server;
  const std::string body = random_bytes(30000, 9);
  server.set("/f.bin", Route::file(body).no_ranges().drop(1, 10000));
  TempDir dir;
  const auto r = download_file(server.url("/f.bin"), dir / "f.bin", Expected{body.size(), sha256_hex(body)}, fast());
  EXPECT_EQ(read_file(dir / "f.bin"), body);
  EXPECT_EQ(r.transfers, 2);
  EXPECT_FALSE(r.resumed);
}

TEST(Download, retries_503_and_gives_up_on_404) {
  HttpTestServer server;
  const std::string body = random_bytes(1000, 10);
  server.set("/busy", Route::file(body).fail(2));
  TempDir dir;
  const auto r = download_file(server.url("/busy"), dir / "b", Expected{body.size(), ""}, fast());
  EXPECT_EQ(r.transfers, 3);
  EXPECT_EQ(read_file(dir / "b"), body);
  expect_error([&] { download_file(server.url("/missing"), dir / "m", Expected{}, fast()); },
               {"HTTP 404", server.url("/missing")});
  EXPECT_EQ(server.count("GET", "/missing"), 1);  // not retried
  EXPECT_FALSE(fs::exists(dir / "m"));
}

TEST(Download, exhausted_attempts_keep_the_part_for_the_next_run) {
  HttpTestServer server;
  const std::string body = random_bytes(60000, 11);
  server.set("/f.bin", Route::file(body).drop(3, 10000));
  TempDir dir;
  DownloadOptions o = fast();
  o.max_attempts = 3;
  expect_error([&] { download_file(server.url("/f.bin"), dir / "f.bin", Expected{body.size(), sha256_hex(body)}, o); },
               {"failed 3 times", "run the same command again", "f.bin.part"});
  EXPECT_EQ(fs::file_size(dir / "f.bin.part"), 30000u);
  EXPECT_FALSE(fs::exists(dir / "f.bin"));
  const auto r = download_file(server.url("/f.bin"), dir / "f.bin", Expected{body.size(), sha256_hex(body)}, o);
  EXPECT_EQ(r.bytes_received, 30000u);
  EXPECT_EQ(read_file(dir / "f.bin"), body);
}

TEST(Download, unreachable_server_names_the_url) {
  TempDir dir;
  DownloadOptions o = fast();
  o.max_attempts = 2;
  // Port 1 on the loopback: nothing listens there, the connection is refused at once.
  expect_error([&] { download_file("http://127.0.0.1:1/x.txt", dir / "x.txt", Expected{}, o); },
               {"x.txt", "http://127.0.0.1:1/x.txt"});
}

TEST(Probe, reads_the_hub_headers_through_a_redirect) {
  HttpTestServer server;
  const std::string body = random_bytes(20000, 12);
  const std::string sha = sha256_hex(body);
  server.set("/repo/resolve/main/model.safetensors",
             Route::redirect(server.url("/cdn/blob"))
                 .header("X-Linked-Size", std::to_string(body.size()))
                 .header("X-Linked-Etag", "\"" + sha + "\"")
                 .header("ETag", "W/\"" + sha + "\""));
  server.set("/cdn/blob", Route::file(body).header("ETag", "\"d41d8cd98f00b204e9800998ecf8427e\""));
  const RemoteFile r = probe(server.url("/repo/resolve/main/model.safetensors"), fast());
  EXPECT_EQ(r.sha256, sha);
  EXPECT_EQ(r.size, std::optional<uint64_t>(body.size()));
  EXPECT_EQ(r.final_url, server.url("/cdn/blob"));
  // A small file: a git-blob ETag is no sha256; the size comes from Content-Length.
  server.set("/repo/resolve/main/config.json",
             Route::file("{}").header("ETag", "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4\""));
  const RemoteFile s = probe(server.url("/repo/resolve/main/config.json"), fast());
  EXPECT_EQ(s.sha256, "");
  EXPECT_EQ(s.etag, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4");
  EXPECT_EQ(s.size, std::optional<uint64_t>(2));
  expect_error([&] { probe(server.url("/repo/resolve/main/nothing"), fast()); }, {"HTTP 404"});
}

// The Hub's layout for one repository: small files served directly, the large one by redirect.
struct FakeHub {
  HttpTestServer server;
  std::string config = R"({"n_embd": 8})", vocab = random_bytes(3000, 13), merges = "#version: 0.2\n";
  std::string weights = random_bytes(200000, 14);
  explicit FakeHub(Route weights_route = {}) {
    const std::string p = "/openai-community/gpt2/resolve/main/";
    server.set(p + "config.json", Route::file(config).header("ETag", "\"0123456789abcdef0123456789abcdef01234567\""));
    server.set(p + "vocab.json", Route::file(vocab));
    server.set(p + "merges.txt", Route::file(merges));
    server.set(p + "model.safetensors",
               Route::redirect("/lfs/weights")
                   .header("X-Linked-Size", std::to_string(weights.size()))
                   .header("X-Linked-Etag", "\"" + sha256_hex(weights) + "\""));
    weights_route.body = weights;
    server.set("/lfs/weights", weights_route);
  }
};

TEST(Hub, downloads_verifies_and_skips_files_already_present) {
  FakeHub hub(Route().drop(1, 50000));
  TempDir dir;
  const std::vector<std::string> files = {"config.json", "vocab.json", "merges.txt", "model.safetensors"};
  auto reports = download_hub_files(hub.server.base(), "openai-community/gpt2", "main", files, dir / "gpt2", fast());
  ASSERT_EQ(reports.size(), 4u);
  EXPECT_EQ(reports[0].sha256, "");  // size only
  EXPECT_EQ(reports[3].sha256, sha256_hex(hub.weights));
  EXPECT_TRUE(reports[3].download.resumed);
  EXPECT_EQ(read_file(dir / "gpt2" / "model.safetensors"), hub.weights);
  EXPECT_EQ(read_file(dir / "gpt2" / "config.json"), hub.config);
  // Again: only HEAD requests, nothing downloaded.
  const size_t gets = hub.server.count("GET", "/lfs/weights");
  reports = download_hub_files(hub.server.base(), "openai-community/gpt2", "main", files, dir / "gpt2", fast());
  for (const auto& r : reports) EXPECT_TRUE(r.already_present) << r.name;
  EXPECT_EQ(hub.server.count("GET", "/lfs/weights"), static_cast<int>(gets));
  // A damaged local copy (same size) is replaced.
  std::string damaged = hub.weights;
  damaged[7] ^= 1;
  write_file(dir / "gpt2" / "model.safetensors", damaged);
  reports = download_hub_files(hub.server.base(), "openai-community/gpt2", "main", files, dir / "gpt2", fast());
  EXPECT_FALSE(reports[3].already_present);
  EXPECT_EQ(read_file(dir / "gpt2" / "model.safetensors"), hub.weights);
}

TEST(Hub, corrupted_weights_are_an_error) {
  FakeHub hub(Route().corrupt(100));
  TempDir dir;
  expect_error([&] {
    download_hub_files(hub.server.base(), "openai-community/gpt2", "main", {"config.json", "model.safetensors"},
                       dir / "gpt2", fast());
  }, {"model.safetensors", "sha256"});
  EXPECT_TRUE(fs::exists(dir / "gpt2" / "config.json"));
  EXPECT_FALSE(fs::exists(dir / "gpt2" / "model.safetensors"));
}

TEST(Hub, endpoint_and_urls) {
  EXPECT_EQ(hub_file_url("https://huggingface.co", "openai-community/gpt2", "main", "model.safetensors"),
            "https://huggingface.co/openai-community/gpt2/resolve/main/model.safetensors");
  EXPECT_EQ(hub_endpoint("http://localhost:8080/"), "http://localhost:8080");
  ::setenv("HF_ENDPOINT", "http://mirror.example", 1);
  EXPECT_EQ(hub_endpoint(""), "http://mirror.example");
  ::unsetenv("HF_ENDPOINT");
  EXPECT_EQ(hub_endpoint(""), "https://huggingface.co");
}

TEST(Hub, offline_mode_touches_no_network) {
  HttpTestServer server;
  TempDir dir;
  ::setenv("GPTRAIN_OFFLINE", "1", 1);
  expect_error([&] { download_hub_files(server.base(), "openai-community/gpt2", "main", {"config.json"}, dir / "m", fast()); },
               {"GPTRAIN_OFFLINE", "openai-community/gpt2"});
  ::unsetenv("GPTRAIN_OFFLINE");
  EXPECT_TRUE(server.requests().empty());
}

}  // namespace
}  // namespace gptrain::net
