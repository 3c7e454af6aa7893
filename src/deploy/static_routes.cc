#include "deploy/static_routes.h"

#include <cctype>
#include <string_view>

namespace slipway {

namespace {

bool IsName(std::string_view s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

// "/(.*)", "/(.+)", "/:path*", "/:path+", "/:path(.*)": every path (but maybe "/").
bool IsCatchAll(std::string_view source) {
  if (source == "/(.*)" || source == "/(.+)") return true;
  if (!source.starts_with("/:")) return false;
  std::string_view name = source.substr(2);
  if (name.ends_with("(.*)")) {
    name.remove_suffix(4);
  } else if (name.ends_with('*') || name.ends_with('+')) {
    name.remove_suffix(1);
  } else {
    return false;
  }
  return IsName(name);
}

}  // namespace

bool IsSpaRewrite(const RouteRule& rule) {
  return IsCatchAll(rule.source) && (rule.destination == "/index.html" || rule.destination == "/");
}

void ApplyServiceRouting(const ServiceConfig& config, bool static_site,
                         const ServiceUrlLookup& service_url, Route& route) {
  route.path_prefix = config.base_path.empty() ? "/" : config.base_path;
  if (!static_site) return;
  for (const HeaderRule& h : config.headers) route.headers.push_back({h.source, h.headers});
  for (const RouteRule& r : config.redirects) {
    std::string destination = r.destination;
    if (auto reference = ParseServiceUrlReference(destination); reference && service_url) {
      destination = service_url(reference->service, reference->variable) + reference->rest;
    }
    route.redirects.push_back({r.source, std::move(destination), r.status == 0 ? 308 : r.status});
  }
  for (const RouteRule& r : config.rewrites) {
    if (IsSpaRewrite(r)) {
      route.spa_fallback = true;
      continue;
    }
    std::string destination = r.destination;
    if (auto reference = ParseServiceUrlReference(destination); reference && service_url) {
      destination = service_url(reference->service, reference->variable) + reference->rest;
    }
    route.rewrites.push_back({r.source, std::move(destination)});
  }
  route.clean_urls = config.clean_urls;
  route.trailing_slash = config.trailing_slash == "add"      ? TrailingSlash::kAdd
                         : config.trailing_slash == "remove" ? TrailingSlash::kRemove
                                                             : TrailingSlash::kLeave;
}

}  // namespace slipway
