#pragma once

// Internals of the git subsystem shared by its .cc files.

#include <string>

#include "common/subprocess.h"

namespace slipway {

// The environment every git command Slipway runs gets: PATH, a HOME of its own under
// <home>/git, and neither the user's nor the system's git config.
EnvMap GitEnvironment(const std::string& home);

}  // namespace slipway
