#pragma once

// Header handling between the client and an upstream (RFC 9110 section 7.6, RFC 9112).
//
// The edge never edits a parsed message in place: it writes the head it forwards into a
// reusable string, leaving out the hop-by-hop fields (Connection and every field it
// names, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade unless upgrading), setting
// the framing fields it chose itself, and adding X-Forwarded-For/-Proto/-Host and
// X-Request-Id. Host and the framing fields can never be removed by naming them in
// Connection.
//
// Thread-safety: pure functions, except RequestIdGenerator (one per thread).

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/arena.h"

namespace slipway::proxy {

// The fields of messages the edge parses (allocated from the connection's Arena). The
// functions below that take a head work on these and on beast's default fields
// (instantiated for both).
using ArenaFields = boost::beast::http::basic_fields<ArenaAllocator<char>>;

bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// Why a request's head cannot be forwarded safely (answered 400 with the connection
// closed), or nullptr. Checks what Beast's parser lets through: a Content-Length that is
// repeated or a list ("5, 5"), any Transfer-Encoding other than exactly "chunked"
// (including "gzip, chunked" and one with Content-Length), Transfer-Encoding in an
// HTTP/1.0 request, a repeated Host, and Host values with bytes no host name has.
// (Beast itself rejects CL+chunked, differing Content-Lengths, invalid field names,
// control bytes in values, bare LF line endings and malformed chunk framing.)
template <class Fields>
const char* CheckRequestHead(const boost::beast::http::header<true, Fields>& request);

// True for an HTTP/1.1 request asking to switch protocols (WebSocket): "Connection:
// upgrade" plus an Upgrade field.
template <class Fields>
bool IsUpgradeRequest(const boost::beast::http::header<true, Fields>& request);

// GET, HEAD, OPTIONS, PUT, DELETE, TRACE (RFC 9110 section 9.2.2).
bool IsIdempotent(boost::beast::http::verb method);

// A client's X-Request-Id worth keeping: 1..128 characters of [A-Za-z0-9._:+/=@-].
bool IsSaneRequestId(std::string_view id);

// Unique ids ("5f0c...", 32 hex digits): a random per-thread prefix and a scrambled
// counter. Not secret.
class RequestIdGenerator {
 public:
  RequestIdGenerator();
  void Next(std::string* out);

 private:
  uint64_t prefix_;
  uint64_t counter_;
};

enum class BodyFraming {
  kNone,           // no body: framing fields are left out (a request), or copied (a
                   // response to HEAD, 204, 304)
  kLength,         // Content-Length: length
  kChunked,        // Transfer-Encoding: chunked
  kCloseDelimited  // no framing field: the body ends when the connection closes
};

struct ForwardedRequest {
  std::string_view client_ip;
  std::string_view proto;  // "http" or "https"
  std::string_view request_id;
  BodyFraming framing = BodyFraming::kNone;
  uint64_t length = 0;
  bool upgrade = false;
  // A static site's rewrite to another route: the target sent instead of the request's,
  // and the Host sent instead of the client's (which then goes in X-Forwarded-Host).
  std::string_view target;
  std::string_view host;
};

// The request head for an upstream (always HTTP/1.1, keep-alive unless upgrading).
template <class Fields>
void WriteUpstreamRequestHead(const boost::beast::http::header<true, Fields>& request,
                              const ForwardedRequest& forward, std::string* out);

struct ClientResponse {
  unsigned client_version = 11;
  bool keep_alive = true;
  std::string_view request_id;
  BodyFraming framing = BodyFraming::kNone;
  uint64_t length = 0;
  bool upgrade = false;  // a 101 answer: keep Upgrade, send "Connection: upgrade"
  // Header rules of a static site whose rewrite this answer is for: each replaces the
  // response's fields of the same name. Null: none.
  const std::vector<std::pair<std::string, std::string>>* extra = nullptr;
};

// The response head for the client (status line HTTP/1.1).
template <class Fields>
void WriteClientResponseHead(const boost::beast::http::header<false, Fields>& response,
                             const ClientResponse& answer, std::string* out);

// Sets Connection for the client side of a response the edge builds itself: "close" when
// the connection will be closed, "keep-alive" for an HTTP/1.0 client kept open.
void SetClientConnection(boost::beast::http::fields& fields, unsigned client_version,
                         bool keep_alive);

}  // namespace slipway::proxy
