#include "common/run_stream.h"

#include <charconv>

namespace slipway {

namespace {

std::string Frame(char kind, std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 16);
  out += kind;
  out += ' ';
  out += std::to_string(payload.size());
  out += '\n';
  out += payload;
  return out;
}

}  // namespace

std::string EncodeRunOutput(std::string_view bytes) { return Frame('o', bytes); }

std::string EncodeRunExit(int exit_code) { return "x " + std::to_string(exit_code) + "\n"; }

std::string EncodeRunError(std::string_view message) { return Frame('e', message); }

Status RunStreamDecoder::Feed(std::string_view data,
                              const std::function<void(std::string_view)>& on_output) {
  pending_.append(data);
  size_t pos = 0;
  Status result = Status::Ok();
  while (pos < pending_.size()) {
    if (done()) {
      result = InvalidArgument("the run stream has bytes after its end");
      break;
    }
    size_t nl = pending_.find('\n', pos);
    if (nl == std::string::npos) {
      if (pending_.size() - pos > 32) result = InvalidArgument("the run stream is not framed");
      break;
    }
    std::string_view header(pending_.data() + pos, nl - pos);
    long long number = 0;
    if (header.size() < 3 || header[1] != ' ' ||
        std::from_chars(header.data() + 2, header.data() + header.size(), number).ptr !=
            header.data() + header.size()) {
      result = InvalidArgument("the run stream has a bad frame header \"" +
                               std::string(header.substr(0, 32)) + "\"");
      break;
    }
    const char kind = header[0];
    if (kind == 'x') {
      exit_code_ = static_cast<int>(number);
      pos = nl + 1;
      continue;
    }
    if ((kind != 'o' && kind != 'e') || number < 0) {
      result = InvalidArgument("the run stream has an unknown frame \"" +
                               std::string(header.substr(0, 32)) + "\"");
      break;
    }
    const size_t length = static_cast<size_t>(number);
    if (pending_.size() - (nl + 1) < length) break;  // the rest is still coming
    std::string_view payload(pending_.data() + nl + 1, length);
    if (kind == 'o') {
      on_output(payload);
    } else {
      error_ = std::string(payload);
    }
    pos = nl + 1 + length;
  }
  pending_.erase(0, pos);
  return result;
}

Result<int> RunStreamDecoder::Finish() const {
  if (error_) return Unavailable(*error_);
  if (exit_code_) return *exit_code_;
  return Unavailable(
      "the daemon closed the connection before the command finished (did `slipway server` stop?)");
}

}  // namespace slipway
