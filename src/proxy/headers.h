#pragma once

// Header rewriting between the client and an upstream (RFC 9110 section 7.6).
//
// Thread-safety: pure functions.

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <string_view>

namespace slipway::proxy {

// Removes the hop-by-hop fields: Connection and every field it names, Keep-Alive,
// Proxy-Connection, TE, Trailer, and Upgrade unless `keep_upgrade`. Framing fields
// (Content-Length, Transfer-Encoding) and Host are never removed, even when Connection
// names them, so a client cannot change how the forwarded message is delimited.
void RemoveHopByHop(boost::beast::http::fields& fields, bool keep_upgrade);

// True for an HTTP/1.1 request asking to switch protocols (WebSocket): "Connection:
// upgrade" plus an Upgrade field.
bool IsUpgradeRequest(const boost::beast::http::request_header<>& request);

// Appends the client to X-Forwarded-For and sets X-Forwarded-Proto and X-Forwarded-Host.
void AddForwardedFields(boost::beast::http::request_header<>& request, std::string_view client_ip,
                        std::string_view proto, std::string_view original_host);

// Sets Connection for the client side of a response: "close" when the connection will
// be closed, "keep-alive" for an HTTP/1.0 client kept open, nothing otherwise.
void SetClientConnection(boost::beast::http::fields& fields, unsigned client_version,
                         bool keep_alive);

bool EqualsIgnoreCase(std::string_view a, std::string_view b);

}  // namespace slipway::proxy
