// Redis for the add-ons (addons_impl.h): the binary, its config file, and a tiny RESP
// exchange over TCP to tell when it accepts its password.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "addons/addons_impl.h"

namespace slipway::addons_impl {

namespace {

const std::string kInstallRedis = "install it: apt-get install redis-server";

std::string Resp(const std::vector<std::string>& command) {
  std::string out = "*" + std::to_string(command.size()) + "\r\n";
  for (const auto& arg : command) {
    out += "$" + std::to_string(arg.size()) + "\r\n" + arg + "\r\n";
  }
  return out;
}

// A connected, non-blocking TCP socket to 127.0.0.1:port, or -1 with `error` set.
int Connect(int port, std::chrono::steady_clock::time_point deadline, std::string* error) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *error = std::strerror(errno);
    return -1;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS) {
      *error = std::strerror(errno);
      close(fd);
      return -1;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLOUT, 0};
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count()))) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
      *error = soerr != 0 ? std::strerror(soerr) : "connection timed out";
      close(fd);
      return -1;
    }
  }
  return fd;
}

}  // namespace

Result<std::string> FindRedisServer(const std::string& configured) {
  if (!configured.empty()) {
    if (access(configured.c_str(), X_OK) == 0) return configured;
    return FailedPrecondition("redis-server not found at " + configured + "; " + kInstallRedis);
  }
  const char* path = std::getenv("PATH");
  std::string found = FindExecutable("redis-server", path ? path : "/usr/bin:/bin");
  if (found.empty()) found = FindExecutable("redis-server", "/usr/local/bin:/usr/bin:/usr/sbin");
  if (found.empty()) return FailedPrecondition("redis-server not found on PATH; " + kInstallRedis);
  return found;
}

Result<std::string> RedisVersion(const std::string& redis_server) {
  SpawnOptions spawn;
  spawn.argv = {redis_server, "--version"};
  spawn.env = {{"PATH", "/usr/bin:/bin"}, {"LANG", "C.UTF-8"}};
  ASSIGN_OR_RETURN(CommandResult r, RunCollecting(spawn, std::chrono::seconds(10), Masker()));
  // "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=..."
  const std::string text = r.lines.empty() ? "" : r.lines.front();
  auto at = text.find("v=");
  if (r.exit_code != 0 || at == std::string::npos) {
    return FailedPrecondition(redis_server + " --version did not name a Redis version (" +
                              r.Tail() +
                              "); reinstall it: apt-get install --reinstall redis-server");
  }
  std::string version = text.substr(at + 2);
  return "Redis " + version.substr(0, version.find(' '));
}

std::string RedisConfig(int port, const std::string& password, const std::string& data_dir) {
  // Values are quoted: the data dir may hold spaces.
  auto quoted = [](const std::string& v) {
    std::string out = "\"";
    for (char c : v) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    return out + "\"";
  };
  std::string conf;
  conf += "# Written by Slipway at every start of the server; changes here are replaced.\n";
  conf += "bind 127.0.0.1\n";
  conf += "port " + std::to_string(port) + "\n";
  conf += "protected-mode yes\n";
  conf += "daemonize no\n";
  conf += "supervised no\n";
  conf += "requirepass " + quoted(password) + "\n";
  conf += "appendonly yes\n";
  conf += "appendfsync everysec\n";
  conf += "dir " + quoted(data_dir) + "\n";
  conf += "logfile \"\"\n";
  conf += "save 3600 1 300 100 60 10000\n";
  return conf;
}

std::string RedisCommand(const std::string& redis_server, const std::string& config_path) {
  return ShellQuote(redis_server) + " " + ShellQuote(config_path);
}

Result<std::vector<std::string>> RedisExchange(
    int port, const std::vector<std::vector<std::string>>& commands,
    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string error;
  int fd = Connect(port, deadline, &error);
  if (fd < 0) {
    return Unavailable("cannot connect to 127.0.0.1:" + std::to_string(port) + ": " + error);
  }
  std::string request;
  for (const auto& c : commands) request += Resp(c);
  std::string in;
  std::vector<std::string> replies;
  size_t sent = 0;
  Status failure;
  while (replies.size() < commands.size()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      failure = Unavailable("127.0.0.1:" + std::to_string(port) + " did not answer within " +
                            std::to_string(timeout.count()) + " ms");
      break;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (sent < request.size() ? POLLOUT : 0)), 0};
    if (poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    if ((p.revents & POLLOUT) && sent < request.size()) {
      ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[4096];
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        failure = Unavailable("127.0.0.1:" + std::to_string(port) + " closed the connection");
        break;
      }
      if (n > 0) in.append(buf, static_cast<size_t>(n));
    }
    // Complete replies: a line, or "$N" and N bytes of bulk string.
    while (replies.size() < commands.size()) {
      auto eol = in.find("\r\n");
      if (eol == std::string::npos) break;
      std::string line = in.substr(0, eol);
      if (!line.empty() && line[0] == '$' && line != "$-1") {
        size_t size = std::strtoul(line.c_str() + 1, nullptr, 10);
        if (in.size() < eol + 2 + size + 2) break;
        replies.push_back(in.substr(eol + 2, size));
        in.erase(0, eol + 2 + size + 2);
        continue;
      }
      replies.push_back(line);
      in.erase(0, eol + 2);
    }
  }
  close(fd);
  if (replies.size() < commands.size()) {
    return failure.ok() ? Unavailable("no answer from 127.0.0.1:" + std::to_string(port)) : failure;
  }
  return replies;
}

Status ProbeRedis(int port, const std::string& password) {
  ASSIGN_OR_RETURN(auto replies, RedisExchange(port, {{"AUTH", "default", password}, {"PING"}},
                                               std::chrono::seconds(2)));
  if (replies[0] != "+OK") return Unavailable("AUTH answered " + replies[0]);
  if (replies[1] != "+PONG") return Unavailable("PING answered " + replies[1]);
  return Status::Ok();
}

}  // namespace slipway::addons_impl
