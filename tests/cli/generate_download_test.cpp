// `gptrain generate` and `gptrain download` end to end, running the binary:
//  - generate: greedy with the KV cache equals generation without it, token for token, also
//    after the window slides past the context; the streamed text is the decoded ids; seeded
//    sampling is reproducible; the tokenizer comes from the model dir or the data dir; errors.
//  - download: from a local server laid out like the Hub (a redirect with X-Linked-Etag and
//    X-Linked-Size for model.safetensors), with a dropped connection and a corrupted transfer,
//    then a second run that finds everything present, and the errors for corrupt data and 404s.
// Needs the GPT-2 vocabulary in $GPTRAIN_TEST_DATA_DIR for the generate tests (skipped without).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include "model/transformer.h"
#include "model/model_dir.h"
#include "net/sha256.h"
#include "tests/common/temp_dir.h"
#include "tests/net/http_test_server.h"
#include "tokenizer/bpe.h"

namespace gptrain {
namespace {

namespace fs = std::filesystem;
using testing_util::HttpTestServer;
using testing_util::Route;
using testing_util::TempDir;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

struct Result {
  int rc = -1;
  std::string out, err;
};

// Runs `gptrain <args>` with `env` assignments in front; stdout and stderr captured.
Result gptrain(const TempDir& dir, const std::string& args, const std::string& env = "") {
  const std::string binary = std::string(GPTRAIN_BINARY_DIR) + "/gptrain";
  const fs::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string command = env + " '" + binary + "' " + args + " > '" + out.string() + "' 2> '" + err.string() + "'";
  const int status = std::system(command.c_str());
  Result r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

fs::path vocabulary_dir() {
  const char* data = std::getenv("GPTRAIN_TEST_DATA_DIR");
  if (!data) return {};
  const fs::path dir = fs::path(data) / "gpt2_tokenizer";
  return fs::exists(dir / "encoder.json") && fs::exists(dir / "vocab.bpe") ? dir : fs::path();
}

// A small random GPT-2 over the real vocabulary with a 16-token context, so that generation
// slides its window after a few tokens.
void write_tiny_model(const fs::path& dir, bool with_vocabulary) {
  ModelConfig c;
  c.vocab_size = 50257;
  c.context_length = 16;
  c.emb_dim = 16;
  c.n_heads = 2;
  c.n_layers = 2;
  c.qkv_bias = true;
  c.tie_weights = true;
  Transformer model(c, 42);
  save_model_dir(model, dir);
  if (with_vocabulary) {
    fs::copy_file(vocabulary_dir() / "encoder.json", dir / "vocab.json");
    fs::copy_file(vocabulary_dir() / "vocab.bpe", dir / "merges.txt");
  }
}

std::string ids_line(const std::string& err) {
  const size_t at = err.find("generated ids: ");
  if (at == std::string::npos) return "";
  return err.substr(at + 15, err.find('\n', at) - at - 15);
}

std::vector<int32_t> parse_ids(const std::string& line) {
  std::vector<int32_t> ids;
  std::istringstream in(line);
  for (int32_t id; in >> id;) ids.push_back(id);
  return ids;
}

class GenerateCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (vocabulary_dir().empty()) GTEST_SKIP() << "no GPT-2 vocabulary in $GPTRAIN_TEST_DATA_DIR/gpt2_tokenizer";
    write_tiny_model(dir_ / "model", true);
  }
  std::string model() const { return (dir_ / "model").string(); }
  TempDir dir_;
};

TEST_F(GenerateCli, greedy_with_kv_cache_equals_without_it_past_the_context) {
  const std::string args = "generate --model " + model() +
                           " --prompt 'Every effort moves you' --max-new-tokens 40 --ignore-eos --threads 1 --print-ids";
  const Result cached = gptrain(dir_, args), full = gptrain(dir_, args + " --no-kv-cache");
  ASSERT_EQ(cached.rc, 0) << cached.err;
  ASSERT_EQ(full.rc, 0) << full.err;
  const std::vector<int32_t> ids = parse_ids(ids_line(cached.err));
  EXPECT_EQ(ids.size(), 40u);  // 4 prompt tokens + 40 > context 16: the window slid
  EXPECT_EQ(ids_line(cached.err), ids_line(full.err));
  EXPECT_EQ(cached.out, full.out);
  // The streamed text is the prompt and the decoded ids.
  const Tokenizer tok = Tokenizer::from_dir(vocabulary_dir());
  EXPECT_EQ(cached.out, "Every effort moves you" + utf8_lossy(tok.decode(ids)) + "\n");
  EXPECT_NE(cached.err.find("4 prompt tokens, 40 new tokens in"), std::string::npos) << cached.err;
  EXPECT_NE(cached.err.find("tokens/s"), std::string::npos);
  EXPECT_NE(full.err.find("kv cache off"), std::string::npos);
}

TEST_F(GenerateCli, seeded_sampling_is_reproducible) {
  const std::string args = "generate --model " + model() +
                           " --prompt 'Hello' --max-new-tokens 12 --ignore-eos --threads 1 --print-ids --no-echo "
                           "--temperature 1.2 --top-k 50 --top-p 0.95";
  const Result a = gptrain(dir_, args + " --seed 7"), b = gptrain(dir_, args + " --seed 7 --no-kv-cache"),
               c = gptrain(dir_, args + " --seed 8");
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_EQ(ids_line(a.err), ids_line(b.err));
  EXPECT_NE(ids_line(a.err), ids_line(c.err));
  const Tokenizer tok = Tokenizer::from_dir(vocabulary_dir());
  EXPECT_EQ(a.out, utf8_lossy(tok.decode(parse_ids(ids_line(a.err)))) + "\n");  // --no-echo: no prompt
}

TEST_F(GenerateCli, tokenizer_from_the_data_dir_when_the_model_dir_has_none) {
  write_tiny_model(dir_ / "bare", false);
  const std::string args = "generate --model " + (dir_ / "bare").string() + " --prompt 'Hi' --max-new-tokens 3 --threads 1";
  const Result ok = gptrain(dir_, args + " --data-dir " + vocabulary_dir().parent_path().string());
  EXPECT_EQ(ok.rc, 0) << ok.err;
  fs::create_directories(dir_ / "empty_data");
  const Result missing = gptrain(dir_, args + " --data-dir " + (dir_ / "empty_data").string(), "GPTRAIN_OFFLINE=1");
  EXPECT_EQ(missing.rc, 1);
  EXPECT_NE(missing.err.find((dir_ / "empty_data" / "gpt2_tokenizer" / "encoder.json").string()), std::string::npos)
      << missing.err;
  EXPECT_NE(missing.err.find("https://openaipublic.blob.core.windows.net/gpt-2/models/124M/encoder.json"),
            std::string::npos);
}

TEST_F(GenerateCli, errors) {
  Result r = gptrain(dir_, "generate --model " + (dir_ / "nothing").string() + " --prompt x");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("not a directory"), std::string::npos) << r.err;
  r = gptrain(dir_, "generate --model " + model() + " --prompt x --top-p 0");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("--top-p"), std::string::npos) << r.err;
  r = gptrain(dir_, "generate --model " + model() + " --prompt x --top-p 1.5");
  EXPECT_NE(r.rc, 0);
  r = gptrain(dir_, "generate --model " + model());
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("--prompt"), std::string::npos) << r.err;
}

