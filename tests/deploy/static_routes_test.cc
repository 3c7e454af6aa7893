// A deployment's config as the edge's route settings (deploy/static_routes.h): base path,
// rules, references to other services' URLs, and the SPA rewrite turned into the fallback.

#include "deploy/static_routes.h"

#include <gtest/gtest.h>

namespace slipway {
namespace {

std::string Url(const std::string& service, const std::string& variable) {
  if (variable == "SLIPWAY_PRIVATE_URL") return "http://" + service + ".shop.localhost:8080";
  if (variable == "SLIPWAY_PUBLIC_URL") return "https://" + service + ".example.com";
  return "";
}

TEST(StaticRoutesTest, StaticSiteRulesAndBasePath) {
  ServiceConfig config;
  config.base_path = "/coldbrewbubbletea";
  config.clean_urls = true;
  config.trailing_slash = "remove";
  config.headers = {{"/assets/(.*)", {{"X-A", "1"}}}};
  config.redirects = {{"/old", "/new", 0}, {"/moved", "${{ web.SLIPWAY_PUBLIC_URL }}/here", 301}};
  config.rewrites = {{"/api/:path*", "${{ api.SLIPWAY_PRIVATE_URL }}/api/:path*", 0},
                     {"/(.*)", "/index.html", 0},
                     {"/blog/:slug", "/blog.html", 0}};
  Route route;
  ApplyServiceRouting(config, /*static_site=*/true, Url, route);
  EXPECT_EQ(route.path_prefix, "/coldbrewbubbletea");
  EXPECT_TRUE(route.clean_urls);
  EXPECT_EQ(route.trailing_slash, TrailingSlash::kRemove);
  ASSERT_EQ(route.headers.size(), 1u);
  EXPECT_EQ(route.headers[0].headers[0].first, "X-A");
  ASSERT_EQ(route.redirects.size(), 2u);
  EXPECT_EQ(route.redirects[0].status, 308);
  EXPECT_EQ(route.redirects[1].destination, "https://web.example.com/here");
  EXPECT_EQ(route.redirects[1].status, 301);
  EXPECT_TRUE(route.spa_fallback);
  ASSERT_EQ(route.rewrites.size(), 2u);  // the SPA rewrite became the fallback
  EXPECT_EQ(route.rewrites[0].destination, "http://api.shop.localhost:8080/api/:path*");
  EXPECT_EQ(route.rewrites[1].source, "/blog/:slug");
}

TEST(StaticRoutesTest, AppsGetTheBasePathButNoRules) {
  ServiceConfig config;
  config.base_path = "/api";
  config.clean_urls = true;
  config.rewrites = {{"/(.*)", "/index.html", 0}};
  Route route;
  ApplyServiceRouting(config, /*static_site=*/false, Url, route);
  EXPECT_EQ(route.path_prefix, "/api");
  EXPECT_FALSE(route.clean_urls);
  EXPECT_FALSE(route.spa_fallback);
  EXPECT_TRUE(route.rewrites.empty());
  ServiceConfig plain;
  Route root;
  ApplyServiceRouting(plain, true, Url, root);
  EXPECT_EQ(root.path_prefix, "/");
  EXPECT_EQ(root.trailing_slash, TrailingSlash::kLeave);
}

TEST(StaticRoutesTest, WhichRewritesMeanASinglePageApp) {
  for (const char* source : {"/(.*)", "/(.+)", "/:path*", "/:path+", "/:any(.*)", "/:_x*"}) {
    EXPECT_TRUE(IsSpaRewrite({source, "/index.html", 0})) << source;
    EXPECT_TRUE(IsSpaRewrite({source, "/", 0})) << source;
  }
  EXPECT_FALSE(IsSpaRewrite({"/(.*)", "/app.html", 0}));
  EXPECT_FALSE(IsSpaRewrite({"/app/(.*)", "/index.html", 0}));
  EXPECT_FALSE(IsSpaRewrite({"/((?!api/).*)", "/index.html", 0}));
  EXPECT_FALSE(IsSpaRewrite({"/:path", "/index.html", 0}));
  EXPECT_FALSE(IsSpaRewrite({"/:1path*", "/index.html", 0}));
}

}  // namespace
}  // namespace slipway
