#include "build/dep_cache.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "build/builder.h"
#include "common/fs.h"
#include "common/subprocess.h"

namespace slipway {

namespace fs = std::filesystem;

namespace build_internal {

namespace {

constexpr char kTempInfix[] = ".tmp-";
constexpr char kTrashDir[] = ".trash";
constexpr char kLockFile[] = ".lock";
// A temp entry of a process that still exists is left alone this long at least: pid
// reuse must not keep a dead build's leftovers forever.
constexpr std::chrono::hours kTempEntryMaxAge{24};

std::atomic<unsigned long long> unique_counter{0};

// A name no other directory of this process has used, nor (in practice) another's.
std::string UniqueSuffix() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  return std::to_string(getpid()) + "-" +
         std::to_string((static_cast<unsigned long long>(now.tv_nsec) << 8) + unique_counter++);
}

bool IsKey(std::string_view name) {
  if (name.size() != 64) return false;
  for (char c : name) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// flock(2) on cache_dir/.lock for the life of the object.
class CacheLock {
 public:
  static Result<CacheLock> Take(const std::string& dir, bool exclusive) {
    std::string path = dir + "/" + kLockFile;
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoStatus("dependency cache lock " + path, errno);
    while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      return ErrnoStatus("dependency cache lock " + path, err);
    }
    return CacheLock(fd);
  }
  CacheLock(CacheLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  CacheLock& operator=(CacheLock&&) = delete;
  ~CacheLock() {
    if (fd_ >= 0) close(fd_);  // closing the last descriptor releases the lock
  }

 private:
  explicit CacheLock(int fd) : fd_(fd) {}
  int fd_;
};

// Moves `path` into the trash (an atomic rename, so nobody finds it half removed);
// returns where it went, "" when it was gone already.
Result<std::string> MoveToTrash(const std::string& dir, const std::string& path) {
  std::string trash = dir + "/" + kTrashDir;
  RETURN_IF_ERROR(MakeDirs(trash));
  std::string to = trash + "/" + fs::path(path).filename().string() + "." + UniqueSuffix();
  if (rename(path.c_str(), to.c_str()) != 0) {
    if (errno == ENOENT) return std::string();
    return ErrnoStatus("move " + path + " to " + to, errno);
  }
  return to;
}

bool HasMarker(const std::string& entry, const std::string& key) {
  auto text = ReadFile(entry + "/" + kEntryMarker);
  return text.ok() && *text == key + "\n";
}

Status SyncFilesystemOf(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(path, errno);
  int rc = syncfs(fd);
  int err = errno;
  close(fd);
  if (rc != 0) return ErrnoStatus("sync " + path, err);
  return Status::Ok();
}

long long Nanoseconds(const timespec& t) {
  return static_cast<long long>(t.tv_sec) * 1000000000LL + t.tv_nsec;
}

// mtime, in nanoseconds since the epoch; -1 when `path` is gone.
long long MtimeOf(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return -1;
  return Nanoseconds(st.st_mtim);
}

Status CopyFile(const fs::path& src, const fs::path& dst) {
  std::error_code ec;
  fs::copy_file(src, dst, ec);
  if (ec) {
    return Status(ec.value() == ENOSPC ? StatusCode::kResourceExhausted : StatusCode::kInternal,
                  "copy " + src.string() + " to " + dst.string() + ": " + ec.message());
  }
  return Status::Ok();
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // EVP_Digest fails only on allocation failure, which is not a case Slipway handles.
  [[maybe_unused]] int ok =
      EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  assert(ok == 1);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

Result<std::string> DependencyCache::Lookup(const std::string& key) {
  RETURN_IF_ERROR(MakeDirs(dir_));
  std::string entry = EntryPath(key);
  std::string damaged;
  {
    ASSIGN_OR_RETURN(CacheLock lock, CacheLock::Take(dir_, /*exclusive=*/false));
    if (!PathExists(entry)) return std::string();
    if (HasMarker(entry, key)) {
      // The entry's mtime says when it was last used; pruning reads it under the lock.
      if (utimensat(AT_FDCWD, entry.c_str(), nullptr, 0) != 0) {
        return ErrnoStatus("mark dependency cache entry " + entry + " as used", errno);
      }
      return entry;
    }
    ASSIGN_OR_RETURN(damaged, MoveToTrash(dir_, entry));
  }
  if (!damaged.empty()) RETURN_IF_ERROR(RemoveTree(damaged));
  return std::string();
}

Result<std::string> DependencyCache::StartEntry(const std::string& key) {
  RETURN_IF_ERROR(MakeDirs(dir_));
  for (int attempt = 0;; ++attempt) {
    std::string temp = EntryPath(key) + kTempInfix + UniqueSuffix();
    if (mkdir(temp.c_str(), 0755) == 0) return temp;
    if (errno != EEXIST || attempt > 100) return ErrnoStatus(temp, errno);
  }
}

Result<std::string> DependencyCache::Commit(const std::string& key, const std::string& temp_dir) {
  RETURN_IF_ERROR(WriteFileAtomic(temp_dir + "/" + kEntryMarker, key + "\n"));
  // Durable before it is visible: after a power loss an entry is whole or absent.
  RETURN_IF_ERROR(SyncFilesystemOf(temp_dir));
  std::string entry = EntryPath(key);
  std::string damaged;
  bool won = false;
  {
    ASSIGN_OR_RETURN(CacheLock lock, CacheLock::Take(dir_, /*exclusive=*/false));
    for (int attempt = 0; attempt < 2 && !won; ++attempt) {
      if (rename(temp_dir.c_str(), entry.c_str()) == 0) {
        won = true;
      } else if (errno != EEXIST && errno != ENOTEMPTY) {
        return ErrnoStatus("commit dependency cache entry " + temp_dir + " as " + entry, errno);
      } else if (HasMarker(entry, key)) {
        break;  // another build committed the same key first: use its entry
      } else if (damaged.empty()) {
        ASSIGN_OR_RETURN(damaged, MoveToTrash(dir_, entry));
      }
    }
    if (!won && !HasMarker(entry, key)) {
      return Internal("could not commit dependency cache entry " + entry +
                      "; remove it and build again");
    }
    if (!won) (void)utimensat(AT_FDCWD, entry.c_str(), nullptr, 0);
  }
  if (!damaged.empty()) RETURN_IF_ERROR(RemoveTree(damaged));
  if (!won) RETURN_IF_ERROR(RemoveTree(temp_dir));
  return entry;
}

Status LinkTree(const std::string& from, const std::string& to) {
  if (mkdir(to.c_str(), 0755) != 0) return ErrnoStatus(to, errno);
  std::error_code ec;
  fs::directory_iterator it(from, ec);
  if (ec) return ErrnoStatus("read " + from, ec.value());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) return ErrnoStatus("read " + from, ec.value());
    const fs::path& src = it->path();
    fs::path dst = fs::path(to) / src.filename();
    fs::file_status st = it->symlink_status(ec);
    if (ec) return ErrnoStatus("stat " + src.string(), ec.value());
    if (fs::is_symlink(st)) {
      fs::copy_symlink(src, dst, ec);
      if (ec) return ErrnoStatus("copy " + src.string() + " to " + dst.string(), ec.value());
    } else if (fs::is_directory(st)) {
      RETURN_IF_ERROR(LinkTree(src.string(), dst.string()));
      // Same permissions as the original (npm packages ship their own).
      fs::permissions(dst, fs::status(src, ec).permissions(), ec);
    } else if (fs::is_regular_file(st)) {
      if (link(src.c_str(), dst.c_str()) != 0) {
        if (errno != EXDEV && errno != EMLINK && errno != EPERM) {
          return ErrnoStatus("link " + src.string() + " to " + dst.string(), errno);
        }
        RETURN_IF_ERROR(CopyFile(src, dst));
      }
    }
  }
  return Status::Ok();
}

}  // namespace build_internal

Status PruneDependencyCache(const std::string& cache_dir, const std::set<std::string>& keys_in_use,
                            std::chrono::hours keep_unused_for) {
  using build_internal::MoveToTrash;
  if (!IsDirectory(cache_dir)) return Status::Ok();
  timespec now_ts{};
  clock_gettime(CLOCK_REALTIME, &now_ts);
  const long long now = build_internal::Nanoseconds(now_ts);
  using std::chrono::nanoseconds;
  const long long keep = std::chrono::duration_cast<nanoseconds>(keep_unused_for).count();
  const long long temp_keep = std::max<long long>(
      keep, std::chrono::duration_cast<nanoseconds>(build_internal::kTempEntryMaxAge).count());
  std::vector<std::string> trashed;
  {
    ASSIGN_OR_RETURN(auto lock, build_internal::CacheLock::Take(cache_dir, /*exclusive=*/true));
    std::error_code ec;
    std::vector<std::string> names;
    for (fs::directory_iterator it(cache_dir, ec), end; !ec && it != end; it.increment(ec)) {
      names.push_back(it->path().filename().string());
    }
    if (ec) return ErrnoStatus("read dependency cache " + cache_dir, ec.value());
    for (const std::string& name : names) {
      std::string path = cache_dir + "/" + name;
      long long mtime = build_internal::MtimeOf(path);
      if (mtime < 0) continue;
      bool remove = false;
      if (build_internal::IsKey(name)) {
        remove = !keys_in_use.contains(name) && now - mtime > keep;
      } else if (size_t infix = name.find(build_internal::kTempInfix);
                 infix == 64 && build_internal::IsKey(name.substr(0, 64))) {
        // <key>.tmp-<pid>-<n>: a build in progress while its process lives.
        pid_t pid = static_cast<pid_t>(
            std::atoll(name.c_str() + infix + std::string_view(build_internal::kTempInfix).size()));
        remove = pid <= 0 || !ProcessAlive(pid) || now - mtime > temp_keep;
      }
      if (!remove) continue;
      ASSIGN_OR_RETURN(std::string moved, MoveToTrash(cache_dir, path));
      if (!moved.empty()) trashed.push_back(moved);
    }
  }
  // Removed outside the lock: builds need not wait for a large tree to go.
  Status result;
  for (const std::string& path : trashed) {
    Status st = RemoveTree(path);
    if (!st.ok() && result.ok()) result = st;
  }
  // Leftovers of a prune or lookup that was killed while removing: named <name>.<pid>-<n>.
  std::string trash_dir = cache_dir + "/" + build_internal::kTrashDir;
  std::error_code ec;
  for (fs::directory_iterator it(trash_dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    size_t dot = name.rfind('.');
    pid_t pid =
        dot == std::string::npos ? 0 : static_cast<pid_t>(std::atoll(name.c_str() + dot + 1));
    if (pid > 0 && ProcessAlive(pid)) continue;
    Status st = RemoveTree(it->path().string());
    if (!st.ok() && result.ok()) result = st;
  }
  return result;
}

}  // namespace slipway
