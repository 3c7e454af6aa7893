#include "proxy/route_json.h"

#include <nlohmann/json.hpp>

namespace slipway {

using json = nlohmann::json;

std::string RouteTableToJson(const RouteTable& table) {
  json routes = json::array();
  for (const Route& r : table.routes) {
    json upstreams = json::array();
    for (const Upstream& u : r.upstreams) upstreams.push_back({{"host", u.host}, {"port", u.port}});
    routes.push_back({{"host", r.host},
                      {"service", r.service_label},
                      {"upstreams", upstreams},
                      {"static_root", r.static_root}});
  }
  return json{{"routes", routes}}.dump(2);
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
    Route route;
    route.host = r["host"].get<std::string>();
    route.service_label = r.value("service", route.host);
    route.static_root = r.value("static_root", "");
    if (r.contains("upstreams")) {
      if (!r["upstreams"].is_array())
        return InvalidArgument(where + ": \"upstreams\" must be a list");
      for (const json& u : r["upstreams"]) {
        if (!u.is_object() || !u.contains("port") || !u["port"].is_number_integer()) {
          return InvalidArgument(where + ": each upstream needs an integer \"port\"");
        }
        route.upstreams.push_back(Upstream{u.value("host", "127.0.0.1"), u["port"].get<int>()});
      }
    }
    table.routes.push_back(std::move(route));
  }
  return table;
}

}  // namespace slipway