// The Hub's layout for openai-community/gpt2, serving a tiny model.
struct FakeHub {
  HttpTestServer server;
  TempDir files;
  explicit FakeHub(Route weights_route) {
    ModelConfig c;
    c.vocab_size = 50257;
    c.context_length = 16;
    c.emb_dim = 8;
    c.n_heads = 2;
    c.n_layers = 1;
    c.qkv_bias = true;
    c.tie_weights = true;
    Transformer model(c, 1);
    save_model_dir(model, files.path());
    const std::string p = "/openai-community/gpt2/resolve/main/";
    const fs::path vocab = vocabulary_dir();
    const std::string vocab_json = vocab.empty() ? "{}" : read_file(vocab / "encoder.json");
    const std::string merges = vocab.empty() ? "#version: 0.2\n" : read_file(vocab / "vocab.bpe");
    server.set(p + "config.json", Route::file(read_file(files / "config.json")).header("ETag", "\"0123456789abcdef0123456789abcdef01234567\""));
    server.set(p + "vocab.json", Route::file(vocab_json));
    server.set(p + "merges.txt", Route::file(merges));
    weights = read_file(files / "model.safetensors");
    server.set(p + "model.safetensors", Route::redirect("/lfs/model")
                                            .header("X-Linked-Size", std::to_string(weights.size()))
                                            .header("X-Linked-Etag", "\"" + net::sha256_hex(weights) + "\""));
    weights_route.body = weights;
    server.set("/lfs/model", weights_route);
  }
  std::string weights;
};

TEST(DownloadCli, resumes_after_a_dropped_connection_and_refetches_a_corrupt_file) {
  FakeHub hub(Route().drop(1, 100000).corrupt(1));
  TempDir dir;
  const std::string args = "download gpt2 --dir " + (dir / "gpt2").string() + " --endpoint " + hub.server.base() +
                           " --retry-delay 0";
  Result r = gptrain(dir, args);
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_EQ(read_file(dir / "gpt2" / "model.safetensors"), hub.weights);
  for (const char* f : {"config.json", "vocab.json", "merges.txt"}) EXPECT_TRUE(fs::exists(dir / "gpt2" / f)) << f;
  EXPECT_NE(r.out.find("resumed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("restarted after a corrupt download"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("size and sha256"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("corrupt"), std::string::npos) << r.err;
  // Everything present: nothing is fetched again.
  const int gets = hub.server.count("GET", "/lfs/model");
  r = gptrain(dir, args);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(hub.server.count("GET", "/lfs/model"), gets);
  size_t present = 0;
  for (size_t at = 0; (at = r.out.find("already present", at)) != std::string::npos; ++at) ++present;
  EXPECT_EQ(present, 4u) << r.out;
  // The result is a model dir.
  if (!vocabulary_dir().empty()) {
    r = gptrain(dir, "generate --model " + (dir / "gpt2").string() + " --prompt 'Every effort' --max-new-tokens 3 --threads 1");
    EXPECT_EQ(r.rc, 0) << r.err;
  }
}

TEST(DownloadCli, corrupt_data_and_missing_repositories_are_errors) {
  FakeHub hub(Route().corrupt(100));
  TempDir dir;
  Result r = gptrain(dir, "download gpt2-small --dir " + (dir / "m").string() + " --endpoint " + hub.server.base() +
                              " --retry-delay 0");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("sha256"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "m" / "model.safetensors"));
  r = gptrain(dir, "download gpt2-medium --dir " + (dir / "x").string() + " --endpoint " + hub.server.base());
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("HTTP 404"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("openai-community/gpt2-medium/resolve/main/config.json"), std::string::npos) << r.err;
  r = gptrain(dir, "download gpt3 --endpoint " + hub.server.base());
  EXPECT_NE(r.rc, 0);
}

}  // namespace
}  // namespace gptrain
