#include <fmt/format.h>

#include <ctime>

#include "proxy/edge.h"

namespace slipway {

namespace {

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        // Control bytes, and bytes >= 0x80 (which may not be UTF-8: a request target can
        // hold any of them), are escaped one by one, so every line stays valid JSON.
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
          *out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

void Field(std::string* out, std::string_view name, std::string_view value) {
  out->push_back(',');
  AppendJsonString(out, name);
  out->push_back(':');
  AppendJsonString(out, value);
}

}  // namespace

std::string FormatAccessLogLine(const AccessLogEntry& e) {
  using namespace std::chrono;
  const auto since_epoch = e.time.time_since_epoch();
  const time_t secs = static_cast<time_t>(duration_cast<seconds>(since_epoch).count());
  const auto millis = duration_cast<milliseconds>(since_epoch).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[40];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out = "{\"time\":\"";
  out += fmt::format("{}.{:03d}Z\"", stamp, static_cast<int>(millis));
  Field(&out, "request_id", e.request_id);
  Field(&out, "client", e.client_ip);
  Field(&out, "method", e.method);
  Field(&out, "host", e.host);
  Field(&out, "path", e.path);
  out += fmt::format(",\"status\":{},\"bytes_in\":{},\"bytes_out\":{},\"ms\":{:.3f}", e.status,
                     e.bytes_in, e.bytes_out, e.duration_ms);
  Field(&out, "upstream", e.upstream);
  Field(&out, "route", e.route);
  Field(&out, "service", e.service);
  out += e.tls ? ",\"tls\":true" : ",\"tls\":false";
  if (!e.note.empty()) Field(&out, "note", e.note);
  out.push_back('}');
  return out;
}

}  // namespace slipway
