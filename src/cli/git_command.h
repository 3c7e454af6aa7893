#pragma once

// git push to deploy (docs/git.md), the command-line side.
//
//   slipway git-remote [--project P] [--production-branch B] [--preview-from E] [--url]
//       creates the project's repository if needed and prints the remote to add, with
//       the API token in its URL, and the one-line command that adds it and pushes.
//   slipway git-hook pre-receive
//       what the repositories' pre-receive hook runs (git/git.h): reads the pushed
//       "<old> <new> <ref>" lines, deploys each branch — the production branch to
//       production, others to their preview environment, a deleted branch's preview
//       deleted — printing the progress (git shows it to the pusher as "remote: ..."),
//       and exits non-zero, refusing the push, when a deploy fails.

#include <string>

namespace slipway {

struct GitRemoteOptions {
  std::string project;  // "" : from the current directory
  std::string production_branch;
  std::string preview_from;
  bool url_only = false;
};

int GitRemoteCommand(const GitRemoteOptions& opts);
int GitHookCommand(const std::string& hook);

}  // namespace slipway
