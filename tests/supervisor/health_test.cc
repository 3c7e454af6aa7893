#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "supervisor/supervisor.h"
#include "test_util.h"

namespace slipway {
namespace {

using namespace std::chrono_literals;

int ListenOnLoopback(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 64) != 0 || getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// A real HTTP server on 127.0.0.1 answering each request with the status `status_for`
// gives for the request's number (0-based); records the Host headers it saw.
class StatusServer {
 public:
  explicit StatusServer(std::function<int(int)> status_for) : status_for_(std::move(status_for)) {
    fd_ = ListenOnLoopback(&port_);
    if (fd_ >= 0) thread_ = std::thread([this] { Serve(); });
  }
  ~StatusServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  int port() const { return port_; }
  std::vector<std::string> hosts() {
    std::lock_guard<std::mutex> lock(mu_);
    return hosts_;
  }

 private:
  void Serve() {
    int count = 0;
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) continue;
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = read(conn, buf, sizeof(buf));
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      for (const char* name : {"\r\nHost: ", "\r\nhost: "}) {
        auto at = request.find(name);
        if (at == std::string::npos) continue;
        auto begin = at + std::string(name).size();
        std::lock_guard<std::mutex> lock(mu_);
        hosts_.push_back(request.substr(begin, request.find("\r\n", begin) - begin));
      }
      int status = status_for_(count++);
      std::string response = "HTTP/1.1 " + std::to_string(status) +
                             " X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
      (void)!write(conn, response.data(), response.size());
      close(conn);
    }
  }

  std::function<int(int)> status_for_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> hosts_;
};

HealthCheckSpec Check(int port, const std::string& path) {
  HealthCheckSpec spec;
  spec.port = port;
  spec.path = path;
  spec.timeout = 30s;
  spec.interval = 250ms;
  return spec;
}

TEST(WaitHealthyTest, RefusedConnectionsTimeOutOnTheManualClock) {
  auto port = PickFreePort();  // released again: nobody listens there
  ASSERT_TRUE(port.ok());
  ManualClock clock;
  auto begin_real = std::chrono::steady_clock::now();
  auto begin = clock.Monotonic();
  Status st = WaitHealthy(Check(*port, "/api/health"), clock, [] { return true; });
  EXPECT_EQ(st.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(st.message(),
            "health check /api/health timed out after 30s (last: connection refused)");
  EXPECT_GE(clock.Monotonic() - begin, 30s);
  // Only the connection attempts took real time, not the 30 s of the check.
  EXPECT_LT(std::chrono::steady_clock::now() - begin_real, 25s);
}

TEST(WaitHealthyTest, PortCheckTimesOutOnTheManualClock) {
  auto port = PickFreePort();
  ASSERT_TRUE(port.ok());
  ManualClock clock;
  Status st = WaitHealthy(Check(*port, ""), clock, [] { return true; });
  EXPECT_EQ(st.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(st.message(), "health check (port " + std::to_string(*port) +
                              " accepting connections) timed out after 30s");
}

TEST(WaitHealthyTest, ServerAnswering503TimesOutNamingTheStatus) {
  StatusServer server([](int) { return 503; });
  ASSERT_GT(server.port(), 0);
  ManualClock clock;
  HealthCheckSpec spec = Check(server.port(), "/api/health");
  spec.host_header = "web.demo.localhost";
  Status st = WaitHealthy(spec, clock, [] { return true; });
  EXPECT_EQ(st.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(st.message(), "health check /api/health timed out after 30s (last: HTTP 503)");
  auto hosts = server.hosts();
  // Attempts 10, 20, 40, 80 and 160 ms apart at first, then one per 250 ms interval:
  // 6 in the first 310 ms, then 118 more until 30 s.
  EXPECT_EQ(hosts.size(), 124u);
  ASSERT_FALSE(hosts.empty());
  EXPECT_EQ(hosts.front(), "web.demo.localhost");
}

TEST(WaitHealthyTest, PassesOnceTheServerAnswers2xx) {
  StatusServer server([](int n) { return n < 3 ? 503 : 204; });
  ASSERT_GT(server.port(), 0);
  ManualClock clock;
  auto begin = clock.Monotonic();
  Status st = WaitHealthy(Check(server.port(), "/health"), clock, [] { return true; });
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(server.hosts().size(), 4u);
  EXPECT_EQ(clock.Monotonic() - begin, 70ms);  // 10 + 20 + 40 ms between the 4 attempts
  EXPECT_EQ(server.hosts().front(), "127.0.0.1:" + std::to_string(server.port()));
}

TEST(WaitHealthyTest, PortCheckPassesWhenSomethingListens) {
  int port = 0;
  int fd = ListenOnLoopback(&port);
  ASSERT_GE(fd, 0);
  ManualClock clock;
  Status st = WaitHealthy(Check(port, ""), clock, [] { return true; });
  close(fd);
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST(WaitHealthyTest, StopsWhenTheAppHasExited) {
  auto port = PickFreePort();
  ASSERT_TRUE(port.ok());
  ManualClock clock;
  int calls = 0;
  Status st = WaitHealthy(Check(*port, "/api/health"), clock, [&] { return ++calls < 3; });
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_EQ(st.message(), "app exited before its health check passed");
  EXPECT_EQ(calls, 3);
}

// A real replica that crashes while starting: the check ends as soon as it is gone.
TEST(WaitHealthyTest, ReplicaExitingEarlyIsUnavailable) {
  supervisor_testing::TempDir dir;
  RealClock clock;
  Supervisor supervisor(supervisor_testing::SelfExe(), clock);
  auto port = PickFreePort();
  ASSERT_TRUE(port.ok());
  ReplicaSpec spec;
  spec.command = "echo booting; exit 1";
  spec.cwd = dir.path();
  spec.env = {{"PATH", "/usr/bin:/bin"}};
  spec.log_path = dir.path() + "/app.log";
  spec.run_dir = dir.path() + "/run";
  auto handle = supervisor.Start(spec);
  ASSERT_TRUE(handle.ok()) << handle.status().ToString();

  HealthCheckSpec check = Check(*port, "/api/health");
  check.timeout = 120s;
  auto begin = std::chrono::steady_clock::now();
  Status st = WaitHealthy(check, clock, [&] { return supervisor.Running(*handle); });
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 100s);
  EXPECT_EQ(supervisor.ExitCode(*handle), 1);
  EXPECT_TRUE(supervisor.Stop(*handle, 1s).ok());
}

TEST(PickFreePortTest, PortCanBeBound) {
  auto port = PickFreePort();
  ASSERT_TRUE(port.ok()) << port.status().ToString();
  EXPECT_GT(*port, 0);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(*port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(fd);
}

}  // namespace
}  // namespace slipway
