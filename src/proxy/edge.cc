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

Worker::Worker(const EdgeOptions& options, const RouteSlot& slot, int index, ListenSocket http,
               ListenSocket https, asio::ssl::context* sni_context, int https_port)
    : ioc_(std::make_unique<asio::io_context>(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE)),
      stop_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      http_acceptor_(std::make_unique<Acceptor>(ioc_->get_executor())),
      sni_context_(sni_context),
      routes_(slot),
      upstreams_(ioc_->get_executor(), deadlines_, options),
      env_{options, routes_, upstreams_, buffers_, arenas_, ids_, deadlines_, index, https_port} {
  boost::system::error_code ec;
  http_acceptor_->assign(http.ipv6 ? tcp::v6() : tcp::v4(), http.fd, ec);
  if (ec) {
    ::close(http.fd);
    spdlog::error("edge: cannot use the listening socket: {}", ec.message());
  }
  if (https.fd >= 0) {
    https_acceptor_ = std::make_unique<Acceptor>(ioc_->get_executor());
    https_acceptor_->assign(https.ipv6 ? tcp::v6() : tcp::v4(), https.fd, ec);
    if (ec) {
      ::close(https.fd);
      spdlog::error("edge: cannot use the HTTPS listening socket: {}", ec.message());
    }
  }
}

Worker::~Worker() {
  Stop();
  Join();
  http_acceptor_.reset();
  https_acceptor_.reset();
  upstreams_.Clear();  // pooled sockets belong to the io_context
  // Destroys every suspended connection coroutine (closing its sockets) while env_,
  // routes_ and upstreams_ are still alive.
  ioc_.reset();
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

void Worker::Start() {
  asio::co_spawn(*ioc_, AcceptLoop(*http_acceptor_, false),
                 [](std::exception_ptr e) { LogException("accept loop", e); });
  if (https_acceptor_ && sni_context_ != nullptr) {
    asio::co_spawn(*ioc_, AcceptLoop(*https_acceptor_, true),
                   [](std::exception_ptr e) { LogException("HTTPS accept loop", e); });
  }
  asio::co_spawn(*ioc_, SweepLoop(), [](std::exception_ptr e) { LogException("pool sweep", e); });
  asio::co_spawn(*ioc_, WaitForStop(), [](std::exception_ptr e) { LogException("stop", e); });
  thread_ = std::thread([this] { ioc_->run(); });
}

void Worker::Stop() {
  if (!thread_.joinable()) return;
  const uint64_t one = 1;
  if (::write(stop_fd_, &one, sizeof(one)) != sizeof(one)) {
    spdlog::error("edge: cannot signal a worker to stop: {}", strerror(errno));
  }
}

Task<void> Worker::WaitForStop() {
  asio::posix::basic_stream_descriptor<Executor> watch(ioc_->get_executor(),
                                                       ::fcntl(stop_fd_, F_DUPFD_CLOEXEC, 0));
  co_await watch.async_wait(asio::posix::stream_descriptor::wait_read, kTuple);
  ioc_->stop();
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

Task<void> Worker::AcceptLoop(Acceptor& acceptor, bool tls) {
  Timer backoff(ioc_->get_executor());
  while (acceptor.is_open()) {
    auto [ec, socket] = co_await acceptor.async_accept(kTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      // Out of file descriptors or a transient error: wait a little instead of spinning.
      spdlog::warn("edge: accept failed: {}", ec.message());
      backoff.expires_after(std::chrono::milliseconds(50));
      co_await backoff.async_wait(kTuple);
      continue;
    }
    if (tls) {
      asio::co_spawn(*ioc_, ServeTlsConnection(env_, std::move(socket), *sni_context_),
                     [](std::exception_ptr e) { LogException("TLS connection", e); });
    } else {
      asio::co_spawn(*ioc_, ServeConnection(env_, std::move(socket)),
                     [](std::exception_ptr e) { LogException("connection", e); });
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
      threads_(static_cast<int>(http.size())),
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
  for (int i = 0; i < threads_; ++i) {
    ListenSocket https =
        i < static_cast<int>(https_sockets_.size()) ? https_sockets_[i] : ListenSocket{};
    workers_.push_back(std::make_unique<Worker>(options_, slot_, i, http_sockets_[i], https,
                                                sni_context_.get(), https_port_));
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
  CloseSockets();
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

Result<std::unique_ptr<Edge>> Edge::Create(const EdgeOptions& options) {
  const int threads = std::max(1, options.threads);
  int port = 0;
  ASSIGN_OR_RETURN(std::vector<proxy::ListenSocket> http,
                   proxy::Listen(options.listen_address, options.port, threads, "--http", &port));
  std::vector<proxy::ListenSocket> https;
  int https_port = -1;
  if (options.https_port >= 0) {
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
  return std::unique_ptr<Edge>(std::make_unique<proxy::EdgeImpl>(options, std::move(http), port,
                                                                 std::move(https), https_port));
}

}  // namespace slipway
