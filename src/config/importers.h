#pragma once

// Importers: the config files users bring from other platforms, each read into a
// ProjectConfig (services, add-ons, shared variables, warnings, origins). Internal to
// the config subsystem; LoadProjectConfig picks which ones apply (docs/config.md).
//
// Every importer:
//   - fails with kInvalidArgument and one line "FILE:LINE:COLUMN: what is wrong" for a
//     malformed file or an invalid value (the same shape as slipway.toml's errors);
//   - names each field it does not support in a warning ("FILE:LINE:COL: "plan" is not
//     supported and is ignored"), never drops one silently;
//   - records in ProjectConfig::origins where each value it set came from;
//   - leaves ProjectConfig::name empty unless the file names the project.
//
// Thread-safety: pure functions.

#include <yaml-cpp/yaml.h>

#include <map>
#include <string>
#include <string_view>

#include "common/status.h"
#include "config/config.h"

namespace slipway {

Result<ProjectConfig> ImportRailway(std::string_view text,
                                    const std::string& filename);  // .json/.toml
Result<ProjectConfig> ImportRender(std::string_view text, const std::string& filename);
Result<ProjectConfig> ImportVercel(std::string_view text, const std::string& filename);
Result<ProjectConfig> ImportAppJson(std::string_view text, const std::string& filename);
Result<ProjectConfig> ImportCompose(std::string_view text, const std::string& filename);

// docker-compose with `dotenv`, the variables of the .env file next to it, for ${VAR}
// interpolation (Compose's rule; the shell's environment is not read, so the CLI and the
// server read the same config). ImportCompose is this with an empty .env.
Result<ProjectConfig> ImportComposeWithEnv(std::string_view text, const std::string& filename,
                                           const std::map<std::string, std::string>& dotenv);

// A .env file: KEY=VALUE lines, '#' comments, optional `export `, single or double quotes.
// kInvalidArgument "FILE:LINE: ..." for a line that is not an assignment.
Result<std::map<std::string, std::string>> ParseDotEnv(std::string_view text,
                                                       const std::string& filename);

// Shared helpers for the importers (importer_util.cc).

// "FILE:LINE:COL" of a node (1-based), or "FILE" when the node carries no position.
std::string Where(const std::string& filename, const YAML::Node& node);

// Parses YAML (or JSON, which yaml-cpp reads with positions) into a node tree; a
// syntax error is "FILE:LINE:COL: <yaml-cpp's message>".
Result<YAML::Node> LoadYaml(std::string_view text, const std::string& filename);

// Strict JSON syntax check first (yaml-cpp is lenient about JSON), then LoadYaml: a
// syntax error is "FILE:LINE:COL: <nlohmann's message without its prefix>".
Result<YAML::Node> LoadJson(std::string_view text, const std::string& filename);

// Checks the cron expression a file gives for `field` at `where` ("FILE:LINE:COL"): five
// fields of digits, letters, '*', ',', '-' and '/' (or a macro such as "@daily") that
// CronSchedule::Parse (common/cron.h) accepts. slipway.toml's cronSchedule and
// backupSchedule, railway's and render's schedules and vercel.json's crons all use it.
// Returns the expression with its fields separated by single spaces. Errors
// (kInvalidArgument), one line:
//   WHERE: "cronSchedule" must be a 5-field cron expression (minute hour day-of-month
//          month day-of-week, in UTC) like "0 2 * * *" (got "every night")
//   WHERE: "cronSchedule": minute 61 is out of range 0-59     (the parser's reason)
Result<std::string> CheckCronExpression(std::string_view text, const std::string& field,
                                        const std::string& where);

// Checks a static site's rule the way the edge will apply it (proxy/static_site.h):
// `source` (at `source_where`, "FILE:LINE:COL") must be a route pattern
// (common/route_pattern.h); a redirect's or rewrite's `destination` (null for header
// rules) must use only what the source captures, and be a path ("/..."), an http(s) URL
// (a redirect: any URL, "mailto:..." too) or "${{ <service>.SLIPWAY_PRIVATE_URL }}" or
// "..._PUBLIC_URL }}" followed by a path. `kind`: "redirects", "rewrites" or "headers".
// Errors (kInvalidArgument), one line:
//   WHERE: "source" "/api/*" is not a valid pattern: "*" at character 6 follows no
//          parameter (write "(.*)" or ":path*" for any rest of the path)
//   WHERE: "destination" uses ":id", which "source" ("/blog/:slug") does not capture
//   WHERE: a rewrite's "destination" must be a path of the site like "/index.html", an
//          http(s) URL or ${{ <service>.SLIPWAY_PRIVATE_URL }}/path (got "index.html")
Status CheckRouteRule(std::string_view kind, const std::string& source,
                      const std::string& source_where, const std::string* destination,
                      const std::string& destination_where);

// A header name a header rule may set: a token (RFC 9110), and not one the edge frames
// the answer with (Content-Length, Transfer-Encoding, Connection, ...). WHERE: ... otherwise.
Status CheckHeaderName(std::string_view name, const std::string& where);

}  // namespace slipway
