#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/http_client.h"
#include "supervisor/supervisor.h"

namespace slipway {

namespace {

using std::chrono::milliseconds;

constexpr milliseconds kMaxAttemptTimeout{2000};

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

std::string DescribeErrno(int err) {
  if (err == ECONNREFUSED) return "connection refused";
  if (err == ECONNRESET) return "connection reset";
  if (err == ETIMEDOUT) return "no answer";
  std::string what = std::strerror(err);
  if (!what.empty()) what[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(what[0])));
  return what;
}

// One TCP connection attempt to 127.0.0.1:port; "" when it was accepted, else why not.
std::string TryConnect(int port, milliseconds timeout) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return DescribeErrno(errno);
  sockaddr_in addr = Loopback(port);
  std::string result;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS) {
      result = DescribeErrno(errno);
    } else {
      pollfd p{fd, POLLOUT, 0};
      int r;
      do {
        r = poll(&p, 1, static_cast<int>(timeout.count()));
      } while (r < 0 && errno == EINTR);
      int err = 0;
      socklen_t len = sizeof(err);
      if (r == 0) {
        result = "no answer within " + std::to_string(timeout.count()) + " ms";
      } else if (r < 0) {
        result = DescribeErrno(errno);
      } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        result = DescribeErrno(err != 0 ? err : errno);
      }
    }
  }
  close(fd);
  return result;
}

// One HTTP check; "" when it answered 2xx, else what it answered.
std::string TryHttp(const HealthCheckSpec& spec, milliseconds timeout) {
  HttpRequest request;
  request.host = "127.0.0.1";
  request.port = spec.port;
  request.target = spec.path;
  request.timeout = timeout;
  if (!spec.host_header.empty()) request.headers["Host"] = spec.host_header;
  auto response = HttpCall(request, 1 << 20);
  if (!response.ok()) {
    const Status& st = response.status();
    if (st.code() == StatusCode::kDeadlineExceeded) {
      return "no answer within " + std::to_string(timeout.count()) + " ms";
    }
    const std::string& m = st.message();
    if (m.find("refused") != std::string::npos) return "connection refused";
    if (m.find("reset") != std::string::npos) return "connection reset";
    if (st.code() == StatusCode::kResourceExhausted) return "answer larger than 1 MiB";
    return m;
  }
  if (response->status >= 200 && response->status < 300) return "";
  return "HTTP " + std::to_string(response->status);
}

}  // namespace

Status WaitHealthy(const HealthCheckSpec& spec, Clock& clock,
                   const std::function<bool()>& still_running) {
  const auto deadline = clock.Monotonic() + spec.timeout;
  std::string last;
  // Most apps are up within a fraction of a second: poll quickly at first, then back off
  // to the spec's interval, so a deploy switches as soon as the app is ready.
  milliseconds pause{10};
  while (true) {
    if (still_running && !still_running()) {
      return Unavailable("app exited before its health check passed");
    }
    auto remaining = std::chrono::duration_cast<milliseconds>(deadline - clock.Monotonic());
    if (remaining <= milliseconds::zero()) break;
    milliseconds attempt_timeout = std::min(kMaxAttemptTimeout, remaining);
    last =
        spec.path.empty() ? TryConnect(spec.port, attempt_timeout) : TryHttp(spec, attempt_timeout);
    if (last.empty()) return Status::Ok();
    remaining = std::chrono::duration_cast<milliseconds>(deadline - clock.Monotonic());
    if (remaining <= milliseconds::zero()) break;
    clock.SleepFor(std::min({pause, spec.interval, remaining}));
    pause = std::min(pause * 2, spec.interval);
  }
  std::string what = spec.path.empty()
                         ? "(port " + std::to_string(spec.port) + " accepting connections)"
                         : spec.path;
  std::string message =
      "health check " + what + " timed out after " + std::to_string(spec.timeout.count()) + "s";
  if (!spec.path.empty() && !last.empty()) message += " (last: " + last + ")";
  return DeadlineExceeded(message);
}

Result<int> PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus("socket", errno);
  sockaddr_in addr = Loopback(0);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int e = errno;
    close(fd);
    return ErrnoStatus("binding a free port on 127.0.0.1", e);
  }
  close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

}  // namespace slipway
