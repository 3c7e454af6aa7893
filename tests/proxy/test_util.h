#pragma once

// Real-socket helpers for the edge proxy tests: an HTTP backend the test controls, a raw
// client that sees exactly what the edge sends, and a port that refuses connections.
//
// Thread-safety: TestBackend's accessors are safe from any thread; RawClient and
// RefusingPort belong to one thread.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace slipway::proxy_test {

using namespace std::chrono_literals;

struct BackendRequest {
  std::string method;
  std::string target;
  std::string body;
  std::map<std::string, std::string> headers;  // lowercase names; repeats joined by ", "
  int nth_on_connection = 1;                   // 1 for a connection's first request
  bool has(const std::string& name) const { return headers.count(name) != 0; }
  std::string get(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// Writes everything in `data` to a blocking socket; false when the peer is gone.
bool WriteAll(boost::asio::ip::tcp::socket& socket, std::string_view data);

// An HTTP/1.1 server on 127.0.0.1:<free port>, one thread per connection. The handler
// writes the whole response to the socket itself (so tests can stream, stall, or
// misbehave); the default one answers "<name> <METHOD> <target> <body>" with a
// Content-Length. A handler may close the socket; the connection then ends.
class TestBackend {
 public:
  using Handler = std::function<void(const BackendRequest&, boost::asio::ip::tcp::socket&)>;

  explicit TestBackend(std::string name, Handler handler = nullptr);
  // Serves on an already bound (not yet listening) socket, which it takes over.
  TestBackend(std::string name, Handler handler, int bound_fd);
  ~TestBackend();  // closes every connection and joins every thread

  int port() const { return port_; }
  const std::string& name() const { return name_; }
  int requests() const { return requests_.load(); }
  int connections() const { return connections_.load(); }            // accepted so far
  int open_connections() const { return open_connections_.load(); }  // not yet closed
  std::vector<BackendRequest> received() const;

  // "HTTP/1.1 <status> X\r\nContent-Length: ...\r\n<extra>\r\n<body>".
  static std::string TextResponse(int status, const std::string& body,
                                  const std::string& extra_headers = "");

 private:
  void Init();
  void AcceptLoop();
  void Serve(std::shared_ptr<boost::asio::ip::tcp::socket> socket);

  const std::string name_;
  Handler handler_;
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::acceptor acceptor_;
  int port_ = 0;
  std::atomic<int> requests_{0};
  std::atomic<int> connections_{0};
  std::atomic<int> open_connections_{0};
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::vector<BackendRequest> received_;
  std::vector<std::shared_ptr<boost::asio::ip::tcp::socket>> sockets_;
  std::vector<std::thread> threads_;
  std::thread accept_thread_;
};

// A plain TCP client with deadlines (poll-based; never blocks past them).
class RawClient {
 public:
  explicit RawClient(int port);  // connects to 127.0.0.1:port; connected() says if it worked
  ~RawClient();
  bool connected() const { return fd_ >= 0; }

  bool Send(std::string_view data);
  // Reads until `needle` occurs in the bytes not yet consumed by ReadResponse.
  bool ReadUntil(std::string_view needle, std::chrono::milliseconds timeout = 20s);
  // Parses one response from the stream (body decoded). nullopt on timeout or garbage.
  std::optional<boost::beast::http::response<boost::beast::http::string_body>> ReadResponse(
      bool head_request = false, std::chrono::milliseconds timeout = 20s);
  // True when the server closes the connection (after any unread bytes) within timeout.
  bool WaitForClose(std::chrono::milliseconds timeout = 20s);
  // Bytes received and not yet consumed by ReadResponse.
  const std::string& pending() const { return pending_; }
  // The raw bytes of the last response ReadResponse parsed.
  const std::string& last_raw() const { return last_raw_; }

 private:
  // Appends what arrives before `deadline`; 0 on EOF, -1 on timeout or error.
  int ReadSome(std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  bool eof_ = false;
  std::string pending_;
  std::string last_raw_;
};

// A port bound on 127.0.0.1 with no listen(): connecting to it is refused, for as long as
// this object lives (no other process can take the port meanwhile).
class RefusingPort {
 public:
  RefusingPort();
  ~RefusingPort();
  int port() const { return port_; }
  // Hands the bound socket over (e.g. to a TestBackend, which then accepts on the port).
  int Release();

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A one-shot signal between test threads.
class Latch {
 public:
  void Open();
  // False when not opened within `timeout`.
  bool Wait(std::chrono::milliseconds timeout = 30s);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// A fresh temporary directory, removed with its contents at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  void Write(const std::string& relative, const std::string& content) const;

 private:
  std::string path_;
};

}  // namespace slipway::proxy_test
