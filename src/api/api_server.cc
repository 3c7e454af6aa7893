#include "api/api_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/archive.h"
#include "common/cron.h"
#include "common/fs.h"
#include "common/names.h"
#include "common/run_stream.h"
#include "config/config.h"
#include "git/git.h"

namespace slipway {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

int HttpStatusFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
      return 409;
    case StatusCode::kResourceExhausted:
      return 507;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kDeadlineExceeded:
      return 504;
    case StatusCode::kInternal:
      return 500;
  }
  return 500;
}

Result<std::string> LoadOrCreateToken(const std::string& home) {
  std::string path = home + "/token";
  if (PathExists(path)) {
    ASSIGN_OR_RETURN(std::string token, ReadFile(path));
    while (!token.empty() && (token.back() == '\n' || token.back() == ' ')) token.pop_back();
    if (token.size() < 32) {
      return FailedPrecondition(path + " holds no valid token; delete it to make a new one");
    }
    return token;
  }
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return Internal("no randomness for the API token");
  static const char* kHex = "0123456789abcdef";
  std::string token;
  for (unsigned char b : bytes) {
    token.push_back(kHex[b >> 4]);
    token.push_back(kHex[b & 15]);
  }
  RETURN_IF_ERROR(WriteFileAtomic(path, token + "\n", 0600));
  return token;
}

namespace {

constexpr size_t kMaxJsonBody = 1 << 20;
constexpr auto kHeaderTimeout = std::chrono::seconds(30);
constexpr auto kUploadTimeout = std::chrono::minutes(10);
constexpr int kMaxWaitMs = 10'000;

std::string UrlDecode(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out.push_back(' ');
    } else if (in[i] == '%' && i + 2 < in.size() && std::isxdigit(in[i + 1]) &&
               std::isxdigit(in[i + 2])) {
      out.push_back(static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

struct ParsedTarget {
  std::vector<std::string> segments;  // "/v1/projects/x" -> {"v1","projects","x"}
  std::map<std::string, std::string> query;

  std::string Get(const std::string& key, const std::string& fallback = "") const {
    auto it = query.find(key);
    return it == query.end() ? fallback : it->second;
  }
  long long GetInt(const std::string& key, long long fallback) const {
    auto it = query.find(key);
    if (it == query.end() || it->second.empty()) return fallback;
    try {
      return std::stoll(it->second);
    } catch (...) {
      return fallback;
    }
  }
};

ParsedTarget ParseTarget(std::string_view target) {
  ParsedTarget t;
  auto q = target.find('?');
  std::string_view path = target.substr(0, q);
  std::stringstream ps{std::string(path)};
  std::string seg;
  while (std::getline(ps, seg, '/')) {
    if (!seg.empty()) t.segments.push_back(UrlDecode(seg));
  }
  if (q != std::string_view::npos) {
    std::stringstream qs{std::string(target.substr(q + 1))};
    std::string kv;
    while (std::getline(qs, kv, '&')) {
      auto eq = kv.find('=');
      if (eq == std::string::npos) {
        t.query[UrlDecode(kv)] = "";
      } else {
        t.query[UrlDecode(kv.substr(0, eq))] = UrlDecode(kv.substr(eq + 1));
      }
    }
  }
  return t;
}

struct Reply {
  int status = 200;
  json body;
  bool reveal = false;  // answers hold secret values (variables with reveal=1): not masked
};

// Replaces every secret value in the strings of `j` by ***.
void MaskJson(json& j, const Masker& masker) {
  if (j.is_string()) {
    const std::string& text = j.get_ref<const std::string&>();
    if (text.size() >= kMinMaskedLength) j = masker.Mask(text);
  } else if (j.is_structured()) {
    for (auto& item : j) MaskJson(item, masker);
  }
}

Reply Error(const Status& st) {
  return Reply{HttpStatusFor(st),
               json{{"error", st.message()}, {"code", StatusCodeName(st.code())}}};
}

// Runs one async operation on a connection's own io_context, so the handler code
// reads sequentially while the stream's deadline still applies.
template <typename Start>
beast::error_code Await(asio::io_context& ioc, Start&& start) {
  beast::error_code result;
  start([&](beast::error_code ec, size_t) { result = ec; });
  ioc.restart();
  ioc.run();
  return result;
}

// Reads log text from `offset` (at most 1 MiB), returning whole lines only.
std::pair<std::string, uint64_t> ReadFrom(const std::string& path, uint64_t offset) {
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) return {"", offset};
  fseek(f, 0, SEEK_END);
  uint64_t size = static_cast<uint64_t>(ftell(f));
  if (offset > size) offset = 0;  // the file was rotated
  uint64_t len = std::min<uint64_t>(size - offset, 1 << 20);
  std::string data(len, '\0');
  fseek(f, static_cast<long>(offset), SEEK_SET);
  size_t n = fread(data.data(), 1, len, f);
  fclose(f);
  data.resize(n);
  auto last_nl = data.rfind('\n');
  if (last_nl == std::string::npos) return {"", offset};
  data.resize(last_nl + 1);
  return {data, offset + data.size()};
}

uint64_t FileSize(const std::string& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : size;
}

// 16 hex digits of randomness: names of spooled uploads.
std::string RandomId() {
  unsigned char rnd[8];
  RAND_bytes(rnd, sizeof(rnd));
  static const char* kHex = "0123456789abcdef";
  std::string id;
  for (unsigned char b : rnd) {
    id.push_back(kHex[b >> 4]);
    id.push_back(kHex[b & 15]);
  }
  return id;
}

// Standard base64 (with or without padding); nullopt for anything else.
std::optional<std::string> DecodeBase64(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (char c : in) {
    int v = value(c);
    if (v < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xff));
    }
  }
  return out;
}

// Who pushed, as git's REMOTE_USER: the Basic user name when it is a plain one.
std::string RemoteUser(std::string_view basic_user) {
  if (basic_user.empty() || basic_user.size() > 64) return "slipway";
  for (char c : basic_user) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-' &&
        c != '@') {
      return "slipway";
    }
  }
  return std::string(basic_user);
}

// Reads and drops what the client still sends, until it closes or `limit` passes.
void DrainUnread(int fd, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  char buf[64 * 1024];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return;
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return;
  }
}

// Writes a git answer straight to the client's socket as an HTTP/1.1 response with a
// chunked body, each piece as git produced it (so `remote:` lines arrive live). A
// client that stops reading for a minute counts as gone.
class SocketResponder final : public GitHttpResponder {
 public:
  explicit SocketResponder(int fd) : fd_(fd) {}

  Status Begin(int status,
               const std::vector<std::pair<std::string, std::string>>& headers) override {
    began_ = true;
    std::string head = "HTTP/1.1 " + std::to_string(status) + " " +
                       std::string(http::obsolete_reason(static_cast<http::status>(status))) +
                       "\r\n";
    for (const auto& [name, value] : headers) head += name + ": " + value + "\r\n";
    head += "Server: slipway\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    return SendAll(head);
  }

  Status Write(std::string_view data) override {
    char size[20];
    std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
    RETURN_IF_ERROR(SendAll(size));
    RETURN_IF_ERROR(SendAll(data));
    return SendAll("\r\n");
  }

  void Finish() { (void)SendAll("0\r\n\r\n"); }
  bool began() const { return began_; }

 private:
  Status SendAll(std::string_view data) {
    if (failed_) return Unavailable("the client went away");
    while (!data.empty()) {
      ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd p{fd_, POLLOUT, 0};
        if (poll(&p, 1, 60'000) > 0) continue;
      }
      failed_ = true;
      return Unavailable("the client went away");
    }
    return Status::Ok();
  }

  int fd_;
  bool began_ = false;
  bool failed_ = false;
};

class ApiServerImpl final : public ApiServer {
 public:
  ApiServerImpl(ApiOptions options, Store& store, DeployEngine& engine, AddonManager* addons,
                int listen_fd, int port)
      : options_(std::move(options)),
        store_(store),
        engine_(engine),
        addons_(addons),
        listen_fd_(listen_fd),
        port_(port) {
    if (options_.slipway_exe.empty()) {
      git_status_ = NotFound("this Slipway server serves no git repositories");
      return;
    }
    GitOptions git;
    git.home = options_.home;
    git.slipway_exe = options_.slipway_exe;
    git.api_url = "http://" +
                  (options_.address == "0.0.0.0" ? std::string("127.0.0.1") : options_.address) +
                  ":" + std::to_string(port_);
    git.request_timeout = options_.git_request_timeout;
    auto repos = GitRepositories::Create(git);
    if (repos.ok()) {
      git_ = std::move(*repos);
    } else {
      git_status_ = repos.status();
      spdlog::warn("git push is off: {}", git_status_.message());
    }
  }

