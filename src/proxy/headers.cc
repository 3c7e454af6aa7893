#include "proxy/headers.h"

#include <array>
#include <boost/beast/http/rfc7230.hpp>
#include <charconv>
#include <random>

namespace slipway::proxy {

namespace http = boost::beast::http;

namespace {

std::string_view View(boost::beast::string_view s) { return {s.data(), s.size()}; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == ':' || c == '[' || c == ']' || c == '~' || c == '%';
}

// The field names listed in Connection headers. Up to 16 are remembered; a message naming
// more is unusual enough that the rest are still dropped by the fixed hop-by-hop list only.
struct ConnectionTokens {
  std::array<std::string_view, 16> names;
  size_t count = 0;

  template <class Fields>
  explicit ConnectionTokens(const Fields& fields) {
    auto [begin, end] = fields.equal_range(http::field::connection);
    for (auto it = begin; it != end; ++it) {
      for (auto token : http::token_list(it->value())) {
        if (count < names.size()) names[count++] = View(token);
      }
    }
  }
  bool Names(std::string_view field) const {
    for (size_t i = 0; i < count; ++i) {
      if (EqualsIgnoreCase(names[i], field)) return true;
    }
    return false;
  }
};

bool IsForwardedField(std::string_view name) {
  return EqualsIgnoreCase(name, "x-forwarded-for") || EqualsIgnoreCase(name, "x-forwarded-proto") ||
         EqualsIgnoreCase(name, "x-forwarded-host") || EqualsIgnoreCase(name, "x-request-id");
}

void AppendField(std::string* out, std::string_view name, std::string_view value) {
  out->append(name);
  out->append(": ");
  out->append(value);
  out->append("\r\n");
}

void AppendNumber(std::string* out, uint64_t n) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), n);
  out->append(buf, end);
}

// The field that says how the body is delimited (none for kNone / kCloseDelimited).
void AppendFraming(std::string* out, BodyFraming framing, uint64_t length) {
  switch (framing) {
    case BodyFraming::kLength:
      out->append("Content-Length: ");
      AppendNumber(out, length);
      out->append("\r\n");
      break;
    case BodyFraming::kChunked:
      out->append("Transfer-Encoding: chunked\r\n");
      break;
    default:
      break;
  }
}

bool Replaced(const std::vector<std::pair<std::string, std::string>>& extra,
              std::string_view name) {
  for (const auto& [n, v] : extra) {
    if (EqualsIgnoreCase(n, name)) return true;
  }
  return false;
}

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

template <class Fields>
const char* CheckRequestHead(const http::header<true, Fields>& request) {
  int content_length = 0, transfer_encoding = 0, host = 0;
  for (const auto& field : request) {
    switch (field.name()) {
      case http::field::content_length:
        ++content_length;
        if (View(field.value()).find(',') != std::string_view::npos)
          return "Content-Length must be a single number";
        break;
      case http::field::transfer_encoding:
        ++transfer_encoding;
        if (!EqualsIgnoreCase(Trim(View(field.value())), "chunked"))
          return "the only Transfer-Encoding accepted is \"chunked\"";
        break;
      case http::field::host:
        ++host;
        for (char c : View(field.value())) {
          if (!IsHostChar(c)) return "the Host header is not a host name";
        }
        break;
      default:
        break;
    }
  }
  if (content_length > 1) return "Content-Length is repeated";
  if (transfer_encoding > 1) return "Transfer-Encoding is repeated";
  if (content_length > 0 && transfer_encoding > 0)
    return "Content-Length and Transfer-Encoding together";
  if (transfer_encoding > 0 && request.version() < 11)
    return "Transfer-Encoding in an HTTP/1.0 request";
  if (host > 1) return "the Host header is repeated";
  return nullptr;
}

template <class Fields>
bool IsUpgradeRequest(const http::header<true, Fields>& request) {
  if (request.version() < 11) return false;
  if (request.find(http::field::upgrade) == request.end()) return false;
  auto [begin, end] = request.equal_range(http::field::connection);
  for (auto it = begin; it != end; ++it) {
    if (http::token_list(it->value()).exists("upgrade")) return true;
  }
  return false;
}

bool IsIdempotent(http::verb method) {
  switch (method) {
    case http::verb::get:
    case http::verb::head:
    case http::verb::options:
    case http::verb::put:
    case http::verb::delete_:
    case http::verb::trace:
      return true;
    default:
      return false;
  }
}

bool IsSaneRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '+' || c == '/' || c == '=' ||
                    c == '@' || c == '-';
    if (!ok) return false;
  }
  return true;
}

RequestIdGenerator::RequestIdGenerator() {
  std::random_device random;
  prefix_ = (uint64_t{random()} << 32) ^ random();
  counter_ = (uint64_t{random()} << 32) ^ random();
}

void RequestIdGenerator::Next(std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  char buf[32];
  const uint64_t parts[2] = {prefix_, SplitMix(counter_++)};
  for (int p = 0; p < 2; ++p) {
    for (int i = 0; i < 16; ++i) buf[p * 16 + i] = kHex[(parts[p] >> (60 - 4 * i)) & 0xf];
  }
  out->assign(buf, sizeof(buf));
}

