#include "common/names.h"

#include <gtest/gtest.h>

namespace slipway {
namespace {

TEST(NamesTest, SanitizeMakesDnsLabels) {
  EXPECT_EQ(SanitizeName("My App_2"), "my-app-2");
  EXPECT_EQ(SanitizeName("--bytomorrow--"), "bytomorrow");
  EXPECT_EQ(SanitizeName("___"), "");
  EXPECT_EQ(SanitizeName(std::string(80, 'a')).size(), 63u);
}

TEST(NamesTest, ValidateRejectsWhatCannotBeAHostLabel) {
  EXPECT_TRUE(ValidateName("api", "service name").ok());
  EXPECT_TRUE(ValidateName("web-2", "service name").ok());
  Status st = ValidateName("Web", "service name");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("service name \"Web\""), std::string::npos);
  EXPECT_FALSE(ValidateName("-x", "project name").ok());
  EXPECT_FALSE(ValidateName("", "project name").ok());
  EXPECT_FALSE(ValidateName("a.b", "project name").ok());
}

TEST(NamesTest, DomainsAreNormalisedAndChecked) {
  EXPECT_EQ(*NormalizeDomain("API.Example.com."), "api.example.com");
  EXPECT_EQ(*NormalizeDomain("*.example.com"), "*.example.com");
  EXPECT_FALSE(NormalizeDomain("localhost").ok());
  EXPECT_FALSE(NormalizeDomain("a..b").ok());
  EXPECT_FALSE(NormalizeDomain("-a.b").ok());
  EXPECT_FALSE(NormalizeDomain("a_b.com").ok());
  EXPECT_FALSE(NormalizeDomain("*.").ok());
  EXPECT_NE(NormalizeDomain("a b.com").status().message().find("a b.com"), std::string::npos);
}

}  // namespace
}  // namespace slipway
