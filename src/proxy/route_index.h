#pragma once

// RouteIndex: a RouteTable compiled for the hot path, and the slot the Edge swaps it in.
//
// A RouteIndex is built once per Edge::Swap(): hosts are normalised and put in a hash
// map, upstream addresses are resolved to endpoints, static roots are canonicalised.
// It is immutable afterwards except for each route's round-robin counter (an atomic).
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
// Thread-safety: RouteIndex is safe to read from any thread. RouteSlot is safe from
// any thread. A RouteCache belongs to one thread.

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/edge.h"

namespace slipway::proxy {

struct CompiledRoute {
  std::string host;           // normalised
  std::string service_label;  // for pages and logs; the host when the route has none
  std::vector<boost::asio::ip::tcp::endpoint> upstreams;
  std::string static_root;       // as configured; empty when not a static route
  std::string static_root_real;  // realpath() of static_root at build time ("" if missing)
  // Round-robin start position. Relaxed fetch_add; not a lock.
  mutable std::atomic<uint32_t> next_upstream{0};

  bool is_static() const { return !static_root.empty(); }
};

class RouteIndex {
 public:
  // Never fails: a route whose upstream host cannot be resolved keeps its other upstreams
  // (a warning is logged); a duplicate host keeps the first route.
  static std::shared_ptr<const RouteIndex> Build(std::shared_ptr<const RouteTable> table);

  // `host` must be normalised (see NormalizeHost). nullptr when no route matches.
  const CompiledRoute* Find(std::string_view host) const;
  size_t size() const { return by_host_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::shared_ptr<const RouteTable> table_;
  std::unordered_map<std::string, std::unique_ptr<CompiledRoute>, Hash, std::equal_to<>> by_host_;
};

// The value of a Host header as a routing key: lowercase, port removed, trailing dot
// removed. "API.Example.localhost:8080" -> "api.example.localhost", "[::1]:80" -> "[::1]".
std::string NormalizeHost(std::string_view host_header);

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
