#pragma once

// ApiServer: the control API, JSON over HTTP on a loopback address. The CLI (and
// any dashboard) use only this. Every route but GET /v1/health needs
// `Authorization: Bearer <token>`.
//
//   GET  /v1/health                              liveness, no token
//   POST /v1/deploy?project=P&env=E&service=S     body: gzip'd tar of the app dir
//   GET  /v1/deployments/ID?log_offset=N&wait_ms=M   status + build log from offset
//                                                 (long-polls up to wait_ms for news)
//   GET  /v1/projects                             every project with its services
//   GET  /v1/projects/P/status?env=E
//   GET  /v1/projects/P/deployments?service=S&env=E&limit=N
//   GET  /v1/projects/P/logs?service=S&env=E&build=1&deployment=ID&lines=N&cursor=C
//   POST /v1/projects/P/domains?service=S&env=E   {"host", "cert", "key", "acme"}
//   GET  /v1/projects/P/domains?env=E
//   DELETE /v1/domains/HOST
//   GET|PUT|DELETE /v1/projects/P/variables?env=E&service=S|shared=1  (docs/variables.md)
//   GET  /v1/projects/P/environments              each environment, its services and URLs
//   POST /v1/projects/P/environments              {"name", "from"}: a new environment
//   DELETE /v1/projects/P/environments/E          stops, removes (not "production"), its
//                                                 add-ons too (a before-delete backup each)
//   POST /v1/projects/P/run?service=S&env=E       {"argv", "timeout_seconds"}: a one-off
//                                                 command; streamed run-stream frames
//   POST /v1/projects/P/cron/runs?service=S&env=E  a cron service's run, now
//   GET  /v1/projects/P/cron/runs?service=S&env=E&limit=N   its latest runs
//   GET  /v1/cron-runs/ID?log_offset=N&wait_ms=M   a run + its log from offset (long-poll)
//   GET  /v1/metrics, /v1/certs                   per-route edge metrics; TLS certificates
//   GET  /v1/projects/P/addons?env=E              the environment's add-ons (docs/addons.md)
//   POST /v1/projects/P/addons?env=E              {"kind", "name", "port"}: provisions one;
//                                                 201, or 200 when it existed ("created")
//   DELETE /v1/projects/P/addons/NAME?env=E&backup=0  stops and removes it (a before-delete
//                                                 backup first unless backup=0)
//   GET  /v1/projects/P/backups?env=E&addon=N     backups, newest first (addon "": all)
//   POST /v1/projects/P/backups?env=E&addon=N     takes one now; answers when it is done
//   POST /v1/projects/P/backups/ID/restore?env=E&addon=N  {"database"}: "" or absent
//                                                 replaces the environment's database
//   (addon "" for a backup or a restore: the environment's only postgres add-on)
//   GET  /v1/projects/P/git                       git push settings (docs/git.md)
//   PUT  /v1/projects/P/git                       {"production_branch", "preview_from"}:
//                                                 sets them, creates the repository
//   GET|POST /git/P.git/...                       git's smart HTTP (git/git.h), for the
//                                                 token as Bearer or as the Basic password;
//                                                 401 with WWW-Authenticate: Basic without
//
// POST /v1/deploy also takes services=A,B (several) and label=TEXT (the deployments'
// source, default "upload"); POST /v1/projects/P/environments a "branch" it previews.
//
// Every secret value in an answer is replaced by *** (except variables listed with
// reveal=1); add-ons' passwords always (DATABASE_URL as postgresql://u:***@...).
//
// Errors are {"error": "<one actionable line>", "code": "NOT_FOUND"} with the HTTP
// status from HttpStatusFor().
//
// Threading: one acceptor thread; each connection is served on its own thread, at
// most `max_connections` at once (more are answered 503). Requests are bounded:
// headers 64 KiB, JSON bodies 1 MiB, uploads and pushes `max_upload_bytes`, and time
// (a push, its deploy included: `git_request_timeout`).

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "addons/addons.h"
#include "common/status.h"
#include "deploy/engine.h"
#include "store/store.h"

namespace slipway {

struct ApiOptions {
  std::string address = "127.0.0.1";
  int port = 7788;
  std::string token;
  std::string home;
  uint64_t max_upload_bytes = 512ull << 20;  // also the limit of a git push's pack
  int max_connections = 64;
  // The slipway binary the repositories' hooks run (git/git.h); "" : no git routes.
  std::string slipway_exe;
  std::chrono::seconds git_request_timeout{std::chrono::hours(1)};
};

// The one mapping from Status to HTTP status codes.
int HttpStatusFor(const Status& status);

// Reads <home>/token, creating it (32 random bytes, hex, mode 0600) on first start.
Result<std::string> LoadOrCreateToken(const std::string& home);

class ApiServer {
 public:
  // Binds the listener: kFailedPrecondition naming the address when it is taken.
  // `addons` (not owned, may be null: the add-on routes then answer 409) must outlive
  // the server.
  static Result<std::unique_ptr<ApiServer>> Create(ApiOptions options, Store& store,
                                                   DeployEngine& engine,
                                                   AddonManager* addons = nullptr);
  virtual ~ApiServer() = default;
  virtual void Start() = 0;
  virtual void Stop() = 0;  // stops accepting and waits for open requests to finish
  virtual int port() const = 0;
  // Called before a custom domain is stored (`added`) and after it is removed, so the
  // daemon can check and load its certificate; an error refuses the domain. Set before
  // Start().
  virtual void SetDomainHook(std::function<Status(const DomainRecord&, bool added)> hook) = 0;
  // Serves GET /v1/<name> (e.g. "metrics", "certs") from `source` (which may ask another
  // process, e.g. the edge); an error is answered like any other. Set before Start().
  virtual void AddInfoSource(const std::string& name,
                             std::function<Result<nlohmann::json>()> source) = 0;
};

}  // namespace slipway
