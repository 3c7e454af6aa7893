#pragma once

// `slipway cron ...`: a project's cron services, their runs, and a run now.
//
//   slipway cron list                 each cron service: schedule, next run, last run
//   slipway cron runs NAME [-n N]     a service's run history, newest first
//   slipway cron run NAME [--detach]  starts a run now and prints its output as it comes;
//                                     exits with the run's exit code

#include <string>

namespace slipway {

struct CronOptions {
  std::string project;  // "" : from the current directory
  std::string env = "production";
  std::string service;
  int limit = 20;
  bool detach = false;
};

int CronListCommand(const CronOptions& opts);
int CronRunsCommand(const CronOptions& opts);
int CronRunCommand(const CronOptions& opts);

// "1.2 s", "3 min 4 s", "2 h 5 min"
std::string FormatDuration(long long millis);

}  // namespace slipway
