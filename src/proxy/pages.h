#pragma once

// The pages the edge answers with itself: unknown host, no replica, upstream failures,
// bad requests, static-file errors. Each is a short sentence a user can act on, as HTML
// for browsers (Accept: text/html) and plain text otherwise.
//
// Thread-safety: pure functions.

#include <boost/beast/http/status.hpp>
#include <cstdint>
#include <string>
#include <string_view>

namespace slipway::proxy {

struct Page {
  boost::beast::http::status status;
  std::string headline;  // one sentence, plain text
  std::string detail;    // optional second paragraph, plain text
};

Page UnknownHostPage(std::string_view host);
Page NoReplicaPage(std::string_view service_label);
Page UpstreamRefusedPage(std::string_view service_label);
Page UpstreamConnectTimeoutPage(std::string_view service_label, long seconds);
Page UpstreamResponseTimeoutPage(std::string_view service_label, long seconds);
Page UpstreamBadResponsePage(std::string_view service_label);
Page BadRequestPage(std::string_view why);
Page HeaderTooLargePage(size_t limit_bytes);
Page BodyTooLargePage(uint64_t limit_bytes);
Page FileNotFoundPage(std::string_view path);
Page MethodNotAllowedPage(std::string_view method);
Page StaticRootMissingPage(std::string_view service_label);
Page RangeNotSatisfiablePage(uint64_t size);
Page RewriteNotProxiedPage(std::string_view service_label, std::string_view url_host);
Page RewriteLoopPage(std::string_view service_label);

// True when the Accept header asks for HTML (browsers).
bool WantsHtml(std::string_view accept);

// The body to send and its Content-Type.
std::string RenderPage(const Page& page, bool html);
const char* PageContentType(bool html);

std::string HtmlEscape(std::string_view text);

}  // namespace slipway::proxy
