#include "cli/cron_command.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "cli/api_client.h"
#include "cli/cli_util.h"

namespace slipway {

namespace {

using json = nlohmann::json;

std::string RunSummary(const json& run) {
  if (run.is_null()) return "-";
  std::string status = run.value("status", "");
  std::string out = "#" + std::to_string(run.value("id", 0LL)) + " " + status;
  if (status == "SUCCEEDED" || status == "FAILED") {
    if (run.value("exit_code", -1) >= 0)
      out += " (exit " + std::to_string(run.value("exit_code", -1)) + ")";
    out += " " + FormatTime(run.value("started_at", 0LL));
  } else if (status == "RUNNING") {
    out += " since " + FormatTime(run.value("started_at", 0LL));
  } else if (status == "SKIPPED") {
    out += " " + FormatTime(run.value("scheduled_for", 0LL));
  }
  return out;
}

struct Target {
  ApiClient client;
  std::string project;
};

Result<Target> Connect(const CronOptions& opts) {
  ASSIGN_OR_RETURN(ApiClient client, ApiClient::FromEnvironment());
  ASSIGN_OR_RETURN(std::string project, ResolveProject(opts.project, "."));
  return Target{std::move(client), std::move(project)};
}

std::string RunsPath(const Target& t, const CronOptions& opts) {
  return "/v1/projects/" + UrlEncode(t.project) + "/cron/runs?env=" + UrlEncode(opts.env) +
         "&service=" + UrlEncode(opts.service);
}

}  // namespace

std::string FormatDuration(long long millis) {
  char buf[64];
  if (millis < 60'000) {
    std::snprintf(buf, sizeof(buf), "%.1f s", static_cast<double>(millis) / 1000.0);
  } else if (millis < 3'600'000) {
    std::snprintf(buf, sizeof(buf), "%lld min %lld s", millis / 60'000, millis % 60'000 / 1000);
  } else {
    std::snprintf(buf, sizeof(buf), "%lld h %lld min", millis / 3'600'000,
                  millis % 3'600'000 / 60'000);
  }
  return buf;
}

int CronListCommand(const CronOptions& opts) {
  auto t = Connect(opts);
  if (!t.ok()) return PrintError(t.status());
  auto res =
      t->client.Get("/v1/projects/" + UrlEncode(t->project) + "/status?env=" + UrlEncode(opts.env));
  if (!res.ok()) return PrintError(res.status());
  std::vector<std::vector<std::string>> rows = {
      {"SERVICE", "SCHEDULE (UTC)", "NEXT RUN", "LAST RUN"}};
  for (const auto& s : (*res)["services"]) {
    if (s.value("type", "") != "cron") continue;
    rows.push_back({s.value("name", ""), s.value("schedule", ""),
                    FormatTime(s.value("next_run", 0LL)),
                    RunSummary(s.value("last_run", json(nullptr)))});
  }
  if (rows.size() == 1) {
    std::printf(
        "No cron services in %s (%s): declare one with type = \"cron\" and "
        "cronSchedule = \"0 2 * * *\".\n",
        t->project.c_str(), opts.env.c_str());
    return 0;
  }
  PrintTable(rows);
  return 0;
}

int CronRunsCommand(const CronOptions& opts) {
  auto t = Connect(opts);
  if (!t.ok()) return PrintError(t.status());
  auto res = t->client.Get(RunsPath(*t, opts) + "&limit=" + std::to_string(opts.limit));
  if (!res.ok()) return PrintError(res.status());
  std::vector<std::vector<std::string>> rows = {
      {"RUN", "TRIGGER", "SCHEDULED FOR", "STARTED", "DURATION", "STATUS", "EXIT", "DETAIL"}};
  for (const auto& r : (*res)["runs"]) {
    const std::string status = r.value("status", "");
    const bool ended = status == "SUCCEEDED" || status == "FAILED";
    rows.push_back(
        {std::to_string(r.value("id", 0LL)), r.value("trigger", ""),
         FormatTime(r.value("scheduled_for", 0LL)), FormatTime(r.value("started_at", 0LL)),
         ended ? FormatDuration(r.value("duration_ms", 0LL)) : "-", status,
         ended && r.value("exit_code", -1) >= 0 ? std::to_string(r.value("exit_code", -1)) : "-",
         FirstLine(r.value("message", ""))});
  }
  if (rows.size() == 1) {
    std::printf("%s has not run yet; `slipway cron run %s` starts a run now.\n",
                (*res).value("service", opts.service).c_str(),
                (*res).value("service", opts.service).c_str());
    return 0;
  }
  PrintTable(rows);
  return 0;
}

int CronRunCommand(const CronOptions& opts) {
  auto t = Connect(opts);
  if (!t.ok()) return PrintError(t.status());
  auto started = t->client.Post(RunsPath(*t, opts), "{}", "application/json", 60'000);
  if (!started.ok()) return PrintError(started.status());
  const long long id = started->value("id", 0LL);
  const std::string service = started->value("service", opts.service);
  std::printf("==> %s: run %lld started\n", service.c_str(), id);
  std::fflush(stdout);
  if (opts.detach) {
    std::printf("follow it with `slipway cron runs %s` and `slipway logs %s`\n", service.c_str(),
                service.c_str());
    return 0;
  }
  uint64_t offset = 0;
  while (true) {
    auto run = t->client.Get("/v1/cron-runs/" + std::to_string(id) +
                                 "?wait_ms=5000&log_offset=" + std::to_string(offset),
                             20'000);
    if (!run.ok()) return PrintError(run.status());
    const std::string log = run->value("log", "");
    if (!log.empty()) {
      std::fwrite(log.data(), 1, log.size(), stdout);
      std::fflush(stdout);
    }
    offset = run->value("log_offset", offset);
    if (!run->value("finished", false)) continue;
    const std::string status = run->value("status", "");
    const int code = run->value("exit_code", -1);
    std::printf("==> %s: run %lld %s after %s (exit code %d)\n", service.c_str(), id,
                status.c_str(), FormatDuration(run->value("duration_ms", 0LL)).c_str(), code);
    if (!run->value("message", "").empty()) {
      std::printf("    %s\n", run->value("message", "").c_str());
    }
    if (status == "SUCCEEDED") return 0;
    return code > 0 && code < 256 ? code : 1;
  }
}

}  // namespace slipway
