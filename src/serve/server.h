// gptrain serve's HTTP side (cpp-httplib from Debian): OpenAI's /v1/chat/completions,
// /v1/completions, /v1/models; Ollama's /api/chat, /api/generate, /api/tags, /api/version;
// /health; the chat page at /. Streams as each API does: server-sent events ending with
// `data: [DONE]` (OpenAI), JSON lines ending with `"done": true` (Ollama). Every request runs on
// its connection's thread and waits on its Stream from the Scheduler; a client that goes away
// mid-stream cancels its sequence. Limits: the body size (413), a full queue (503 with
// Retry-After), the scheduler's bounds, a per-request time limit; with an API key, every API
// request needs `Authorization: Bearer KEY` (401), the page and /health stay public.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "serve/api.h"
#include "serve/scheduler.h"

namespace gptrain::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (port() tells which)
  std::string api_key;
  size_t max_body_bytes = 1 << 20;
  double request_timeout_s = 600;  // a request still generating after this is cancelled
  int read_timeout_s = 30;         // a client sending its request this slowly is dropped
  bool log_requests = true;
};

class Server {
 public:
  Server(const ServedModel& model, Scheduler& scheduler, ServerOptions options);
  ~Server();
  // Binds the port (an error naming host and port when it cannot).
  void bind();
  int port() const;
  // Serves until stop() (from any thread).
  void run();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The chat page (static HTML and JS; no CDN).
const std::string& chat_page_html();

}  // namespace gptrain::serve
