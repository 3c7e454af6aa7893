#include "proxy/upstream.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <limits>

namespace slipway::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(CoarseNow().time_since_epoch())
      .count();
}

int PickUpstream(const CompiledRoute& route, const TriedSet& tried, int64_t now_ns) {
  const size_t count = route.upstreams.size();
  if (count == 0) return -1;
  const uint32_t start =
      count == 1 ? 0 : route.next_upstream.fetch_add(1, std::memory_order_relaxed);
  int best = -1;
  int32_t best_load = std::numeric_limits<int32_t>::max();
  int fallback = -1;  // first untried replica that is ejected
  for (size_t i = 0; i < count; ++i) {
    const size_t index = (start + i) % count;
    if (tried.Has(index)) continue;
    const UpstreamState& state = *route.upstreams[index].state;
    if (state.ejected(now_ns)) {
      if (fallback < 0) fallback = static_cast<int>(index);
      continue;
    }
    if (route.balance == Balance::kRoundRobin) return static_cast<int>(index);
    const int32_t load = state.in_flight.load(std::memory_order_relaxed);
    if (load < best_load) {
      best = static_cast<int>(index);
      best_load = load;
    }
  }
  return best >= 0 ? best : fallback;
}

void Eject(UpstreamState& state, std::chrono::milliseconds duration, int64_t now_ns) {
  const int64_t until =
      now_ns + std::chrono::duration_cast<std::chrono::nanoseconds>(duration).count();
  state.ejected_until_ns.store(until, std::memory_order_relaxed);
}

UpstreamPool::UpstreamPool(Executor executor, DeadlineList& deadlines, const EdgeOptions& options)
    : executor_(std::move(executor)),
      deadlines_(deadlines),
      connect_timeout_(options.upstream_connect_timeout),
      max_idle_(options.upstream_max_idle),
      idle_timeout_(options.upstream_idle_timeout) {}

UpstreamPool::~UpstreamPool() { Clear(); }

void UpstreamPool::Clear() {
  for (auto& [endpoint, stack] : idle_) {
    for (auto& connection : stack) Close(*connection);
  }
  idle_.clear();
}

bool UpstreamPool::LooksOpen(UpstreamConnection& connection) {
  // An idle connection has nothing to say: readable means the replica closed it (EOF),
  // reset it, or sent bytes nobody asked for. Any of these makes it unusable.
  char byte;
  const int fd = connection.socket.native_handle();
  const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void UpstreamPool::Close(UpstreamConnection& connection) {
  boost::system::error_code ignored;
  connection.socket.shutdown(tcp::socket::shutdown_both, ignored);
  connection.socket.close(ignored);
}

std::unique_ptr<UpstreamConnection> UpstreamPool::TakeIdle(const tcp::endpoint& endpoint,
                                                           bool check_open) {
  auto it = idle_.find(endpoint);
  if (it == idle_.end()) return nullptr;
  auto& stack = it->second;
  const auto now = CoarseNow();
  while (!stack.empty()) {
    std::unique_ptr<UpstreamConnection> connection = std::move(stack.back());
    stack.pop_back();
    if (now - connection->parked_at < idle_timeout_ && (!check_open || LooksOpen(*connection))) {
      return connection;
    }
    Close(*connection);
  }
  return nullptr;
}

Task<ConnectOutcome> UpstreamPool::Connect(const tcp::endpoint& endpoint) {
  ConnectOutcome outcome;
  auto connection = std::make_unique<UpstreamConnection>(executor_, deadlines_);
  connection->endpoint = endpoint;
  connection->deadline.After(connect_timeout_);
  auto [ec] = co_await connection->socket.async_connect(endpoint, kTuple);
  if (ec) {
    outcome.failure =
        connection->deadline.TimedOut() ? ConnectFailure::kTimeout : ConnectFailure::kRefused;
    spdlog::debug("edge: connect to {}:{} failed: {}", endpoint.address().to_string(),
                  endpoint.port(), ec.message());
    co_return outcome;
  }
  connection->deadline.Never();
  boost::system::error_code ignored;
  connection->socket.set_option(tcp::no_delay(true), ignored);
  outcome.connection = std::move(connection);
  co_return outcome;
}

void UpstreamPool::Release(std::unique_ptr<UpstreamConnection> connection, bool reusable) {
  if (!connection) return;
  if (!reusable || max_idle_ == 0 || connection->buffer.size() != 0 ||
      !connection->socket.is_open()) {
    Close(*connection);
    return;
  }
  ++connection->requests;
  connection->deadline.Never();
  connection->parked_at = CoarseNow();
  auto& stack = idle_[connection->endpoint];
  if (stack.size() >= max_idle_) {
    // Full: the oldest one goes, the warm one stays.
    Close(*stack.front());
    stack.erase(stack.begin());
  }
  stack.push_back(std::move(connection));
}

void UpstreamPool::Sweep() {
  const auto now = CoarseNow();
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& stack = it->second;
    std::erase_if(stack, [&](std::unique_ptr<UpstreamConnection>& connection) {
      if (now - connection->parked_at < idle_timeout_ && LooksOpen(*connection)) return false;
      Close(*connection);
      return true;
    });
    it = stack.empty() ? idle_.erase(it) : std::next(it);
  }
}

size_t UpstreamPool::idle_count() const {
  size_t n = 0;
  for (const auto& [endpoint, stack] : idle_) n += stack.size();
  return n;
}

}  // namespace slipway::proxy
