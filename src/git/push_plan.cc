// The pure half of git push: which environment a branch deploys to and which services
// a change touches.

#include <algorithm>
#include <cstdio>

#include "common/glob.h"
#include "git/git.h"

namespace slipway {

namespace {

bool IsObjectId(std::string_view id) {
  return (id.size() == 40 || id.size() == 64) && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool IsZeroId(std::string_view id) {
  return !id.empty() && std::all_of(id.begin(), id.end(), [](char c) { return c == '0'; });
}

// The branch as a DNS label (may be empty).
std::string BranchLabel(std::string_view branch) {
  std::string out;
  for (char c : branch) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    const bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (keep) {
      out.push_back(c);
    } else if (!out.empty() && out.back() != '-') {
      out.push_back('-');
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

// 6 hex digits of the FNV-1a hash of `text`: short, stable across versions and hosts.
std::string ShortHash(std::string_view text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char hex[8];
  std::snprintf(hex, sizeof(hex), "%06x", static_cast<unsigned>(h & 0xffffff));
  return hex;
}

std::string WithSuffix(const std::string& label, size_t budget, const std::string& suffix) {
  std::string head = label.substr(0, budget - suffix.size() - 1);
  while (!head.empty() && head.back() == '-') head.pop_back();
  if (head.empty()) head = "branch";
  return head + "-" + suffix;
}

std::string Files(size_t n) { return n == 1 ? "1 file" : std::to_string(n) + " files"; }

// "api" for "./api/", "" for "." (the whole repository).
std::string NormalRoot(std::string root) {
  while (root.rfind("./", 0) == 0) root.erase(0, 2);
  while (!root.empty() && root.back() == '/') root.pop_back();
  if (root == ".") root.clear();
  return root;
}

bool SameAddons(const std::vector<AddonConfig>& a, const std::vector<AddonConfig>& b) {
  return std::equal(
      a.begin(), a.end(), b.begin(), b.end(), [](const AddonConfig& x, const AddonConfig& y) {
        return x.kind == y.kind && x.name == y.name && x.backup_schedule == y.backup_schedule &&
               x.backup_retention == y.backup_retention;
      });
}

}  // namespace

bool RefUpdate::created() const { return IsZeroId(old_id); }
bool RefUpdate::deleted() const { return IsZeroId(new_id); }

Result<std::vector<RefUpdate>> ParseRefUpdates(std::string_view text) {
  std::vector<RefUpdate> out;
  size_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    size_t a = line.find(' ');
    size_t b = a == std::string_view::npos ? a : line.find(' ', a + 1);
    RefUpdate u;
    if (b != std::string_view::npos) {
      u.old_id = std::string(line.substr(0, a));
      u.new_id = std::string(line.substr(a + 1, b - a - 1));
      u.ref = std::string(line.substr(b + 1));
    }
    if (!IsObjectId(u.old_id) || !IsObjectId(u.new_id) || u.ref.empty() ||
        u.ref.find(' ') != std::string::npos) {
      return InvalidArgument("git hook input line " + std::to_string(line_no) + " is not \"<old> " +
                             "<new> <ref>\": \"" + std::string(line.substr(0, 200)) + "\"");
    }
    out.push_back(std::move(u));
  }
  return out;
}

std::string BranchOfRef(std::string_view ref) {
  constexpr std::string_view kHeads = "refs/heads/";
  if (ref.substr(0, kHeads.size()) != kHeads || ref.size() == kHeads.size()) return "";
  return std::string(ref.substr(kHeads.size()));
}

Status CheckBranchName(std::string_view branch) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("\"" + std::string(branch.substr(0, 100)) +
                           "\" is not a branch name git accepts: " + why);
  };
  if (branch.empty() || branch.size() > 255) return bad("it must have 1 to 255 characters");
  for (char c : branch) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == ' ' ||
        std::string_view("~^:?*[\\").find(c) != std::string_view::npos) {
      return bad("no spaces, control characters or any of ~^:?*[\\");
    }
  }
  if (branch.find("..") != std::string_view::npos || branch.find("@{") != std::string_view::npos ||
      branch.find("//") != std::string_view::npos || branch.find("/.") != std::string_view::npos) {
    return bad("no \"..\", \"@{\", \"//\" or a component starting with '.'");
  }
  if (branch.front() == '-' || branch.front() == '/' || branch.front() == '.' ||
      branch.back() == '/' || branch.back() == '.' || branch == "@" ||
      (branch.size() >= 5 && branch.substr(branch.size() - 5) == ".lock")) {
    return bad("it may not start with '-', '/' or '.', nor end with '/', '.' or \".lock\"");
  }
  return Status::Ok();
}

