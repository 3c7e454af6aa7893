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

// A custom domain: lowercased; letters, digits, '-' and '.', labels of 1-63
// characters, optionally starting with "*." for a wildcard of one label. Returns the
// normalised host or kInvalidArgument naming the rule.
Result<std::string> NormalizeDomain(std::string_view host);

}  // namespace slipway
