// The projects' bare repositories: creating them and keeping their hook current.

#include <cstdlib>

#include "common/fs.h"
#include "common/names.h"
#include "common/subprocess.h"
#include "git/git.h"
#include "git/git_impl.h"

namespace slipway {

namespace {

// `text` as one sh word.
std::string ShellQuote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

}  // namespace

EnvMap GitEnvironment(const std::string& home) {
  const char* path = std::getenv("PATH");
  // The user's and the system's git config stay out: a core.hooksPath there would
  // replace the deploy hook, a credential helper would be asked for nothing.
  return EnvMap{{"PATH", path != nullptr && *path != '\0' ? path : "/usr/local/bin:/usr/bin:/bin"},
                {"HOME", home + "/git"},
                {"GIT_CONFIG_NOSYSTEM", "1"},
                {"GIT_CONFIG_GLOBAL", "/dev/null"},
                {"LANG", "C.UTF-8"}};
}

Result<std::unique_ptr<GitRepositories>> GitRepositories::Create(GitOptions options) {
  const char* path = std::getenv("PATH");
  std::string git = FindExecutable("git", path != nullptr ? path : "/usr/bin:/bin");
  if (git.empty()) {
    return NotFound(
        "git is not installed on the Slipway machine, so `git push` cannot deploy: install it "
        "(apt-get install git) and restart `slipway server`");
  }
  RETURN_IF_ERROR(MakeDirs(options.home + "/git", 0700));
  return std::unique_ptr<GitRepositories>(new GitRepositories(std::move(options), git));
}

GitRepositories::GitRepositories(GitOptions options, std::string git)
    : options_(std::move(options)), git_(std::move(git)) {}

std::string GitRepositories::RepositoryPath(const std::string& project) const {
  return options_.home + "/git/" + project + ".git";
}

bool GitRepositories::Exists(const std::string& project) const {
  return ValidateName(project, "project name").ok() &&
         PathExists(RepositoryPath(project) + "/HEAD");
}

Status GitRepositories::Ensure(const std::string& project, const std::string& production_branch) {
  RETURN_IF_ERROR(ValidateName(project, "project name"));
  RETURN_IF_ERROR(CheckBranchName(production_branch));
  const std::string repo = RepositoryPath(project);
  std::lock_guard<std::mutex> lock(mu_);
  if (!PathExists(repo + "/HEAD")) {
    // No templates: no sample hooks, no description file; the hook is ours alone.
    std::vector<std::vector<std::string>> steps = {
        {git_, "init", "--bare", "--quiet", "--template=", "--initial-branch=" + production_branch,
         repo},
        {git_, "--git-dir=" + repo, "config", "http.receivepack", "true"},
        // A reflog, so a force-pushed or deleted branch can be found again.
        {git_, "--git-dir=" + repo, "config", "core.logAllRefUpdates", "always"},
    };
    for (const auto& argv : steps) {
      SpawnOptions spawn;
      spawn.argv = argv;
      spawn.env = GitEnvironment(options_.home);
      std::string output;
      RunOptions run;
      run.timeout = std::chrono::seconds(30);
      run.on_line = [&](std::string_view line) { output += std::string(line) + "\n"; };
      auto done = RunCommand(spawn, run);
      if (!done.ok() || done->exit_code != 0) {
        (void)RemoveTree(repo);
        return Internal("cannot create the git repository " + repo + ": " + argv[1] + " " +
                        argv[2] + " failed" +
                        (done.ok() ? ": " + output : ": " + done.status().message()));
      }
    }
  }
  // HEAD names the production branch, so a clone checks it out.
  const std::string head = "ref: refs/heads/" + production_branch + "\n";
  auto current_head = ReadFile(repo + "/HEAD");
  if (!current_head.ok() || *current_head != head) {
    RETURN_IF_ERROR(WriteFileAtomic(repo + "/HEAD", head, 0644));
  }
  const std::string hook =
      "#!/bin/sh\n"
      "# Written by Slipway (rewritten on every push): deploys what is pushed and refuses\n"
      "# the push when the deploy fails. See docs/git.md.\n"
      "exec " +
      ShellQuote(options_.slipway_exe) + " git-hook pre-receive\n";
  RETURN_IF_ERROR(MakeDirs(repo + "/hooks", 0755));
  auto current_hook = ReadFile(repo + "/hooks/pre-receive");
  if (!current_hook.ok() || *current_hook != hook) {
    RETURN_IF_ERROR(WriteFileAtomic(repo + "/hooks/pre-receive", hook, 0755));
  }
  return Status::Ok();
}

}  // namespace slipway
