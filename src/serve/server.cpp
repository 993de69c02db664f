#include "serve/server.h"

#include <fmt/core.h>
#include <httplib.h>

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>

#include "util/error.h"
#include "util/version.h"

namespace gptrain::serve {

using nlohmann::json;
using nlohmann::ordered_json;

namespace {

std::string dump(const ordered_json& j) { return j.dump(-1, ' ', false, ordered_json::error_handler_t::replace); }

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Ollama's created_at: RFC 3339 in UTC with nanoseconds.
std::string rfc3339_now() {
  const auto now = std::chrono::system_clock::now();
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count() % 1000000000;
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:09d}Z", buf, ns);
}

int64_t nanoseconds(Clock::time_point a, Clock::time_point b) {
  if (a == Clock::time_point{} || b == Clock::time_point{} || b < a) return 0;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}

const char* openai_finish(FinishReason f) { return f == FinishReason::Length ? "length" : "stop"; }

void error_response(httplib::Response& res, bool ollama, int status, const std::string& message,
                    const std::string& code = "", const std::string& param = "") {
  res.status = status;
  ordered_json body;
  if (ollama) {
    body["error"] = message;
  } else {
    body["error"] = {{"message", message}, {"type", ApiError::type_of(status)},
                     {"param", param.empty() ? ordered_json() : ordered_json(param)},
                     {"code", code.empty() ? ordered_json() : ordered_json(code)}};
  }
  res.set_content(dump(body), "application/json");
}

}  // namespace

struct Server::Impl {
  Impl(const ServedModel& m, Scheduler& s, ServerOptions o) : model(m), scheduler(s), options(std::move(o)) {}
  const ServedModel& model;
  Scheduler& scheduler;
  ServerOptions options;
  httplib::Server http;
  int bound_port = -1;
  std::atomic<uint64_t> next_id{1};
  std::mt19937_64 seeds{std::random_device{}()};
  std::mutex seeds_mutex;

  uint64_t random_seed() {
    std::lock_guard<std::mutex> lock(seeds_mutex);
    return seeds() >> 1;
  }

  std::string request_id(const char* prefix) { return fmt::format("{}-{:016x}", prefix, next_id++ * 0x9E3779B97F4A7C15ULL); }

  ordered_json usage(const Stream& s) const {
    const int64_t completion = s.generated_tokens;
    return {{"prompt_tokens", s.prompt_tokens}, {"completion_tokens", completion},
            {"total_tokens", s.prompt_tokens + completion}};
  }

  // Ollama's closing statistics.
  void ollama_stats(ordered_json& j, const Stream& s, FinishReason finish) const {
    j["done_reason"] = finish == FinishReason::Length ? "length" : "stop";
    j["total_duration"] = nanoseconds(s.submitted, s.ended);
    j["load_duration"] = 0;
    j["prompt_eval_count"] = s.prompt_tokens;
    j["prompt_eval_duration"] = nanoseconds(s.started, s.first_token);
    j["eval_count"] = static_cast<int64_t>(s.generated_tokens);
    j["eval_duration"] = nanoseconds(s.first_token, s.ended);
  }

