// Smart HTTP: one request through `git http-backend`, run as a CGI.
//
// The request body arrives spooled to a file (bounded memory, and a pack is only
// useful whole); the answer streams back as git writes it, so the pusher sees the
// hook's deploy progress as it happens.

#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "common/fs.h"
#include "common/subprocess.h"
#include "git/git.h"
#include "git/git_impl.h"

namespace slipway {

namespace {

constexpr size_t kMaxCgiHeaderBytes = 64 * 1024;

bool IsService(const std::string& name) {
  return name == "git-upload-pack" || name == "git-receive-pack";
}

// Splits the CGI header block into the HTTP status and the headers to pass on.
Status ParseCgiHeaders(std::string_view block, int* status,
                       std::vector<std::pair<std::string, std::string>>* headers) {
  *status = 200;
  while (!block.empty()) {
    size_t nl = block.find('\n');
    std::string_view line = block.substr(0, nl);
    block = nl == std::string_view::npos ? std::string_view() : block.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return Internal("git http-backend answered a header line that is not \"Name: value\": \"" +
                      std::string(line.substr(0, 100)) + "\"");
    }
    std::string name(line.substr(0, colon));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (name == "Status") {
      int code = std::atoi(std::string(value).c_str());
      if (code < 100 || code > 599) {
        return Internal("git http-backend answered an invalid Status: " + std::string(value));
      }
      *status = code;
    } else {
      headers->emplace_back(std::move(name), std::string(value));
    }
  }
  return Status::Ok();
}

}  // namespace

Status GitRepositories::ServeHttp(const GitHttpRequest& request, GitHttpResponder& responder) {
  const std::string query_service =
      request.query.rfind("service=", 0) == 0 ? request.query.substr(8) : "";
  const bool smart =
      (request.method == "GET" && request.path == "info/refs" && IsService(query_service)) ||
      (request.method == "POST" && IsService(request.path));
  if (!smart) {
    return NotFound(request.method + " /git/" + request.project + ".git/" + request.path +
                    " is not part of git's smart HTTP protocol, the only one Slipway serves");
  }
  if (!Exists(request.project)) {
    return NotFound("project " + request.project + " has no git repository yet: push to it (" +
                    "`slipway git-remote` prints the remote to add) to create it");
  }
  RETURN_IF_ERROR(MakeDirs(options_.home + "/logs", 0755));

  SpawnOptions spawn;
  spawn.argv = {git_, "http-backend"};
  spawn.env = GitEnvironment(options_.home);
  spawn.env["GIT_PROJECT_ROOT"] = options_.home + "/git";
  spawn.env["GIT_HTTP_EXPORT_ALL"] = "1";
  spawn.env["PATH_INFO"] = "/" + request.project + ".git/" + request.path;
  spawn.env["QUERY_STRING"] = request.query;
  spawn.env["REQUEST_METHOD"] = request.method;
  spawn.env["REMOTE_USER"] = request.remote_user.empty() ? "slipway" : request.remote_user;
  spawn.env["REMOTE_ADDR"] = "127.0.0.1";
  spawn.env["GATEWAY_INTERFACE"] = "CGI/1.1";
  spawn.env["SERVER_PROTOCOL"] = "HTTP/1.1";
  spawn.env["SERVER_SOFTWARE"] = "slipway";
  if (!request.content_type.empty()) spawn.env["CONTENT_TYPE"] = request.content_type;
  if (!request.content_encoding.empty()) {
    spawn.env["HTTP_CONTENT_ENCODING"] = request.content_encoding;
  }
  if (!request.git_protocol.empty()) spawn.env["GIT_PROTOCOL"] = request.git_protocol;
  if (!request.body_path.empty()) {
    struct stat st {};
    if (stat(request.body_path.c_str(), &st) != 0) {
      return ErrnoStatus("the spooled request body " + request.body_path, errno);
    }
    spawn.env["CONTENT_LENGTH"] = std::to_string(st.st_size);
    spawn.stdin_path = request.body_path;
  }
  // What the hook needs to reach the control API (the token it reads from SLIPWAY_HOME).
  spawn.env["SLIPWAY_HOME"] = options_.home;
  spawn.env["SLIPWAY_URL"] = options_.api_url;
  spawn.stderr_path = options_.home + "/logs/git.log";
  ASSIGN_OR_RETURN(auto process, Process::Spawn(spawn));

  const auto deadline = std::chrono::steady_clock::now() + options_.request_timeout;
  const int fd = process->output_fd();
  std::string header_block;
  bool began = false;
  bool client_gone = false;
  bool timed_out = false;
  char buf[64 * 1024];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fd, POLLIN, 0};
    int ready = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) return ErrnoStatus("poll on git http-backend", errno);
    if (ready <= 0) continue;
    ssize_t got = read(fd, buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // git closed its answer
    std::string_view data(buf, static_cast<size_t>(got));
    if (!began) {
      header_block.append(data);
      size_t end = header_block.find("\r\n\r\n");
      size_t sep = 4;
      if (end == std::string::npos) {
        end = header_block.find("\n\n");
        sep = 2;
      }
      if (end == std::string::npos) {
        if (header_block.size() > kMaxCgiHeaderBytes) {
          return Internal("git http-backend sent more than 64 KiB of headers");
        }
        continue;
      }
      int status = 200;
      std::vector<std::pair<std::string, std::string>> headers;
      RETURN_IF_ERROR(
          ParseCgiHeaders(std::string_view(header_block).substr(0, end), &status, &headers));
      began = true;
      client_gone = !responder.Begin(status, headers).ok();
      data = std::string_view(header_block).substr(end + sep);
    }
    // Once the client is gone the answer is read and dropped: a push goes on to its end.
    if (!client_gone && !data.empty()) client_gone = !responder.Write(data).ok();
    if (began) header_block.clear();
  }
  int code = -1;
  while (!timed_out && !process->TryWait(&code)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (timed_out) {
    process->Signal(SIGTERM);
    for (int i = 0; i < 50 && !process->TryWait(&code); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    process->Signal(SIGKILL);
    process->Wait();
    if (!began) {
      return DeadlineExceeded(
          "git http-backend for project " + request.project + " ran longer than " +
          std::to_string(options_.request_timeout.count()) + " s and was stopped");
    }
    return Status::Ok();
  }
  if (!began) {
    return Internal("git http-backend exited with code " + std::to_string(code) +
                    " without answering; see " + options_.home + "/logs/git.log");
  }
  return Status::Ok();
}

}  // namespace slipway
