#include "proxy/route_json.h"

#include <nlohmann/json.hpp>

namespace slipway {

using json = nlohmann::json;

namespace {

const char* BalanceName(Balance balance) {
  return balance == Balance::kLeastConnections ? "least_connections" : "round_robin";
}

const char* TrailingSlashName(TrailingSlash slash) {
  switch (slash) {
    case TrailingSlash::kAdd:
      return "add";
    case TrailingSlash::kRemove:
      return "remove";
    default:
      return "";
  }
}

// The static-site fields of a route object (edge.h): checked here, each error naming
// the route and the key.
Status ReadStaticRules(const json& r, const std::string& where, Route& route) {
  auto rules = [&](const char* key, auto&& add) -> Status {
    if (!r.contains(key)) return Status();
    const json& list = r[key];
    if (!list.is_array()) return InvalidArgument(where + ": \"" + key + "\" must be a list");
    for (const json& rule : list) {
      if (!rule.is_object() || !rule.contains("source") || !rule["source"].is_string()) {
        return InvalidArgument(where + ": each of \"" + key + "\" needs a string \"source\"");
      }
      RETURN_IF_ERROR(add(rule));
    }
    return Status();
  };
  auto destination = [&](const json& rule, const char* key, std::string* out) -> Status {
    if (!rule.contains("destination") || !rule["destination"].is_string()) {
      return InvalidArgument(where + ": each of \"" + key + "\" needs a string \"destination\"");
    }
    *out = rule["destination"].get<std::string>();
    return Status();
  };
  RETURN_IF_ERROR(rules("redirects", [&](const json& rule) -> Status {
    StaticRedirect redirect;
    redirect.source = rule["source"].get<std::string>();
    RETURN_IF_ERROR(destination(rule, "redirects", &redirect.destination));
    if (rule.contains("status")) {
      if (!rule["status"].is_number_integer()) {
        return InvalidArgument(where + ": a redirect's \"status\" must be an integer");
      }
      redirect.status = rule["status"].get<int>();
    }
    route.redirects.push_back(std::move(redirect));
    return Status();
  }));
  RETURN_IF_ERROR(rules("rewrites", [&](const json& rule) -> Status {
    StaticRewrite rewrite;
    rewrite.source = rule["source"].get<std::string>();
    RETURN_IF_ERROR(destination(rule, "rewrites", &rewrite.destination));
    route.rewrites.push_back(std::move(rewrite));
    return Status();
  }));
  RETURN_IF_ERROR(rules("headers", [&](const json& rule) -> Status {
    StaticHeaders headers;
    headers.source = rule["source"].get<std::string>();
    if (rule.contains("headers")) {
      if (!rule["headers"].is_array()) {
        return InvalidArgument(where + ": a header rule's \"headers\" must be a list");
      }
      for (const json& pair : rule["headers"]) {
        if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) {
          return InvalidArgument(where + ": each header must be [\"Name\", \"value\"]");
        }
        headers.headers.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
      }
    }
    route.headers.push_back(std::move(headers));
    return Status();
  }));
  for (const char* key : {"clean_urls", "spa_fallback"}) {
    if (!r.contains(key)) continue;
    if (!r[key].is_boolean()) {
      return InvalidArgument(where + ": \"" + key + "\" must be true or false");
    }
    (std::string_view(key) == "clean_urls" ? route.clean_urls : route.spa_fallback) =
        r[key].get<bool>();
  }
  if (r.contains("trailing_slash")) {
    const json& t = r["trailing_slash"];
    if (t == "") {
      route.trailing_slash = TrailingSlash::kLeave;
    } else if (t == "add") {
      route.trailing_slash = TrailingSlash::kAdd;
    } else if (t == "remove") {
      route.trailing_slash = TrailingSlash::kRemove;
    } else {
      return InvalidArgument(where + ": \"trailing_slash\" must be \"\", \"add\" or \"remove\"");
    }
  }
  return Status();
}

}  // namespace

