// A small HTTP/1.1 server on 127.0.0.1 for download tests (no network, no Python): a thread that
// serves files the test registers, with Content-Length, ETag and Range support, redirects, and
// faults on demand: drop the connection part-way through a body, send corrupted bytes, ignore
// Range, or answer with an error status. One connection at a time; every response closes it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace gptrain::testing_util {

struct Route {
  int status = 200;  // 200 serves `body`; 3xx sends `location`; other codes send `body` as an error page
  std::string body;
  std::string location;  // for redirects
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers (ETag, X-Linked-Etag, ...)
  bool ranges = true;    // honour "Range: bytes=N-" with 206 (else send the whole file with 200)
  // Faults, consumed one per GET: the first `drop_count` GETs stop after `drop_after` body bytes
  // (the announced Content-Length stays the full one) and close the connection.
  int drop_count = 0;
  size_t drop_after = 0;
  int corrupt_count = 0;  // the first GETs (after the drops) flip one byte in the middle of the body
  int fail_count = 0;     // the first GETs answer 503

  // Builders: Route::file(bytes).header("ETag", "\"x\"").drop(2, 1000), Route::redirect(to), ...
  static Route file(std::string bytes) {
    Route r;
    r.body = std::move(bytes);
    return r;
  }
  static Route redirect(std::string to) {
    Route r;
    r.status = 302;
    r.location = std::move(to);
    return r;
  }
  Route& header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }
  Route& drop(int count, size_t after) {
    drop_count = count;
    drop_after = after;
    return *this;
  }
  Route& corrupt(int count) {
    corrupt_count = count;
    return *this;
  }
  Route& fail(int count) {
    fail_count = count;
    return *this;
  }
  Route& no_ranges() {
    ranges = false;
    return *this;
  }
};

struct Request {
  std::string method, path, range;
};

