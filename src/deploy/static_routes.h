#pragma once

// How a deployment's config becomes its routes' settings at the edge (proxy/edge.h Route):
// the base path for every service, and for a static site its rules (docs/static.md).
//
//   basePath                -> path_prefix ("/" when none)
//   headers, redirects      -> as they are (a redirect without status: 308)
//   rewrites                -> as they are, with a destination that starts with
//                              ${{ <service>.SLIPWAY_PRIVATE_URL }} (or _PUBLIC_URL)
//                              resolved to that service's URL in the same project and
//                              environment
//   cleanUrls               -> clean_urls
//   trailingSlash           -> "add" / "remove" / "" (leave)
//   a rewrite of every path to the index ("/(.*)", "/(.+)", "/:path*", "/:path+" or
//   "/:path(.*)" to "/index.html" or "/")
//                           -> spa_fallback, instead of the rewrite: an extension-less
//                              path that matches nothing else gets /index.html, while a
//                              missing "/app.js" stays a 404
//
// Thread-safety: pure functions.

#include <functional>
#include <string>

#include "config/config.h"
#include "proxy/edge.h"

namespace slipway {

// The value of ${{ <service>.<variable> }} for the deployment's project and environment;
// "" when there is none.
using ServiceUrlLookup =
    std::function<std::string(const std::string& service, const std::string& variable)>;

// Sets `route`'s path_prefix and, when `static_site`, its rules from `config`. Rules of a
// service that is not a static site are not the edge's to apply (the app routes itself).
void ApplyServiceRouting(const ServiceConfig& config, bool static_site,
                         const ServiceUrlLookup& service_url, Route& route);

// True for a rewrite Vercel users write for a single-page app (see above).
bool IsSpaRewrite(const RouteRule& rule);

}  // namespace slipway