  // One chunk of text in the API's streaming format ("" text allowed: the first OpenAI chat chunk).
  std::string chunk(const ParsedRequest& r, const std::string& id, int64_t created, const std::string& text,
                    const char* finish, bool first) const {
    ordered_json j;
    switch (r.api) {
      case Api::OpenAIChat: {
        ordered_json delta = ordered_json::object();
        if (first) delta["role"] = "assistant";
        if (!finish || !text.empty()) delta["content"] = text;
        j = {{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", r.model},
             {"choices", ordered_json::array({{{"index", 0}, {"delta", delta}, {"logprobs", nullptr},
                                               {"finish_reason", finish ? ordered_json(finish) : ordered_json()}}})}};
        return "data: " + dump(j) + "\n\n";
      }
      case Api::OpenAICompletions:
        j = {{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", r.model},
             {"choices", ordered_json::array({{{"index", 0}, {"text", text}, {"logprobs", nullptr},
                                               {"finish_reason", finish ? ordered_json(finish) : ordered_json()}}})}};
        return "data: " + dump(j) + "\n\n";
      case Api::OllamaChat:
        j = {{"model", r.model}, {"created_at", rfc3339_now()}, {"message", {{"role", "assistant"}, {"content", text}}},
             {"done", false}};
        return dump(j) + "\n";
      case Api::OllamaGenerate:
        j = {{"model", r.model}, {"created_at", rfc3339_now()}, {"response", text}, {"done", false}};
        return dump(j) + "\n";
    }
    return {};
  }

  // The last chunk(s) of a stream.
  std::string closing(const ParsedRequest& r, const std::string& id, int64_t created, const Stream& s,
                      FinishReason finish) const {
    if (is_ollama(r.api)) {
      ordered_json j = {{"model", r.model}, {"created_at", rfc3339_now()}};
      if (r.api == Api::OllamaChat)
        j["message"] = {{"role", "assistant"}, {"content", ""}};
      else
        j["response"] = "";
      j["done"] = true;
      ollama_stats(j, s, finish);
      return dump(j) + "\n";
    }
    std::string out = chunk(r, id, created, "", openai_finish(finish), false);
    if (r.include_usage) {
      ordered_json u = {{"id", id}, {"object", r.api == Api::OpenAIChat ? "chat.completion.chunk" : "text_completion"},
                        {"created", created}, {"model", r.model}, {"choices", ordered_json::array()}, {"usage", usage(s)}};
      out += "data: " + dump(u) + "\n\n";
    }
    return out + "data: [DONE]\n\n";
  }

  std::string whole(const ParsedRequest& r, const std::string& id, int64_t created, const std::string& text,
                    const Stream& s, FinishReason finish) const {
    ordered_json j;
    switch (r.api) {
      case Api::OpenAIChat:
        j = {{"id", id}, {"object", "chat.completion"}, {"created", created}, {"model", r.model},
             {"choices", ordered_json::array({{{"index", 0}, {"message", {{"role", "assistant"}, {"content", text}}},
                                               {"logprobs", nullptr}, {"finish_reason", openai_finish(finish)}}})},
             {"usage", usage(s)}};
        break;
      case Api::OpenAICompletions:
        j = {{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", r.model},
             {"choices", ordered_json::array({{{"index", 0}, {"text", text}, {"logprobs", nullptr},
                                               {"finish_reason", openai_finish(finish)}}})},
             {"usage", usage(s)}};
        break;
      case Api::OllamaChat:
      case Api::OllamaGenerate:
        j = {{"model", r.model}, {"created_at", rfc3339_now()}};
        if (r.api == Api::OllamaChat)
          j["message"] = {{"role", "assistant"}, {"content", text}};
        else
          j["response"] = text;
        j["done"] = true;
        ollama_stats(j, s, finish);
        break;
    }
    return dump(j);
  }

  void generate(Api api, const httplib::Request& req, httplib::Response& res) {
    const bool ollama = is_ollama(api);
    ParsedRequest r;
    try {
      r = parse_request(api, req.body, model, random_seed());
    } catch (const ApiError& e) {
      error_response(res, ollama, e.status(), e.what(), e.code(), e.param());
      return;
    } catch (const std::exception& e) {  // e.g. a chat template the tokenizer cannot encode
      error_response(res, ollama, 400, e.what());
      return;
    }
    std::shared_ptr<Stream> stream = scheduler.submit(r.sequence);
    if (!stream) {
      res.set_header("Retry-After", "1");
      error_response(res, ollama, 503, "the server is busy: every decoding place is taken and the queue is full; retry shortly",
                     "server_overloaded");
      return;
    }
    const std::string id = request_id(api == Api::OpenAIChat ? "chatcmpl" : "cmpl");
    const int64_t created = unix_seconds();
    const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(options.request_timeout_s * 1000));

    if (!r.stream) {
      std::string text;
      FinishReason finish = FinishReason::None;
      std::vector<StreamEvent> events;
      while (finish == FinishReason::None) {
        events.clear();
        stream->wait(events, std::chrono::milliseconds(200));
        for (const StreamEvent& e : events) {
          text += e.text;
          if (e.finish != FinishReason::None) finish = e.finish;
        }
        if (finish == FinishReason::None && stream->finished() && events.empty()) break;  // failed
        if (Clock::now() > deadline) stream->cancel();
      }
      if (!stream->error().empty()) {
        error_response(res, ollama, 500, stream->error());
        return;
      }
      if (finish == FinishReason::Cancelled) {
        error_response(res, ollama, 504, fmt::format("the request ran past the server's limit of {} s", options.request_timeout_s));
        return;
      }
      res.set_content(whole(r, id, created, text, *stream, finish), "application/json");
      return;
    }

    auto first = std::make_shared<bool>(true);  // OpenAI's chat stream opens with the role
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    const char* type = ollama ? "application/x-ndjson" : "text/event-stream";
    res.set_chunked_content_provider(
        type,
        [this, r, id, created, stream, first, deadline](size_t, httplib::DataSink& sink) {
          std::vector<StreamEvent> events;
          stream->wait(events, std::chrono::milliseconds(100));
          std::string out;
          if (*first && r.api == Api::OpenAIChat) {
            out += chunk(r, id, created, "", nullptr, true);
            *first = false;
          }
          FinishReason finish = FinishReason::None;
          for (const StreamEvent& e : events) {
            if (!e.text.empty()) out += chunk(r, id, created, e.text, nullptr, false);
            if (e.finish != FinishReason::None) finish = e.finish;
          }
          const std::string error = finish == FinishReason::None && stream->finished() ? stream->error() : "";
          if (!error.empty()) {  // headers are out: the error goes in the stream
            out += is_ollama(r.api) ? dump(ordered_json{{"error", error}}) + "\n"
                                    : "data: " + dump(ordered_json{{"error", {{"message", error}, {"type", "server_error"}}}}) + "\n\n";
            finish = FinishReason::Cancelled;
          } else if (finish != FinishReason::None && finish != FinishReason::Cancelled) {
            out += closing(r, id, created, *stream, finish);
          }
          if (!out.empty() && !sink.write(out.data(), out.size())) {
            stream->cancel();  // the client went away
            return false;
          }
          if (finish != FinishReason::None) {
            sink.done();
            return true;
          }
          if (Clock::now() > deadline) stream->cancel();  // its closing event ends the stream
          return true;
        },
        [stream](bool) { stream->cancel(); });  // no-op when it finished; a dropped connection cancels
  }

  bool authorised(const httplib::Request& req) const {
    if (options.api_key.empty()) return true;
    const std::string header = req.get_header_value("Authorization");
    return header == "Bearer " + options.api_key;
  }

  ordered_json model_card_openai() const {
    ordered_json data = ordered_json::array();
    for (const std::string& name : model.names)
      data.push_back({{"id", name}, {"object", "model"}, {"created", unix_seconds()}, {"owned_by", "gptrain"},
                      {"meta", {{"n_ctx_train", model.context_length}, {"n_params", model.parameters},
                                {"family", model.family}}}});
    return {{"object", "list"}, {"data", data}};
  }

  ordered_json model_card_ollama() const {
    ordered_json models = ordered_json::array();
    const std::string size = model.parameters >= 1000000000 ? fmt::format("{:.1f}B", model.parameters / 1e9)
                                                             : fmt::format("{:.0f}M", model.parameters / 1e6);
    for (const std::string& name : model.names)
      models.push_back({{"name", name}, {"model", name}, {"modified_at", rfc3339_now()}, {"size", model.file_bytes},
                        {"digest", ""},
                        {"details", {{"format", "safetensors"}, {"family", model.family}, {"families", {model.family}},
                                     {"parameter_size", size}, {"quantization_level", model.dtype}}}});
    return {{"models", models}};
  }

  void routes() {
    const auto json_reply = [](httplib::Response& res, const ordered_json& j) { res.set_content(dump(j), "application/json"); };
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      const bool open = req.path == "/" || req.path == "/index.html" || req.path == "/health" || req.path == "/v1/health";
      if (open || authorised(req)) return httplib::Server::HandlerResponse::Unhandled;
      res.set_header("WWW-Authenticate", "Bearer");
      error_response(res, req.path.rfind("/api/", 0) == 0, 401, "a valid API key is required: Authorization: Bearer <key>",
                     "invalid_api_key");
      return httplib::Server::HandlerResponse::Handled;
    });
    http.Get("/", [](const httplib::Request&, httplib::Response& res) { res.set_content(chat_page_html(), "text/html; charset=utf-8"); });
    http.Get("/index.html", [](const httplib::Request&, httplib::Response& res) { res.set_content(chat_page_html(), "text/html; charset=utf-8"); });
    for (const char* path : {"/health", "/v1/health"})
      http.Get(path, [this, json_reply](const httplib::Request&, httplib::Response& res) {
        const SchedulerStats st = scheduler.stats();
        json_reply(res, {{"status", "ok"}, {"running", st.running}, {"waiting", st.waiting}, {"completed", st.completed},
                         {"refused", st.refused}, {"generated_tokens", st.generated_tokens}});
      });
    for (const char* path : {"/v1/models", "/models"})
      http.Get(path, [this, json_reply](const httplib::Request&, httplib::Response& res) { json_reply(res, model_card_openai()); });
    http.Get("/api/tags", [this, json_reply](const httplib::Request&, httplib::Response& res) { json_reply(res, model_card_ollama()); });
    http.Get("/api/version", [json_reply](const httplib::Request&, httplib::Response& res) { json_reply(res, {{"version", std::string(kVersion) + "-gptrain"}}); });
    const auto post = [this](const char* path, Api api) {
      http.Post(path, [this, api](const httplib::Request& req, httplib::Response& res) { generate(api, req, res); });
    };
    post("/v1/chat/completions", Api::OpenAIChat);
    post("/chat/completions", Api::OpenAIChat);
    post("/v1/completions", Api::OpenAICompletions);
    post("/completions", Api::OpenAICompletions);
    post("/api/chat", Api::OllamaChat);
    post("/api/generate", Api::OllamaGenerate);
    // Errors httplib answers itself (404, 413, 400 on a malformed request line) get a JSON body.
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      const bool ollama = req.path.rfind("/api/", 0) == 0;
      const std::string message = res.status == 404   ? fmt::format("no such endpoint: {} {}", req.method, req.path)
                                  : res.status == 413 ? "the request body is larger than the server's limit"
                                                      : fmt::format("HTTP {}", res.status);
      error_response(res, ollama, res.status, message);
    });
    http.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      error_response(res, req.path.rfind("/api/", 0) == 0, 500, what);
    });
    if (options.log_requests)
      http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
        fmt::print("{} {} {} {}\n", rfc3339_now(), req.method, req.path, res.status);
        std::fflush(stdout);
      });
  }
};