class HttpTestServer {
 public:
  HttpTestServer() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd_ < 0) throw std::runtime_error("socket() failed");
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 16) != 0)
      throw std::runtime_error("bind/listen on 127.0.0.1 failed");
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    if (::pipe(stop_pipe_) != 0) throw std::runtime_error("pipe() failed");
    thread_ = std::thread([this] { loop(); });
  }
  ~HttpTestServer() {
    const char c = 0;
    (void)!::write(stop_pipe_[1], &c, 1);
    thread_.join();
    ::close(listen_fd_);
    ::close(stop_pipe_[0]);
    ::close(stop_pipe_[1]);
  }
  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  int port() const { return port_; }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string url(const std::string& path) const { return base() + path; }

  void set(const std::string& path, Route route) {
    std::lock_guard lock(mutex_);
    routes_[path] = std::move(route);
  }
  // Every request so far, in order.
  std::vector<Request> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  int count(const std::string& method, const std::string& path) const {
    std::lock_guard lock(mutex_);
    int n = 0;
    for (const Request& r : requests_) n += r.method == method && r.path == path;
    return n;
  }

 private:
  void loop() {
    for (;;) {
      pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) continue;
      if (fds[1].revents) return;
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      serve(fd);
      ::close(fd);
    }
  }

  static bool send_all(int fd, const char* data, size_t n) {
    while (n > 0) {
      const ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
      if (w <= 0) return false;
      data += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }

  static std::string reason(int status) {
    switch (status) {
      case 200: return "OK";
      case 206: return "Partial Content";
      case 302: return "Found";
      case 404: return "Not Found";
      case 416: return "Range Not Satisfiable";
      case 503: return "Service Unavailable";
      default: return "Status";
    }
  }

  void serve(int fd) {
    std::string head;
    char buffer[4096];
    while (head.find("\r\n\r\n") == std::string::npos) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 5000) <= 0) return;
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) return;
      head.append(buffer, static_cast<size_t>(n));
    }
    Request req;
    const size_t sp1 = head.find(' '), sp2 = head.find(' ', sp1 + 1);
    req.method = head.substr(0, sp1);
    req.path = head.substr(sp1 + 1, sp2 - sp1 - 1);
    for (size_t at = head.find("\r\n"); at != std::string::npos && at + 2 < head.size();) {
      const size_t end = head.find("\r\n", at + 2);
      const std::string line = head.substr(at + 2, end - at - 2);
      std::string lower = line;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (lower.rfind("range:", 0) == 0) {
        req.range = line.substr(6);
        while (!req.range.empty() && req.range.front() == ' ') req.range.erase(0, 1);
      }
      at = end;
    }
    Route route;
    bool found = false, drop = false, corrupt = false, unavailable = false;
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(req);
      auto it = routes_.find(req.path);
      if (it != routes_.end()) {
        found = true;
        Route& r = it->second;
        if (req.method == "GET" && r.status == 200) {
          if (r.fail_count > 0) {
            --r.fail_count;
            unavailable = true;
          } else if (r.drop_count > 0) {
            --r.drop_count;
            drop = true;
          } else if (r.corrupt_count > 0) {
            --r.corrupt_count;
            corrupt = true;
          }
        }
        route = r;
      }
    }
    const bool head_only = req.method == "HEAD";
    std::string out;
    auto header = [&](int status) {
      out = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\nConnection: close\r\n";
      for (const auto& [name, value] : route.headers) out += name + ": " + value + "\r\n";
    };
    if (!found) {
      route = Route{};
      header(404);
      out += "Content-Length: 9\r\n\r\n";
      if (!head_only) out += "not found";
      send_all(fd, out.data(), out.size());
      return;
    }
    if (unavailable) {
      out = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbusy";
      send_all(fd, out.data(), out.size());
      return;
    }
    if (route.status >= 300 && route.status < 400) {
      header(route.status);
      out += "Location: " + route.location + "\r\nContent-Length: 0\r\n\r\n";
      send_all(fd, out.data(), out.size());
      return;
    }
    if (route.status != 200) {
      header(route.status);
      out += "Content-Length: " + std::to_string(route.body.size()) + "\r\n\r\n";
      if (!head_only) out += route.body;
      send_all(fd, out.data(), out.size());
      return;
    }
    std::string body = route.body;
    if (corrupt && !body.empty()) body[body.size() / 2] = static_cast<char>(body[body.size() / 2] ^ 0x5a);
    size_t start = 0;
    const bool ranged = route.ranges && req.range.rfind("bytes=", 0) == 0 && req.range.back() == '-';
    if (ranged) start = std::stoull(req.range.substr(6, req.range.size() - 7));
    if (ranged && start >= body.size()) {
      header(416);
      out += "Content-Range: bytes */" + std::to_string(body.size()) + "\r\nContent-Length: 0\r\n\r\n";
      send_all(fd, out.data(), out.size());
      return;
    }
    header(ranged ? 206 : 200);
    out += "Accept-Ranges: " + std::string(route.ranges ? "bytes" : "none") + "\r\n";
    if (ranged)
      out += "Content-Range: bytes " + std::to_string(start) + "-" + std::to_string(body.size() - 1) + "/" +
             std::to_string(body.size()) + "\r\n";
    out += "Content-Length: " + std::to_string(body.size() - start) + "\r\n\r\n";
    if (!send_all(fd, out.data(), out.size()) || head_only) return;
    size_t n = body.size() - start;
    if (drop) n = std::min(n, route.drop_after);
    send_all(fd, body.data() + start, n);
    if (drop) ::shutdown(fd, SHUT_RDWR);
  }

  int listen_fd_ = -1;
  int port_ = 0;
  int stop_pipe_[2] = {-1, -1};
  std::thread thread_;
  mutable std::mutex mutex_;
  std::map<std::string, Route> routes_;
  std::vector<Request> requests_;
};

}  // namespace gptrain::testing_util
