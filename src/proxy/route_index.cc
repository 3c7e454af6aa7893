#include "proxy/route_index.h"

#include <limits.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>

namespace slipway::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) return "";
  return buf;
}

// Numeric addresses and "localhost" need no lookup; anything else is resolved once here,
// on the control plane's thread, so the hot path never waits for DNS.
std::vector<tcp::endpoint> Resolve(const Upstream& upstream, const std::string& label) {
  if (upstream.port <= 0 || upstream.port > 65535) {
    spdlog::warn("edge: {}: upstream {}:{} has no valid port; skipping it", label, upstream.host,
                 upstream.port);
    return {};
  }
  auto port = static_cast<unsigned short>(upstream.port);
  std::string host =
      upstream.host.empty() || upstream.host == "localhost" ? "127.0.0.1" : upstream.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (!ec) return {tcp::endpoint(address, port)};
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(host, std::to_string(port), ec);
  if (ec || results.empty()) {
    spdlog::warn("edge: {}: cannot resolve upstream host \"{}\": {}; skipping it", label, host,
                 ec ? ec.message() : "no addresses");
    return {};
  }
  return {results.begin()->endpoint()};
}

}  // namespace

std::string NormalizeHost(std::string_view host) {
  // Surrounding whitespace is stripped by the parser; a bracketed IPv6 literal keeps its
  // brackets so it cannot be confused with a port.
  std::string_view name = host;
  if (!name.empty() && name.front() == '[') {
    auto close = name.find(']');
    name = close == std::string_view::npos ? name : name.substr(0, close + 1);
  } else {
    auto colon = name.find(':');
    if (colon != std::string_view::npos) name = name.substr(0, colon);
  }
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string out(name);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::shared_ptr<const RouteIndex> RouteIndex::Build(std::shared_ptr<const RouteTable> table) {
  auto index = std::make_shared<RouteIndex>();
  if (!table) table = std::make_shared<const RouteTable>();
  index->table_ = table;
  for (const Route& route : table->routes) {
    auto compiled = std::make_unique<CompiledRoute>();
    compiled->host = NormalizeHost(route.host);
    compiled->service_label = route.service_label.empty() ? compiled->host : route.service_label;
    if (compiled->host.empty()) {
      spdlog::warn("edge: route for {} has no host; ignoring it", compiled->service_label);
      continue;
    }
    if (index->by_host_.count(compiled->host) != 0) {
      spdlog::warn("edge: two routes for host {}; keeping the first", compiled->host);
      continue;
    }
    for (const Upstream& upstream : route.upstreams) {
      for (auto& ep : Resolve(upstream, compiled->service_label)) {
        compiled->upstreams.push_back(ep);
      }
    }
    compiled->static_root = route.static_root;
    if (!route.static_root.empty()) {
      compiled->static_root_real = RealPath(route.static_root);
      if (compiled->static_root_real.empty()) {
        spdlog::warn("edge: {}: static root {} does not exist (yet)", compiled->service_label,
                     route.static_root);
      }
    }
    std::string key = compiled->host;
    index->by_host_.emplace(std::move(key), std::move(compiled));
  }
  return index;
}

const CompiledRoute* RouteIndex::Find(std::string_view host) const {
  auto it = by_host_.find(host);
  return it == by_host_.end() ? nullptr : it->second.get();
}

RouteSlot::RouteSlot() : index_(RouteIndex::Build(nullptr)) {}

void RouteSlot::Store(std::shared_ptr<const RouteIndex> index) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    index_.swap(index);
  }
  version_.fetch_add(1, std::memory_order_acq_rel);
  // `index` (the previous table) is released here, outside the lock; requests still
  // using it keep it alive.
}

std::shared_ptr<const RouteIndex> RouteSlot::Load() const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_;
}

const std::shared_ptr<const RouteIndex>& RouteCache::Current() {
  uint64_t version = slot_.version();
  if (!local_ || version != version_) {
    // Alias the shared index behind a control block owned by this thread: copies made
    // per request then only touch this thread's cache line.
    auto holder = std::make_shared<std::shared_ptr<const RouteIndex>>(slot_.Load());
    const RouteIndex* raw = holder->get();
    local_ = std::shared_ptr<const RouteIndex>(std::move(holder), raw);
    version_ = version;
  }
  return local_;
}

}  // namespace slipway::proxy
