#pragma once

// The body of a `slipway run` answer (POST /v1/projects/P/run): the command's output
// as it comes, then how it ended, in frames that survive any bytes the command prints:
//
//   "o <n>\n" + n bytes   output (stdout and stderr merged, in order)
//   "x <code>\n"          the command ended: its exit code, 128+signal when killed;
//                         always the last frame
//   "e <n>\n" + n bytes   the daemon could not go on (one line); the last frame
//
// The HTTP layer carries the frames in a chunked body; a stream that ends without an
// "x" or "e" frame was cut (the daemon stopped).
//
// Thread-safety: the encoders are pure; a RunStreamDecoder is used by one thread.

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace slipway {

std::string EncodeRunOutput(std::string_view bytes);
std::string EncodeRunExit(int exit_code);
std::string EncodeRunError(std::string_view message);

class RunStreamDecoder {
 public:
  // Feeds the next bytes received (any split). Output frames go to `on_output` as soon
  // as whole. kInvalidArgument for bytes that are not frames, or bytes after the end.
  Status Feed(std::string_view data, const std::function<void(std::string_view)>& on_output);

  // After the stream ended: the exit code, or the error the daemon sent, or an error
  // saying the stream was cut.
  Result<int> Finish() const;

  bool done() const { return exit_code_.has_value() || error_.has_value(); }

 private:
  std::string pending_;
  std::optional<int> exit_code_;
  std::optional<std::string> error_;
};

}  // namespace slipway