std::string RouteTableToJson(const RouteTable& table) {
  json routes = json::array();
  for (const Route& r : table.routes) {
    json upstreams = json::array();
    for (const Upstream& u : r.upstreams) upstreams.push_back({{"host", u.host}, {"port", u.port}});
    json route = {{"host", r.host},
                  {"service", r.service_label},
                  {"path_prefix", r.path_prefix},
                  {"balance", BalanceName(r.balance)},
                  {"upstreams", upstreams},
                  {"static_root", r.static_root},
                  {"max_body_bytes", r.max_body_bytes},
                  {"redirect_to_https", r.redirect_to_https}};
    const bool rules = !r.headers.empty() || !r.redirects.empty() || !r.rewrites.empty() ||
                       r.clean_urls || r.trailing_slash != TrailingSlash::kLeave || r.spa_fallback;
    if (!r.static_root.empty() || rules) {
      json redirects = json::array(), rewrites = json::array(), headers = json::array();
      for (const StaticRedirect& x : r.redirects) {
        redirects.push_back(
            {{"source", x.source}, {"destination", x.destination}, {"status", x.status}});
      }
      for (const StaticRewrite& x : r.rewrites) {
        rewrites.push_back({{"source", x.source}, {"destination", x.destination}});
      }
      for (const StaticHeaders& x : r.headers) {
        json pairs = json::array();
        for (const auto& [k, v] : x.headers) pairs.push_back(json::array({k, v}));
        headers.push_back({{"source", x.source}, {"headers", pairs}});
      }
      route["headers"] = headers;
      route["redirects"] = redirects;
      route["rewrites"] = rewrites;
      route["clean_urls"] = r.clean_urls;
      route["trailing_slash"] = TrailingSlashName(r.trailing_slash);
      route["spa_fallback"] = r.spa_fallback;
    }
    routes.push_back(std::move(route));
  }
  // Names are not guaranteed UTF-8; invalid bytes become U+FFFD instead of throwing.
  return json{{"routes", routes}}.dump(2, ' ', false, json::error_handler_t::replace);
}

Result<RouteTable> RouteTableFromJson(const std::string& text) {
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("routes") ||
      !doc["routes"].is_array()) {
    return InvalidArgument("routing table: expected {\"routes\": [...]}");
  }
  RouteTable table;
  size_t index = 0;
  for (const json& r : doc["routes"]) {
    std::string where = "routing table: route " + std::to_string(index++);
    if (!r.is_object() || !r.contains("host") || !r["host"].is_string()) {
      return InvalidArgument(where + ": \"host\" must be a string");
    }
    auto string_field = [&](const char* key, std::string* out) -> Status {
      if (!r.contains(key)) return Status();
      if (!r[key].is_string()) return InvalidArgument(where + ": \"" + key + "\" must be a string");
      *out = r[key].get<std::string>();
      return Status();
    };
    Route route;
    route.host = r["host"].get<std::string>();
    route.service_label = route.host;
    RETURN_IF_ERROR(string_field("service", &route.service_label));
    RETURN_IF_ERROR(string_field("static_root", &route.static_root));
    RETURN_IF_ERROR(string_field("path_prefix", &route.path_prefix));
    if (r.contains("balance")) {
      const json& b = r["balance"];
      if (b == "round_robin") {
        route.balance = Balance::kRoundRobin;
      } else if (b == "least_connections") {
        route.balance = Balance::kLeastConnections;
      } else {
        return InvalidArgument(where +
                               ": \"balance\" must be \"round_robin\" or \"least_connections\"");
      }
    }
    if (r.contains("max_body_bytes")) {
      if (!r["max_body_bytes"].is_number_integer())
        return InvalidArgument(where + ": \"max_body_bytes\" must be an integer");
      route.max_body_bytes = r["max_body_bytes"].get<int64_t>();
    }
    if (r.contains("redirect_to_https")) {
      if (!r["redirect_to_https"].is_boolean())
        return InvalidArgument(where + ": \"redirect_to_https\" must be true or false");
      route.redirect_to_https = r["redirect_to_https"].get<bool>();
    }
    RETURN_IF_ERROR(ReadStaticRules(r, where, route));
    if (r.contains("upstreams")) {
      if (!r["upstreams"].is_array())
        return InvalidArgument(where + ": \"upstreams\" must be a list");
      for (const json& u : r["upstreams"]) {
        if (!u.is_object() || !u.contains("port") || !u["port"].is_number_integer()) {
          return InvalidArgument(where + ": each upstream needs an integer \"port\"");
        }
        if (u.contains("host") && !u["host"].is_string()) {
          return InvalidArgument(where + ": an upstream's \"host\" must be a string");
        }
        route.upstreams.push_back(Upstream{u.value("host", "127.0.0.1"), u["port"].get<int>()});
      }
    }
    table.routes.push_back(std::move(route));
  }
  return table;
}

