#pragma once

// Quoting for commands handed to /bin/sh (start commands, build steps, the servers'
// command lines).
//
// Thread-safety: pure functions.

#include <string>
#include <string_view>

namespace slipway {

// `word` as a POSIX shell reads it back as one word: bare when it holds only
// characters the shell leaves alone ([A-Za-z0-9_./:=@%+,-]), else single-quoted with
// every ' written as '\''.
std::string ShellQuote(std::string_view word);

}  // namespace slipway