template <class Fields>
void WriteUpstreamRequestHead(const http::header<true, Fields>& request,
                              const ForwardedRequest& forward, std::string* out) {
  out->clear();
  out->append(View(request.method_string()));
  out->push_back(' ');
  out->append(forward.target.empty() ? View(request.target()) : forward.target);
  out->append(" HTTP/1.1\r\n");
  const ConnectionTokens tokens(request);
  std::string_view original_host;
  size_t forwarded_for_count = 0;
  for (const auto& field : request) {
    const std::string_view name = View(field.name_string());
    switch (field.name()) {
      case http::field::connection:
      case http::field::keep_alive:
      case http::field::proxy_connection:
      case http::field::te:
      case http::field::trailer:
      case http::field::content_length:
      case http::field::transfer_encoding:
        continue;
      case http::field::upgrade:
        // Connection names Upgrade when upgrading: keep it then, whatever Connection says.
        if (forward.upgrade) AppendField(out, name, View(field.value()));
        continue;
      case http::field::expect:
        // The edge answers "100-continue" itself.
        if (EqualsIgnoreCase(Trim(View(field.value())), "100-continue")) continue;
        break;
      case http::field::host:
        original_host = View(field.value());
        AppendField(out, name, forward.host.empty() ? View(field.value()) : forward.host);
        continue;
      case http::field::unknown:
        if (IsForwardedField(name)) {
          if (EqualsIgnoreCase(name, "x-forwarded-for")) ++forwarded_for_count;
          continue;
        }
        break;
      default:
        break;
    }
    if (tokens.count != 0 && tokens.Names(name)) continue;
    AppendField(out, name, View(field.value()));
  }
  AppendFraming(out, forward.framing, forward.length);
  if (forward.upgrade) out->append("Connection: upgrade\r\n");
  out->append("X-Forwarded-For: ");
  if (forwarded_for_count != 0) {
    // Earlier proxies' entries first, then the client this edge saw.
    for (const auto& field : request) {
      if (field.name() == http::field::unknown &&
          EqualsIgnoreCase(View(field.name_string()), "x-forwarded-for")) {
        out->append(View(field.value()));
        out->append(", ");
      }
    }
  }
  out->append(forward.client_ip);
  out->append("\r\nX-Forwarded-Proto: ");
  out->append(forward.proto);
  out->append("\r\n");
  if (!original_host.empty()) AppendField(out, "X-Forwarded-Host", original_host);
  AppendField(out, "X-Request-Id", forward.request_id);
  out->append("\r\n");
}

template <class Fields>
void WriteClientResponseHead(const http::header<false, Fields>& response,
                             const ClientResponse& answer, std::string* out) {
  out->clear();
  out->append("HTTP/1.1 ");
  // Always three digits: the status line's grammar (the edge itself refuses codes
  // outside 100-599 before it gets here).
  const unsigned status = response.result_int() % 1000;
  out->push_back(static_cast<char>('0' + status / 100));
  out->push_back(static_cast<char>('0' + status / 10 % 10));
  out->push_back(static_cast<char>('0' + status % 10));
  out->push_back(' ');
  std::string_view reason = View(response.reason());
  if (reason.empty()) reason = "-";
  out->append(reason);
  out->append("\r\n");
  const ConnectionTokens tokens(response);
  for (const auto& field : response) {
    const std::string_view name = View(field.name_string());
    switch (field.name()) {
      case http::field::connection:
      case http::field::keep_alive:
      case http::field::proxy_connection:
      case http::field::te:
      case http::field::trailer:
        continue;
      case http::field::content_length:
        if (answer.framing != BodyFraming::kNone) continue;
        break;
      case http::field::transfer_encoding:
        if (answer.framing != BodyFraming::kNone || answer.client_version < 11) continue;
        break;
      case http::field::upgrade:
        if (answer.upgrade) AppendField(out, name, View(field.value()));
        continue;
      case http::field::unknown:
        if (EqualsIgnoreCase(name, "x-request-id")) continue;
        break;
      default:
        break;
    }
    if (answer.extra != nullptr && Replaced(*answer.extra, name)) continue;
    if (tokens.count != 0 && tokens.Names(name) && field.name() != http::field::content_length &&
        field.name() != http::field::transfer_encoding) {
      continue;
    }
    AppendField(out, name, View(field.value()));
  }
  if (answer.extra != nullptr) {
    for (const auto& [name, value] : *answer.extra) AppendField(out, name, value);
  }
  AppendFraming(out, answer.framing, answer.length);
  if (answer.upgrade) {
    out->append("Connection: upgrade\r\n");
  } else if (!answer.keep_alive) {
    out->append("Connection: close\r\n");
  } else if (answer.client_version < 11) {
    out->append("Connection: keep-alive\r\n");
  }
  if (!answer.request_id.empty()) AppendField(out, "X-Request-Id", answer.request_id);
  out->append("\r\n");
}

#define SLIPWAY_HEADERS_INSTANTIATE(F)                                                          \
  template const char* CheckRequestHead(const http::header<true, F>&);                          \
  template bool IsUpgradeRequest(const http::header<true, F>&);                                 \
  template void WriteUpstreamRequestHead(const http::header<true, F>&, const ForwardedRequest&, \
                                         std::string*);                                         \
  template void WriteClientResponseHead(const http::header<false, F>&, const ClientResponse&,   \
                                        std::string*);
SLIPWAY_HEADERS_INSTANTIATE(http::fields)
SLIPWAY_HEADERS_INSTANTIATE(ArenaFields)
#undef SLIPWAY_HEADERS_INSTANTIATE

void SetClientConnection(http::fields& fields, unsigned client_version, bool keep_alive) {
  fields.erase(http::field::connection);
  if (!keep_alive) {
    fields.set(http::field::connection, "close");
  } else if (client_version < 11) {
    fields.set(http::field::connection, "keep-alive");
  }
}

}  // namespace slipway::proxy
