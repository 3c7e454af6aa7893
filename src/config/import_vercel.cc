#include "config/importers.h"

namespace slipway {

Result<ProjectConfig> ImportVercel(std::string_view, const std::string& filename) {
  return Internal(filename + ": not read yet");
}

}  // namespace slipway
