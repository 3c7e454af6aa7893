#include "cli/cli_util.h"

#include <pthread.h>

#include <cstdio>
#include <stdexcept>

namespace slipway {

int PrintError(const Status& st) {
  std::fprintf(stderr, "error: %s\n", st.message().c_str());
  return 1;
}

Status ParseListenAddress(const std::string& text, const std::string& default_host,
                          std::string* host, int* port, const char* flag) {
  std::string h = default_host;
  std::string p = text;
  auto colon = text.rfind(':');
  if (colon != std::string::npos) {
    h = colon == 0 ? default_host : text.substr(0, colon);
    p = text.substr(colon + 1);
  }
  try {
    size_t used = 0;
    *port = std::stoi(p, &used);
    if (used != p.size() || *port < 0 || *port > 65535) throw std::invalid_argument(p);
  } catch (...) {
    return InvalidArgument(std::string(flag) + " \"" + text +
                           "\" is not an address: use HOST:PORT or :PORT");
  }
  *host = h;
  return Status::Ok();
}

sigset_t TakeTerminationSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    signal(sig, SIG_DFL);
    sigaddset(&signals, sig);
  }
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return signals;
}

}  // namespace slipway
