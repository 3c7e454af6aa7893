// The slipway binary: daemon, CLI and the per-replica shim in one executable.

#include <cstring>

#include "cli/cli.h"
#include "supervisor/supervisor.h"

int main(int argc, char** argv) {
  // The shim is exec'd by the supervisor for every replica; it bypasses the CLI.
  if (argc > 1 && std::strcmp(argv[1], "shim") == 0) return slipway::ShimMain(argc, argv);
  return slipway::RunCli(argc, argv);
}
