#include "secrets/secrets.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <set>
#include <string>
#include <vector>

#include "common/fs.h"

namespace slipway {
namespace {

class SecretBoxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "slipway_secrets_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    home_ = tmpl;
  }
  void TearDown() override { EXPECT_TRUE(RemoveTree(home_).ok()); }
  std::string home_;
};

TEST_F(SecretBoxTest, CreatesKeyFileOwnerOnlyAndReusesIt) {
  auto box = SecretBox::LoadOrCreate(home_);
  ASSERT_TRUE(box.ok()) << box.status().ToString();
  struct stat st {};
  ASSERT_EQ(stat((home_ + "/secret.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, 32);
  std::string sealed = (*box)->Seal("postgres://u:hunter22@db/x");
  auto again = SecretBox::LoadOrCreate(home_);
  ASSERT_TRUE(again.ok());
  auto opened = (*again)->Open(sealed);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(*opened, "postgres://u:hunter22@db/x");
}

TEST_F(SecretBoxTest, SealedValueHidesThePlainTextAndDiffersEachTime) {
  auto box = SecretBox::Ephemeral();
  std::string a = box->Seal("correct horse battery staple");
  std::string b = box->Seal("correct horse battery staple");
  EXPECT_NE(a, b);  // a random nonce per value
  EXPECT_EQ(a.find("horse"), std::string::npos);
  EXPECT_EQ(*box->Open(a), "correct horse battery staple");
  EXPECT_EQ(*box->Open(box->Seal("")), "");
}

TEST_F(SecretBoxTest, WrongKeyAndTamperedValuesDoNotOpen) {
  auto box = SecretBox::Ephemeral();
  auto other = SecretBox::Ephemeral();
  std::string sealed = box->Seal("s3cr3t-value");
  auto wrong = other->Open(sealed);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("wrong secret.key or tampered"), std::string::npos);
  std::string tampered = sealed;
  tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(box->Open(tampered).ok());
  EXPECT_FALSE(box->Open("not base64 !!").ok());
  EXPECT_FALSE(box->Open("").ok());
  EXPECT_FALSE(box->Open(sealed.substr(0, 20)).ok());
}

TEST_F(SecretBoxTest, RefusesKeyFileReadableByOthers) {
  ASSERT_TRUE(SecretBox::LoadOrCreate(home_).ok());
  const std::string path = home_ + "/secret.key";
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  auto box = SecretBox::LoadOrCreate(home_);
  ASSERT_FALSE(box.ok());
  EXPECT_EQ(box.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(box.status().message().find("mode 0644"), std::string::npos);
  EXPECT_NE(box.status().message().find("chmod 600 " + path), std::string::npos);
  ASSERT_EQ(chmod(path.c_str(), 0640), 0);
  EXPECT_FALSE(SecretBox::LoadOrCreate(home_).ok());
}

TEST_F(SecretBoxTest, RefusesKeyFileOfWrongSize) {
  ASSERT_TRUE(WriteFileAtomic(home_ + "/secret.key", "short", 0600).ok());
  auto box = SecretBox::LoadOrCreate(home_);
  ASSERT_FALSE(box.ok());
  EXPECT_NE(box.status().message().find("holds 5 bytes, not 32"), std::string::npos);
}

TEST(MaskerTest, MasksEveryOccurrenceLongestFirstAndSkipsShortValues) {
  Masker m({"abc", "hunter22", "hunter22-extended", "tok3n"});
  EXPECT_EQ(m.Mask("pw=hunter22 and hunter22-extended, tok3ntok3n abc"),
            "pw=*** and ***, ****** abc");
  EXPECT_EQ(m.Mask("nothing here"), "nothing here");
  EXPECT_EQ(Masker().Mask("hunter22"), "hunter22");
}

std::vector<std::string> FeedInChunks(const std::string& text, size_t chunk, size_t max_line,
                                      const std::shared_ptr<const Masker>& masker) {
  std::vector<std::string> lines;
  MaskingLineBuffer buffer(masker, max_line, [&](std::string_view l) { lines.emplace_back(l); });
  for (size_t i = 0; i < text.size(); i += chunk) buffer.Add(text.substr(i, chunk));
  buffer.Finish();
  return lines;
}

TEST(MaskingLineBufferTest, MasksSecretsSplitAcrossChunksOfAnySize) {
  const std::string secret = "Zq8sP1-very-secret-Xy9";
  auto masker = std::make_shared<const Masker>(std::vector<std::string>{secret});
  const std::string text = "start " + secret + " middle\n" + secret + "\nend " + secret;
  for (size_t chunk = 1; chunk <= text.size(); ++chunk) {
    auto lines = FeedInChunks(text, chunk, 1024, masker);
    ASSERT_EQ(lines.size(), 3u) << "chunk " << chunk;
    EXPECT_EQ(lines[0], "start *** middle");
    EXPECT_EQ(lines[1], "***");
    EXPECT_EQ(lines[2], "end ***");
  }
}

TEST(MaskingLineBufferTest, CutsOverlongLinesOutsideSecrets) {
  const std::string secret = "0123456789abcdef";
  auto masker = std::make_shared<const Masker>(std::vector<std::string>{secret});
  // No newline at all: the buffer has to cut, and every cut position near the secret.
  for (size_t prefix = 0; prefix < 40; ++prefix) {
    std::string text = std::string(prefix, 'x') + secret + std::string(50, 'y');
    for (size_t chunk : {1u, 3u, 7u, 64u}) {
      auto lines = FeedInChunks(text, chunk, 20, masker);
      std::string joined;
      for (const auto& l : lines) {
        EXPECT_EQ(l.find("0123"), std::string::npos) << l;
        joined += l;
      }
      EXPECT_EQ(joined, std::string(prefix, 'x') + "***" + std::string(50, 'y'));
    }
  }
}

TEST(GenerateSecretTest, UsesTheAlphabetAndLength) {
  auto a = GenerateSecret(40);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->size(), 40u);
  EXPECT_NE(*a, *GenerateSecret(40));
  auto hex = GenerateSecret(64, "0123456789abcdef");
  ASSERT_TRUE(hex.ok());
  EXPECT_EQ(hex->find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_FALSE(GenerateSecret(0).ok());
  EXPECT_FALSE(GenerateSecret(5000).ok());
  EXPECT_FALSE(GenerateSecret(8, "a").ok());
}

}  // namespace
}  // namespace slipway
