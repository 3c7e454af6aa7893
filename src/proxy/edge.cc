#include "proxy/edge.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstring>

#include "proxy/edge_impl.h"
#include "proxy/tls.h"
#include "proxy/tls_server.h"

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

void LogException(const char* what, std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    spdlog::error("edge: {} failed: {}", what, x.what());
  }
}

void CloseAll(std::vector<ListenSocket>& sockets) {
  for (auto& s : sockets) {
    if (s.fd >= 0) ::close(s.fd);
  }
  sockets.clear();
}

// Binds `count` listening sockets to address:port, all with SO_REUSEPORT (see
// edge_impl.h). `*bound_port` gets the port (the one the kernel picked for port 0).
Result<std::vector<ListenSocket>> Listen(const std::string& address_text, int port, int count,
                                         const char* flag, int* bound_port) {
  const std::string where = DisplayAddress(address_text, port);
  std::string host = address_text;
  if (host.empty()) host = "0.0.0.0";
  if (host == "localhost") host = "127.0.0.1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) {
    return InvalidArgument("cannot listen on " + where + ": \"" + address_text +
                           "\" is not an IP address (use e.g. 0.0.0.0 or 127.0.0.1 with " + flag +
                           ")");
  }
  if (port < 0 || port > 65535) {
    return InvalidArgument("cannot listen on " + where +
                           ": the port must be between 0 and 65535 (choose another with " + flag +
                           ")");
  }
  const bool ipv6 = address.is_v6();
  std::vector<ListenSocket> sockets;
  int chosen = port;
  for (int i = 0; i < count; ++i) {
    tcp::endpoint endpoint(address, static_cast<unsigned short>(chosen));
    int fd = ::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      int err = errno;
      CloseAll(sockets);
      return ErrnoStatus("cannot create a socket for " + where, err);
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (::bind(fd, endpoint.data(), static_cast<socklen_t>(endpoint.size())) != 0 ||
        ::listen(fd, kListenBacklog) != 0) {
      int err = errno;
      ::close(fd);
      CloseAll(sockets);
      if (err == EADDRINUSE) {
        return FailedPrecondition("cannot listen on " + where +
                                  ": address already in use (choose another with " + flag + ")");
      }
      if (err == EACCES) {
        return FailedPrecondition("cannot listen on " + where +
                                  ": permission denied (ports below 1024 need root or "
                                  "CAP_NET_BIND_SERVICE; choose another with " +
                                  flag + ")");
      }
      if (err == EADDRNOTAVAIL) {
        return FailedPrecondition("cannot listen on " + where +
                                  ": no such address on this machine (choose another with " + flag +
                                  ")");
      }
      return ErrnoStatus("cannot listen on " + where, err);
    }
    if (i == 0) {
      tcp::endpoint bound;
      socklen_t len = static_cast<socklen_t>(bound.capacity());
      if (::getsockname(fd, bound.data(), &len) != 0) {
        int err = errno;
        ::close(fd);
        return ErrnoStatus("cannot read the port of " + where, err);
      }
      bound.resize(len);
      chosen = bound.port();
    }
    sockets.push_back(ListenSocket{fd, ipv6});
  }
  *bound_port = chosen;
  return sockets;
}

}  // namespace

Worker::Worker(const EdgeOptions& options, const RouteSlot& slot, int index,
               std::vector<ListenSocket> http, std::vector<ListenSocket> https,
               asio::ssl::context* sni_context, int https_port, const std::atomic<bool>& draining,
               std::atomic<int>& open_connections)
    : ioc_(std::make_unique<asio::io_context>(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE)),
      stop_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      drain_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      open_connections_(open_connections),
      sni_context_(sni_context),
      routes_(slot),
      upstreams_(ioc_->get_executor(), deadlines_, options),
      env_{options, routes_,    upstreams_, buffers_,   arenas_,
           ids_,    deadlines_, index,      https_port, draining} {
  auto adopt = [this](std::vector<ListenSocket>& sockets, const char* what,
                      std::vector<std::unique_ptr<Acceptor>>* out) {
    for (const ListenSocket& s : sockets) {
      auto acceptor = std::make_unique<Acceptor>(ioc_->get_executor());
      boost::system::error_code ec;
      acceptor->assign(s.ipv6 ? tcp::v6() : tcp::v4(), s.fd, ec);
      if (ec) {
        ::close(s.fd);
        spdlog::error("edge: cannot use the {} listening socket: {}", what, ec.message());
        continue;
      }
      out->push_back(std::move(acceptor));
    }
  };
  adopt(http, "HTTP", &http_acceptors_);
  adopt(https, "HTTPS", &https_acceptors_);
}

