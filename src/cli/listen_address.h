#pragma once

#include <string>

#include "common/status.h"

namespace slipway {

// ":8080" -> default_host:8080, "8080" -> default_host:8080, "127.0.0.1:9000" as
// given. kInvalidArgument naming `flag` otherwise.
Status ParseListenAddress(const std::string& text, const std::string& default_host,
                          std::string* host, int* port, const char* flag);

}  // namespace slipway
