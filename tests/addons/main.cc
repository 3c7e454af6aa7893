// The add-on tests run their servers through `<this binary> shim ...`, as the server
// does through `slipway shim ...`.

#include <gtest/gtest.h>

#include <cstring>

#include "supervisor/supervisor.h"

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "shim") == 0) return slipway::ShimMain(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
