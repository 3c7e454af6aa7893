# Slipway: build, test and demo. Every target first runs scripts/setup.sh, which
# installs only missing Debian packages (a no-op once everything is there).

JOBS ?= $(shell nproc)
RELEASE_DIR := build/release
TEST_DIR := build/test
# Upper bound per test, for tests that set no TIMEOUT of their own (e2e tests do).
CTEST_TIMEOUT ?= 900
CTEST_ARGS ?=
# Fuzzing time (seconds, both targets) that `make test` spends after ctest; `make fuzz`
# takes the same variable.
FUZZ_SECONDS ?= 60
FUZZ_DIR := build/fuzz

.PHONY: all setup build test fuzz bench demo format

all: build

setup:
	scripts/setup.sh

build: setup
	cmake -S . -B $(RELEASE_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLIPWAY_TESTS=OFF
	cmake --build $(RELEASE_DIR) -j$(JOBS) --target slipway

test: setup
	cmake -S . -B $(TEST_DIR) -DCMAKE_BUILD_TYPE=Debug -DSLIPWAY_SANITIZE=ON
	cmake --build $(TEST_DIR) -j$(JOBS)
	cd $(TEST_DIR) && ctest --output-on-failure --timeout $(CTEST_TIMEOUT) $(CTEST_ARGS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_BUILD_DIR=$(FUZZ_DIR) FUZZ_JOBS=$(JOBS) tests/proxy/fuzz/run.sh

# libFuzzer targets for the edge's request path (clang, ASan+UBSan): replays the
# regression inputs, then fuzzes for FUZZ_SECONDS.
fuzz: setup
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_BUILD_DIR=$(FUZZ_DIR) FUZZ_JOBS=$(JOBS) tests/proxy/fuzz/run.sh

# The edge against nginx and HAProxy with wrk (bench/README.md); BENCH_SECONDS shortens it.
bench: setup
	bench/proxy.sh

demo: build
	scripts/demo.sh $(RELEASE_DIR)/slipway

format:
	find src tests bench -type f \( -name '*.h' -o -name '*.cc' \) -print0 \
	  | xargs -0 -r clang-format -i
