// The edge's control socket plumbing: lines and descriptors over a unix socket, bounded
// lines and waits, and a socket path that a newer edge replaces atomically.

#include "cli/edge_control.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

namespace slipway {
namespace {

using namespace std::chrono_literals;
using Deadline = ControlConnection::Deadline;

Deadline In(std::chrono::milliseconds d) { return std::chrono::steady_clock::now() + d; }

struct Pair {
  Pair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    a = std::make_unique<ControlConnection>(fds[0]);
    b = std::make_unique<ControlConnection>(fds[1]);
  }
  std::unique_ptr<ControlConnection> a;
  std::unique_ptr<ControlConnection> b;
};

TEST(ControlConnectionTest, LinesAndDescriptorsArrive) {
  Pair p;
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  ASSERT_TRUE(p.a->Send(R"({"op":"one"})", In(5s), {pipe_fds[0]}).ok());
  ASSERT_TRUE(p.a->Send(R"({"op":"two"})", In(5s)).ok());
  ::close(pipe_fds[0]);

  std::vector<int> received;
  auto first = p.b->ReadLine(In(5s), &received);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(*first, R"({"op":"one"})");
  ASSERT_EQ(received.size(), 1u);
  auto second = p.b->ReadLine(In(5s), &received);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, R"({"op":"two"})");
  EXPECT_EQ(received.size(), 1u);

  // The descriptor is the pipe's read end, open in this process under another number.
  ASSERT_EQ(::write(pipe_fds[1], "x", 1), 1);
  char c = 0;
  EXPECT_EQ(::read(received[0], &c, 1), 1);
  EXPECT_EQ(c, 'x');
  EXPECT_NE(::fcntl(received[0], F_GETFD) & FD_CLOEXEC, 0);
  ::close(received[0]);
  ::close(pipe_fds[1]);
}

TEST(ControlConnectionTest, CallReturnsTheReplyOrTheEdgesError) {
  Pair p;
  std::thread edge([&] {
    for (const char* reply : {R"({"ok":true,"pid":7})", R"({"ok":false,"error":"no such op"})"}) {
      auto line = p.b->ReadLine(In(5s));
      ASSERT_TRUE(line.ok());
      ASSERT_TRUE(p.b->Send(reply, In(5s)).ok());
    }
  });
  auto hello = p.a->Call(nlohmann::json{{"op", "hello"}}, 5000ms);
  ASSERT_TRUE(hello.ok()) << hello.status().ToString();
  EXPECT_EQ((*hello)["pid"], 7);
  auto refused = p.a->Call(nlohmann::json{{"op", "bogus"}}, 5000ms);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("no such op"), std::string::npos);
  edge.join();
}

TEST(ControlConnectionTest, SilenceTimesOutAndAClosedPeerIsUnavailable) {
  Pair p;
  auto silent = p.b->ReadLine(In(100ms));
  ASSERT_FALSE(silent.ok());
  EXPECT_EQ(silent.status().code(), StatusCode::kDeadlineExceeded);
  p.a.reset();
  auto closed = p.b->ReadLine(In(5s));
  ASSERT_FALSE(closed.ok());
  EXPECT_EQ(closed.status().code(), StatusCode::kUnavailable);
}

TEST(ControlConnectionTest, AnEndlessLineIsRefused) {
  Pair p;
  std::thread writer([&] {
    std::string chunk(1 << 20, 'x');
    for (size_t sent = 0; sent <= kMaxControlLine; sent += chunk.size()) {
      // Send appends '\n' per call: write raw bytes instead.
      size_t off = 0;
      while (off < chunk.size()) {
        ssize_t n = ::send(p.a->fd(), chunk.data() + off, chunk.size() - off, MSG_NOSIGNAL);
        if (n <= 0) return;  // the reader gave up and closed
        off += static_cast<size_t>(n);
      }
    }
  });
  auto line = p.b->ReadLine(In(30s));
  ASSERT_FALSE(line.ok());
  EXPECT_EQ(line.status().code(), StatusCode::kResourceExhausted);
  p.b.reset();
  writer.join();
}

TEST(ListenUnixTest, ANewSocketReplacesThePathAtomically) {
  auto dir = std::filesystem::temp_directory_path() / ("edge-control-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "edge.sock").string();
  uint64_t first_inode = 0, second_inode = 0;
  auto first = ListenUnix(path, &first_inode);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_ino, first_inode);

  auto second = ListenUnix(path, &second_inode);
  ASSERT_TRUE(second.ok());
  EXPECT_NE(first_inode, second_inode);
  auto client = ControlConnection::Connect(path);
  ASSERT_TRUE(client.ok());
  // The connection queues on the second socket, not the first.
  ASSERT_EQ(::fcntl(*first, F_SETFL, O_NONBLOCK), 0);
  ASSERT_EQ(::fcntl(*second, F_SETFL, O_NONBLOCK), 0);
  int accepted = ::accept4(*second, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  EXPECT_GE(accepted, 0);
  EXPECT_LT(::accept4(*first, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC), 0);
  ::close(accepted);
  ::close(*first);
  ::close(*second);
  std::filesystem::remove_all(dir);

  auto nobody = ControlConnection::Connect(path);
  ASSERT_FALSE(nobody.ok());
  EXPECT_EQ(nobody.status().code(), StatusCode::kUnavailable);
}

TEST(EdgeAddressTest, PortZeroMatchesAnyAndHostsAreNormalised) {
  EXPECT_TRUE(EdgeAddressMatches({"localhost", 8080}, {"127.0.0.1", 8080}));
  EXPECT_TRUE(EdgeAddressMatches({"", 0}, {"0.0.0.0", 41234}));
  EXPECT_TRUE(EdgeAddressMatches({"[::1]", 9000}, {"::1", 9000}));
  EXPECT_TRUE(EdgeAddressMatches({"", -1}, {"", -1}));
  EXPECT_FALSE(EdgeAddressMatches({"127.0.0.1", 8080}, {"127.0.0.1", 8081}));
  EXPECT_FALSE(EdgeAddressMatches({"127.0.0.1", 8443}, {"", -1}));
  EXPECT_FALSE(EdgeAddressMatches({"0.0.0.0", 8080}, {"127.0.0.1", 8080}));
  EXPECT_EQ(DescribeEdgeAddress({"::1", 9000}), "[::1]:9000");
  EXPECT_EQ(DescribeEdgeAddress({"", -1}), "none");
}

}  // namespace
}  // namespace slipway
