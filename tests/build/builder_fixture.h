#pragma once

// The builder tests' fixture: a temp dir with a source tree, build requests into it,
// and a way to start a built app and call it.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "build/builder.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "common/subprocess.h"

namespace slipway {

inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

inline SpawnOptions Cmd(std::vector<std::string> argv, EnvMap env) {
  SpawnOptions spawn;
  spawn.argv = std::move(argv);
  spawn.env = std::move(env);
  return spawn;
}

inline bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class BuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/slipway-build-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    src_ = root_ + "/src";
    ASSERT_TRUE(MakeDirs(src_).ok());
  }
  void TearDown() override { EXPECT_TRUE(RemoveTree(root_).ok()); }

  void Write(const std::string& path, const std::string& content) {
    std::string full = src_ + "/" + path;
    ASSERT_TRUE(MakeDirs(full.substr(0, full.rfind('/'))).ok());
    ASSERT_TRUE(WriteFileAtomic(full, content).ok());
  }

  BuildRequest Request(const std::string& name = "r1") {
    BuildRequest request;
    request.source_dir = src_;
    request.release_dir = root_ + "/releases/" + name;
    request.log_path = root_ + "/logs/" + name + ".log";
    request.build_env = CurrentEnvironment();
    request.step_timeout = std::chrono::minutes(5);
    return request;
  }

  std::string Log(const BuildRequest& request) {
    auto text = ReadFile(request.log_path);
    return text.ok() ? *text : "";
  }

  // Starts the manifest's app on a free port and polls it until it answers 200.
  // Returns the body; the app's whole process group is killed on return.
  std::string ServeOnce(const BuildRequest& request, const ReleaseManifest& manifest) {
    int port = FreePort();
    SpawnOptions spawn;
    spawn.argv = {"/bin/sh", "-c", manifest.start_command};
    spawn.env = request.build_env;
    for (const auto& [k, v] : manifest.runtime_env) spawn.env[k] = v;
    spawn.env["PORT"] = std::to_string(port);
    spawn.cwd = manifest.app_dir;
    spawn.capture_output = false;  // the app's own lines land in the test's output
    auto app = Process::Spawn(spawn);
    EXPECT_TRUE(app.ok()) << app.status().ToString();
    if (!app.ok()) return "";
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
    while (std::chrono::steady_clock::now() < deadline) {
      int code;
      if ((*app)->TryWait(&code)) {
        ADD_FAILURE() << "the app exited with " << code << " before serving";
        return "";
      }
      HttpRequest get;
      get.port = port;
      get.timeout = std::chrono::seconds(5);
      auto response = HttpCall(get);
      if (response.ok() && response->status == 200) return response->body;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "no HTTP 200 from the app on port " << port << " within 90s";
    return "";
  }

  std::string root_;
  std::string src_;
};

}  // namespace slipway
