// Many clients, one model: requests become sequences of one DecodeEngine, which a worker thread
// owns and steps; every running sequence advances by one token per step, their decode rows batched
// in one pass. A request's thread holds a Stream: it waits for the events of its sequence and can
// cancel it (a client that went away). Admission is bounded: at most `parallel` sequences run, at
// most `max_queue` wait; beyond that submit() refuses (the server answers 503 with Retry-After).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "generate/engine.h"

namespace gptrain::serve {

using Clock = std::chrono::steady_clock;

struct StreamEvent {
  std::string text;  // released text (whole UTF-8 characters; see TokenEvent)
  int32_t token = -1;
  FinishReason finish = FinishReason::None;  // set on the last event
};

// One request's sequence as its thread sees it.
class Stream {
 public:
  // Moves the events that came since the last call into `out`; waits up to `timeout` when there
  // are none. True when `out` received something or the sequence is over.
  bool wait(std::vector<StreamEvent>& out, std::chrono::milliseconds timeout);
  void cancel() { cancel_requested_ = true; }
  bool cancel_requested() const { return cancel_requested_; }
  bool finished() const;
  std::string error() const;  // why the engine refused the sequence ("" when it did not)

  // For usage and Ollama's durations (read after finished()).
  int64_t prompt_tokens = 0;
  std::atomic<int64_t> generated_tokens{0};
  Clock::time_point submitted, started, first_token, ended;

 private:
  friend class Scheduler;
  void push(StreamEvent e);
  void fail(std::string why);
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::vector<StreamEvent> events_;
  bool finished_ = false;
  std::string error_;
  std::atomic<bool> cancel_requested_{false};
};

struct SchedulerOptions {
  int64_t parallel = 8;    // sequences decoded together
  int64_t max_queue = 64;  // requests waiting for a free place
};

struct SchedulerStats {
  int64_t running = 0, waiting = 0, completed = 0, refused = 0, generated_tokens = 0;
};

class Scheduler {
 public:
  Scheduler(const Transformer& model, std::function<std::string(int32_t)> token_text, SchedulerOptions options);
  ~Scheduler();  // cancels everything and joins the worker
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a sequence; nullptr when max_queue requests already wait.
  std::shared_ptr<Stream> submit(SequenceRequest request);
  SchedulerStats stats() const;
  const SchedulerOptions& options() const { return options_; }

 private:
  void work();
  DecodeEngine engine_;  // the worker's alone
  SchedulerOptions options_;
  mutable std::mutex m_;
  std::condition_variable wake_;
  std::deque<std::pair<SequenceRequest, std::shared_ptr<Stream>>> waiting_;
  std::map<int64_t, std::shared_ptr<Stream>> running_;  // the worker's alone
  int64_t running_count_ = 0, completed_ = 0, refused_ = 0, generated_ = 0;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace gptrain::serve
