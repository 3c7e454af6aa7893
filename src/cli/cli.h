#pragma once

// The `slipway` command line: the daemon (`slipway server`) and the client commands
// that talk to its control API (up, status, deployments, logs). DESIGN.md's "user's
// interface" is the contract this implements.

namespace slipway {

// Runs the command line; returns the process exit code. Errors are printed to stderr
// as one line starting with "error: ".
int RunCli(int argc, char** argv);

}  // namespace slipway