Worker::~Worker() {
  Stop();
  Join();
  http_acceptors_.clear();
  https_acceptors_.clear();
  upstreams_.Clear();  // pooled sockets belong to the io_context
  // Destroys every suspended connection coroutine (closing its sockets) while env_,
  // routes_ and upstreams_ are still alive.
  ioc_.reset();
  if (stop_fd_ >= 0) ::close(stop_fd_);
  if (drain_fd_ >= 0) ::close(drain_fd_);
}

void Worker::Start() {
  for (auto& acceptor : http_acceptors_) {
    asio::co_spawn(*ioc_, AcceptLoop(*acceptor, false),
                   [](std::exception_ptr e) { LogException("accept loop", e); });
  }
  if (sni_context_ != nullptr) {
    for (auto& acceptor : https_acceptors_) {
      asio::co_spawn(*ioc_, AcceptLoop(*acceptor, true),
                     [](std::exception_ptr e) { LogException("HTTPS accept loop", e); });
    }
  }
  asio::co_spawn(*ioc_, SweepLoop(), [](std::exception_ptr e) { LogException("pool sweep", e); });
  asio::co_spawn(*ioc_, WaitForStop(), [](std::exception_ptr e) { LogException("stop", e); });
  asio::co_spawn(*ioc_, WaitForDrain(), [](std::exception_ptr e) { LogException("drain", e); });
  thread_ = std::thread([this] { ioc_->run(); });
}

namespace {

void Notify(int event_fd, const char* what) {
  const uint64_t one = 1;
  if (::write(event_fd, &one, sizeof(one)) != sizeof(one)) {
    spdlog::error("edge: cannot signal a worker to {}: {}", what, strerror(errno));
  }
}

}  // namespace

void Worker::Stop() {
  if (!thread_.joinable()) return;
  Notify(stop_fd_, "stop");
}

void Worker::Drain() {
  if (!thread_.joinable()) return;
  Notify(drain_fd_, "drain");
}

Task<void> Worker::WaitForStop() {
  asio::posix::basic_stream_descriptor<Executor> watch(ioc_->get_executor(),
                                                       ::fcntl(stop_fd_, F_DUPFD_CLOEXEC, 0));
  co_await watch.async_wait(asio::posix::stream_descriptor::wait_read, kTuple);
  ioc_->stop();
}

