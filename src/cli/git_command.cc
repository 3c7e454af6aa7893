#include "cli/git_command.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/api_client.h"
#include "cli/cli_util.h"
#include "cli/deploy_progress.h"
#include "common/archive.h"
#include "common/fs.h"
#include "common/subprocess.h"
#include "config/config.h"
#include "git/git.h"

namespace slipway {

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxTreeBytes = 512ull << 20;  // what `slipway up` uploads at most
constexpr size_t kMaxHookInput = 1 << 20;

// One line to the pusher (git shows it as "remote: ...").
void Say(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

void SayError(const std::string& line) {
  std::fflush(stdout);
  std::fputs(("error: " + line + "\n").c_str(), stderr);
  std::fflush(stderr);
}

// A directory removed when it goes out of scope.
struct ScopedDir {
  std::string path;
  ScopedDir() = default;
  ScopedDir(const ScopedDir&) = delete;
  ScopedDir& operator=(const ScopedDir&) = delete;
  ~ScopedDir() {
    if (!path.empty()) (void)RemoveTree(path);
  }
};

// Runs git in the repository the hook runs in, with the hook's environment (which,
// in a pre-receive hook, lets git read the pushed objects still in quarantine).
// Returns its stdout; an error naming the command and git's message when it fails.
Result<std::string> RunGit(const std::vector<std::string>& args, const std::string& work) {
  SpawnOptions spawn;
  spawn.argv = {"git"};
  spawn.argv.insert(spawn.argv.end(), args.begin(), args.end());
  spawn.env = CurrentEnvironment();
  spawn.stderr_path = work + "/git-stderr.log";
  (void)RemoveTree(spawn.stderr_path);
  std::string out;
  bool first = true;
  RunOptions run;
  run.timeout = std::chrono::minutes(10);
  run.on_line = [&](std::string_view line) {
    if (!first) out.push_back('\n');
    out.append(line);
    first = false;
  };
  ASSIGN_OR_RETURN(CommandOutcome done, RunCommand(spawn, run));
  if (done.exit_code != 0) {
    auto err = ReadFile(spawn.stderr_path);
    return Internal("git " + args.front() + " failed (exit " + std::to_string(done.exit_code) +
                    "): " + FirstLine(err.ok() ? *err : ""));
  }
  return out;
}

// The commit's tree, unpacked into <work>/<name>.
Status ExportTree(const std::string& commit, const std::string& work, const std::string& name) {
  const std::string tar = work + "/" + name + ".tar";
  RETURN_IF_ERROR(RunGit({"archive", "--format=tar", "-o", tar, commit}, work).status());
  Status unpacked = UnpackArchive(tar, work + "/" + name, kMaxTreeBytes * 4);
  (void)RemoveTree(tar);
  return unpacked;
}

// Paths that differ between two commits (deleted, added, modified; renames as both).
Result<std::vector<std::string>> ChangedPaths(const std::string& from, const std::string& to,
                                              const std::string& work) {
  ASSIGN_OR_RETURN(std::string out,
                   RunGit({"diff", "--name-only", "-z", "--no-renames", from, to}, work));
  std::vector<std::string> paths;
  size_t start = 0;
  while (start < out.size()) {
    size_t end = out.find('\0', start);
    if (end == std::string::npos) end = out.size();
    if (end > start) paths.push_back(out.substr(start, end - start));
    start = end + 1;
  }
  return paths;
}

struct Hook {
  const ApiClient& client;
  std::string project;
  std::string production_branch;
  std::string preview_from;

  std::string ProjectPath(const std::string& what) const {
    return "/v1/projects/" + UrlEncode(project) + what;
  }

  // The project's environments: name -> the branch it previews ("" for none); empty
  // for a project not deployed yet.
  Result<std::map<std::string, std::string>> Environments() const {
    std::map<std::string, std::string> out;
    auto res = client.Get(ProjectPath("/environments"));
    if (!res.ok()) {
      if (res.status().code() == StatusCode::kNotFound) return out;
      return res.status();
    }
    for (const auto& e : (*res)["environments"]) out[e.value("name", "")] = e.value("branch", "");
    return out;
  }

  // Service name -> status of its active deployment ("" : none) in `env`.
  Result<std::map<std::string, std::string>> ActiveStatuses(const std::string& env) const {
    std::map<std::string, std::string> out;
    auto res = client.Get(ProjectPath("/status?env=" + UrlEncode(env)));
    if (!res.ok()) {
      if (res.status().code() == StatusCode::kNotFound) return out;
      return res.status();
    }
    for (const auto& s : (*res)["services"]) {
      out[s.value("name", "")] =
          s.value("active_deployment_id", 0LL) != 0 ? s.value("active_status", "") : "";
    }
    return out;
  }

  Status DeleteBranch(const std::string& branch) const {
    if (branch == production_branch) {
      Say("==> " + branch + " deleted: it is the production branch; production keeps running");
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(auto envs, Environments());
    for (const auto& [name, previewed] : envs) {
      if (previewed != branch) continue;
      Say("==> " + branch + " deleted: deleting its preview environment " + name);
      RETURN_IF_ERROR(
          client.Delete(ProjectPath("/environments/" + UrlEncode(name)), 600'000).status());
      Say("preview environment " + name + " deleted: its URLs answer 404 now");
      return Status::Ok();
    }
    Say("==> " + branch + " deleted: it had no preview environment");
    return Status::Ok();
  }

  // Creates the preview environment of `branch` when it has none (setting *created);
  // returns its name.
  Result<std::string> PreviewEnvironment(const std::string& branch, bool* created) const {
    *created = false;
    ASSIGN_OR_RETURN(auto envs, Environments());
    const std::string name = PreviewEnvironmentName(branch, project, envs);
    if (envs.count(name)) return name;
    json body{{"name", name}, {"branch", branch}};
    if (envs.count(preview_from)) {
      body["from"] = preview_from;
      Say("==> " + branch + ": new preview environment " + name + ", with the services' settings " +
          "and variables of " + preview_from);
    } else {
      Say("==> " + branch + ": new preview environment " + name + " (" + preview_from +
          " does not exist yet: nothing to copy)");
    }
    RETURN_IF_ERROR(
        client.Post(ProjectPath("/environments"), body.dump(), "application/json", 60'000)
            .status());
    *created = true;
    return name;
  }

  Status DeployBranch(const RefUpdate& update, const std::string& branch) const {
    const bool production = branch == production_branch;
    const std::string short_id = update.new_id.substr(0, 7);
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/slipway-push-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) return ErrnoStatus("cannot create " + tmpl, errno);
    ScopedDir work;
    work.path = tmpl;

    RETURN_IF_ERROR(ExportTree(update.new_id, work.path, "new"));
    auto config = LoadProjectConfig(work.path + "/new", project);
    if (!config.ok()) return config.status().WithContext("commit " + short_id);
    if (config->name != project) {
      return InvalidArgument("commit " + short_id + ": " + config->source + " names project \"" +
                             config->name + "\", but this is the repository of project \"" +
                             project + "\": push to the remote `slipway git-remote --project " +
                             config->name + "` prints, or change the project name");
    }
    for (const auto& w : config->warnings) Say("warning: " + w);

    // What the branch pointed at before: its config and the paths changed since.
    ProjectConfig before_config;
    const ProjectConfig* before = nullptr;
    std::vector<std::string> changed;
    if (!update.created()) {
      RETURN_IF_ERROR(ExportTree(update.old_id, work.path, "old"));
      auto old = LoadProjectConfig(work.path + "/old", project);
      if (old.ok()) {
        before_config = std::move(*old);
        before = &before_config;
      } else {
        Say("the configuration of " + update.old_id.substr(0, 7) +
            " does not load: every service is deployed");
      }
      ASSIGN_OR_RETURN(changed, ChangedPaths(update.old_id, update.new_id, work.path));
    }
    ASSIGN_OR_RETURN(std::vector<ServiceChange> changes, ServicesTouched(before, *config, changed));

    if (production) {
      return Deploy(update, branch, "production", work.path + "/new", *config, changes);
    }
    bool created = false;
    ASSIGN_OR_RETURN(std::string env, PreviewEnvironment(branch, &created));
    Status deployed = Deploy(update, branch, env, work.path + "/new", *config, changes);
    if (!deployed.ok() && created) {
      // The push is refused, so the branch does not exist here: nor does its preview.
      if (client.Delete(ProjectPath("/environments/" + UrlEncode(env)), 600'000).ok()) {
        Say("preview environment " + env + " removed: the branch was not created");
      }
    }
    return deployed;
  }

  // Deploys the services `changes` calls for (and those not live in `env`) from the
  // tree in `dir`, following them until they are live or failed.
  Status Deploy(const RefUpdate& update, const std::string& branch, const std::string& env,
                const std::string& dir, const ProjectConfig& config,
                std::vector<ServiceChange>& changes) const {
    const bool production = env == "production";
    const std::string short_id = update.new_id.substr(0, 7);
    ASSIGN_OR_RETURN(auto active, ActiveStatuses(env));
    std::vector<std::string> deploy;
    Say("==> " + branch + " " + short_id + " -> " + env + " (project " + project + ")");
    for (size_t i = 0; i < changes.size(); ++i) {
      ServiceChange& change = changes[i];
      const std::string status = active.count(change.service) ? active[change.service] : "";
      std::string verb = "not redeployed";
      if (!production && config.services[i].type == "cron") {
        // As Vercel does: a preview's cron job would run on a schedule with production's
        // inherited secrets, against whatever they reach.
        change.deploy = false;
        change.reason = "a cron job: cron jobs run in production only";
        verb = "not deployed";
      } else if (!change.deploy && status != "ACTIVE") {
        change.deploy = true;
        change.reason = status.empty() ? "not deployed in " + env + " yet"
                                       : "its active deployment is " + status;
      }
      if (change.deploy) verb = "deploying";
      Say("    " + change.service + ": " + verb + " (" + change.reason + ")");
      if (change.deploy) deploy.push_back(change.service);
    }
    if (deploy.empty()) {
      Say("nothing to deploy for " + branch);
      return Status::Ok();
    }

    ASSIGN_OR_RETURN(std::string packed,
                     PackDirectory(dir, DefaultArchiveExcludes(), kMaxTreeBytes));
    std::string services;
    for (const auto& name : deploy) services += (services.empty() ? "" : ",") + name;
    const std::string target = "/v1/deploy?project=" + UrlEncode(project) +
                               "&env=" + UrlEncode(env) + "&services=" + UrlEncode(services) +
                               "&label=" + UrlEncode("git push " + branch + " " + short_id);
    ASSIGN_OR_RETURN(json accepted, client.Post(target, packed, "application/gzip", 600'000));
    for (const auto& w : accepted.value("warnings", json::array())) {
      const std::string text = w.get<std::string>();
      if (std::find(config.warnings.begin(), config.warnings.end(), text) ==
          config.warnings.end()) {
        Say("warning: " + text);
      }
    }
    const json& deployments = accepted["deployments"];
    ASSIGN_OR_RETURN(int failures, FollowDeployments(client, deployments));
    if (failures > 0) {
      return FailedPrecondition(
          std::to_string(failures) + " of " + std::to_string(deployments.size()) +
          " deployments did not go live; each service that failed keeps serving its previous "
          "deployment in " +
          env);
    }
    return Status::Ok();
  }
};

// "http://slipway:<token>@127.0.0.1:7788/git/shop.git"
std::string RemoteUrl(const std::string& api_url, const std::string& token,
                      const std::string& path) {
  const size_t scheme = api_url.find("://");
  if (token.empty() || scheme == std::string::npos) return api_url + path;
  return api_url.substr(0, scheme + 3) + "slipway:" + token + "@" + api_url.substr(scheme + 3) +
         path;
}

}  // namespace

int GitRemoteCommand(const GitRemoteOptions& opts) {
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto project = ResolveProject(opts.project, ".");
  if (!project.ok()) return PrintError(project.status());
  json body = json::object();
  if (!opts.production_branch.empty()) {
    if (Status st = CheckBranchName(opts.production_branch); !st.ok()) return PrintError(st);
    body["production_branch"] = opts.production_branch;
  }
  if (!opts.preview_from.empty()) body["preview_from"] = opts.preview_from;
  auto res = client->Put("/v1/projects/" + UrlEncode(*project) + "/git", body);
  if (!res.ok()) return PrintError(res.status());
  const std::string url = RemoteUrl(client->url(), client->token(), res->value("path", ""));
  if (opts.url_only) {
    std::printf("%s\n", url.c_str());
    return 0;
  }
  const std::string branch = res->value("production_branch", kDefaultProductionBranch);
  std::printf(
      "Project %s deploys on git push: %s to production, any other branch to a preview "
      "environment of its own (created from %s, deleted with the branch).\n\n",
      project->c_str(), branch.c_str(), res->value("preview_from", kDefaultPreviewFrom).c_str());
  std::printf("  git remote add slipway %s && git push slipway %s\n\n", url.c_str(),
              branch.c_str());
  std::printf(
      "The URL holds the API token (git keeps it in .git/config): do not share it. A remote "
      "added already takes the URL with `git remote set-url slipway URL`. Change the "
      "production branch with `slipway git-remote --production-branch NAME`.\n");
  return 0;
}

int GitHookCommand(const std::string& hook) {
  if (hook != "pre-receive") {
    return PrintError(InvalidArgument("unknown git hook \"" + hook +
                                      "\": Slipway's repositories run `slipway git-hook "
                                      "pre-receive`"));
  }
  std::string input;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), stdin)) > 0;) {
    input.append(buf, n);
    if (input.size() > kMaxHookInput) {
      return PrintError(InvalidArgument("more than 1 MiB of ref updates: push fewer refs at once"));
    }
  }
  auto updates = ParseRefUpdates(input);
  if (!updates.ok()) return PrintError(updates.status());
  // The hook runs in the bare repository <home>/git/<project>.git.
  std::string project = BaseName(".");
  if (project.size() > 4 && project.substr(project.size() - 4) == ".git") {
    project.resize(project.size() - 4);
  }
  auto client = ApiClient::FromEnvironment();
  if (!client.ok()) return PrintError(client.status());
  auto settings = client->Get("/v1/projects/" + UrlEncode(project) + "/git");
  if (!settings.ok()) {
    SayError(settings.status().message());
    SayError("the push is refused: nothing was deployed");
    return 1;
  }
  Hook ctx{*client, project, settings->value("production_branch", kDefaultProductionBranch),
           settings->value("preview_from", kDefaultPreviewFrom)};
  for (size_t i = 0; i < updates->size(); ++i) {
    const RefUpdate& update = (*updates)[i];
    const std::string branch = BranchOfRef(update.ref);
    Status st;
    if (branch.empty()) {
      Say(update.ref + ": not a branch: kept, not deployed");
    } else if (update.deleted()) {
      st = ctx.DeleteBranch(branch);
    } else {
      st = ctx.DeployBranch(update, branch);
    }
    if (!st.ok()) {
      SayError((branch.empty() ? update.ref : branch) + ": " + st.message());
      for (size_t j = i + 1; j < updates->size(); ++j) {
        SayError((*updates)[j].ref + ": not deployed");
      }
      SayError("the push is refused: Slipway's " + (branch.empty() ? update.ref : branch) +
               " stays where it was; fix it and push again");
      return 1;
    }
  }
  return 0;
}

}  // namespace slipway
