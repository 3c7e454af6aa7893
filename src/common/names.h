#pragma once

// Names of projects, environments and services: each becomes a DNS label in the
// service's URL (<service>.<project>.localhost), so each is 1-63 characters of
// [a-z0-9-], not starting or ending with '-'.

#include <string>
#include <string_view>

#include "common/status.h"

namespace slipway {

// "My App_2" -> "my-app-2"; "" when nothing usable is left.
std::string SanitizeName(std::string_view raw);
// OK, or kInvalidArgument naming `what` ("project name") and the rule.
Status ValidateName(std::string_view name, std::string_view what);

}  // namespace slipway
