#include "cli/edge_control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace slipway {

using json = nlohmann::json;

std::string EdgeSocketPath(const std::string& home) { return home + "/run/edge.sock"; }
std::string EdgePidPath(const std::string& home) { return home + "/run/edge.pid"; }
std::string EdgeRoutesPath(const std::string& home) { return home + "/run/edge-routes.json"; }
std::string EdgeLogPath(const std::string& home) { return home + "/logs/edge.log"; }

std::string NormalizeListenHost(const std::string& host) {
  if (host.empty()) return "0.0.0.0";
  if (host == "localhost") return "127.0.0.1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

json EdgeAddressToJson(const EdgeAddress& a) {
  if (a.port < 0) return nullptr;
  return json{{"address", a.host}, {"port", a.port}};
}

EdgeAddress EdgeAddressFromJson(const json& j) {
  EdgeAddress a;
  if (!j.is_object()) return a;
  if (j.contains("address") && j["address"].is_string()) a.host = j["address"].get<std::string>();
  if (j.contains("port") && j["port"].is_number_integer()) a.port = j["port"].get<int>();
  return a;
}

bool EdgeAddressMatches(const EdgeAddress& wanted, const EdgeAddress& running) {
  if ((wanted.port < 0) != (running.port < 0)) return false;
  if (wanted.port < 0) return true;
  return NormalizeListenHost(wanted.host) == NormalizeListenHost(running.host) &&
         (wanted.port == 0 || wanted.port == running.port);
}

std::string DescribeEdgeAddress(const EdgeAddress& a) {
  if (a.port < 0) return "none";
  const std::string host = NormalizeListenHost(a.host);
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(a.port);
  return host + ":" + std::to_string(a.port);
}

ExeIdentity ExeIdentityOf(pid_t pid) {
  ExeIdentity out;
  const std::string link = "/proc/" + std::to_string(pid) + "/exe";
  char buf[4096];
  ssize_t n = ::readlink(link.c_str(), buf, sizeof(buf) - 1);
  if (n <= 0) return out;
  out.path.assign(buf, static_cast<size_t>(n));
  struct stat st {};
  // stat() through /proc/<pid>/exe reaches the file the process runs, even when the path
  // now names another file (a binary replaced on disk).
  if (::stat(link.c_str(), &st) == 0) {
    out.dev = st.st_dev;
    out.ino = st.st_ino;
    out.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  }
  return out;
}

json ExeIdentityToJson(const ExeIdentity& exe) {
  return json{{"path", exe.path}, {"dev", exe.dev}, {"ino", exe.ino}, {"mtime_ns", exe.mtime_ns}};
}

ExeIdentity ExeIdentityFromJson(const json& j) {
  ExeIdentity out;
  if (!j.is_object()) return out;
  if (j.contains("path") && j["path"].is_string()) out.path = j["path"].get<std::string>();
  if (j.contains("dev") && j["dev"].is_number_integer()) out.dev = j["dev"].get<uint64_t>();
  if (j.contains("ino") && j["ino"].is_number_integer()) out.ino = j["ino"].get<uint64_t>();
  if (j.contains("mtime_ns") && j["mtime_ns"].is_number_integer()) {
    out.mtime_ns = j["mtime_ns"].get<int64_t>();
  }
  return out;
}

namespace {

Status FillAddress(const std::string& path, sockaddr_un* addr) {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr->sun_path)) {
    return InvalidArgument("the edge's control socket path " + path + " is longer than " +
                           std::to_string(sizeof(addr->sun_path) - 1) +
                           " bytes; choose a shorter SLIPWAY_HOME");
  }
  std::memcpy(addr->sun_path, path.data(), path.size());
  return Status::Ok();
}

// Milliseconds left until `deadline` for poll(): -1 for none, 0 once passed.
int PollTimeout(ControlConnection::Deadline deadline) {
  if (deadline == ControlConnection::Deadline::max()) return -1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - std::chrono::steady_clock::now())
                  .count();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<long long>(left, 1 << 30));
}

// Waits until `fd` is ready for `events`; false past the deadline.
Result<bool> WaitReady(int fd, short events, ControlConnection::Deadline deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int timeout = PollTimeout(deadline);
    int n = ::poll(&p, 1, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("poll on the edge's control socket", errno);
    if (n > 0) return true;
    if (timeout == 0 || PollTimeout(deadline) == 0) return false;
  }
}

}  // namespace

ControlConnection::ControlConnection(int fd) : fd_(fd) {}

