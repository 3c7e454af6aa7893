#pragma once

// RouteIndex: a RouteTable compiled for the hot path, and the slot the Edge swaps it in.
//
// A RouteIndex is built once per Edge::Swap(): hosts are normalised and put in hash maps
// (exact hosts, and wildcard "*.suffix" hosts keyed by suffix), each host's routes are
// sorted by path prefix length, upstream addresses are resolved to endpoints, static
// sites are compiled (their roots opened, their rules' patterns compiled). It is immutable
// afterwards except for each route's round-robin counter and the shared per-upstream
// state (atomics).
//
// Per-upstream state (requests in flight, ejection deadline) and per-route statistics
// outlive a single table: they come from registries keyed by endpoint and by
// host+path_prefix, so a Swap() that keeps a replica or a route keeps its state.
//
// RouteSlot holds the current index plus a version counter. RouteCache is one worker
// thread's view of the slot: per request it reads only the atomic version, reloads the
// index when the version moved (once per Swap per worker), and hands out shared_ptrs
// whose reference count lives in a per-thread control block, so requests on different
// threads never touch a shared cache line. The slot's pointer itself sits behind a small
// mutex that only Store() and those reloads take: libstdc++ 12's
// std::atomic<std::shared_ptr> releases its internal lock with a relaxed store in load(),
// a (benign on x86, but real) data race that ThreadSanitizer reports.
//
// Thread-safety: RouteIndex is safe to read from any thread. RouteSlot, UpstreamRegistry
// and StatsRegistry are safe from any thread. A RouteCache belongs to one thread.

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/edge.h"
#include "proxy/metrics.h"
#include "proxy/static_site.h"

namespace slipway::proxy {

// What every thread knows about one replica address.
struct UpstreamState {
  explicit UpstreamState(boost::asio::ip::tcp::endpoint ep) : endpoint(std::move(ep)) {}
  const boost::asio::ip::tcp::endpoint endpoint;
  std::atomic<int32_t> in_flight{0};         // requests being served by it
  std::atomic<int64_t> ejected_until_ns{0};  // steady_clock; 0 or past: eligible

  bool ejected(int64_t now_ns) const {
    return ejected_until_ns.load(std::memory_order_relaxed) > now_ns;
  }
};

struct CompiledUpstream {
  boost::asio::ip::tcp::endpoint endpoint;
  std::shared_ptr<UpstreamState> state;
};

struct CompiledRoute {
  std::string host;           // normalised; "*.example.com" for a wildcard
  std::string path_prefix;    // canonical: starts with '/', no trailing '/' unless "/"
  std::string key;            // host + path_prefix ("api.localhost/" , "*.x.localhost/api")
  std::string service_label;  // for pages and logs; the host when the route has none
  std::vector<CompiledUpstream> upstreams;
  Balance balance = Balance::kRoundRobin;
  int64_t max_body_bytes = 0;  // as configured (0: the edge's default, < 0: none)
  bool redirect_to_https = false;
  std::string static_root;                 // as configured; empty when not a static route
  std::unique_ptr<const StaticSite> site;  // static routes: root and rules, compiled
  std::shared_ptr<RouteStats> stats;       // null when built without a StatsRegistry
  // Round-robin start position. Relaxed fetch_add; not a lock.
  mutable std::atomic<uint32_t> next_upstream{0};

  bool is_static() const { return !static_root.empty(); }
};

// One UpstreamState per endpoint, shared by every table that names it.
class UpstreamRegistry {
 public:
  std::shared_ptr<UpstreamState> Get(const boost::asio::ip::tcp::endpoint& endpoint);
  // Forgets states that no table holds any more.
  void Prune();
  std::vector<UpstreamLoad> Loads() const;

 private:
  mutable std::mutex mu_;
  std::map<boost::asio::ip::tcp::endpoint, std::shared_ptr<UpstreamState>> states_;
};

// One RouteStats per route key, shared by every table that has the route.
class StatsRegistry {
 public:
  explicit StatsRegistry(int threads) : threads_(threads) {}
  std::shared_ptr<RouteStats> Get(const std::string& key);
  void Prune();

 private:
  const int threads_;
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<RouteStats>> stats_;
};

struct BuildContext {
  UpstreamRegistry* upstreams = nullptr;  // null: each route gets fresh states
  StatsRegistry* stats = nullptr;         // null: routes have no stats
};

class RouteIndex {
 public:
  // Never fails: a route whose upstream host cannot be resolved keeps its other upstreams
  // (a warning is logged); a duplicate host + path_prefix keeps the first route; a route
  // with no host or an invalid path prefix is skipped.
  static std::shared_ptr<const RouteIndex> Build(std::shared_ptr<const RouteTable> table,
                                                 const BuildContext& context = {});

  // `host` must be normalised (see NormalizeHost); `path` is the request target (the
  // query is ignored). nullptr when no route matches.
  const CompiledRoute* Find(std::string_view host, std::string_view path) const;
  size_t size() const { return routes_.size(); }
  // Every route, in table order.
  const std::vector<std::unique_ptr<CompiledRoute>>& routes() const { return routes_; }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // A host's routes, longest prefix first.
  using HostRoutes = std::vector<const CompiledRoute*>;
  using HostMap = std::unordered_map<std::string, HostRoutes, Hash, std::equal_to<>>;
  static const CompiledRoute* Match(const HostRoutes& routes, std::string_view path);

  std::shared_ptr<const RouteTable> table_;
  std::vector<std::unique_ptr<CompiledRoute>> routes_;
  HostMap exact_;
  HostMap wildcard_;  // keyed by the suffix after "*."
};

// The value of a Host header as a routing key: lowercase, port removed, trailing dot
// removed. "API.Example.localhost:8080" -> "api.example.localhost", "[::1]:80" -> "[::1]".
std::string NormalizeHost(std::string_view host_header);
// Same, into `out` (reusing its capacity).
void NormalizeHostInto(std::string_view host_header, std::string* out);

// True when a request path (query ignored) falls under `prefix` (canonical form).
bool PathHasPrefix(std::string_view path, std::string_view prefix);

class RouteSlot {
 public:
  RouteSlot();
  void Store(std::shared_ptr<const RouteIndex> index);
  std::shared_ptr<const RouteIndex> Load() const;
  // Moves after every Store(), after the new index is visible to Load().
  uint64_t version() const { return version_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mu_;  // guards index_; never taken per request
  std::shared_ptr<const RouteIndex> index_;
  std::atomic<uint64_t> version_{0};
};

class RouteCache {
 public:
  explicit RouteCache(const RouteSlot& slot) : slot_(slot) {}
  // The current index; requests keep the returned pointer for their whole life.
  const std::shared_ptr<const RouteIndex>& Current();

 private:
  const RouteSlot& slot_;
  uint64_t version_ = 0;
  std::shared_ptr<const RouteIndex> local_;
};

}  // namespace slipway::proxy
