#pragma once

// Sandbox: what keeps one app away from another app's files and variables.
//
// An app process (replica, pre-deploy command, `slipway run`) is started in a mount
// namespace of its own, under a user and group id of its own:
//   - `hide` (the data dir, or its highest ancestor other users cannot enter) is covered
//     by an empty tmpfs, so the database, the key file, the logs and every other app's
//     release are not there at all;
//   - `binds` put back what the app needs at the same paths: its release (through an
//     overlay: writable for the app, changes thrown away, the release itself untouched)
//     and its writable data directory; /tmp can be bound to a private directory;
//   - then it drops to `uid`/`gid` with no supplementary groups, so it can neither undo
//     the mounts nor read another app's /proc/<pid>/environ.
// Only root can do this; Sandbox::Supported() says whether this process can.
//
// Thread-safety: Prepare may be called from any thread; EnterPrepared is for the child
// between fork and exec (no allocation, only system calls).

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/status.h"

namespace slipway {

struct SandboxSpec {
  uid_t uid = 0;  // 0: no sandbox
  gid_t gid = 0;
  std::string hide;  // absolute directory covered by an empty tmpfs
  struct Bind {
    std::string source;  // absolute; may lie under `hide` (opened before it is covered)
    std::string target;  // absolute; directories under `hide` are created as needed
    bool read_only = false;
    // Non-empty: `source` is seen through an overlay whose writes go to
    // <overlay_scratch>/upper (emptied and made by Prepare, see PrepareOverlayScratch)
    // and are thrown away with it.
    // The app can create, replace and delete files; the release never changes.
    std::string overlay_scratch;
  };
  std::vector<Bind> binds;

  bool enabled() const { return uid != 0; }
};

// True when this process may create mount namespaces and change user (it is root).
bool SandboxSupported();

// The directory to cover for data dir `home`: its highest ancestor that other users
// cannot enter (no o+x), else `home` itself. So a data dir under /root is reachable by
// nobody but the apps, each seeing only its own release.
std::string SandboxHideDir(const std::string& home);

// Makes <scratch>/upper and <scratch>/work for an overlay over `lower`: every directory
// of `lower` is mirrored in upper, owned by uid:gid, so the app may create files anywhere
// in its release view (the files it did not write stay the platform's: replaceable, not
// writable in place).
Status PrepareOverlayScratch(const std::string& lower, const std::string& scratch, uid_t uid,
                             gid_t gid);

// The spec laid out for a child: sources checked, the directories to create listed.
class PreparedSandbox {
 public:
  static Result<PreparedSandbox> Prepare(const SandboxSpec& spec);
  PreparedSandbox() = default;
  PreparedSandbox(PreparedSandbox&&) noexcept;
  PreparedSandbox& operator=(PreparedSandbox&&) noexcept;
  ~PreparedSandbox();

  bool enabled() const { return uid_ != 0; }

  // In the child after fork: enters the sandbox. Returns 0, or an errno with `*step`
  // naming what failed ("unshare", "mount tmpfs", "bind", "setuid", ...).
  int Enter(const char** step) const;

 private:
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::string hide_;
  std::vector<std::string> mkdirs_;  // in creation order, all under hide_
  struct Mount {
    mutable int fd = -1;      // opened in the child, inside its new namespace
    mutable char link[32]{};  // "/proc/self/fd/<fd>"
    std::string source;
    std::string target;
    bool read_only = false;
    bool under_hide = false;
    std::string overlay_options;  // "lowerdir=...,upperdir=...,workdir=..." or ""
  };
  std::vector<Mount> mounts_;
};

}  // namespace slipway
