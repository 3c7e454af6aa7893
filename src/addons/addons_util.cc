// Names, processes and files for the add-on servers (addons_impl.h).

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <thread>

#include "addons/addons_impl.h"

namespace slipway::addons_impl {

// ---- names and quoting -----------------------------------------------------------

std::string DatabaseName(std::string_view project, std::string_view environment) {
  std::string raw(project);
  if (environment != "production") {
    raw += '_';  // appended piecewise: GCC 12 -O2 flags "_" + string with a false -Wrestrict
    raw += environment;
  }
  std::string name;
  for (char c : raw) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    name.push_back(keep ? c : '_');
  }
  if (name.empty()) name = "app";
  if (name.size() > 59) name.resize(59);  // room for "_app"
  if (name == "postgres" || name == "template0" || name == "template1" || name == kSuperuser ||
      name.rfind("pg_", 0) == 0) {
    name += "_app";
  }
  return name;
}

bool ValidDatabaseName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  if (!((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_')) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

std::string QuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string QuoteLiteral(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

// ---- processes -------------------------------------------------------------------

bool PortInUse(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  // With SO_REUSEADDR, as the servers bind: connections lingering in TIME_WAIT do not
  // count, a listener does.
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool in_use = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 &&
                (errno == EADDRINUSE || errno == EACCES);
  close(fd);
  return in_use;
}

namespace {

// Pids of live processes whose working directory is the directory (dev, ino).
std::vector<pid_t> ProcessesIn(dev_t dev, ino_t ino) {
  std::vector<pid_t> out;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return out;
  const pid_t self = getpid();
  while (dirent* entry = readdir(proc)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    const pid_t pid = static_cast<pid_t>(std::atol(entry->d_name));
    if (pid == self) continue;
    struct stat st {};
    // Zombies have no working directory any more: they are not counted.
    const std::string cwd = std::string("/proc/") + entry->d_name + "/cwd";
    if (stat(cwd.c_str(), &st) != 0) continue;
    if (st.st_dev == dev && st.st_ino == ino) out.push_back(pid);
  }
  closedir(proc);
  return out;
}

}  // namespace

int KillProcessesIn(const std::string& dir) {
  struct stat target {};
  if (stat(dir.c_str(), &target) != 0) return 0;
  int signalled = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    std::vector<pid_t> pids = ProcessesIn(target.st_dev, target.st_ino);
    if (pids.empty()) break;
    for (pid_t pid : pids) {
      if (kill(pid, SIGKILL) == 0) signalled++;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return signalled;
}

std::string CommandResult::Tail(size_t n) const {
  std::string out;
  size_t from = lines.size() > n ? lines.size() - n : 0;
  for (size_t i = from; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    out += (out.empty() ? "" : "; ") + lines[i];
  }
  return out;
}

Result<CommandResult> RunCollecting(const SpawnOptions& spawn, std::chrono::milliseconds timeout,
                                    const Masker& masker, const std::string& log_path,
                                    std::function<bool()> cancelled) {
  constexpr size_t kKeptLines = 200;
  CommandResult result;
  FILE* log = log_path.empty() ? nullptr : std::fopen(log_path.c_str(), "ae");
  RunOptions run;
  run.timeout = timeout;
  run.cancelled = std::move(cancelled);
  run.on_line = [&](std::string_view line) {
    std::string text = masker.Mask(line);
    if (log != nullptr) std::fprintf(log, "%s\n", text.c_str());
    result.lines.push_back(std::move(text));
    if (result.lines.size() > kKeptLines) result.lines.erase(result.lines.begin());
  };
  auto outcome = RunCommand(spawn, run);
  if (log != nullptr) std::fclose(log);
  if (!outcome.ok()) return outcome.status();
  result.exit_code = outcome->exit_code;
  result.timed_out = outcome->timed_out;
  return result;
}

Result<std::unique_ptr<StdinText>> StdinText::Create(std::string_view text) {
  int fd = memfd_create("slipway-stdin", MFD_CLOEXEC);
  if (fd < 0) return ErrnoStatus("memfd_create", errno);
  auto out = std::unique_ptr<StdinText>(new StdinText(fd));
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("writing a command's input", errno);
    done += static_cast<size_t>(n);
  }
  return out;
}

StdinText::~StdinText() { close(fd_); }

// The child opens this between fork and exec, when it still holds the descriptor; it
// gets a description of its own, read from the start.
std::string StdinText::path() const { return "/proc/self/fd/" + std::to_string(fd_); }

// ---- files -----------------------------------------------------------------------

std::string HexOf(const unsigned char* bytes, size_t size) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 15]);
  }
  return out;
}

Result<FileDigest> DigestFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot open " + path, errno);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  FileDigest digest;
  std::vector<char> buf(1 << 20);
  while (true) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      EVP_MD_CTX_free(ctx);
      return ErrnoStatus("cannot read " + path, e);
    }
    if (n == 0) break;
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(n));
    digest.bytes += n;
  }
  close(fd);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_DigestFinal_ex(ctx, md, &md_len);
  EVP_MD_CTX_free(ctx);
  digest.sha256 = HexOf(md, md_len);
  return digest;
}

Status SyncDirectory(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot open " + dir, errno);
  int rc = fsync(fd);
  int e = errno;
  close(fd);
  if (rc != 0) return ErrnoStatus("cannot sync " + dir + " to disk", e);
  return Status::Ok();
}

}  // namespace slipway::addons_impl
