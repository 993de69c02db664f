// gptrain chat: a terminal conversation with an instruction-tuned model. Each line is an
// instruction in the Alpaca template; the answer streams as it is generated; earlier turns stay in
// the context (the oldest dropped when it would overflow). Ctrl-D leaves; Ctrl-C stops an answer
// (at the prompt it leaves too); "/reset" forgets the conversation.
#include <fmt/core.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "cli/prompt_options.h"
#include "generate/instruct.h"
#include "kernels/ops.h"
#include "model/model_dir.h"
#include "util/error.h"

namespace gptrain::cli {

namespace {

struct ChatOptions {
  ModelChoice choice;
  std::string data_dir;
  AnswerOptions answer;
  PromptOptions prompt;
  bool history = true;
  int threads = 0;
};

std::atomic<bool> g_interrupted{false};

void on_interrupt(int) { g_interrupted.store(true); }

void write_out(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

// Generated text for the terminal: control characters other than newline and tab (C0, DEL, C1)
// become U+FFFD, so a model can never send an escape sequence. The text is valid UTF-8.
void write_generated(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const bool c1 = c == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) <= 0x9F;
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7F || c1) {
      out += "\xEF\xBF\xBD";
      if (c1) ++i;
    } else {
      out += static_cast<char>(c);
    }
  }
  write_out(out);
}

// Lines from standard input. The signal may land on any thread (OpenMP and BLAS keep workers), so
// a blocking read would not see it: poll in short slices and give up once Ctrl-C was pressed.
class LineReader {
 public:
  // false at the end of input or after Ctrl-C; a last line without a newline is still returned.
  bool next(std::string& line) {
    while (true) {
      const size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return true;
      }
      if (eof_ || g_interrupted.load()) {
        if (eof_ && !buffer_.empty() && !g_interrupted.load()) {
          line.swap(buffer_);
          buffer_.clear();
          return true;
        }
        return false;
      }
      struct pollfd p {STDIN_FILENO, POLLIN, 0};
      const int r = ::poll(&p, 1, 100);
      if (r <= 0) continue;  // timeout or EINTR: check the flag again
      char chunk[4096];
      const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        eof_ = true;  // Ctrl-D at the start of a line, the end of a pipe, or a read error
        continue;
      }
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  std::string buffer_;
  bool eof_ = false;
};

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

int run_chat(const ChatOptions& o_in) {
  ChatOptions o = o_in;
  ops::set_num_threads(o.threads);
  resolve_model_choice(o.choice);
  const std::unique_ptr<Transformer> model = load_chosen_model(o.choice);
  if (model->config().head != HeadType::LanguageModel)
    fail("--model {}: a classifier model; chat needs a language-model head", o.choice.model);
  const Tokenizer tokenizer = load_tokenizer_for_model(o.choice.model, model->config().family, o.data_dir);
  const std::string prompt = apply_prompt_options(o.prompt, prompt_dir(o.choice), model->config(), o.answer);
  ChatSession session(*model, tokenizer, o.answer, o.history);

  // Ctrl-C only sets a flag: the answer polls it after every token, the line reader between reads.
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);

  const bool interactive = ::isatty(STDIN_FILENO) != 0;
  write_out(fmt::format("gptrain chat: {} (context {} tokens; {}; {}, up to {} new tokens; history {})\n"
                        "Type an instruction and press Enter. Ctrl-D leaves, Ctrl-C stops an answer, /reset "
                        "forgets the conversation.\n",
                        o.choice.adapter.empty() ? o.choice.model : o.choice.model + " + adapter " + o.choice.adapter, model->config().context_length, prompt,
                        o.answer.sampling.temperature > 0 ? fmt::format("temperature {}", o.answer.sampling.temperature)
                                                          : std::string("greedy"),
                        o.answer.max_new_tokens, o.history ? "kept within the context" : "off"));
  LineReader reader;
  std::string line;
  while (true) {
    // Clear the flag before the prompt appears: a Ctrl-C typed as soon as it shows must count.
    g_interrupted.store(false);
    if (interactive) write_out("\n>>> ");
    if (!reader.next(line)) break;
    const std::string message = trim(line);
    if (message.empty()) continue;
    if (message == "/reset") {
      session.reset();
      write_out("(conversation forgotten)\n");
      continue;
    }
    const int64_t dropped_before = session.turns_dropped();
    session.reply(message, write_generated, [] { return g_interrupted.load(); });
    if (g_interrupted.exchange(false)) write_out(" [stopped]");
    write_out("\n");
    if (session.turns_dropped() > dropped_before)
      write_out(fmt::format("(the oldest {} turn(s) left the context)\n", session.turns_dropped() - dropped_before));
  }
  if (interactive) write_out("\n");
  return 0;
}

}  // namespace

Command register_chat(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  CLI::App* s = app.add_subcommand("chat", "Chat in the terminal with an instruction-tuned model (its chat template, or the book's Alpaca)");
  add_model_options(s, o->choice, "Model dir (e.g. the final/ dir of finetune-instruct)");
  s->add_option("--max-new-tokens", o->answer.max_new_tokens, "Tokens to generate at most per answer")
      ->capture_default_str();
  s->add_option("--temperature", o->answer.sampling.temperature, "Sampling temperature (0: greedy)")
      ->capture_default_str();
  s->add_option("--top-k", o->answer.sampling.top_k, "Keep the k most likely tokens (0: off)");
  s->add_option("--top-p", o->answer.sampling.top_p, "Nucleus sampling mass (1: off)");
  s->add_option("--seed", o->answer.sampling.seed, "Seed of sampling")->capture_default_str();
  auto no_history = std::make_shared<bool>(false);
  s->add_flag("--no-history", *no_history, "Answer each line on its own (default: earlier turns stay in the context)");
  add_prompt_options(s, o->prompt);
  s->add_option("--data-dir", o->data_dir, "Data directory, for the vocabulary when the model dir has none");
  s->add_option("--threads", o->threads, "CPU threads (0: all cores)");
  return [o, no_history] {
    o->history = !*no_history;
    return run_chat(*o);
  };
}

}  // namespace gptrain::cli
