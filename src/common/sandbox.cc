#include "common/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

namespace slipway {

namespace {

// "/proc/self/fd/<fd>" into `out` (at least 32 bytes), without allocating.
void FdLink(int fd, char* out) {
  const char prefix[] = "/proc/self/fd/";
  size_t n = 0;
  for (const char* p = prefix; *p != 0; ++p) out[n++] = *p;
  char digits[12];
  size_t d = 0;
  unsigned value = static_cast<unsigned>(fd);
  do {
    digits[d++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  while (d > 0) out[n++] = digits[--d];
  out[n] = 0;
}

}  // namespace

Status PrepareOverlayScratch(const std::string& lower, const std::string& scratch, uid_t uid,
                             gid_t gid) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::remove_all(scratch, ec);
  for (const std::string& dir : {scratch + "/upper", scratch + "/work"}) {
    fs::create_directories(dir, ec);
    if (ec) return ErrnoStatus("cannot create " + dir, ec.value());
  }
  auto own = [&](const std::string& dir) -> Status {
    if (chown(dir.c_str(), uid, gid) != 0) return ErrnoStatus("cannot chown " + dir, errno);
    return Status::Ok();
  };
  RETURN_IF_ERROR(own(scratch + "/upper"));
  for (auto it = fs::recursive_directory_iterator(lower, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_directory(ec) || it->is_symlink(ec)) continue;
    const std::string dir = scratch + "/upper/" + fs::relative(it->path(), lower).string();
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoStatus("cannot create " + dir, errno);
    }
    RETURN_IF_ERROR(own(dir));
  }
  if (ec) return ErrnoStatus("cannot read " + lower, ec.value());
  return Status::Ok();
}

bool SandboxSupported() { return geteuid() == 0; }

std::string SandboxHideDir(const std::string& home) {
  std::filesystem::path path = std::filesystem::path(home).lexically_normal();
  if (!path.has_filename()) path = path.parent_path();  // "a/b/" -> "a/b"
  std::filesystem::path prefix = "/";
  for (const auto& part : path.relative_path()) {
    prefix /= part;
    struct stat st {};
    if (stat(prefix.c_str(), &st) == 0 && (st.st_mode & S_IXOTH) == 0) return prefix.string();
  }
  return path.string();
}

Result<PreparedSandbox> PreparedSandbox::Prepare(const SandboxSpec& spec) {
  PreparedSandbox out;
  if (!spec.enabled()) return out;
  if (spec.hide.empty() || spec.hide[0] != '/') {
    return InvalidArgument("sandbox: the hidden directory must be an absolute path");
  }
  out.uid_ = spec.uid;
  out.gid_ = spec.gid;
  out.hide_ = std::filesystem::path(spec.hide).lexically_normal().string();
  const std::filesystem::path hide(out.hide_);
  for (const SandboxSpec::Bind& bind : spec.binds) {
    Mount m;
    struct stat st {};
    if (stat(bind.source.c_str(), &st) != 0) return ErrnoStatus("sandbox: " + bind.source, errno);
    m.source = bind.source;
    m.target = std::filesystem::path(bind.target).lexically_normal().string();
    m.read_only = bind.read_only;
    if (!bind.overlay_scratch.empty()) {
      for (const std::string& path : {bind.source, bind.overlay_scratch}) {
        if (path.find_first_of(",:\\") != std::string::npos) {
          return InvalidArgument("sandbox: cannot overlay " + path +
                                 ": the path holds a ',', ':' or '\\'");
        }
      }
      RETURN_IF_ERROR(PrepareOverlayScratch(bind.source, bind.overlay_scratch, spec.uid, spec.gid));
      m.overlay_options = "lowerdir=" + bind.source + ",upperdir=" + bind.overlay_scratch +
                          "/upper,workdir=" + bind.overlay_scratch + "/work";
    }
    out.mounts_.push_back(std::move(m));
    // Every directory from below `hide` down to the target, once each, parents first.
    auto rel = std::filesystem::path(out.mounts_.back().target).lexically_relative(hide);
    if (rel.empty() || *rel.begin() == "..") continue;  // not under hide: exists already
    out.mounts_.back().under_hide = true;
    std::filesystem::path dir = hide;
    for (const auto& part : rel) {
      dir /= part;
      bool seen = false;
      for (const auto& d : out.mkdirs_) seen = seen || d == dir.string();
      if (!seen) out.mkdirs_.push_back(dir.string());
    }
  }
  return out;
}

PreparedSandbox::PreparedSandbox(PreparedSandbox&& other) noexcept
    : uid_(other.uid_),
      gid_(other.gid_),
      hide_(std::move(other.hide_)),
      mkdirs_(std::move(other.mkdirs_)),
      mounts_(std::move(other.mounts_)) {
  other.mounts_.clear();
  other.uid_ = 0;
}

PreparedSandbox& PreparedSandbox::operator=(PreparedSandbox&& other) noexcept {
  if (this != &other) {
    uid_ = other.uid_;
    gid_ = other.gid_;
    hide_ = std::move(other.hide_);
    mkdirs_ = std::move(other.mkdirs_);
    mounts_ = std::move(other.mounts_);
    other.mounts_.clear();
    other.uid_ = 0;
  }
  return *this;
}

PreparedSandbox::~PreparedSandbox() = default;

int PreparedSandbox::Enter(const char** step) const {
  if (!enabled()) return 0;
  auto fail = [&](const char* what) {
    *step = what;
    return errno == 0 ? EPERM : errno;
  };
  if (unshare(CLONE_NEWNS) != 0) return fail("unshare(CLONE_NEWNS)");
  // Nothing done here may leak back to the host's mount table.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return fail("make / private");
  // The sources are opened in the new namespace (a descriptor from the old one cannot be
  // bound) before the tmpfs covers them, and bound through /proc/self/fd afterwards.
  for (const Mount& m : mounts_) {
    // An overlay goes over the source itself first; the descriptor then holds the overlay.
    if (!m.overlay_options.empty() && mount("overlay", m.source.c_str(), "overlay",
                                            MS_NOSUID | MS_NODEV, m.overlay_options.c_str()) != 0) {
      return fail("mount the release's overlay");
    }
    m.fd = open(m.source.c_str(), O_PATH | O_CLOEXEC);
    if (m.fd < 0) return fail("open a directory to bind");
    FdLink(m.fd, m.link);
  }
  if (mount("tmpfs", hide_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") != 0) {
    return fail("mount tmpfs over the data dir");
  }
  for (const std::string& dir : mkdirs_) {
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return fail("mkdir in the sandbox");
  }
  // Binds under the hidden dir first, then the tmpfs is made read-only, then binds
  // elsewhere (which may cover an ancestor of the hidden dir, e.g. /tmp).
  auto bind = [&](const Mount& m) {
    if (mount(m.link, m.target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      return fail("bind mount");
    }
    if (m.read_only &&
        mount(nullptr, m.target.c_str(), nullptr,
              MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) != 0) {
      return fail("remount read-only");
    }
    return 0;
  };
  for (const Mount& m : mounts_) {
    if (!m.under_hide) continue;
    if (int e = bind(m); e != 0) return e;
  }
  if (mount(nullptr, hide_.c_str(), nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
            "mode=0755,size=1m") != 0) {
    return fail("remount the data dir read-only");
  }
  for (const Mount& m : mounts_) {
    if (m.under_hide) continue;
    if (int e = bind(m); e != 0) return e;
  }
  if (setgroups(0, nullptr) != 0) return fail("setgroups");
  if (setgid(gid_) != 0) return fail("setgid");
  if (setuid(uid_) != 0) return fail("setuid");
  return 0;
}

}  // namespace slipway
