#include "common/archive.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/fs.h"

namespace slipway {
namespace {

namespace fs = std::filesystem;

class ArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/slipway-archive-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(ArchiveTest, PackedAppUnpacksWithoutExcludedDirectories) {
  std::string app = dir_ + "/app";
  ASSERT_TRUE(MakeDirs(app + "/src").ok());
  ASSERT_TRUE(MakeDirs(app + "/node_modules/left-out").ok());
  ASSERT_TRUE(MakeDirs(app + "/.git").ok());
  ASSERT_TRUE(WriteFileAtomic(app + "/main.py", "print('hi')\n", 0755).ok());
  ASSERT_TRUE(WriteFileAtomic(app + "/src/data.csv", "a,b\n1,2\n").ok());
  ASSERT_TRUE(WriteFileAtomic(app + "/node_modules/left-out/x.js", "x").ok());
  fs::create_symlink("main.py", app + "/link.py");

  auto packed = PackDirectory(app, DefaultArchiveExcludes(), 1 << 20);
  ASSERT_TRUE(packed.ok()) << packed.status().ToString();
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/app.tar.gz", *packed).ok());
  Status unpacked = UnpackArchive(dir_ + "/app.tar.gz", dir_ + "/out", 1 << 20);
  ASSERT_TRUE(unpacked.ok()) << unpacked.ToString();

  EXPECT_EQ(*ReadFile(dir_ + "/out/main.py"), "print('hi')\n");
  EXPECT_EQ(*ReadFile(dir_ + "/out/src/data.csv"), "a,b\n1,2\n");
  EXPECT_TRUE(fs::is_symlink(dir_ + "/out/link.py"));
  EXPECT_FALSE(fs::exists(dir_ + "/out/node_modules"));
  EXPECT_FALSE(fs::exists(dir_ + "/out/.git"));
  EXPECT_EQ(fs::status(dir_ + "/out/main.py").permissions() & fs::perms::owner_exec,
            fs::perms::owner_exec);
}

TEST_F(ArchiveTest, TooLargeDirectoryIsRefusedWithTheLimit) {
  std::string app = dir_ + "/big";
  ASSERT_TRUE(MakeDirs(app).ok());
  std::string noise;
  uint32_t x = 2463534242u;  // xorshift: incompressible bytes
  for (int i = 0; i < 300000; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    noise += static_cast<char>(x & 0xff);
  }
  ASSERT_TRUE(WriteFileAtomic(app + "/blob.bin", noise).ok());
  auto packed = PackDirectory(app, DefaultArchiveExcludes(), 64 * 1024);
  ASSERT_FALSE(packed.ok());
  EXPECT_EQ(packed.status().code(), StatusCode::kResourceExhausted);
}

TEST_F(ArchiveTest, CorruptArchiveIsInvalidArgument) {
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/bad.tar.gz", "definitely not gzip").ok());
  Status st = UnpackArchive(dir_ + "/bad.tar.gz", dir_ + "/out", 1 << 20);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace slipway
