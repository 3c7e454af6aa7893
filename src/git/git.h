#pragma once

// Git: `git push` to deploy (docs/git.md).
//
// Each project has a bare repository, <home>/git/<project>.git, created on its first
// push (or by `slipway git-remote`). The control API serves them over git's smart HTTP
// protocol by running `git http-backend` as a CGI (GitRepositories::ServeHttp). Every
// repository carries a pre-receive hook that runs this binary (`slipway git-hook
// pre-receive`): it deploys the pushed branch — the production branch to the
// "production" environment, any other branch to a preview environment of its own —
// and rejects the push when the deploy fails, so a branch in Slipway's repository is
// always what serves.
//
// The pure parts — which branch goes where, which services a change touches — are
// free functions here, so the hook and the tests share them.
//
// Thread-safety: the free functions are pure; GitRepositories may be used from any
// thread (creating a repository is serialised internally).

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "config/config.h"

namespace slipway {

inline constexpr const char* kDefaultProductionBranch = "main";
inline constexpr const char* kDefaultPreviewFrom = "production";

// ---- what a push deploys ---------------------------------------------------------

// One line a pre-receive hook reads: "<old> <new> <ref>".
struct RefUpdate {
  std::string old_id;  // 40 zeros: the ref is created
  std::string new_id;  // 40 zeros: the ref is deleted
  std::string ref;     // "refs/heads/main"

  bool created() const;
  bool deleted() const;
};

// The update lines of a hook's stdin; kInvalidArgument naming the line that is not
// "<40 hex> <40 hex> <ref>".
Result<std::vector<RefUpdate>> ParseRefUpdates(std::string_view text);

// "refs/heads/feature/login" -> "feature/login"; "" for a ref that is no branch (tags).
std::string BranchOfRef(std::string_view ref);

// OK for a name git accepts as a branch (git check-ref-format --branch, in short: no
// spaces, control characters, "..", "@{", ~^:?*[\, no leading '-' or '/', no trailing
// '/', '.' or ".lock"); kInvalidArgument naming the rule otherwise.
Status CheckBranchName(std::string_view branch);

// The preview environment of `branch` in `project`, given the project's environments
// (name -> the branch it previews, "" for one that is not a preview):
//   - the environment that already previews `branch`, if any (stable across pushes);
//   - else the branch as a DNS label: lowercased, every run of characters other than
//     [a-z0-9] one '-', trimmed ("feature/login" -> "feature-login"), at most
//     kMaxPreviewName characters and no longer than leaves <project>-<env> a DNS label
//     of 63 (but never under 8);
//   - when that is too long, "production", or taken by another environment (a preview
//     of another branch, "Feature/Login", or one made with `slipway env create`): its
//     start with "-" and 6 hex digits of a hash of the branch ("feature-login-3f2a9c").
// Deterministic: the same branch and environments give the same name.
inline constexpr size_t kMaxPreviewName = 40;
std::string PreviewEnvironmentName(std::string_view branch, std::string_view project,
                                   const std::map<std::string, std::string>& environments);

// Whether a push redeploys a service, and why (shown to the pusher).
struct ServiceChange {
  std::string service;
  bool deploy = false;
  std::string reason;  // "3 files under api/ changed", "its configuration changed", ...
};

// Which services of `after` (the config of the pushed commit) a push touches, given
// `before` (the config of the commit the branch pointed at; null for a branch's first
// push: every service) and the paths that differ between the two commits (relative to
// the repository root, which is the project root). A service is deployed when
//   - it is new, or its configuration (ServiceConfigToJson) differs from before's;
//   - the shared variables or the add-ons of the project changed (every service);
//   - a changed path matches its watchPatterns, or, without watchPatterns, lies under
//     its rootDirectory ("." : any path).
// In the order of `after.services`. kInvalidArgument naming a bad watch pattern.
Result<std::vector<ServiceChange>> ServicesTouched(const ProjectConfig* before,
                                                   const ProjectConfig& after,
                                                   const std::vector<std::string>& changed_paths);

// ---- repositories and smart HTTP ---------------------------------------------------

struct GitOptions {
  std::string home;         // repositories under <home>/git
  std::string slipway_exe;  // the binary the hooks run (absolute)
  // Given to the hooks as SLIPWAY_URL: the control API serving the repositories.
  std::string api_url;
  // A request (for a push: receiving it, the hook's deploy, the answer) is killed
  // when it runs longer than this.
  std::chrono::seconds request_timeout{std::chrono::hours(1)};
};

// One smart-HTTP request, as the control API received it.
struct GitHttpRequest {
  std::string method;        // "GET" or "POST"
  std::string project;       // a valid project name
  std::string path;          // after "<project>.git/": "info/refs", "git-receive-pack", ...
  std::string query;         // raw query string: "service=git-receive-pack"
  std::string content_type;  // of the body
  std::string content_encoding;
  std::string git_protocol;  // the Git-Protocol header ("version=2")
  std::string remote_user;   // who authenticated (never the token)
  std::string body_path;     // the request body, spooled whole to a file (the caller
                             // bounds its size); "" : none
};

// Where ServeHttp writes its answer: the status and headers once, then the body in
// pieces as git produces it. An error from Write (the client went away) stops the
// writing, not the command: a push that is running completes.
class GitHttpResponder {
 public:
  virtual ~GitHttpResponder() = default;
  virtual Status Begin(int status,
                       const std::vector<std::pair<std::string, std::string>>& headers) = 0;
  virtual Status Write(std::string_view data) = 0;
};

class GitRepositories {
 public:
  // kNotFound when no `git` is on PATH (naming the package to install).
  static Result<std::unique_ptr<GitRepositories>> Create(GitOptions options);

  // <home>/git/<project>.git
  std::string RepositoryPath(const std::string& project) const;
  bool Exists(const std::string& project) const;

  // Creates the project's bare repository if missing and (re)writes its hook, so a
  // moved or upgraded binary is the one that runs; HEAD names `production_branch` (so
  // a clone checks it out). Idempotent. kInvalidArgument for an invalid project name.
  Status Ensure(const std::string& project, const std::string& production_branch);

  // Serves one smart-HTTP request through `git http-backend`: the repository must
  // exist (Ensure first for a push). Only the smart protocol's paths (info/refs with
  // a service, git-upload-pack, git-receive-pack) are served; others are kNotFound.
  // Returns OK once the answer was written (whatever its status), or an error before
  // anything was: kDeadlineExceeded past request_timeout, kInternal when git
  // http-backend did not answer like a CGI. git's own stderr goes to
  // <home>/logs/git.log.
  Status ServeHttp(const GitHttpRequest& request, GitHttpResponder& responder);

 private:
  explicit GitRepositories(GitOptions options, std::string git);
  GitOptions options_;
  std::string git_;  // path of the git binary
  std::mutex mu_;    // serialises creating repositories
};

}  // namespace slipway
