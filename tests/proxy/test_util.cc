#include "test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/beast/core.hpp>
#include <cctype>
#include <filesystem>
#include <fstream>

namespace slipway::proxy_test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

bool WriteAll(tcp::socket& socket, std::string_view data) {
  boost::system::error_code ec;
  asio::write(socket, asio::buffer(data.data(), data.size()), ec);
  return !ec;
}

TestBackend::TestBackend(std::string name, Handler handler)
    : name_(std::move(name)), handler_(std::move(handler)), acceptor_(ioc_) {
  tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
  acceptor_.open(endpoint.protocol());
  acceptor_.bind(endpoint);
  Init();
}

TestBackend::TestBackend(std::string name, Handler handler, int bound_fd)
    : name_(std::move(name)), handler_(std::move(handler)), acceptor_(ioc_) {
  acceptor_.assign(tcp::v4(), bound_fd);
  Init();
}

void TestBackend::Init() {
  acceptor_.listen();
  port_ = acceptor_.local_endpoint().port();
  if (!handler_) {
    handler_ = [this](const BackendRequest& req, tcp::socket& socket) {
      WriteAll(socket,
               TextResponse(200, name_ + " " + req.method + " " + req.target + " " + req.body));
    };
  }
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

TestBackend::~TestBackend() {
  stopping_ = true;
  ::shutdown(acceptor_.native_handle(), SHUT_RDWR);  // wakes the blocked accept()
  accept_thread_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& socket : sockets_) ::shutdown(socket->native_handle(), SHUT_RDWR);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
}

std::vector<BackendRequest> TestBackend::received() const {
  std::lock_guard<std::mutex> lock(mu_);
  return received_;
}

std::string TestBackend::TextResponse(int status, const std::string& body,
                                      const std::string& extra_headers) {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: text/plain\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body;
}

void TestBackend::AcceptLoop() {
  while (!stopping_) {
    auto socket = std::make_shared<tcp::socket>(ioc_);
    boost::system::error_code ec;
    acceptor_.accept(*socket, ec);
    if (ec) {
      if (stopping_) return;
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    sockets_.push_back(socket);
    ++connections_;
    ++open_connections_;
    threads_.emplace_back([this, socket] {
      Serve(socket);
      boost::system::error_code ignored;
      socket->close(ignored);
      --open_connections_;
    });
  }
}

void TestBackend::Serve(std::shared_ptr<tcp::socket> socket) {
  beast::flat_buffer buffer;
  for (int nth = 1;; ++nth) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(boost::none);
    parser.header_limit(1 << 20);
    beast::error_code ec;
    http::read(*socket, buffer, parser, ec);
    if (ec) return;
    const auto& req = parser.get();
    BackendRequest record;
    record.method = std::string(req.method_string());
    record.target = std::string(req.target());
    record.body = req.body();
    record.nth_on_connection = nth;
    for (const auto& field : req) {
      std::string name(field.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto& value = record.headers[name];
      if (!value.empty()) value += ", ";
      value += std::string(field.value());
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      received_.push_back(record);
    }
    ++requests_;
    handler_(record, *socket);
    if (!socket->is_open()) return;
    if (!req.keep_alive()) {
      socket->shutdown(tcp::socket::shutdown_send, ec);
      return;
    }
  }
}

RawClient::RawClient(int port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

RawClient::~RawClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawClient::Send(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

int RawClient::ReadSome(std::chrono::steady_clock::time_point deadline) {
  if (eof_) return 0;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return -1;
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    char buf[16384];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == ECONNRESET) n = 0;
    if (n < 0) return -1;
    if (n == 0) {
      eof_ = true;
      return 0;
    }
    pending_.append(buf, static_cast<size_t>(n));
    return static_cast<int>(n);
  }
}

bool RawClient::ReadUntil(std::string_view needle, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (pending_.find(needle) == std::string::npos) {
    if (ReadSome(deadline) <= 0) return false;
  }
  return true;
}

std::optional<http::response<http::string_body>> RawClient::ReadResponse(
    bool head_request, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  http::response_parser<http::string_body> parser;
  parser.eager(true);
  parser.body_limit(boost::none);
  parser.skip(head_request);
  std::string raw;
  for (;;) {
    while (!pending_.empty() && !parser.is_done()) {
      beast::error_code ec;
      size_t n = parser.put(asio::buffer(pending_), ec);
      raw.append(pending_, 0, n);
      pending_.erase(0, n);
      if (ec == http::error::need_more || (!ec && n == 0)) break;
      if (ec) return std::nullopt;
    }
    if (parser.is_done()) {
      last_raw_ = raw;
      return parser.release();
    }
    int r = ReadSome(deadline);
    if (r == 0) {
      beast::error_code ec;
      parser.put_eof(ec);
      if (ec || !parser.is_done()) return std::nullopt;
      last_raw_ = raw;
      return parser.release();
    }
    if (r < 0) return std::nullopt;
  }
}

bool RawClient::WaitForClose(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int r = ReadSome(deadline);
    if (r == 0) return true;
    if (r < 0) return false;
  }
}

RefusingPort::RefusingPort() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
}

RefusingPort::~RefusingPort() {
  if (fd_ >= 0) ::close(fd_);
}

int RefusingPort::Release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

void Latch::Open() {
  std::lock_guard<std::mutex> lock(mu_);
  open_ = true;
  cv_.notify_all();
}

bool Latch::Wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return open_; });
}

TempDir::TempDir() {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "slipway-proxy-test-XXXXXX").string();
  char* made = ::mkdtemp(pattern.data());
  path_ = made ? made : "";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

void TempDir::Write(const std::string& relative, const std::string& content) const {
  std::filesystem::path p = std::filesystem::path(path_) / relative;
  std::filesystem::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out << content;
}

}  // namespace slipway::proxy_test