Server::Server(const ServedModel& model, Scheduler& scheduler, ServerOptions options)
    : impl_(std::make_unique<Impl>(model, scheduler, std::move(options))) {
  Impl& s = *impl_;
  // A connection holds a thread while it streams: room for every running and waiting request,
  // and a few for the page, /health and requests turned away.
  const size_t threads = static_cast<size_t>(scheduler.options().parallel + scheduler.options().max_queue + 8);
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.http.set_payload_max_length(s.options.max_body_bytes);
  s.http.set_read_timeout(s.options.read_timeout_s, 0);
  s.http.set_write_timeout(s.options.read_timeout_s, 0);
  s.http.set_keep_alive_timeout(5);
  s.routes();
}

Server::~Server() = default;

void Server::bind() {
  Impl& s = *impl_;
  if (s.options.port == 0) {
    s.bound_port = s.http.bind_to_any_port(s.options.host);
    if (s.bound_port < 0) fail("serve: cannot bind a port on {}", s.options.host);
  } else {
    if (!s.http.bind_to_port(s.options.host, s.options.port))
      fail("serve: cannot listen on {}:{} (in use, or not an address of this machine)", s.options.host, s.options.port);
    s.bound_port = s.options.port;
  }
}

int Server::port() const { return impl_->bound_port; }

void Server::run() {
  if (impl_->bound_port < 0) bind();
  impl_->http.listen_after_bind();
}

void Server::stop() { impl_->http.stop(); }

}  // namespace gptrain::serve