Task<void> Worker::WaitForDrain() {
  asio::posix::basic_stream_descriptor<Executor> watch(ioc_->get_executor(),
                                                       ::fcntl(drain_fd_, F_DUPFD_CLOEXEC, 0));
  auto [ec] = co_await watch.async_wait(asio::posix::stream_descriptor::wait_read, kTuple);
  if (ec) co_return;
  // Closing cancels the pending accepts; a connection already accepted is still served.
  // The sockets themselves live on in a process they were handed to.
  boost::system::error_code ignored;
  for (auto& acceptor : http_acceptors_) acceptor->close(ignored);
  for (auto& acceptor : https_acceptors_) acceptor->close(ignored);
  deadlines_.CutIdle(CoarseNow() + env_.options.drain_idle_grace);
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

Task<void> Worker::AcceptLoop(Acceptor& acceptor, bool tls) {
  Timer backoff(ioc_->get_executor());
  while (acceptor.is_open()) {
    auto [ec, socket] = co_await acceptor.async_accept(kTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      // Out of file descriptors or a transient error: wait a little instead of spinning.
      spdlog::warn("edge: accept failed: {}", ec.message());
      backoff.expires_after(std::chrono::milliseconds(50));
      co_await backoff.async_wait(kTuple);
      continue;
    }
    open_connections_.fetch_add(1, std::memory_order_relaxed);
    std::atomic<int>* open = &open_connections_;
    auto done = [open, tls](std::exception_ptr e) {
      open->fetch_sub(1, std::memory_order_relaxed);
      LogException(tls ? "TLS connection" : "connection", e);
    };
    if (tls) {
      asio::co_spawn(*ioc_, ServeTlsConnection(env_, std::move(socket), *sni_context_), done);
    } else {
      asio::co_spawn(*ioc_, ServeConnection(env_, std::move(socket)), done);
    }
  }
}

Task<void> Worker::SweepLoop() {
  Timer timer(ioc_->get_executor());
  constexpr int kTicksPerPoolSweep = 1000 / kDeadlineTick.count();
  for (int tick = 1;; ++tick) {
    timer.expires_after(kDeadlineTick);
    auto [ec] = co_await timer.async_wait(kTuple);
    if (ec) co_return;
    deadlines_.Sweep(CoarseNow());
    if (tick % kTicksPerPoolSweep == 0) upstreams_.Sweep();
  }
}

EdgeImpl::EdgeImpl(const EdgeOptions& options, std::vector<ListenSocket> http, int port,
                   std::vector<ListenSocket> https, int https_port)
    : options_(options),
      threads_(std::max(1, options.threads)),
      port_(port),
      https_port_(https_port),
      http_sockets_(std::move(http)),
      https_sockets_(std::move(https)),
      stats_(threads_) {
  if (!https_sockets_.empty()) sni_context_ = MakeSniContext(options_.tls);
}

EdgeImpl::~EdgeImpl() { Stop(); }

void EdgeImpl::CloseSockets() {
  CloseAll(http_sockets_);
  CloseAll(https_sockets_);
}

void EdgeImpl::Start() {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (started_ || stopped_) return;
  started_ = true;
  // Socket i goes to worker i % threads (a takeover may bring more sockets than threads).
  std::vector<std::vector<ListenSocket>> http(threads_), https(threads_);
  for (size_t i = 0; i < http_sockets_.size(); ++i) {
    http[i % threads_].push_back(http_sockets_[i]);
    serving_http_fds_.push_back(http_sockets_[i].fd);
  }
  for (size_t i = 0; i < https_sockets_.size(); ++i) {
    https[i % threads_].push_back(https_sockets_[i]);
    serving_https_fds_.push_back(https_sockets_[i].fd);
  }
  for (int i = 0; i < threads_; ++i) {
    workers_.push_back(std::make_unique<Worker>(options_, slot_, i, std::move(http[i]),
                                                std::move(https[i]), sni_context_.get(),
                                                https_port_, draining_, open_connections_));
  }
  // The workers own the sockets now.
  http_sockets_.clear();
  https_sockets_.clear();
  for (auto& worker : workers_) worker->Start();
  if (https_port_ >= 0) {
    spdlog::info("edge: serving http on {} and https on {} with {} thread(s)",
                 DisplayAddress(options_.listen_address, port_),
                 DisplayAddress(options_.https_address.empty() ? options_.listen_address
                                                               : options_.https_address,
                                https_port_),
                 workers_.size());
  } else {
    spdlog::info("edge: serving http on {} with {} thread(s)",
                 DisplayAddress(options_.listen_address, port_), workers_.size());
  }
}

void EdgeImpl::Stop() {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (stopped_) return;
  stopped_ = true;
  for (auto& worker : workers_) worker->Stop();
  for (auto& worker : workers_) worker->Join();
  workers_.clear();
  serving_http_fds_.clear();
  serving_https_fds_.clear();
  CloseSockets();
}

void EdgeImpl::Drain() {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (draining_.exchange(true)) return;
  // The acceptors close on their threads; the fds are not ours to hand out from here on.
  serving_http_fds_.clear();
  serving_https_fds_.clear();
  for (auto& worker : workers_) worker->Drain();
  // Not started yet: nobody accepts on these.
  CloseSockets();
}

Result<ListenerFds> EdgeImpl::DuplicateListeners() {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (!started_ || stopped_ || draining_.load()) {
    return FailedPrecondition("the edge is not serving: no listening sockets to hand over");
  }
  ListenerFds out;
  auto dup_all = [&out](const std::vector<int>& fds, std::vector<int>* into) -> Status {
    for (int fd : fds) {
      int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
      if (copy < 0) {
        int err = errno;
        for (int f : out.http) ::close(f);
        for (int f : out.https) ::close(f);
        return ErrnoStatus("cannot duplicate a listening socket", err);
      }
      into->push_back(copy);
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(dup_all(serving_http_fds_, &out.http));
  RETURN_IF_ERROR(dup_all(serving_https_fds_, &out.https));
  return out;
}

void EdgeImpl::Swap(std::shared_ptr<const RouteTable> table) {
  BuildContext context{&upstream_states_, &stats_};
  slot_.Store(RouteIndex::Build(std::move(table), context));
  upstream_states_.Prune();
  stats_.Prune();
}

std::vector<RouteMetrics> EdgeImpl::Metrics() const {
  std::shared_ptr<const RouteIndex> index = slot_.Load();
  std::vector<RouteMetrics> out;
  out.reserve(index->size());
  for (const auto& route : index->routes()) {
    RouteMetrics m;
    m.host = route->host;
    m.path_prefix = route->path_prefix;
    m.service_label = route->service_label;
    if (route->stats) route->stats->Snapshot(&m);
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<UpstreamLoad> EdgeImpl::UpstreamLoads() const { return upstream_states_.Loads(); }

}  // namespace proxy

namespace proxy {
namespace {

// Takes over listening sockets handed from another edge process (see edge.h): checks
// each is a listening TCP socket, reads its address, and binds more to the same address
// when `threads` asks for more. Owns `fds` from the call on.
Result<std::vector<ListenSocket>> Inherit(const std::vector<int>& fds, int threads,
                                          const char* flag, std::string* address_out,
                                          int* port_out) {
  std::vector<ListenSocket> sockets;
  for (int fd : fds) sockets.push_back(ListenSocket{fd, false});
  std::string address;
  int port = -1;
  for (ListenSocket& s : sockets) {
    int listening = 0;
    socklen_t len = sizeof(listening);
    tcp::endpoint bound;
    socklen_t bound_len = static_cast<socklen_t>(bound.capacity());
    if (::getsockopt(s.fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening ||
        ::getsockname(s.fd, bound.data(), &bound_len) != 0) {
      CloseAll(sockets);
      return InvalidArgument(std::string("a socket handed over for ") + flag +
                             " is not a listening TCP socket");
    }
    bound.resize(bound_len);
    s.ipv6 = bound.address().is_v6();
    if (port < 0) {
      address = bound.address().to_string();
      port = bound.port();
    } else if (bound.port() != port || bound.address().to_string() != address) {
      CloseAll(sockets);
      return InvalidArgument(std::string("the sockets handed over for ") + flag +
                             " listen on different addresses");
    }
  }
  if (static_cast<int>(sockets.size()) < threads) {
    int ignored = 0;
    auto more = Listen(address, port, threads - static_cast<int>(sockets.size()), flag, &ignored);
    if (!more.ok()) {
      CloseAll(sockets);
      return more.status();
    }
    sockets.insert(sockets.end(), more->begin(), more->end());
  }
  *address_out = address;
  *port_out = port;
  return sockets;
}

}  // namespace
}  // namespace proxy

Result<std::unique_ptr<Edge>> Edge::Create(const EdgeOptions& given) {
  EdgeOptions options = given;
  const int threads = std::max(1, options.threads);
  auto close_inherited = [&options] {
    for (int fd : options.inherited_http_fds) ::close(fd);
    for (int fd : options.inherited_https_fds) ::close(fd);
  };
  if (options.inherited_http_fds.empty() && !options.inherited_https_fds.empty()) {
    close_inherited();
    return InvalidArgument("HTTPS sockets were handed over without the HTTP ones");
  }
  if (!options.inherited_https_fds.empty() && options.tls == nullptr) {
    close_inherited();
    return InvalidArgument("HTTPS sockets were handed over, but no TLS context provider was given");
  }
  int port = 0;
  std::vector<proxy::ListenSocket> http;
  if (!options.inherited_http_fds.empty()) {
    std::vector<int> https_fds = options.inherited_https_fds;
    auto inherited = proxy::Inherit(options.inherited_http_fds, threads, "--http",
                                    &options.listen_address, &port);
    if (!inherited.ok()) {
      for (int fd : https_fds) ::close(fd);
      return inherited.status();
    }
    http = std::move(*inherited);
    options.port = port;
  } else {
    ASSIGN_OR_RETURN(http,
                     proxy::Listen(options.listen_address, options.port, threads, "--http", &port));
  }
  std::vector<proxy::ListenSocket> https;
  int https_port = -1;
  if (!options.inherited_https_fds.empty()) {
    auto inherited = proxy::Inherit(options.inherited_https_fds, threads, "--https",
                                    &options.https_address, &https_port);
    if (!inherited.ok()) {
      proxy::CloseAll(http);
      return inherited.status();
    }
    https = std::move(*inherited);
    options.https_port = https_port;
  } else if (options.https_port >= 0) {
    const std::string& address =
        options.https_address.empty() ? options.listen_address : options.https_address;
    if (options.tls == nullptr) {
      proxy::CloseAll(http);
      return InvalidArgument("cannot listen on " +
                             proxy::DisplayAddress(address, options.https_port) +
                             ": HTTPS needs certificates (no TLS context provider was given)");
    }
    auto listening = proxy::Listen(address, options.https_port, threads, "--https", &https_port);
    if (!listening.ok()) {
      proxy::CloseAll(http);
      return listening.status();
    }
    https = std::move(*listening);
  }
  options.inherited_http_fds.clear();
  options.inherited_https_fds.clear();
  options.threads = threads;
  return std::unique_ptr<Edge>(std::make_unique<proxy::EdgeImpl>(options, std::move(http), port,
                                                                 std::move(https), https_port));
}

}  // namespace slipway
