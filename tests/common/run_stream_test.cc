#include "common/run_stream.h"

#include <gtest/gtest.h>

namespace slipway {
namespace {

TEST(RunStreamTest, OutputThenExitCodeSurviveAnySplit) {
  const std::string output = std::string("line 1\n") + '\0' + "x 9\nbinary\xff";
  const std::string stream = EncodeRunOutput(output) + EncodeRunOutput("tail") + EncodeRunExit(3);
  // Byte by byte, then whole: the same output and code.
  for (size_t step : {size_t{1}, size_t{3}, stream.size()}) {
    RunStreamDecoder decoder;
    std::string seen;
    for (size_t i = 0; i < stream.size(); i += step) {
      ASSERT_TRUE(
          decoder.Feed(stream.substr(i, step), [&](std::string_view b) { seen += b; }).ok());
    }
    EXPECT_EQ(seen, output + "tail");
    ASSERT_TRUE(decoder.done());
    auto code = decoder.Finish();
    ASSERT_TRUE(code.ok());
    EXPECT_EQ(*code, 3);
  }
}

TEST(RunStreamTest, KilledCommandsCarry128PlusSignal) {
  RunStreamDecoder decoder;
  ASSERT_TRUE(decoder.Feed(EncodeRunExit(130), [](std::string_view) {}).ok());
  EXPECT_EQ(*decoder.Finish(), 130);
}

TEST(RunStreamTest, ErrorFrameAndCutStreamAreErrors) {
  RunStreamDecoder failed;
  ASSERT_TRUE(failed
                  .Feed(EncodeRunOutput("a") + EncodeRunError("timed out after 5s"),
                        [](std::string_view) {})
                  .ok());
  auto code = failed.Finish();
  ASSERT_FALSE(code.ok());
  EXPECT_EQ(code.status().message(), "timed out after 5s");

  RunStreamDecoder cut;
  std::string seen;
  ASSERT_TRUE(cut.Feed(EncodeRunOutput("partial"), [&](std::string_view b) { seen += b; }).ok());
  EXPECT_EQ(seen, "partial");
  EXPECT_FALSE(cut.done());
  auto cut_code = cut.Finish();
  ASSERT_FALSE(cut_code.ok());
  EXPECT_NE(cut_code.status().message().find("closed the connection"), std::string::npos);
}

TEST(RunStreamTest, GarbageIsRefused) {
  RunStreamDecoder decoder;
  EXPECT_FALSE(decoder.Feed("HTTP/1.1 500 oops\n", [](std::string_view) {}).ok());
  RunStreamDecoder after_end;
  EXPECT_FALSE(after_end.Feed(EncodeRunExit(0) + "o 1\nx", [](std::string_view) {}).ok());
}

}  // namespace
}  // namespace slipway
