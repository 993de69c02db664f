// `gptrain chat` in a pseudo-terminal, driven as a user would: wait for the prompt, type a line,
// read the streamed answer up to the next prompt, type a second line (the first turn stays in the
// context), then Ctrl-D (end of input at the start of a line) and expect a clean exit; Ctrl-C at
// the prompt leaves too. The model is a tiny random GPT-2 with the real vocabulary, written as a
// model dir here (needs $GPTRAIN_TEST_DATA_DIR for the vocabulary).
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "model/transformer.h"
#include "model/model_dir.h"
#include "tests/common/temp_dir.h"

namespace gptrain {
namespace {

namespace fs = std::filesystem;

class Pty {
 public:
  explicit Pty(const std::vector<std::string>& argv) {
    struct winsize ws {};
    ws.ws_col = 200;
    ws.ws_row = 50;
    pid_ = ::forkpty(&fd_, nullptr, nullptr, &ws);
    if (pid_ == 0) {
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::setenv("OMP_NUM_THREADS", "1", 1);
      ::execv(args[0], args.data());
      std::perror("execv");
      ::_exit(127);
    }
  }
  ~Pty() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) ::close(fd_);
  }
  bool started() const { return pid_ > 0; }

  // Reads until `text` appears in what was read since the last call (true), or the timeout, or the
  // end of output (false). Returns everything read in `out`.
  bool read_until(const std::string& text, std::string& out, double timeout_s = 60) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    out.clear();
    while (out.find(text) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      struct pollfd p {fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      char buf[4096];
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) return false;  // EIO: the child closed the terminal
      out.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  void type(const std::string& text) { ASSERT_EQ(::write(fd_, text.data(), text.size()), static_cast<ssize_t>(text.size())); }
  // Drains the output to the end and returns the exit status.
  int wait_exit(std::string& rest, double timeout_s = 30) {
    read_until("\x01\x02(never printed)", rest, timeout_s);
    int status = 0;
    for (int i = 0; i < 300; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        return status;
      }
      ::usleep(100000);
    }
    return -1;
  }

 private:
  int fd_ = -1;
  pid_t pid_ = -1;
  bool reaped_ = false;
};

class ChatPty : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* d = std::getenv("GPTRAIN_TEST_DATA_DIR");
    if (!d || !fs::exists(fs::path(d) / "gpt2_tokenizer" / "encoder.json"))
      GTEST_SKIP() << "gpt2_tokenizer/ not found: set GPTRAIN_TEST_DATA_DIR";
    ModelConfig c;
    c.context_length = 128;
    c.emb_dim = 16;
    c.n_heads = 2;
    c.n_layers = 1;
    c.drop_rate = 0;
    Transformer model(c, 7);
    model_dir_ = dir_ / "model";
    save_model_dir(model, model_dir_);
    fs::copy_file(fs::path(d) / "gpt2_tokenizer" / "encoder.json", model_dir_ / "vocab.json");
    fs::copy_file(fs::path(d) / "gpt2_tokenizer" / "vocab.bpe", model_dir_ / "merges.txt");
  }
  std::vector<std::string> command() const {
    return {std::string(GPTRAIN_BINARY_DIR) + "/gptrain", "chat", "--model", model_dir_.string(),
            "--max-new-tokens", "6", "--threads", "1"};
  }
  testing_util::TempDir dir_;
  fs::path model_dir_;
};

TEST_F(ChatPty, answers_two_turns_and_leaves_on_ctrl_d) {
  Pty pty(command());
  ASSERT_TRUE(pty.started());
  std::string out;
  ASSERT_TRUE(pty.read_until(">>> ", out)) << "no prompt; output: " << out;
  EXPECT_NE(out.find("Ctrl-D leaves"), std::string::npos) << out;
  pty.type("What is the capital of Italy?\n");
  ASSERT_TRUE(pty.read_until(">>> ", out)) << "no answer and prompt; output: " << out;
  // the terminal echoes the line; the answer follows on its own line, then the next prompt
  const size_t echo = out.find("What is the capital of Italy?");
  ASSERT_NE(echo, std::string::npos) << out;
  const std::string answer = out.substr(out.find('\n', echo) + 1, out.rfind(">>> ") - out.find('\n', echo) - 1);
  EXPECT_FALSE(answer.find_first_not_of("\r\n ") == std::string::npos) << "empty answer; output: " << out;
  std::printf("first answer (random weights, 6 tokens): %s\n", answer.c_str());
  pty.type("And of France?\n");
  ASSERT_TRUE(pty.read_until(">>> ", out)) << out;
  pty.type("\x04");  // Ctrl-D (VEOF) at the start of a line: end of input
  std::string rest;
  const int status = pty.wait_exit(rest);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status << "; output: " << rest;
  EXPECT_EQ(WEXITSTATUS(status), 0) << rest;
  EXPECT_EQ(rest.find("error"), std::string::npos) << rest;
}

TEST_F(ChatPty, ctrl_c_stops_a_long_answer_and_the_chat_goes_on) {
  std::vector<std::string> cmd = command();
  cmd[5] = "100000";  // --max-new-tokens: far past the context, the window slides
  Pty pty(cmd);
  ASSERT_TRUE(pty.started());
  std::string out;
  ASSERT_TRUE(pty.read_until(">>> ", out)) << out;
  pty.type("Write a long story.\n");
  ASSERT_TRUE(pty.read_until("Write a long story.\r\n", out)) << out;
  ASSERT_TRUE(pty.read_until(" ", out)) << "no streamed text; output: " << out;  // the answer is streaming
  pty.type("\x03");
  ASSERT_TRUE(pty.read_until(">>> ", out, 30)) << "the answer did not stop; output: " << out.substr(0, 500);
  EXPECT_NE(out.find("[stopped]"), std::string::npos) << out.substr(out.size() > 300 ? out.size() - 300 : 0);
  pty.type("\x04");
  std::string rest;
  const int status = pty.wait_exit(rest);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(ChatPty, ctrl_c_at_the_prompt_leaves_cleanly) {
  Pty pty(command());
  ASSERT_TRUE(pty.started());
  std::string out;
  ASSERT_TRUE(pty.read_until(">>> ", out)) << out;
  pty.type("\x03");  // Ctrl-C (VINTR): SIGINT to the foreground process
  std::string rest;
  const int status = pty.wait_exit(rest);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status << "; output: " << rest;
  EXPECT_EQ(WEXITSTATUS(status), 0) << rest;
}

}  // namespace
}  // namespace gptrain
