// Precompressed variants of static sites (PrecompressStaticSite, and as a step of Build):
// which files get .br and .gz, that they decompress to the file, and what is left alone.

#include <brotli/decode.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zlib.h>

#include <random>
#include <string>

#include "build/builder.h"
#include "builder_fixture.h"
#include "common/fs.h"

namespace slipway {
namespace {

std::string Unbrotli(const std::string& in) {
  std::string out(1 << 22, '\0');
  size_t size = out.size();
  if (BrotliDecoderDecompress(in.size(), reinterpret_cast<const uint8_t*>(in.data()), &size,
                              reinterpret_cast<uint8_t*>(out.data())) !=
      BROTLI_DECODER_RESULT_SUCCESS) {
    return "<not brotli>";
  }
  out.resize(size);
  return out;
}

std::string Gunzip(const std::string& in) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return "<no zlib>";
  std::string out(1 << 22, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&z, Z_FINISH);
  out.resize(z.total_out);
  inflateEnd(&z);
  return rc == Z_STREAM_END ? out : "<not gzip>";
}

std::string Text(size_t size) {
  std::string out;
  while (out.size() < size) out += "<p>Cold brew bubble tea, served by the edge.</p>\n";
  return out.substr(0, size);
}

std::string Random(size_t size) {
  std::mt19937 rng(7);
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(rng());
  return out;
}

class PrecompressTest : public BuilderTest {
 protected:
  std::string Src(const std::string& path) { return src_ + "/" + path; }
};

TEST_F(PrecompressTest, TextAssetsAboveAKibibyteGetSmallerVariants) {
  const std::string html = Text(5000), js = Text(3000), css = Text(1024), svg = Text(2000);
  Write("index.html", html);
  Write("assets/index-4f3a9c2b.js", js);
  Write("assets/style.css", css);
  Write("logo.svg", svg);
  Write("small.css", Text(1023));
  Write("photo.png", Text(5000));   // not a compressible type, whatever its bytes
  Write("noise.js", Random(4000));  // compresses to nothing smaller
  Write("node_modules/lib/index.js", Text(5000));
  Write(".cache/x.js", Text(5000));
  Write("prebuilt.js", Text(5000));
  Write("prebuilt.js.gz", "made by the build");

  auto summary = PrecompressStaticSite(src_);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  for (const auto& [name, content] :
       std::vector<std::pair<std::string, std::string>>{{"index.html", html},
                                                        {"assets/index-4f3a9c2b.js", js},
                                                        {"assets/style.css", css},
                                                        {"logo.svg", svg}}) {
    SCOPED_TRACE(name);
    auto br = ReadFile(Src(name + ".br"));
    auto gz = ReadFile(Src(name + ".gz"));
    ASSERT_TRUE(br.ok() && gz.ok());
    EXPECT_LT(br->size(), content.size());
    EXPECT_LT(gz->size(), content.size());
    EXPECT_EQ(Unbrotli(*br), content);
    EXPECT_EQ(Gunzip(*gz), content);
    // The variant carries the file's mtime: the edge serves it only when not older.
    struct stat file {
    }, variant{};
    ASSERT_EQ(::stat(Src(name).c_str(), &file), 0);
    ASSERT_EQ(::stat(Src(name + ".br").c_str(), &variant), 0);
    EXPECT_EQ(file.st_mtim.tv_sec, variant.st_mtim.tv_sec);
    EXPECT_EQ(file.st_mtim.tv_nsec, variant.st_mtim.tv_nsec);
  }
  for (const std::string name :
       {"small.css", "photo.png", "noise.js", "node_modules/lib/index.js", ".cache/x.js"}) {
    EXPECT_FALSE(PathExists(Src(name + ".br"))) << name;
    EXPECT_FALSE(PathExists(Src(name + ".gz"))) << name;
  }
  // The build's own variant is kept; the missing one is added.
  EXPECT_EQ(*ReadFile(Src("prebuilt.js.gz")), "made by the build");
  EXPECT_TRUE(PathExists(Src("prebuilt.js.br")));
  EXPECT_EQ(summary->files, 6);  // 4 above, noise.js, prebuilt.js
  EXPECT_EQ(summary->brotli, 5);
  EXPECT_EQ(summary->gzip, 4);

  // Running again changes nothing (variants are not compressed again).
  auto again = PrecompressStaticSite(src_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->brotli + again->gzip, 0);
  EXPECT_FALSE(PathExists(Src("index.html.br.br")));
}

TEST_F(PrecompressTest, AStaticReleaseIsPrecompressedByBuild) {
  const std::string html = Text(4000);
  Write("index.html", html);
  BuildRequest request = Request();
  auto manifest = Build(request);
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString() << "\n" << Log(request);
  auto br = ReadFile(manifest->static_root + "/index.html.br");
  ASSERT_TRUE(br.ok());
  EXPECT_EQ(Unbrotli(*br), html);
  EXPECT_TRUE(PathExists(manifest->static_root + "/index.html.gz"));
  const std::string log = Log(request);
  EXPECT_TRUE(Contains(log, "==> precompress\n1 file(s) of 3.9 KiB: 1 brotli (")) << log;
  EXPECT_FALSE(PathExists(src_ + "/index.html.br"));  // the source tree is untouched
}

TEST_F(PrecompressTest, AMissingRootIsAnError) {
  auto summary = PrecompressStaticSite(src_ + "/nope");
  ASSERT_FALSE(summary.ok());
  EXPECT_NE(summary.status().message().find("cannot list " + src_ + "/nope"), std::string::npos)
      << summary.status().message();
}

}  // namespace
}  // namespace slipway