ControlConnection::~ControlConnection() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<ControlConnection>> ControlConnection::Connect(const std::string& path) {
  sockaddr_un addr;
  RETURN_IF_ERROR(FillAddress(path, &addr));
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus("cannot create a unix socket", errno);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    ::close(fd);
    return Unavailable("no edge answers on " + path + ": " + std::strerror(err));
  }
  return std::make_unique<ControlConnection>(fd);
}

Status ControlConnection::Send(const std::string& line, Deadline deadline,
                               const std::vector<int>& fds) {
  std::string data = line;
  data.push_back('\n');
  size_t sent = 0;
  bool fds_sent = fds.empty();
  while (sent < data.size()) {
    ASSIGN_OR_RETURN(bool ready, WaitReady(fd_, POLLOUT, deadline));
    if (!ready) return DeadlineExceeded("the edge's control socket did not take a request in time");
    iovec iov{data.data() + sent, data.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control;
    if (!fds_sent) {
      control.resize(CMSG_SPACE(sizeof(int) * fds.size()));
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Unavailable(std::string("the edge's control connection broke: ") +
                         std::strerror(errno));
    }
    fds_sent = true;
    sent += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Result<std::string> ControlConnection::ReadLine(Deadline deadline, std::vector<int>* fds) {
  size_t scanned = 0;  // bytes of buffer_ known to hold no newline
  for (;;) {
    auto newline = buffer_.find('\n', scanned);
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    scanned = buffer_.size();
    if (buffer_.size() > kMaxControlLine) {
      return ResourceExhausted("a control message is longer than " +
                               std::to_string(kMaxControlLine) + " bytes");
    }
    ASSIGN_OR_RETURN(bool ready, WaitReady(fd_, POLLIN, deadline));
    if (!ready) return DeadlineExceeded("no answer on the edge's control socket in time");
    char data[65536];
    iovec iov{data, sizeof(data)};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 64)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = ::recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Unavailable(std::string("the edge's control connection broke: ") +
                         std::strerror(errno));
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        if (fds != nullptr) {
          fds->push_back(fd);
        } else {
          ::close(fd);
        }
      }
    }
    if ((msg.msg_flags & MSG_CTRUNC) != 0) {
      return ResourceExhausted("too many descriptors arrived on the edge's control socket");
    }
    if (n == 0) return Unavailable("the edge closed its control connection");
    buffer_.append(data, static_cast<size_t>(n));
  }
}

Result<json> ControlConnection::Call(const json& request, std::chrono::milliseconds timeout,
                                     std::vector<int>* fds) {
  const Deadline deadline = std::chrono::steady_clock::now() + timeout;
  RETURN_IF_ERROR(Send(request.dump(-1, ' ', false, json::error_handler_t::replace), deadline));
  ASSIGN_OR_RETURN(std::string line, ReadLine(deadline, fds));
  json reply = json::parse(line, nullptr, false);
  if (reply.is_discarded() || !reply.is_object() || !reply.contains("ok") ||
      !reply["ok"].is_boolean()) {
    return Internal("the edge sent an unreadable reply to \"" + request.value("op", "?") + "\"");
  }
  if (!reply["ok"].get<bool>()) {
    std::string error = reply.contains("error") && reply["error"].is_string()
                            ? reply["error"].get<std::string>()
                            : "no reason given";
    return FailedPrecondition("the edge refused \"" + request.value("op", "?") + "\": " + error);
  }
  return reply;
}

Result<int> ListenUnix(const std::string& path, uint64_t* inode) {
  const std::string temp = path + "." + std::to_string(::getpid());
  sockaddr_un addr;
  RETURN_IF_ERROR(FillAddress(temp, &addr));
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus("cannot create a unix socket", errno);
  ::unlink(temp.c_str());
  auto fail = [&](const std::string& what) -> Status {
    int err = errno;
    ::close(fd);
    ::unlink(temp.c_str());
    return ErrnoStatus(what, err);
  };
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return fail("cannot bind the edge's control socket " + temp);
  }
  if (::chmod(temp.c_str(), 0600) != 0) return fail("cannot chmod " + temp);
  if (::listen(fd, 16) != 0) return fail("cannot listen on " + temp);
  struct stat st {};
  if (::stat(temp.c_str(), &st) != 0) return fail("cannot stat " + temp);
  if (::rename(temp.c_str(), path.c_str()) != 0)
    return fail("cannot rename " + temp + " to " + path);
  *inode = st.st_ino;
  return fd;
}

}  // namespace slipway
