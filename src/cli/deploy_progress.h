#pragma once

// Following deployments as they build and go live: what `slipway up`, `slipway
// variables --deploy` and the git push hook print.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/api_client.h"
#include "common/status.h"

namespace slipway {

// What is said of a service that went live: its URL, or what a worker or cron job does.
std::string LiveLine(const std::string& service, const nlohmann::json& deployment);

// Follows one deployment until it finishes, printing its build log and progress to
// stdout. Returns the final deployment JSON.
Result<nlohmann::json> FollowDeployment(const ApiClient& client, int64_t id,
                                        const std::string& label);

// Follows each of `deployments` (a deploy's accepted list: id, service) in turn, then
// prints the live line of each that went live; each that did not is an "error: ..."
// line on stderr with its status and reason. Returns how many did not go live.
Result<int> FollowDeployments(const ApiClient& client, const nlohmann::json& deployments);

}  // namespace slipway