std::string RouteMetricsToJson(const std::vector<RouteMetrics>& metrics) {
  json routes = json::array();
  for (const RouteMetrics& m : metrics) {
    json buckets = json::array();
    for (const LatencyBucket& b : m.latency) buckets.push_back(json::array({b.upper_ms, b.count}));
    routes.push_back(
        {{"host", m.host},
         {"path_prefix", m.path_prefix},
         {"service", m.service_label},
         {"requests", m.requests},
         {"status",
          {{"1xx", m.status_classes[0]},
           {"2xx", m.status_classes[1]},
           {"3xx", m.status_classes[2]},
           {"4xx", m.status_classes[3]},
           {"5xx", m.status_classes[4]}}},
         {"bytes_in", m.bytes_in},
         {"bytes_out", m.bytes_out},
         {"latency_ms",
          {{"p50", m.p50_ms}, {"p95", m.p95_ms}, {"p99", m.p99_ms}, {"buckets", buckets}}}});
  }
  return json{{"routes", routes}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

// Reads a JSON document; nlohmann throws only from the typed getters used below, which
// the callers reach after checking the types.
Result<json> ParseObject(const std::string& text, const char* what, const char* key) {
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains(key) || !doc[key].is_array()) {
    return InvalidArgument(std::string(what) + ": expected {\"" + key + "\": [...]}");
  }
  return doc;
}

uint64_t Count(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return 0;
  const json& v = j[key];
  return v.is_number_unsigned() || v.is_number_integer() ? v.get<uint64_t>() : 0;
}

double Number(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return 0;
  return j[key].get<double>();
}

std::string Text(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return "";
  return j[key].get<std::string>();
}

}  // namespace

Result<std::vector<RouteMetrics>> RouteMetricsFromJson(const std::string& text) {
  ASSIGN_OR_RETURN(json doc, ParseObject(text, "route metrics", "routes"));
  std::vector<RouteMetrics> out;
  for (const json& r : doc["routes"]) {
    if (!r.is_object()) return InvalidArgument("route metrics: each route must be an object");
    RouteMetrics m;
    m.host = Text(r, "host");
    m.path_prefix = Text(r, "path_prefix");
    m.service_label = Text(r, "service");
    m.requests = Count(r, "requests");
    if (r.contains("status")) {
      const json& st = r["status"];
      const char* keys[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
      for (size_t i = 0; i < 5; ++i) m.status_classes[i] = Count(st, keys[i]);
    }
    m.bytes_in = Count(r, "bytes_in");
    m.bytes_out = Count(r, "bytes_out");
    if (r.contains("latency_ms") && r["latency_ms"].is_object()) {
      const json& l = r["latency_ms"];
      m.p50_ms = Number(l, "p50");
      m.p95_ms = Number(l, "p95");
      m.p99_ms = Number(l, "p99");
      if (l.contains("buckets") && l["buckets"].is_array()) {
        for (const json& b : l["buckets"]) {
          if (!b.is_array() || b.size() != 2 || !b[0].is_number() || !b[1].is_number()) {
            return InvalidArgument("route metrics: a latency bucket must be [upper_ms, count]");
          }
          m.latency.push_back(LatencyBucket{b[0].get<double>(), b[1].get<uint64_t>()});
        }
      }
    }
    out.push_back(std::move(m));
  }
  return out;
}

std::string UpstreamLoadsToJson(const std::vector<UpstreamLoad>& loads) {
  json list = json::array();
  for (const UpstreamLoad& u : loads) {
    list.push_back({{"address", u.address}, {"port", u.port}, {"in_flight", u.in_flight}});
  }
  return json{{"upstreams", list}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<std::vector<UpstreamLoad>> UpstreamLoadsFromJson(const std::string& text) {
  ASSIGN_OR_RETURN(json doc, ParseObject(text, "upstream loads", "upstreams"));
  std::vector<UpstreamLoad> out;
  for (const json& u : doc["upstreams"]) {
    if (!u.is_object() || !u.contains("port") || !u["port"].is_number_integer() ||
        !u.contains("in_flight") || !u["in_flight"].is_number_integer()) {
      return InvalidArgument("upstream loads: each needs an integer \"port\" and \"in_flight\"");
    }
    out.push_back(
        UpstreamLoad{Text(u, "address"), u["port"].get<int>(), u["in_flight"].get<int>()});
  }
  return out;
}

}  // namespace slipway
