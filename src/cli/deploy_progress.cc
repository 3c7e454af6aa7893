#include "cli/deploy_progress.h"

#include <cstdio>
#include <vector>

#include "cli/cli_util.h"

namespace slipway {

using json = nlohmann::json;

std::string LiveLine(const std::string& service, const json& deployment) {
  const std::string type = deployment.value("type", "web");
  if (type == "worker") return service + " is running (a worker: no URL)";
  if (type == "cron") {
    return service + " is scheduled: " + deployment.value("schedule", "") + " (UTC), next run " +
           FormatTime(deployment.value("next_run", 0LL)) + "; `slipway cron run " + service +
           "` runs it now";
  }
  return service + " is live at " + deployment.value("url", "");
}

Result<json> FollowDeployment(const ApiClient& client, int64_t id, const std::string& label) {
  uint64_t offset = 0;
  std::string last_status;
  while (true) {
    ASSIGN_OR_RETURN(json dep, client.Get("/v1/deployments/" + std::to_string(id) +
                                              "?wait_ms=5000&log_offset=" + std::to_string(offset),
                                          20'000));
    std::string log = dep.value("log", "");
    if (!log.empty()) {
      std::fwrite(log.data(), 1, log.size(), stdout);
      std::fflush(stdout);
    }
    offset = dep.value("log_offset", offset);
    std::string status = dep.value("status", "");
    if (status != last_status) {
      if (status == "DEPLOYING") {
        std::printf("==> %s: starting the release and waiting for its health check\n",
                    label.c_str());
        std::fflush(stdout);
      }
      last_status = status;
    }
    if (dep.value("finished", false)) return dep;
  }
}

Result<int> FollowDeployments(const ApiClient& client, const json& deployments) {
  int failures = 0;
  std::vector<std::string> live;
  for (const auto& d : deployments) {
    std::string service = d["service"];
    std::printf("==> %s: deployment %lld\n", service.c_str(), d["id"].get<long long>());
    std::fflush(stdout);
    ASSIGN_OR_RETURN(json done, FollowDeployment(client, d["id"].get<int64_t>(), service));
    std::string status = done["status"];
    if (status == "ACTIVE") {
      live.push_back(LiveLine(service, done));
    } else {
      failures++;
      std::fprintf(stderr, "error: %s: deployment %lld %s: %s\n", service.c_str(),
                   d["id"].get<long long>(), status.c_str(),
                   done["error"].get<std::string>().c_str());
    }
  }
  for (const auto& l : live) std::printf("%s\n", l.c_str());
  std::fflush(stdout);
  return failures;
}

}  // namespace slipway
