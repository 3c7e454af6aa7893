#include "proxy/pages.h"

#include <fmt/format.h>

namespace slipway::proxy {

using boost::beast::http::status;

Page UnknownHostPage(std::string_view host) {
  return {status::not_found, fmt::format("No Slipway app is deployed at {}", host),
          "Check the address, or deploy an app with `slipway up` and see its URL with "
          "`slipway status`."};
}

Page NoReplicaPage(std::string_view label) {
  return {status::bad_gateway,
          fmt::format("{} has no running replica (yet): see `slipway status` and `slipway logs`",
                      label),
          ""};
}

Page UpstreamRefusedPage(std::string_view label) {
  return {status::bad_gateway,
          fmt::format("{} is not accepting connections: every replica refused. See `slipway "
                      "status` and `slipway logs`",
                      label),
          ""};
}

Page UpstreamConnectTimeoutPage(std::string_view label, long seconds) {
  return {status::gateway_timeout,
          fmt::format("{} did not accept a connection within {} s: see `slipway status` and "
                      "`slipway logs`",
                      label, seconds),
          ""};
}

Page UpstreamResponseTimeoutPage(std::string_view label, long seconds) {
  return {status::gateway_timeout,
          fmt::format("{} did not answer within {} s: see `slipway logs`", label, seconds), ""};
}

Page UpstreamBadResponsePage(std::string_view label) {
  return {status::bad_gateway,
          fmt::format("{} closed the connection or sent an invalid response: see `slipway logs`",
                      label),
          ""};
}

Page BadRequestPage(std::string_view why) {
  return {status::bad_request, fmt::format("Bad request: {}", why), ""};
}

Page HeaderTooLargePage(size_t limit_bytes) {
  return {status::request_header_fields_too_large,
          fmt::format("Request headers are larger than the limit of {} bytes", limit_bytes), ""};
}

Page BodyTooLargePage(uint64_t limit_bytes) {
  return {
      status::payload_too_large,
      fmt::format("The request body is larger than this route's limit of {} bytes", limit_bytes),
      ""};
}

Page FileNotFoundPage(std::string_view path) {
  return {status::not_found, fmt::format("No file at {}", path), ""};
}

Page MethodNotAllowedPage(std::string_view method) {
  return {status::method_not_allowed,
          fmt::format("{} is not allowed here: static files answer GET and HEAD", method), ""};
}

Page StaticRootMissingPage(std::string_view label) {
  return {
      status::bad_gateway,
      fmt::format("{} has no files to serve (yet): see `slipway status` and `slipway logs`", label),
      ""};
}

Page RangeNotSatisfiablePage(uint64_t size) {
  return {status::range_not_satisfiable,
          fmt::format("The requested range is not inside the file ({} bytes)", size), ""};
}

Page RewriteNotProxiedPage(std::string_view label, std::string_view url_host) {
  return {status::bad_gateway,
          fmt::format("{} rewrites this path to {}, which is not an app of this Slipway edge",
                      label, url_host),
          "Rewrites to absolute URLs are proxied only to hosts the edge routes itself (another "
          "service's URL, e.g. ${{ api.SLIPWAY_PRIVATE_URL }}); the edge is not an open proxy."};
}

Page RewriteLoopPage(std::string_view label) {
  return {status::bad_gateway,
          fmt::format("{}: rewrites lead from one static site to another more than twice", label),
          "Point the rewrite at the service that answers the path."};
}

bool WantsHtml(std::string_view accept) {
  return accept.find("text/html") != std::string_view::npos;
}

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {
std::string_view Reason(status s) {
  auto r = boost::beast::http::obsolete_reason(s);
  return {r.data(), r.size()};
}
}  // namespace

std::string RenderPage(const Page& page, bool html) {
  if (!html) {
    std::string out = page.headline + "\n";
    if (!page.detail.empty()) out += page.detail + "\n";
    return out;
  }
  std::string detail =
      page.detail.empty() ? "" : fmt::format("<p>{}</p>\n", HtmlEscape(page.detail));
  return fmt::format(
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
      "<title>{} {}</title>\n"
      "<style>body{{font-family:system-ui,sans-serif;max-width:42rem;margin:4rem auto;"
      "padding:0 1rem;color:#222}}small{{color:#777}}</style>\n"
      "</head><body>\n<h1>{}</h1>\n{}<hr><p><small>Slipway edge &middot; {} {}</small></p>\n"
      "</body></html>\n",
      static_cast<unsigned>(page.status), Reason(page.status), HtmlEscape(page.headline), detail,
      static_cast<unsigned>(page.status), Reason(page.status));
}

const char* PageContentType(bool html) {
  return html ? "text/html; charset=utf-8" : "text/plain; charset=utf-8";
}

}  // namespace slipway::proxy