  ~ApiServerImpl() override { Stop(); }

  void Start() override {
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }

  void Stop() override {
    if (stopping_.exchange(true)) return;
    shutdown(listen_fd_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    close(listen_fd_);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(15), [this] { return active_ == 0; });
  }

  int port() const override { return port_; }

  void SetDomainHook(std::function<Status(const DomainRecord&, bool added)> hook) override {
    domain_hook_ = std::move(hook);
  }

  void AddInfoSource(const std::string& name, std::function<Result<json>()> source) override {
    info_sources_[name] = std::move(source);
  }

 private:
  void AcceptLoop() {
    while (!stopping_.load()) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (stopping_.load()) return;
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          continue;
        }
        if (errno == EINVAL) return;  // shut down
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (active_ >= options_.max_connections) {
          static const char kBusy[] =
              "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
          (void)!write(fd, kBusy, sizeof(kBusy) - 1);
          close(fd);
          continue;
        }
        active_++;
      }
      std::thread([this, fd] {
        Serve(fd);
        std::lock_guard<std::mutex> lock(mu_);
        active_--;
        cv_.notify_all();
      }).detach();
    }
  }

  void Serve(int fd) {
    asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    beast::error_code ec;
    stream.socket().assign(tcp::v4(), fd, ec);
    if (ec) {
      close(fd);
      return;
    }
    beast::flat_buffer buffer;
    // One request per connection: the CLI opens a fresh one per call.
    http::request_parser<http::empty_body> header_parser;
    header_parser.header_limit(64 * 1024);
    header_parser.body_limit(options_.max_upload_bytes);
    stream.expires_after(kHeaderTimeout);
    ec = Await(ioc, [&](auto handler) {
      http::async_read_header(stream, buffer, header_parser, handler);
    });
    if (ec) {
      if (ec == http::error::header_limit) {
        Send(ioc, stream, 431, json{{"error", "request headers too large"}}, false);
      } else if (ec != beast::error::timeout && ec != http::error::end_of_stream) {
        Send(ioc, stream, 400, json{{"error", "malformed request: " + ec.message()}}, false);
      }
      return;
    }
    const auto& header = header_parser.get();
    std::string target(header.target());
    if (target.rfind("/git/", 0) == 0) return HandleGit(ioc, stream, buffer, header_parser, target);
    ParsedTarget t = ParseTarget(target);
    bool is_health = header.method() == http::verb::get && t.segments.size() == 2 &&
                     t.segments[0] == "v1" && t.segments[1] == "health";
    if (!is_health && !Authorized(header)) {
      Send(ioc, stream, 401,
           json{{"error", "missing or wrong API token"}, {"code", "UNAUTHENTICATED"}}, false);
      return;
    }

    Reply reply;
    if (header.method() == http::verb::post &&
        t.segments == std::vector<std::string>{"v1", "deploy"}) {
      reply = HandleUpload(ioc, stream, buffer, header_parser, t);
    } else {
      http::request_parser<http::string_body> parser(std::move(header_parser));
      parser.body_limit(kMaxJsonBody);
      stream.expires_after(kHeaderTimeout);
      ec = Await(ioc, [&](auto handler) { http::async_read(stream, buffer, parser, handler); });
      if (ec) {
        if (ec == http::error::body_limit) {
          Send(ioc, stream, 413, json{{"error", "request body larger than 1 MiB"}}, false);
        }
        return;
      }
      const auto& s = t.segments;
      if (parser.get().method() == http::verb::post && s.size() == 4 && s[0] == "v1" &&
          s[1] == "projects" && s[3] == "run") {
        return HandleRun(ioc, stream, s[2], t, parser.get().body());
      }
      reply = Route(parser.get().method(), t, parser.get().body());
    }
    // Secret values never leave in an answer unless a variables listing asked to reveal.
    if (!reply.reveal) {
      auto masker = engine_.SecretMasker();
      if (masker && !masker->empty()) MaskJson(reply.body, *masker);
    }
    Send(ioc, stream, reply.status, reply.body, false);
  }

  bool TokenMatches(std::string_view given) const {
    return given.size() == options_.token.size() &&
           CRYPTO_memcmp(given.data(), options_.token.data(), given.size()) == 0;
  }

  bool Authorized(const http::request_header<>& header) const {
    auto it = header.find(http::field::authorization);
    if (it == header.end()) return false;
    std::string_view value = it->value();
    const std::string_view prefix = "Bearer ";
    if (value.substr(0, prefix.size()) != prefix) return false;
    return TokenMatches(value.substr(prefix.size()));
  }

  // git's credential helpers speak HTTP Basic: the token is the password (any user
  // name), or the user name with no password; a Bearer token works too. Sets *user to
  // who pushed, never to the token.
  bool GitAuthorized(const http::request_header<>& header, std::string* user) const {
    *user = "slipway";
    if (Authorized(header)) return true;
    auto it = header.find(http::field::authorization);
    if (it == header.end()) return false;
    std::string_view value = it->value();
    const std::string_view prefix = "Basic ";
    if (value.substr(0, prefix.size()) != prefix) return false;
    auto decoded = DecodeBase64(value.substr(prefix.size()));
    if (!decoded) return false;
    auto colon = decoded->find(':');
    if (colon == std::string::npos) return false;
    std::string_view name = std::string_view(*decoded).substr(0, colon);
    std::string_view password = std::string_view(*decoded).substr(colon + 1);
    if (TokenMatches(password)) {
      *user = RemoteUser(name);
      return true;
    }
    return password.empty() && TokenMatches(name);
  }

  // Git's clients show a plain-text answer to the user; JSON is for the CLI.
  void SendText(asio::io_context& ioc, beast::tcp_stream& stream, int status,
                const std::string& text,
                const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    SendBody(ioc, stream, status, "text/plain; charset=utf-8", text + "\n", false, headers);
  }

  // /git/<project>.git/<path>: git's smart HTTP, answered by `git http-backend`. The
  // first push to a project creates its repository.
  void HandleGit(asio::io_context& ioc, beast::tcp_stream& stream, beast::flat_buffer& buffer,
                 http::request_parser<http::empty_body>& header_parser, const std::string& target) {
    const auto& header = header_parser.get();
    std::string user;
    if (!GitAuthorized(header, &user)) {
      return SendText(ioc, stream, 401,
                      "Slipway: this repository takes the API token as the password; "
                      "`slipway git-remote` prints the URL to push to",
                      {{"WWW-Authenticate", "Basic realm=\"Slipway\""}});
    }
    GitHttpRequest request;
    request.method = std::string(header.method_string());
    request.remote_user = user;
    const size_t q = target.find('?');
    const std::string path = target.substr(5, q == std::string::npos ? q : q - 5);
    request.query = q == std::string::npos ? "" : target.substr(q + 1);
    const size_t dot = path.find(".git/");
    if (dot != std::string::npos) {
      request.project = path.substr(0, dot);
      request.path = path.substr(dot + 5);
    }
    if (request.project.empty() || !ValidateName(request.project, "project name").ok()) {
      return SendText(ioc, stream, 404,
                      "Slipway: not a repository URL: push to /git/<project>.git (`slipway "
                      "git-remote` prints it)");
    }
    if (!git_) return SendText(ioc, stream, 503, "Slipway: " + git_status_.message());
    const bool push =
        request.path == "git-receive-pack" || request.query == "service=git-receive-pack";
    if (push) {
      std::string branch = kDefaultProductionBranch;
      if (auto project = store_.GetProject(request.project);
          project.ok() && !project->production_branch.empty()) {
        branch = project->production_branch;
      }
      if (Status st = git_->Ensure(request.project, branch); !st.ok()) {
        return SendText(ioc, stream, HttpStatusFor(st), "Slipway: " + st.message());
      }
    }
    if (auto it = header.find(http::field::content_type); it != header.end()) {
      request.content_type = std::string(it->value());
    }
    if (auto it = header.find(http::field::content_encoding); it != header.end()) {
      request.content_encoding = std::string(it->value());
    }
    if (auto it = header.find("Git-Protocol"); it != header.end()) {
      request.git_protocol = std::string(it->value());
    }
    if (header.method() == http::verb::post) {
      if (Status st = MakeDirs(options_.home + "/uploads", 0700); !st.ok()) {
        return SendText(ioc, stream, HttpStatusFor(st), "Slipway: " + st.message());
      }
      request.body_path = options_.home + "/uploads/" + RandomId() + ".git-request";
      Reply failed = SpoolBody(ioc, stream, buffer, header_parser, request.body_path, "the push");
      if (failed.status != 200) {
        (void)RemoveTree(request.body_path);
        SendText(ioc, stream, failed.status,
                 "Slipway: " + failed.body.value("error", std::string("bad request")));
        // The client is still sending: closing now would reset the connection before it
        // read the answer. curl stops sending once it sees an error answer.
        return DrainUnread(stream.socket().native_handle(), std::chrono::seconds(10));
      }
      if (request.path == "git-receive-pack") {
        spdlog::info("git push to {} by {} ({} bytes)", request.project, request.remote_user,
                     FileSize(request.body_path));
      }
    }
    SocketResponder responder(stream.socket().native_handle());
    Status served = git_->ServeHttp(request, responder);
    if (!request.body_path.empty()) (void)RemoveTree(request.body_path);
    if (!served.ok() && !responder.began()) {
      if (served.code() != StatusCode::kNotFound) {
        spdlog::error("git {} {}: {}", request.project, request.path, served.message());
      }
      return SendText(ioc, stream, HttpStatusFor(served), "Slipway: " + served.message());
    }
    responder.Finish();
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  // Reads the request body into `path` (created), at most max_upload_bytes within
  // kUploadTimeout; answers 100 Continue first when the client waits for it. A Reply
  // with status 200 when the body is whole, else the error to answer.
  Reply SpoolBody(asio::io_context& ioc, beast::tcp_stream& stream, beast::flat_buffer& buffer,
                  http::request_parser<http::empty_body>& header_parser, const std::string& path,
                  const std::string& what) {
    if (beast::iequals(header_parser.get()[http::field::expect], "100-continue")) {
      static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
      beast::error_code ec;
      asio::write(stream.socket(), asio::buffer(kContinue, sizeof(kContinue) - 1), ec);
    }
    http::request_parser<http::file_body> parser(std::move(header_parser));
    parser.body_limit(options_.max_upload_bytes);
    beast::error_code ec;
    parser.get().body().open(path.c_str(), beast::file_mode::write, ec);
    if (ec) return Error(ErrnoStatus("cannot store " + what + " in " + path, ec.value()));
    stream.expires_after(kUploadTimeout);
    ec = Await(ioc, [&](auto handler) { http::async_read(stream, buffer, parser, handler); });
    parser.get().body().close();
    if (!ec) return Reply{200, json::object()};
    if (ec == http::error::body_limit) {
      return Reply{413, json{{"error", what + " is larger than " +
                                           std::to_string(options_.max_upload_bytes >> 20) +
                                           " MiB, the server's limit"}}};
    }
    if (ec.value() == ENOSPC) {
      return Error(ResourceExhausted("disk full while receiving " + what + " in " + options_.home +
                                     "; free space and try again"));
    }
    return Error(InvalidArgument(what + " did not arrive whole: " + ec.message()));
  }

  void Send(asio::io_context& ioc, beast::tcp_stream& stream, int status, const json& body,
            bool keep_alive) {
    // Logs and app output in answers may hold bytes that are not UTF-8: replaced, not thrown.
    SendBody(ioc, stream, status, "application/json",
             body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n", keep_alive, {});
  }

  void SendBody(asio::io_context& ioc, beast::tcp_stream& stream, int status,
                const char* content_type, std::string body, bool keep_alive,
                const std::vector<std::pair<std::string, std::string>>& headers) {
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::content_type, content_type);
    res.set(http::field::server, "slipway");
    for (const auto& [name, value] : headers) res.set(name, value);
    res.body() = std::move(body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    stream.expires_after(std::chrono::seconds(30));
    Await(ioc, [&](auto handler) { http::async_write(stream, res, handler); });
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  Reply HandleUpload(asio::io_context& ioc, beast::tcp_stream& stream, beast::flat_buffer& buffer,
                     http::request_parser<http::empty_body>& header_parser, const ParsedTarget& t) {
    std::string project = t.Get("project");
    if (project.empty()) return Error(InvalidArgument("the deploy names no project"));
    std::string base = options_.home + "/uploads/" + RandomId();
    std::string archive_path = base + ".tar.gz";
    Reply spooled = SpoolBody(ioc, stream, buffer, header_parser, archive_path, "the upload");
    if (spooled.status != 200) {
      (void)RemoveTree(archive_path);
      return spooled;
    }
    Status unpacked = UnpackArchive(archive_path, base, options_.max_upload_bytes * 4);
    (void)RemoveTree(archive_path);
    if (!unpacked.ok()) {
      (void)RemoveTree(base);
      return Error(unpacked);
    }
    DeployRequest request;
    request.project = project;
    request.environment = t.Get("env", "production");
    request.source_dir = base;
    std::string only = t.Get("service");
    if (!only.empty()) request.only_services.push_back(only);
    std::stringstream several(t.Get("services"));
    for (std::string name; std::getline(several, name, ',');) {
      if (!name.empty()) request.only_services.push_back(name);
    }
    request.source_label = t.Get("label", request.source_label);
    if (request.source_label.empty() || request.source_label.size() > 200 ||
        std::any_of(request.source_label.begin(), request.source_label.end(),
                    [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
      (void)RemoveTree(base);
      return Error(InvalidArgument("label must be 1 to 200 characters, no control characters"));
    }
    // Deploy() owns the directory from here: it is removed when no deploy needs it.
    auto accepted = engine_.Deploy(request);
    if (!accepted.ok()) return Error(accepted.status());
    json out;
    out["project"] = accepted->project;
    out["environment"] = request.environment;
    out["warnings"] = accepted->warnings;
    out["provisioned"] = accepted->provisioned;
    out["unchanged"] = accepted->unchanged;
    out["deployments"] = json::array();
    for (size_t i = 0; i < accepted->deployments.size(); ++i) {
      const auto& dep = accepted->deployments[i];
      out["deployments"].push_back(
          {{"id", dep.id},
           {"service", accepted->service_names[i]},
           {"status", dep.status},
           {"url", engine_.ServiceUrl(accepted->project, request.environment,
                                      accepted->service_names[i])}});
    }
    return Reply{202, out};
  }

  Reply Route(http::verb method, const ParsedTarget& t, const std::string& body) {
    const auto& s = t.segments;
    if (s.size() < 2 || s[0] != "v1") return Error(NotFound("no such API route"));
    if (s.size() == 4 && s[1] == "projects" && s[3] == "domains") {
      if (method == http::verb::post) return AddDomain(s[2], t, body);
      if (method == http::verb::get) return ListDomains(s[2], t);
    }
    if (s.size() == 4 && s[1] == "projects" && s[3] == "variables") {
      return Variables(method, s[2], t, body);
    }
    if (s.size() == 3 && s[1] == "domains" && method == http::verb::delete_) {
      return RemoveDomain(s[2]);
    }
    if (s.size() == 4 && s[1] == "projects" && s[3] == "environments") {
      if (method == http::verb::get) return ListEnvironments(s[2]);
      if (method == http::verb::post) return CreateEnvironment(s[2], body);
    }
    if (s.size() == 4 && s[1] == "projects" && s[3] == "git") {
      if (method == http::verb::get) return GitSettings(s[2]);
      if (method == http::verb::put) return SetGitSettings(s[2], body);
    }
    if (s.size() == 5 && s[1] == "projects" && s[3] == "environments" &&
        method == http::verb::delete_) {
      return DeleteEnvironment(s[2], s[4]);
    }
    if (s.size() >= 4 && s[1] == "projects" && (s[3] == "addons" || s[3] == "backups")) {
      return AddonRoute(method, s, t, body);
    }
    if (s.size() == 4 && s[1] == "projects" && method == http::verb::post) {
      if (s[3] == "rollback") return Rollback(s[2], t, body);
      if (s[3] == "scale") return Scale(s[2], t, body);
    }
    if (s.size() == 5 && s[1] == "projects" && s[3] == "cron" && s[4] == "runs") {
      if (method == http::verb::post) return RunCron(s[2], t);
      if (method == http::verb::get) return ListCronRuns(s[2], t);
    }
    if (method != http::verb::get) return Error(NotFound("no such API route"));
    if (s.size() == 2 && s[1] == "health") {
      return Reply{200, json{{"ok", true}, {"service", "slipway"}}};
    }
    if (s.size() == 3 && s[1] == "deployments") return GetDeployment(s[2], t);
    if (s.size() == 3 && s[1] == "cron-runs") return GetCronRun(s[2], t);
    if (s.size() == 2 && s[1] == "projects") return ListProjects();
    if (s.size() == 2 && info_sources_.count(s[1])) {
      auto info = info_sources_[s[1]]();
      if (!info.ok()) return Error(info.status());
      return Reply{200, std::move(*info)};
    }
    if (s.size() == 4 && s[1] == "projects") {
      if (s[3] == "status") return ProjectStatus(s[2], t);
      if (s[3] == "deployments") return ListDeployments(s[2], t);
      if (s[3] == "logs") return Logs(s[2], t);
    }
    return Error(NotFound("no such API route"));
  }

  // ---- handlers ---------------------------------------------------------------

  // GET /v1/projects/<p>/environments: each environment with its services and URLs.
  Reply ListEnvironments(const std::string& project_name) {
    auto project = store_.GetProject(project_name);
    if (!project.ok()) return Error(NotDeployed(project_name, project.status()));
    auto envs = store_.ListEnvironments(project->id);
    if (!envs.ok()) return Error(envs.status());
    json out = json::array();
    for (const auto& env : *envs) {
      auto services = ServicesJson(project_name, env.name);
      if (!services.ok()) return Error(services.status());
      out.push_back({{"name", env.name},
                     {"created_at", env.created_at},
                     {"branch", env.git_branch},
                     {"services", *services}});
    }
    return Reply{200, json{{"project", project_name}, {"environments", out}}};
  }

  // POST /v1/projects/<p>/environments {"name": "staging", "from": "production"}, and
  // "branch" for the preview environment of a git branch (git push creates those).
  Reply CreateEnvironment(const std::string& project, const std::string& body) {
    json req = json::parse(body, nullptr, false);
    if (req.is_discarded() || !req.is_object() || !req.contains("name") ||
        !req["name"].is_string() || (req.contains("from") && !req["from"].is_string()) ||
        (req.contains("branch") && !req["branch"].is_string())) {
      return Error(InvalidArgument(
          "expected a JSON object with a \"name\", an optional \"from\" and \"branch\""));
    }
    const std::string branch = req.value("branch", "");
    if (!branch.empty()) {
      if (Status st = CheckBranchName(branch); !st.ok()) return Error(st);
    }
    auto env =
        engine_.CreateEnvironment(project, req["name"].get<std::string>(), req.value("from", ""));
    if (!env.ok()) return Error(env.status());
    if (!branch.empty()) {
      if (Status st = store_.SetEnvironmentBranch(env->id, branch); !st.ok()) {
        // Another environment previews the branch already: this one was never wanted.
        (void)engine_.DeleteEnvironment(project, env->name);
        return Error(st.code() == StatusCode::kAlreadyExists
                         ? AlreadyExists("branch " + branch + " of project " + project +
                                         " has a preview environment already")
                         : st);
      }
    }
    auto services = ServicesJson(project, env->name);
    return Reply{201, json{{"project", project},
                           {"name", env->name},
                           {"branch", branch},
                           {"services", services.ok() ? *services : json::array()}}};
  }

  // GET /v1/projects/<p>/git: the git push settings (defaults for a project that has
  // none, or does not exist yet) and whether its repository exists.
  Reply GitSettings(const std::string& project_name) {
    if (Status st = ValidateName(project_name, "project name"); !st.ok()) return Error(st);
    json out{{"project", project_name},
             {"path", "/git/" + project_name + ".git"},
             {"production_branch", kDefaultProductionBranch},
             {"preview_from", kDefaultPreviewFrom},
             {"repository", git_ != nullptr && git_->Exists(project_name)},
             {"git", git_ != nullptr},
             {"git_error", git_ ? std::string() : git_status_.message()}};
    if (auto project = store_.GetProject(project_name); project.ok()) {
      if (!project->production_branch.empty())
        out["production_branch"] = project->production_branch;
      if (!project->preview_from.empty()) out["preview_from"] = project->preview_from;
    }
    return Reply{200, out};
  }

  // PUT /v1/projects/<p>/git {"production_branch": "trunk", "preview_from": "staging"}
  // (each optional): stores them (creating the project) and creates the repository.
  Reply SetGitSettings(const std::string& project_name, const std::string& body) {
    if (Status st = ValidateName(project_name, "project name"); !st.ok()) return Error(st);
    json req = body.empty() ? json::object() : json::parse(body, nullptr, false);
    if (req.is_discarded() || !req.is_object() ||
        (req.contains("production_branch") && !req["production_branch"].is_string()) ||
        (req.contains("preview_from") && !req["preview_from"].is_string())) {
      return Error(InvalidArgument(
          "expected a JSON object with an optional \"production_branch\" and \"preview_from\""));
    }
    if (!git_) return Error(Unavailable(git_status_.message()));
    auto project = store_.EnsureProject(project_name);
    if (!project.ok()) return Error(project.status());
    std::string branch = req.value("production_branch", project->production_branch);
    std::string from = req.value("preview_from", project->preview_from);
    if (branch == kDefaultProductionBranch) branch.clear();
    if (from == kDefaultPreviewFrom) from.clear();
    if (!branch.empty()) {
      if (Status st = CheckBranchName(branch); !st.ok()) return Error(st);
    }
    if (!from.empty()) {
      if (Status st = ValidateName(from, "environment name"); !st.ok()) return Error(st);
    }
    if (Status st = store_.SetProjectGitSettings(project->id, branch, from); !st.ok()) {
      return Error(st);
    }
    if (Status st = git_->Ensure(project_name, branch.empty() ? kDefaultProductionBranch : branch);
        !st.ok()) {
      return Error(st);
    }
    return GitSettings(project_name);
  }

  // DELETE /v1/projects/<p>/environments/<e>: answers once its replicas are stopped.
  Reply DeleteEnvironment(const std::string& project, const std::string& environment) {
    // The engine stops the apps first, then removes the add-ons (each backed up).
    if (Status st = engine_.DeleteEnvironment(project, environment); !st.ok()) return Error(st);
    return Reply{200, json{{"project", project}, {"deleted", environment}}};
  }

  // POST /v1/projects/<p>/run?service=S&env=E {"argv": [...], "timeout_seconds": N}.
  // Errors before the command starts are ordinary JSON errors. Once it runs, the answer
  // is 200 with a chunked body of run-stream frames (common/run_stream.h): the output
  // as it comes, then the exit code. The command's process group is killed when the
  // client goes away, and when the timeout passes (an "e" frame says so).
  void HandleRun(asio::io_context& ioc, beast::tcp_stream& stream, const std::string& project,
                 const ParsedTarget& t, const std::string& body) {
    json req = json::parse(body, nullptr, false);
    bool valid = !req.is_discarded() && req.is_object() && req.contains("argv") &&
                 req["argv"].is_array() && !req["argv"].empty() &&
                 (!req.contains("timeout_seconds") || req["timeout_seconds"].is_number_integer());
    RunRequest run;
    if (valid) {
      for (const auto& a : req["argv"]) {
        if (!a.is_string()) valid = false;
        if (a.is_string()) run.argv.push_back(a.get<std::string>());
      }
    }
    if (!valid) {
      Reply r = Error(InvalidArgument(
          "expected a JSON object with \"argv\" (a non-empty array of strings) and an optional "
          "integer \"timeout_seconds\""));
      return Send(ioc, stream, r.status, r.body, false);
    }
    const int64_t timeout_seconds =
        std::clamp<int64_t>(req.value("timeout_seconds", 3600), 1, 7 * 24 * 3600);
    auto svc = ResolveService(project, t);
    if (!svc.ok()) {
      Reply r = Error(svc.status());
      return Send(ioc, stream, r.status, r.body, false);
    }
    run.project = project;
    run.environment = t.Get("env", "production");
    run.service = svc->name;
    auto started = engine_.StartRun(run);
    if (!started.ok()) {
      Reply r = Error(started.status());
      return Send(ioc, stream, r.status, r.body, false);
    }
    StreamRun(stream, **started, std::chrono::seconds(timeout_seconds));
  }

  void StreamRun(beast::tcp_stream& stream, Process& process, std::chrono::seconds timeout) {
    auto& socket = stream.socket();
    beast::error_code ec;
    http::response<http::empty_body> res{http::status::ok, 11};
    res.set(http::field::content_type, "application/vnd.slipway.run-stream");
    res.set(http::field::server, "slipway");
    res.set(http::field::cache_control, "no-store");
    res.chunked(true);
    res.keep_alive(false);
    http::response_serializer<http::empty_body> serializer{res};
    http::write_header(socket, serializer, ec);
    bool client_gone = static_cast<bool>(ec);
    auto send = [&](const std::string& frame) {
      if (client_gone || frame.empty()) return;
      asio::write(socket, http::make_chunk(asio::buffer(frame)), ec);
      if (ec) client_gone = true;
    };
    // Output goes out line by line, secrets masked, a partial line once the command is
    // quiet for a moment or the line grows long.
    const std::shared_ptr<const Masker> masker = engine_.SecretMasker();
    std::string pending;
    auto flush = [&](bool partial_too) {
      size_t end = pending.size();
      if (!partial_too) {
        end = pending.rfind('\n');
        if (end == std::string::npos) return;
        end += 1;
      }
      if (end == 0) return;
      send(EncodeRunOutput(masker ? masker->Mask(pending.substr(0, end)) : pending.substr(0, end)));
      pending.erase(0, end);
    };
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const int out_fd = process.output_fd();
    bool output_open = out_fd >= 0;
    bool timed_out = false;
    int exit_code = -1;
    char buf[16384];
    while (true) {
      pollfd fds[2] = {{out_fd, POLLIN, 0}, {socket.native_handle(), POLLIN | POLLRDHUP, 0}};
      int n = poll(output_open ? fds : fds + 1, output_open ? 2 : 1, 100);
      if (n < 0 && errno != EINTR) break;
      // The client sends nothing after its request: anything readable is its going away.
      if (fds[1].revents != 0) client_gone = true;
      if (output_open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t got = read(out_fd, buf, sizeof(buf));
        if (got > 0) {
          pending.append(buf, static_cast<size_t>(got));
          flush(pending.size() > 16384);
          continue;
        }
        if (got == 0 || errno != EINTR) output_open = false;
      }
      flush(true);
      if (client_gone || stopping_.load()) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        timed_out = true;
        break;
      }
      if (process.TryWait(&exit_code)) {
        // Whatever the command printed last is still in the pipe; background children
        // holding it open do not keep the run going.
        while (output_open) {
          pollfd last{out_fd, POLLIN, 0};
          if (poll(&last, 1, 50) <= 0) break;
          ssize_t got = read(out_fd, buf, sizeof(buf));
          if (got <= 0) break;
          pending.append(buf, static_cast<size_t>(got));
        }
        flush(true);
        process.Signal(SIGKILL);  // leftovers of its group
        break;
      }
    }
    if (exit_code == -1 || timed_out || client_gone) {
      process.Signal(SIGTERM);
      for (int i = 0; i < 50 && !process.TryWait(&exit_code); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      process.Signal(SIGKILL);
      exit_code = process.Wait();
    }
    if (timed_out) {
      send(EncodeRunError("the command ran past its timeout of " + std::to_string(timeout.count()) +
                          "s and was killed"));
    } else if (stopping_.load()) {
      send(EncodeRunError("the Slipway daemon is stopping; the command was killed"));
    } else {
      send(EncodeRunExit(exit_code));
    }
    if (!client_gone) asio::write(socket, http::make_chunk_last(), ec);
    socket.shutdown(tcp::socket::shutdown_send, ec);
  }

  // POST /v1/projects/<p>/rollback?service=S&env=E  {"to": 12} (optional): 202 with the
  // new deployment, which the CLI follows like a deploy.
  Reply Rollback(const std::string& project, const ParsedTarget& t, const std::string& body) {
    json req = body.empty() ? json::object() : json::parse(body, nullptr, false);
    if (req.is_discarded() || !req.is_object() ||
        (req.contains("to") && !req["to"].is_number_integer())) {
      return Error(InvalidArgument("expected a JSON object with an optional integer \"to\""));
    }
    auto svc = ResolveService(project, t);
    if (!svc.ok()) return Error(svc.status());
    const std::string env = t.Get("env", "production");
    auto dep = engine_.Rollback(project, env, svc->name, req.value("to", int64_t{0}));
    if (!dep.ok()) return Error(dep.status());
    return Reply{202, json{{"id", dep->id},
                           {"service", svc->name},
                           {"status", dep->status},
                           {"source", dep->source},
                           {"url", engine_.ServiceUrl(project, env, svc->name)}}};
  }

  // POST /v1/projects/<p>/scale?service=S&env=E  {"replicas": 3}: answers when done.
  Reply Scale(const std::string& project, const ParsedTarget& t, const std::string& body) {
    json req = json::parse(body, nullptr, false);
    if (req.is_discarded() || !req.is_object() || !req.contains("replicas") ||
        !req["replicas"].is_number_integer()) {
      return Error(InvalidArgument("expected a JSON object with an integer \"replicas\""));
    }
    auto svc = ResolveService(project, t);
    if (!svc.ok()) return Error(svc.status());
    const int64_t replicas = req["replicas"].get<int64_t>();
    if (replicas < 1 || replicas > 32) {
      return Error(
          InvalidArgument("replicas must be from 1 to 32 (got " + std::to_string(replicas) + ")"));
    }
    Status st =
        engine_.Scale(project, t.Get("env", "production"), svc->name, static_cast<int>(replicas));
    if (!st.ok()) return Error(st);
    return Reply{200, json{{"service", svc->name}, {"replicas", replicas}}};
  }

  static json DomainJson(const DomainRecord& d, const std::string& service) {
    return json{{"host", d.host},    {"service", service}, {"cert", d.cert_path},
                {"key", d.key_path}, {"acme", d.acme},     {"created_at", d.created_at}};
  }

  Reply AddDomain(const std::string& project, const ParsedTarget& t, const std::string& body) {
    json req = json::parse(body, nullptr, false);
    if (req.is_discarded() || !req.is_object() || !req.contains("host") ||
        !req["host"].is_string()) {
      return Error(InvalidArgument("expected a JSON object with a \"host\""));
    }
    auto host = NormalizeDomain(req["host"].get<std::string>());
    if (!host.ok()) return Error(host.status());
    auto svc = ResolveService(project, t);
    if (!svc.ok()) return Error(svc.status());
    DomainRecord d;
    d.service_id = svc->id;
    d.host = *host;
    d.cert_path = req.value("cert", "");
    d.key_path = req.value("key", "");
    d.acme = req.value("acme", false);
    if (d.cert_path.empty() != d.key_path.empty()) {
      return Error(InvalidArgument("give both --cert and --key, or neither"));
    }
    if (!d.cert_path.empty() && d.acme) {
      return Error(InvalidArgument("choose either a certificate of your own or --acme, not both"));
    }
    if (domain_hook_) {
      if (Status st = domain_hook_(d, true); !st.ok()) return Error(st);
    }
    auto added = store_.AddDomain(d);
    if (!added.ok()) return Error(added.status());
    engine_.RefreshRoutes();
    return Reply{201, DomainJson(*added, svc->name)};
  }

  Reply ListDomains(const std::string& project_name, const ParsedTarget& t) {
    auto project = store_.GetProject(project_name);
    if (!project.ok()) return Error(NotDeployed(project_name, project.status()));
    auto env = store_.GetEnvironment(project->id, t.Get("env", "production"));
    if (!env.ok()) return Error(env.status());
    auto services = store_.ListServices(env->id);
    if (!services.ok()) return Error(services.status());
    json out = json::array();
    for (const auto& svc : *services) {
      auto domains = store_.ListDomains(svc.id);
      if (!domains.ok()) return Error(domains.status());
      for (const auto& d : *domains) out.push_back(DomainJson(d, svc.name));
    }
    return Reply{200, json{{"domains", out}}};
  }

  Reply RemoveDomain(const std::string& host_text) {
    auto host = NormalizeDomain(host_text);
    if (!host.ok()) return Error(host.status());
    if (Status st = store_.RemoveDomain(*host); !st.ok()) return Error(st);
    if (domain_hook_) {
      DomainRecord d;
      d.host = *host;
      (void)domain_hook_(d, false);
    }
    engine_.RefreshRoutes();
    return Reply{200, json{{"removed", *host}}};
  }

  Result<json> DeploymentJson(const DeploymentRecord& dep) {
    ASSIGN_OR_RETURN(ServiceRecord svc, store_.GetService(dep.service_id));
    ASSIGN_OR_RETURN(EnvironmentRecord env, store_.GetEnvironmentById(svc.environment_id));
    ASSIGN_OR_RETURN(ProjectRecord project_record, store_.GetProjectById(svc.project_id));
    const std::string& project = project_record.name;
    ServiceConfig config;
    if (auto parsed = ServiceConfigFromJson(dep.config_json); parsed.ok()) config = *parsed;
    json out{{"id", dep.id},
             {"service", svc.name},
             {"project", project},
             {"environment", env.name},
             {"status", dep.status},
             {"error", dep.error},
             {"source", dep.source},
             {"release_id", dep.release_id},
             {"active", svc.active_deployment_id == dep.id},
             {"type", config.type},
             {"url", config.type == "web" ? engine_.ServiceUrl(project, env.name, svc.name) : ""},
             {"created_at", dep.created_at},
             {"finished_at", dep.finished_at}};
    if (config.type == "cron") {
      out["schedule"] = config.cron_schedule;
      if (auto schedule = CronSchedule::Parse(config.cron_schedule); schedule.ok()) {
        if (auto next = schedule->Next(std::chrono::system_clock::now())) {
          out["next_run"] =
              std::chrono::duration_cast<std::chrono::milliseconds>(next->time_since_epoch())
                  .count();
        }
      }
    }
    return out;
  }

  static json CronRunJson(const CronRunRecord& r, const std::string& service) {
    return json{
        {"id", r.id},
        {"service", service},
        {"deployment_id", r.deployment_id},
        {"trigger", r.trigger},
        {"scheduled_for", r.scheduled_for},
        {"status", r.status},
        {"exit_code", r.exit_code},
        {"message", r.message},
        {"started_at", r.started_at},
        {"finished_at", r.finished_at},
        {"duration_ms",
         r.finished_at != 0 && r.started_at != 0 ? r.finished_at - r.started_at : int64_t{0}}};
  }

  // POST /v1/projects/<p>/cron/runs?service=S&env=E: starts a run now; 202 with it.
  Reply RunCron(const std::string& project, const ParsedTarget& t) {
    auto svc = ResolveService(project, t);
    if (!svc.ok()) return Error(svc.status());
    auto run = engine_.RunCron(project, t.Get("env", "production"), svc->name);
    if (!run.ok()) return Error(run.status());
    return Reply{202, CronRunJson(*run, svc->name)};
  }

  // GET /v1/projects/<p>/cron/runs?service=S&env=E&limit=N: the latest runs, newest first.
  Reply ListCronRuns(const std::string& project, const ParsedTarget& t) {
    auto svc = ResolveService(project, t);
    if (!svc.ok()) return Error(svc.status());
    const int limit = static_cast<int>(std::clamp(t.GetInt("limit", 20), 1LL, 1000LL));
    auto runs = engine_.CronRuns(project, t.Get("env", "production"), svc->name, limit);
    if (!runs.ok()) return Error(runs.status());
    json out = json::array();
    for (const auto& r : *runs) out.push_back(CronRunJson(r, svc->name));
    return Reply{200, json{{"service", svc->name}, {"runs", out}}};
  }

  // GET /v1/cron-runs/ID?log_offset=N&wait_ms=M: the run and its log from offset,
  // long-polling like a deployment.
  Reply GetCronRun(const std::string& id_text, const ParsedTarget& t) {
    int64_t id = 0;
    try {
      id = std::stoll(id_text);
    } catch (...) {
      return Error(InvalidArgument("\"" + id_text + "\" is not a cron run id"));
    }
    uint64_t offset = static_cast<uint64_t>(std::max(0LL, t.GetInt("log_offset", 0)));
    long long wait_ms = std::clamp(t.GetInt("wait_ms", 0), 0LL, static_cast<long long>(kMaxWaitMs));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    while (true) {
      auto run = store_.GetCronRun(id);
      if (!run.ok()) return Error(run.status());
      const bool finished = run->status != kRunRunning;
      bool news = FileSize(run->log_path) > offset || finished;
      if (news || std::chrono::steady_clock::now() >= deadline || stopping_.load()) {
        auto svc = store_.GetService(run->service_id);
        json out = CronRunJson(*run, svc.ok() ? svc->name : "");
        auto [text, next] = ReadFrom(run->log_path, offset);
        out["log"] = text;
        out["log_offset"] = next;
        out["finished"] = finished;
        return Reply{200, out};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  static bool Finished(const std::string& status) {
    return status != kQueued && status != kBuilding && status != kDeploying;
  }

  Reply GetDeployment(const std::string& id_text, const ParsedTarget& t) {
    int64_t id = 0;
    try {
      id = std::stoll(id_text);
    } catch (...) {
      return Error(InvalidArgument("\"" + id_text + "\" is not a deployment id"));
    }
    uint64_t offset = static_cast<uint64_t>(std::max(0LL, t.GetInt("log_offset", 0)));
    long long wait_ms = std::clamp(t.GetInt("wait_ms", 0), 0LL, static_cast<long long>(kMaxWaitMs));
    std::string log_path = engine_.BuildLogPath(id);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    while (true) {
      auto dep = store_.GetDeployment(id);
      if (!dep.ok()) return Error(dep.status());
      bool news = FileSize(log_path) > offset || Finished(dep->status);
      if (news || std::chrono::steady_clock::now() >= deadline || stopping_.load()) {
        auto out = DeploymentJson(*dep);
        if (!out.ok()) return Error(out.status());
        auto [text, next] = ReadFrom(log_path, offset);
        (*out)["log"] = text;
        (*out)["log_offset"] = next;
        (*out)["finished"] = Finished(dep->status);
        return Reply{200, *out};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  Result<json> ServicesJson(const std::string& project, const std::string& env) {
    ASSIGN_OR_RETURN(auto services, engine_.ProjectStatus(project, env));
    json out = json::array();
    for (const auto& s : services) {
      json replicas = json::array();
      for (const auto& r : s.replicas) {
        replicas.push_back({{"index", r.index},
                            {"port", r.port},
                            {"state", r.state},
                            {"restarts", r.restarts},
                            {"pid", r.pid}});
      }
      json service{{"name", s.name},
                   {"project", s.project},
                   {"environment", s.environment},
                   {"type", s.type},
                   {"url", s.url},
                   {"kind", s.kind},
                   {"active_deployment_id", s.active_deployment_id},
                   {"active_status", s.active_status},
                   {"latest_deployment_id", s.latest_deployment_id},
                   {"latest_status", s.latest_status},
                   {"health", s.health},
                   {"notice", s.notice},
                   {"replicas", replicas}};
      if (s.type == "cron") {
        service["schedule"] = s.schedule;
        service["next_run"] = s.next_run;
        service["last_run"] = s.last_run ? CronRunJson(*s.last_run, s.name) : json(nullptr);
      }
      out.push_back(std::move(service));
    }
    return out;
  }

  Reply ListProjects() {
    auto projects = store_.ListProjects();
    if (!projects.ok()) return Error(projects.status());
    json out = json::array();
    for (const auto& p : *projects) {
      auto services = ServicesJson(p.name, "production");
      json environments = json::array();
      if (auto envs = store_.ListEnvironments(p.id); envs.ok()) {
        for (const auto& env : *envs) {
          auto env_services = ServicesJson(p.name, env.name);
          environments.push_back({{"name", env.name},
                                  {"services", env_services.ok() ? *env_services : json::array()}});
        }
      }
      out.push_back({{"name", p.name},
                     {"services", services.ok() ? *services : json::array()},
                     {"environments", environments}});
    }
    return Reply{200, json{{"projects", out}}};
  }

  Reply ProjectStatus(const std::string& project, const ParsedTarget& t) {
    auto services = ServicesJson(project, t.Get("env", "production"));
    if (!services.ok()) return Error(NotDeployed(project, services.status()));
    return Reply{200, json{{"project", project}, {"services", *services}}};
  }

  Status NotDeployed(const std::string& project, const Status& st) {
    if (st.code() != StatusCode::kNotFound) return st;
    return NotFound("project \"" + project +
                    "\" has not been deployed yet; run `slipway up` in its directory");
  }

  // The service a request names, or the project's only service.
  Result<ServiceRecord> ResolveService(const std::string& project_name, const ParsedTarget& t) {
    auto project = store_.GetProject(project_name);
    if (!project.ok()) return NotDeployed(project_name, project.status());
    std::string env_name = t.Get("env", "production");
    auto env = store_.GetEnvironment(project->id, env_name);
    if (!env.ok()) {
      return NotFound("project \"" + project_name + "\" has no environment \"" + env_name + "\"");
    }
    ASSIGN_OR_RETURN(auto services, store_.ListServices(env->id));
    std::string name = t.Get("service");
    std::string names;
    for (const auto& s : services) {
      if (s.name == name) return s;
      names += (names.empty() ? "" : ", ") + s.name;
    }
    if (name.empty() && services.size() == 1) return services.front();
    if (name.empty()) {
      return InvalidArgument("project \"" + project_name + "\" has several services (" + names +
                             "): name one");
    }
    return NotFound("project \"" + project_name + "\" has no service \"" + name +
                    "\" (services: " + names + ")");
  }

  Reply ListDeployments(const std::string& project_name, const ParsedTarget& t) {
    auto project = store_.GetProject(project_name);
    if (!project.ok()) return Error(NotDeployed(project_name, project.status()));
    std::vector<ServiceRecord> services;
    if (!t.Get("service").empty()) {
      auto svc = ResolveService(project_name, t);
      if (!svc.ok()) return Error(svc.status());
      services.push_back(*svc);
    } else {
      auto env = store_.GetEnvironment(project->id, t.Get("env", "production"));
      if (!env.ok()) return Error(env.status());
      auto all = store_.ListServices(env->id);
      if (!all.ok()) return Error(all.status());
      services = *all;
    }
    int limit = static_cast<int>(std::clamp(t.GetInt("limit", 20), 1LL, 1000LL));
    std::vector<json> rows;
    for (const auto& svc : services) {
      auto deps = store_.ListDeployments(svc.id, limit);
      if (!deps.ok()) return Error(deps.status());
      for (const auto& d : *deps) {
        auto j = DeploymentJson(d);
        if (j.ok()) rows.push_back(*j);
      }
    }
    std::sort(rows.begin(), rows.end(), [](const json& a, const json& b) {
      return a["id"].get<int64_t>() > b["id"].get<int64_t>();
    });
    if (rows.size() > static_cast<size_t>(limit)) rows.resize(static_cast<size_t>(limit));
    return Reply{200, json{{"deployments", rows}}};
  }

  Reply Logs(const std::string& project_name, const ParsedTarget& t) {
    auto svc = ResolveService(project_name, t);
    if (!svc.ok()) return Error(svc.status());
    int64_t deployment_id = t.GetInt("deployment", 0);
    bool build = t.Get("build") == "1" || t.Get("build") == "true";
    if (deployment_id == 0) {
      if (!build && svc->active_deployment_id != 0) {
        deployment_id = svc->active_deployment_id;
      } else {
        auto latest = store_.ListDeployments(svc->id, 1);
        if (!latest.ok()) return Error(latest.status());
        if (latest->empty())
          return Error(NotFound("service \"" + svc->name + "\" has no deployments"));
        deployment_id = latest->front().id;
      }
    }
    auto dep = store_.GetDeployment(deployment_id);
    if (!dep.ok()) return Error(dep.status());
    std::vector<std::string> files;
    if (build) {
      files.push_back(engine_.BuildLogPath(deployment_id));
    } else {
      files = engine_.ReplicaLogPaths(deployment_id);
    }
    size_t max_lines = static_cast<size_t>(std::clamp(t.GetInt("lines", 100), 1LL, 10000LL));
    std::string cursor_text = t.Get("cursor");
    std::vector<uint64_t> offsets;
    {
      std::stringstream cs(cursor_text);
      std::string part;
      while (std::getline(cs, part, ',')) {
        try {
          offsets.push_back(std::stoull(part));
        } catch (...) {
          offsets.push_back(0);
        }
      }
    }
    std::vector<std::string> lines;
    json next = json::array();
    std::string next_cursor;
    for (size_t i = 0; i < files.size(); ++i) {
      uint64_t end = FileSize(files[i]);
      if (cursor_text.empty()) {
        auto tail = TailLines(files[i], max_lines);
        if (tail.ok()) lines.insert(lines.end(), tail->begin(), tail->end());
      } else {
        uint64_t from = i < offsets.size() ? offsets[i] : 0;
        auto [text, upto] = ReadFrom(files[i], from);
        end = upto;
        std::stringstream ls(text);
        std::string line;
        while (std::getline(ls, line)) lines.push_back(line);
      }
      next_cursor += (i ? "," : "") + std::to_string(end);
    }
    // Runtime lines start with an ISO timestamp, so sorting merges replicas in time order.
    if (!build && files.size() > 1) std::stable_sort(lines.begin(), lines.end());
    if (cursor_text.empty() && lines.size() > max_lines) {
      lines.erase(lines.begin(), lines.end() - static_cast<long>(max_lines));
    }
    return Reply{200, json{{"deployment_id", deployment_id},
                           {"service", svc->name},
                           {"status", dep->status},
                           {"finished", Finished(dep->status)},
                           {"lines", lines},
                           {"cursor", next_cursor}}};
  }

  // ---- add-ons and backups ----------------------------------------------------------

  // An add-on as answered: the password in no variable (a URL keeps its shape around ***).
  static json AddonJson(const AddonInfo& a) {
    std::vector<std::string> passwords;
    for (const auto& name : a.secret_variables) {
      auto it = a.variables.find(name);
      const std::string suffix = "PASSWORD";
      if (it != a.variables.end() && name.size() >= suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        passwords.push_back(it->second);
      }
    }
    const Masker masker(passwords);
    json variables = json::object();
    for (const auto& [name, value] : a.variables) {
      const bool secret = std::find(a.secret_variables.begin(), a.secret_variables.end(), name) !=
                          a.secret_variables.end();
      std::string shown = masker.Mask(value);
      if (secret && shown == value) shown = "***";
      variables[name] = shown;
    }
    return json{{"id", a.id},
                {"project", a.project},
                {"environment", a.environment},
                {"name", a.name},
                {"kind", a.kind},
                {"port", a.port},
                {"state", a.state},
                {"error", a.error},
                {"version", a.version},
                {"pid", a.pid},
                {"backup_schedule", a.backup_schedule},
                {"backup_retention", a.backup_retention},
                {"variables", variables},
                {"secret_variables", a.secret_variables}};
  }

  static json BackupJson(const BackupInfo& b) {
    return json{{"id", b.id},
                {"addon", b.addon},
                {"status", b.status},
                {"trigger", b.trigger},
                {"path", b.path},
                {"bytes", b.bytes},
                {"sha256", b.sha256},
                {"error", b.error},
                {"started_at", b.started_at},
                {"finished_at", b.finished_at}};
  }

  // The add-on a backup request names, or the environment's only postgres add-on.
  Result<std::string> BackupAddon(const std::string& project, const std::string& env,
                                  const ParsedTarget& t) {
    std::string name = t.Get("addon");
    if (!name.empty()) return name;
    ASSIGN_OR_RETURN(std::vector<AddonInfo> all, addons_->List(project, env));
    std::vector<std::string> postgres;
    for (const auto& a : all) {
      if (a.kind == "postgres") postgres.push_back(a.name);
    }
    if (postgres.size() == 1) return postgres.front();
    if (postgres.empty()) {
      return NotFound("project " + project + " (" + env +
                      ") has no postgres add-on to back up; add one with `slipway add postgres`");
    }
    std::string names;
    for (const auto& n : postgres) names += (names.empty() ? "" : ", ") + n;
    return InvalidArgument("project " + project + " (" + env + ") has several postgres add-ons (" +
                           names + "): name one with --addon");
  }

  //   GET|POST /v1/projects/P/addons, DELETE /v1/projects/P/addons/NAME,
  //   GET|POST /v1/projects/P/backups, POST /v1/projects/P/backups/ID/restore
  Reply AddonRoute(http::verb method, const std::vector<std::string>& s, const ParsedTarget& t,
                   const std::string& body) {
    if (addons_ == nullptr) {
      return Error(FailedPrecondition("this Slipway server runs no add-ons"));
    }
    const std::string& project = s[2];
    const std::string env = t.Get("env", "production");
    if (s[3] == "addons" && s.size() == 4 && method == http::verb::get) {
      auto all = addons_->List(project, env);
      if (!all.ok()) return Error(all.status());
      json out = json::array();
      for (const auto& a : *all) out.push_back(AddonJson(a));
      return Reply{200, json{{"project", project}, {"environment", env}, {"addons", out}}};
    }
    if (s[3] == "addons" && s.size() == 4 && method == http::verb::post) {
      json req = json::parse(body, nullptr, false);
      if (req.is_discarded() || !req.is_object() || !req.contains("kind") ||
          !req["kind"].is_string() || (req.contains("name") && !req["name"].is_string()) ||
          (req.contains("port") && !req["port"].is_number_integer())) {
        return Error(InvalidArgument(
            "expected a JSON object with a \"kind\" (postgres or redis), an optional \"name\" "
            "and an optional integer \"port\""));
      }
      AddonRequest request;
      request.project = project;
      request.environment = env;
      request.kind = req["kind"].get<std::string>();
      request.name = req.value("name", "");
      request.port = req.value("port", 0);
      const bool existed =
          addons_->Variables(project, env, request.name.empty() ? request.kind : request.name)
              .has_value();
      auto info = addons_->Ensure(request);
      if (!info.ok()) return Error(info.status());
      json out = AddonJson(*info);
      out["created"] = !existed;
      return Reply{existed ? 200 : 201, out};
    }
    if (s[3] == "addons" && s.size() == 5 && method == http::verb::delete_) {
      const bool keep_backup = t.Get("backup", "1") != "0" && t.Get("backup") != "false";
      auto kept = addons_->Remove(project, env, s[4], keep_backup);
      if (!kept.ok()) return Error(kept.status());
      return Reply{
          200,
          json{{"project", project}, {"environment", env}, {"removed", s[4]}, {"backup", *kept}}};
    }
    if (s[3] == "backups" && s.size() == 4 && method == http::verb::get) {
      auto all = addons_->ListBackups(project, env, t.Get("addon"));
      if (!all.ok()) return Error(all.status());
      json out = json::array();
      for (const auto& b : *all) out.push_back(BackupJson(b));
      return Reply{200, json{{"project", project}, {"environment", env}, {"backups", out}}};
    }
    if (s[3] == "backups" && s.size() == 4 && method == http::verb::post) {
      auto addon = BackupAddon(project, env, t);
      if (!addon.ok()) return Error(addon.status());
      auto backup = addons_->CreateBackup(project, env, *addon, "manual");
      if (!backup.ok()) return Error(backup.status());
      return Reply{201, BackupJson(*backup)};
    }
    if (s[3] == "backups" && s.size() == 6 && s[5] == "restore" && method == http::verb::post) {
      int64_t id = 0;
      try {
        id = std::stoll(s[4]);
      } catch (...) {
        return Error(InvalidArgument("\"" + s[4] + "\" is not a backup id"));
      }
      json req = body.empty() ? json::object() : json::parse(body, nullptr, false);
      if (req.is_discarded() || !req.is_object() ||
          (req.contains("database") && !req["database"].is_string())) {
        return Error(InvalidArgument("expected a JSON object with an optional \"database\""));
      }
      auto addon = BackupAddon(project, env, t);
      if (!addon.ok()) return Error(addon.status());
      const std::string database = req.value("database", "");
      if (Status st = addons_->Restore(project, env, *addon, id, database); !st.ok()) {
        return Error(st);
      }
      std::string target = database;
      if (target.empty()) {
        auto vars = addons_->Variables(project, env, *addon);
        if (vars && vars->count("PGDATABASE")) target = vars->at("PGDATABASE");
      }
      return Reply{200, json{{"restored", id},
                             {"addon", *addon},
                             {"database", target},
                             {"replaced", database.empty()}}};
    }
    return Error(NotFound("no such API route"));
  }

  // ---- variables ----------------------------------------------------------------
  //   GET    /v1/projects/P/variables?env=E&service=S|shared=1[&reveal=1]
  //   PUT    /v1/projects/P/variables?env=E&service=S|shared=1
  //          {"variables": {"K": "V"}, "secret": true, "deploy": false}
  //   DELETE /v1/projects/P/variables?env=E&service=S|shared=1&names=A,B[&deploy=1]
  // Without service or shared: the environment's only service.

  Reply Variables(http::verb method, const std::string& project, const ParsedTarget& t,
                  const std::string& body) {
    const std::string env = t.Get("env", "production");
    const bool shared = t.Get("shared") == "1" || t.Get("shared") == "true";
    std::string service = t.Get("service");
    if (shared && !service.empty()) {
      return Error(InvalidArgument("give either a service or --shared, not both"));
    }
    if (!shared && service.empty()) {
      auto only = OnlyService(project, env);
      if (!only.ok()) return Error(only.status());
      service = *only;
    }
    if (method == http::verb::get) {
      const bool reveal = t.Get("reveal") == "1" || t.Get("reveal") == "true";
      auto entries = engine_.ListVariables(project, env, service, reveal);
      if (!entries.ok()) return Error(entries.status());
      json rows = json::array();
      for (const auto& e : *entries) {
        rows.push_back({{"service", e.service},
                        {"name", e.name},
                        {"value", e.value},
                        {"secret", e.secret},
                        {"source", e.source}});
      }
      Reply reply{200, json{{"project", project},
                            {"environment", env},
                            {"service", service},
                            {"variables", rows}}};
      reply.reveal = reveal;
      return reply;
    }
    bool deploy = false;
    std::vector<std::string> names;
    if (method == http::verb::put) {
      json req = json::parse(body, nullptr, false);
      if (req.is_discarded() || !req.is_object() || !req.contains("variables") ||
          !req["variables"].is_object()) {
        return Error(InvalidArgument("expected {\"variables\": {\"KEY\": \"value\"}, ...}"));
      }
      std::vector<std::pair<std::string, std::string>> values;
      for (const auto& [k, v] : req["variables"].items()) {
        if (!v.is_string()) return Error(InvalidArgument("the value of " + k + " is not a string"));
        values.emplace_back(k, v.get<std::string>());
        names.push_back(k);
      }
      deploy = req.value("deploy", false);
      Status st = engine_.SetVariables(project, env, service, values, req.value("secret", true));
      if (!st.ok()) return Error(st);
    } else if (method == http::verb::delete_) {
      std::stringstream list(t.Get("names"));
      for (std::string name; std::getline(list, name, ',');) {
        if (!name.empty()) names.push_back(name);
      }
      deploy = t.Get("deploy") == "1" || t.Get("deploy") == "true";
      Status st = engine_.UnsetVariables(project, env, service, names);
      if (!st.ok()) return Error(st);
    } else {
      return Error(NotFound("no such API route"));
    }
    json out{{"project", project},
             {"environment", env},
             {"service", service},
             {"names", names},
             {"deployments", json::array()}};
    if (deploy) {
      auto deps = engine_.ApplyVariables(project, env, service);
      if (!deps.ok()) return Error(deps.status());
      for (const auto& d : *deps) {
        auto j = DeploymentJson(d);
        if (j.ok()) out["deployments"].push_back(*j);
      }
    }
    return Reply{200, out};
  }

  // The environment's only deployed service, else an error listing them.
  Result<std::string> OnlyService(const std::string& project_name, const std::string& env_name) {
    std::vector<ServiceRecord> services;
    if (auto project = store_.GetProject(project_name); project.ok()) {
      if (auto env = store_.GetEnvironment(project->id, env_name); env.ok()) {
        ASSIGN_OR_RETURN(services, store_.ListServices(env->id));
      }
    }
    if (services.size() == 1) return services.front().name;
    if (services.empty()) {
      return InvalidArgument("project \"" + project_name + "\" has no deployed service in " +
                             env_name + ": name one with --service S, or use --shared");
    }
    std::string names;
    for (const auto& s : services) names += (names.empty() ? "" : ", ") + s.name;
    return InvalidArgument("project \"" + project_name + "\" has several services (" + names +
                           "): name one with --service S, or use --shared");
  }

  ApiOptions options_;
  Store& store_;
  DeployEngine& engine_;
  AddonManager* addons_;  // may be null
  int listen_fd_;
  int port_;
  std::unique_ptr<GitRepositories> git_;  // null: git_status_ says why
  Status git_status_;
  std::function<Status(const DomainRecord&, bool added)> domain_hook_;
  std::map<std::string, std::function<Result<json>()>> info_sources_;
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  int active_ = 0;
};

}  // namespace

Result<std::unique_ptr<ApiServer>> ApiServer::Create(ApiOptions options, Store& store,
                                                     DeployEngine& engine, AddonManager* addons) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus("socket", errno);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(options.port));
  std::string where = options.address + ":" + std::to_string(options.port);
  if (inet_pton(AF_INET, options.address.c_str(), &addr.sin_addr) != 1) {
    close(fd);
    return InvalidArgument("API address \"" + options.address + "\" is not an IPv4 address");
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 128) != 0) {
    int e = errno;
    close(fd);
    if (e == EADDRINUSE) {
      return FailedPrecondition("cannot listen on " + where +
                                ": address already in use (is another slipway server running? "
                                "choose another with --api)");
    }
    return ErrnoStatus("cannot listen on " + where, e);
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  return std::unique_ptr<ApiServer>(
      new ApiServerImpl(std::move(options), store, engine, addons, fd, port));
}

}  // namespace slipway