std::string PreviewEnvironmentName(std::string_view branch, std::string_view project,
                                   const std::map<std::string, std::string>& environments) {
  for (const auto& [name, previewed] : environments) {
    if (!previewed.empty() && previewed == branch) return name;
  }
  const size_t room = project.size() + 1 < 63 ? 62 - project.size() : 0;
  const size_t budget = std::clamp<size_t>(room, 8, kMaxPreviewName);
  const std::string label = BranchLabel(branch);
  auto free = [&](const std::string& name) {
    return name != kDefaultPreviewFrom && environments.count(name) == 0;
  };
  if (!label.empty() && label.size() <= budget && free(label)) return label;
  // Too long, empty or taken: the label's start and a hash of the whole branch, with
  // more hashes on the (unlikely) chance that this is taken too.
  std::string name = WithSuffix(label, budget, ShortHash(branch));
  for (int i = 1; !free(name); ++i) {
    name = WithSuffix(label, budget, ShortHash(std::string(branch) + "\n" + std::to_string(i)));
  }
  return name;
}

Result<std::vector<ServiceChange>> ServicesTouched(const ProjectConfig* before,
                                                   const ProjectConfig& after,
                                                   const std::vector<std::string>& changed_paths) {
  std::vector<ServiceChange> out;
  std::string everything;  // a reason that redeploys every service
  if (before == nullptr) {
    everything = "first push of this branch";
  } else if (before->shared_variables != after.shared_variables) {
    everything = "the project's shared variables changed";
  } else if (!SameAddons(before->addons, after.addons)) {
    everything = "the project's add-ons changed";
  }
  for (const ServiceConfig& svc : after.services) {
    ServiceChange change{svc.name, true, everything};
    if (!everything.empty()) {
      out.push_back(std::move(change));
      continue;
    }
    auto old = std::find_if(before->services.begin(), before->services.end(),
                            [&](const ServiceConfig& s) { return s.name == svc.name; });
    if (old == before->services.end()) {
      change.reason = "new service";
    } else if (ServiceConfigToJson(*old) != ServiceConfigToJson(svc)) {
      change.reason = "its configuration changed";
    } else if (!svc.watch_patterns.empty()) {
      ASSIGN_OR_RETURN(PathPatterns patterns, PathPatterns::Parse(svc.watch_patterns));
      size_t n = std::count_if(changed_paths.begin(), changed_paths.end(),
                               [&](const std::string& p) { return patterns.Matches(p); });
      change.deploy = n > 0;
      change.reason =
          (n > 0 ? Files(n) : std::string("no file")) + " matching its watchPatterns changed";
    } else {
      const std::string root = NormalRoot(svc.root_directory);
      size_t n = std::count_if(changed_paths.begin(), changed_paths.end(), [&](const auto& p) {
        return root.empty() || p == root || p.rfind(root + "/", 0) == 0;
      });
      change.deploy = n > 0;
      change.reason = (n > 0 ? Files(n) : std::string("no file")) +
                      (root.empty() ? std::string("") : " under " + root + "/") + " changed";
    }
    out.push_back(std::move(change));
  }
  return out;
}

}  // namespace slipway
