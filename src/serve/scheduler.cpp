#include "serve/scheduler.h"

#include <exception>
#include <utility>

namespace gptrain::serve {

bool Stream::wait(std::vector<StreamEvent>& out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(m_);
  if (events_.empty() && !finished_) cv_.wait_for(lock, timeout, [&] { return !events_.empty() || finished_; });
  const bool any = !events_.empty() || finished_;
  for (auto& e : events_) out.push_back(std::move(e));
  events_.clear();
  return any;
}

bool Stream::finished() const {
  std::lock_guard<std::mutex> lock(m_);
  return finished_;
}

std::string Stream::error() const {
  std::lock_guard<std::mutex> lock(m_);
  return error_;
}

void Stream::push(StreamEvent e) {
  {
    std::lock_guard<std::mutex> lock(m_);
    if (e.token >= 0) {
      if (generated_tokens == 0) first_token = Clock::now();
      ++generated_tokens;
    }
    if (e.finish != FinishReason::None) {
      finished_ = true;
      ended = Clock::now();
    }
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

void Stream::fail(std::string why) {
  {
    std::lock_guard<std::mutex> lock(m_);
    error_ = std::move(why);
    finished_ = true;
    ended = Clock::now();
  }
  cv_.notify_all();
}

Scheduler::Scheduler(const Transformer& model, std::function<std::string(int32_t)> token_text,
                     SchedulerOptions options)
    : engine_(model, std::move(token_text), EngineOptions{options.parallel}), options_(options) {
  worker_ = std::thread([this] { work(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(m_);
    stop_ = true;
  }
  wake_.notify_all();
  worker_.join();
  for (auto& [request, stream] : waiting_) stream->fail("the server is shutting down");
  for (auto& [id, stream] : running_) stream->fail("the server is shutting down");
}

std::shared_ptr<Stream> Scheduler::submit(SequenceRequest request) {
  auto stream = std::make_shared<Stream>();
  stream->prompt_tokens = static_cast<int64_t>(request.prompt.size());
  stream->submitted = Clock::now();
  {
    std::lock_guard<std::mutex> lock(m_);
    // Requests beyond the free places of the engine wait; past max_queue of them, refuse.
    const int64_t free_places = options_.parallel - running_count_;
    if (static_cast<int64_t>(waiting_.size()) >= options_.max_queue + std::max<int64_t>(0, free_places)) {
      ++refused_;
      return nullptr;
    }
    waiting_.emplace_back(std::move(request), stream);
  }
  wake_.notify_all();
  return stream;
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(m_);
  return SchedulerStats{running_count_, static_cast<int64_t>(waiting_.size()), completed_, refused_, generated_};
}

void Scheduler::work() {
  for (;;) {
    std::vector<std::pair<SequenceRequest, std::shared_ptr<Stream>>> admitted;
    {
      std::unique_lock<std::mutex> lock(m_);
      wake_.wait(lock, [&] { return stop_ || !waiting_.empty() || !running_.empty(); });
      if (stop_) return;
      while (!waiting_.empty() && static_cast<int64_t>(running_.size() + admitted.size()) < options_.parallel) {
        admitted.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
      }
    }
    for (auto& [request, stream] : admitted) {
      if (stream->cancel_requested()) {
        stream->push(StreamEvent{{}, -1, FinishReason::Cancelled});
        continue;
      }
      try {
        stream->started = Clock::now();
        running_[engine_.add(std::move(request))] = stream;
      } catch (const std::exception& e) {
        stream->fail(e.what());
      }
    }
    for (auto& [id, stream] : running_)
      if (stream->cancel_requested()) engine_.cancel(id);
    {
      std::lock_guard<std::mutex> lock(m_);
      running_count_ = static_cast<int64_t>(running_.size());
    }
    if (running_.empty()) continue;
    int64_t tokens = 0;
    try {
      engine_.step([&](const TokenEvent& ev) {
        tokens += ev.token >= 0;
        running_.at(ev.seq)->push(StreamEvent{ev.text, ev.token, ev.finish});
      });
    } catch (const std::exception& e) {  // nothing a request sends should get here; end them all, keep serving
      for (auto& [id, stream] : running_) {
        stream->fail(std::string("decoding failed: ") + e.what());
        engine_.release(id);
      }
      running_.clear();
    }
    int64_t done = 0;
    for (auto it = running_.begin(); it != running_.end();) {
      if (engine_.finished(it->first)) {
        engine_.release(it->first);
        it = running_.erase(it);
        ++done;
      } else {
        ++it;
      }
    }
    std::lock_guard<std::mutex> lock(m_);
    running_count_ = static_cast<int64_t>(running_.size());
    completed_ += done;
    generated_ += tokens;
  }
}

}  // namespace gptrain::serve
