#include "proxy/edge.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>

#include "proxy/edge_impl.h"

namespace slipway {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace proxy {

namespace {

constexpr int kListenBacklog = 4096;

std::string DisplayAddress(const std::string& address, int port) {
  if (address.find(':') != std::string::npos && address.front() != '[')
    return "[" + address + "]:" + std::to_string(port);
  return address + ":" + std::to_string(port);
}

}  // namespace

Worker::Worker(const EdgeOptions& options, const RouteSlot& slot, int listen_fd, bool ipv6)
    : ioc_(std::make_unique<asio::io_context>(1)),
      acceptor_(std::make_unique<tcp::acceptor>(*ioc_)),
      routes_(slot),
      upstreams_(ioc_->get_executor(), options.upstream_connect_timeout),
      env_{options, routes_, upstreams_} {
  boost::system::error_code ec;
  acceptor_->assign(ipv6 ? tcp::v6() : tcp::v4(), listen_fd, ec);
  if (ec) {
    ::close(listen_fd);
    spdlog::error("edge: cannot use the listening socket: {}", ec.message());
  }
}

Worker::~Worker() {
  Stop();
  Join();
  acceptor_.reset();
  // Destroys every suspended connection coroutine (closing its sockets) while env_,
  // routes_ and upstreams_ are still alive.
  ioc_.reset();
}

void Worker::Start() {
  asio::co_spawn(*ioc_, AcceptLoop(), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      spdlog::error("edge: accept loop failed: {}", x.what());
    }
  });
  thread_ = std::thread([this] { ioc_->run(); });
}

void Worker::Stop() { ioc_->stop(); }

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

asio::awaitable<void> Worker::AcceptLoop() {
  constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
  asio::steady_timer backoff(*ioc_);
  while (acceptor_->is_open()) {
    auto [ec, socket] = co_await acceptor_->async_accept(kTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      // Out of file descriptors or a transient error: wait a little instead of spinning.
      spdlog::warn("edge: accept failed: {}", ec.message());
      backoff.expires_after(std::chrono::milliseconds(50));
      co_await backoff.async_wait(kTuple);
      continue;
    }
    asio::co_spawn(*ioc_, ServeConnection(env_, std::move(socket)), [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        spdlog::error("edge: connection failed: {}", x.what());
      }
    });
  }
}

EdgeImpl::EdgeImpl(const EdgeOptions& options, int listen_fd, int port, bool ipv6)
    : options_(options), port_(port), ipv6_(ipv6), listen_fd_(listen_fd) {}

EdgeImpl::~EdgeImpl() {
  Stop();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void EdgeImpl::Start() {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (started_ || stopped_) return;
  started_ = true;
  const int threads = std::max(1, options_.threads);
  for (int i = 0; i < threads; ++i) {
    int fd = ::fcntl(listen_fd_, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
      spdlog::error("edge: cannot duplicate the listening socket: {}", strerror(errno));
      break;
    }
    workers_.push_back(std::make_unique<Worker>(options_, slot_, fd, ipv6_));
  }
  for (auto& worker : workers_) worker->Start();
  spdlog::info("edge: serving http on {} with {} thread(s)",
               DisplayAddress(options_.listen_address, port_), workers_.size());
}

void EdgeImpl::Stop() {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (stopped_) return;
  stopped_ = true;
  for (auto& worker : workers_) worker->Stop();
  for (auto& worker : workers_) worker->Join();
  workers_.clear();
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
}

void EdgeImpl::Swap(std::shared_ptr<const RouteTable> table) {
  slot_.Store(RouteIndex::Build(std::move(table)));
}

}  // namespace proxy

Result<std::unique_ptr<Edge>> Edge::Create(const EdgeOptions& options) {
  const std::string where = proxy::DisplayAddress(options.listen_address, options.port);
  boost::system::error_code ec;
  std::string host = options.listen_address;
  if (host.empty()) host = "0.0.0.0";
  if (host == "localhost") host = "127.0.0.1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  auto address = asio::ip::make_address(host, ec);
  if (ec) {
    return InvalidArgument("cannot listen on " + where + ": \"" + options.listen_address +
                           "\" is not an IP address (use e.g. 0.0.0.0 or 127.0.0.1 with --http)");
  }
  if (options.port < 0 || options.port > 65535) {
    return InvalidArgument("cannot listen on " + where +
                           ": the port must be between 0 and 65535 (choose another with --http)");
  }
  const bool ipv6 = address.is_v6();
  tcp::endpoint endpoint(address, static_cast<unsigned short>(options.port));
  int fd = ::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus("cannot create a socket for " + where, errno);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, endpoint.data(), static_cast<socklen_t>(endpoint.size())) != 0 ||
      ::listen(fd, proxy::kListenBacklog) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EADDRINUSE) {
      return FailedPrecondition("cannot listen on " + where +
                                ": address already in use (choose another with --http)");
    }
    if (err == EACCES) {
      return FailedPrecondition("cannot listen on " + where +
                                ": permission denied (ports below 1024 need root or "
                                "CAP_NET_BIND_SERVICE; choose another with --http)");
    }
    if (err == EADDRNOTAVAIL) {
      return FailedPrecondition("cannot listen on " + where +
                                ": no such address on this machine (choose another with --http)");
    }
    return ErrnoStatus("cannot listen on " + where, err);
  }
  tcp::endpoint bound;
  socklen_t len = static_cast<socklen_t>(bound.capacity());
  if (::getsockname(fd, bound.data(), &len) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus("cannot read the port of " + where, err);
  }
  bound.resize(len);
  return std::unique_ptr<Edge>(std::make_unique<proxy::EdgeImpl>(options, fd, bound.port(), ipv6));
}

}  // namespace slipway
