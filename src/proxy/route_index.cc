#include "proxy/route_index.h"

#include <limits.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>

namespace slipway::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

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

// "" -> "/", "/api/" -> "/api", "api" -> "/api". False for a prefix that cannot match a
// path (query or fragment characters, spaces, control bytes).
bool CanonicalPrefix(std::string_view in, std::string* out) {
  for (char c : in) {
    if (c == '?' || c == '#' || static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return false;
  }
  out->assign(in);
  if (out->empty() || out->front() != '/') out->insert(out->begin(), '/');
  while (out->size() > 1 && out->back() == '/') out->pop_back();
  return true;
}

// The path of a request target: origin-form "/a/b?q" -> "/a/b"; absolute-form
// "http://h/a?q" -> "/a"; anything else -> "/".
std::string_view TargetPath(std::string_view target) {
  if (target.empty() || target.front() != '/') {
    auto scheme = target.find("://");
    if (scheme == std::string_view::npos) return "/";
    auto slash = target.find('/', scheme + 3);
    if (slash == std::string_view::npos) return "/";
    target.remove_prefix(slash);
  }
  auto q = target.find_first_of("?#");
  return q == std::string_view::npos ? target : target.substr(0, q);
}

}  // namespace

bool PathHasPrefix(std::string_view path, std::string_view prefix) {
  if (prefix.size() <= 1) return true;  // "/"
  if (path.size() < prefix.size() || path.compare(0, prefix.size(), prefix) != 0) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

void NormalizeHostInto(std::string_view host, std::string* out) {
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
  out->assign(name);
  for (auto& c : *out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
}

std::string NormalizeHost(std::string_view host) {
  std::string out;
  NormalizeHostInto(host, &out);
  return out;
}

std::shared_ptr<UpstreamState> UpstreamRegistry::Get(const tcp::endpoint& endpoint) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& state = states_[endpoint];
  if (!state) state = std::make_shared<UpstreamState>(endpoint);
  return state;
}

void UpstreamRegistry::Prune() {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(states_, [](const auto& kv) { return kv.second.use_count() == 1; });
}

std::vector<UpstreamLoad> UpstreamRegistry::Loads() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<UpstreamLoad> out;
  out.reserve(states_.size());
  for (const auto& [endpoint, state] : states_) {
    out.push_back(UpstreamLoad{endpoint.address().to_string(), endpoint.port(),
                               state->in_flight.load(std::memory_order_relaxed)});
  }
  return out;
}

std::shared_ptr<RouteStats> StatsRegistry::Get(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& stats = stats_[key];
  if (!stats) stats = std::make_shared<RouteStats>(threads_);
  return stats;
}

void StatsRegistry::Prune() {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(stats_, [](const auto& kv) { return kv.second.use_count() == 1; });
}

std::shared_ptr<const RouteIndex> RouteIndex::Build(std::shared_ptr<const RouteTable> table,
                                                    const BuildContext& context) {
  auto index = std::make_shared<RouteIndex>();
  if (!table) table = std::make_shared<const RouteTable>();
  index->table_ = table;
  for (const Route& route : table->routes) {
    auto compiled = std::make_unique<CompiledRoute>();
    compiled->host = NormalizeHost(route.host);
    compiled->service_label = route.service_label.empty() ? compiled->host : route.service_label;
    if (compiled->host.empty() || compiled->host == "*." || compiled->host == "*") {
      spdlog::warn("edge: route for {} has no host; ignoring it", compiled->service_label);
      continue;
    }
    if (compiled->host.find('*') != std::string::npos &&
        (compiled->host.rfind("*.", 0) != 0 || compiled->host.find('*', 1) != std::string::npos)) {
      spdlog::warn("edge: route host {} has a '*' that is not a leading \"*.\" label; ignoring it",
                   compiled->host);
      continue;
    }
    if (!CanonicalPrefix(route.path_prefix, &compiled->path_prefix)) {
      spdlog::warn("edge: route {} has an invalid path prefix \"{}\"; ignoring it", compiled->host,
                   route.path_prefix);
      continue;
    }
    compiled->key = compiled->host + compiled->path_prefix;
    const bool wildcard = compiled->host.rfind("*.", 0) == 0;
    HostMap& map = wildcard ? index->wildcard_ : index->exact_;
    const std::string host_key = wildcard ? compiled->host.substr(2) : compiled->host;
    HostRoutes& host_routes = map[host_key];
    bool duplicate = false;
    for (const CompiledRoute* other : host_routes) {
      duplicate = duplicate || other->path_prefix == compiled->path_prefix;
    }
    if (duplicate) {
      spdlog::warn("edge: two routes for {}; keeping the first", compiled->key);
      continue;
    }
    for (const Upstream& upstream : route.upstreams) {
      for (auto& ep : Resolve(upstream, compiled->service_label)) {
        auto state =
            context.upstreams ? context.upstreams->Get(ep) : std::make_shared<UpstreamState>(ep);
        compiled->upstreams.push_back(CompiledUpstream{ep, std::move(state)});
      }
    }
    compiled->balance = route.balance;
    compiled->max_body_bytes = route.max_body_bytes;
    compiled->redirect_to_https = route.redirect_to_https;
    compiled->static_root = route.static_root;
    if (!route.static_root.empty()) {
      Route labelled = route;
      labelled.service_label = compiled->service_label;
      compiled->site = StaticSite::Build(labelled, compiled->path_prefix);
    }
    if (context.stats) compiled->stats = context.stats->Get(compiled->key);
    host_routes.push_back(compiled.get());
    index->routes_.push_back(std::move(compiled));
  }
  for (HostMap* map : {&index->exact_, &index->wildcard_}) {
    for (auto& [host, routes] : *map) {
      std::stable_sort(routes.begin(), routes.end(), [](const auto* a, const auto* b) {
        return a->path_prefix.size() > b->path_prefix.size();
      });
    }
  }
  return index;
}

const CompiledRoute* RouteIndex::Match(const HostRoutes& routes, std::string_view path) {
  for (const CompiledRoute* route : routes) {
    if (PathHasPrefix(path, route->path_prefix)) return route;
  }
  return nullptr;
}

const CompiledRoute* RouteIndex::Find(std::string_view host, std::string_view target) const {
  const std::string_view path = TargetPath(target);
  if (auto it = exact_.find(host); it != exact_.end()) {
    if (const CompiledRoute* route = Match(it->second, path)) return route;
  }
  if (!wildcard_.empty()) {
    auto dot = host.find('.');
    if (dot != std::string_view::npos && dot > 0) {
      if (auto it = wildcard_.find(host.substr(dot + 1)); it != wildcard_.end()) {
        return Match(it->second, path);
      }
    }
  }
  return nullptr;
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
