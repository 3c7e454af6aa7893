#!/usr/bin/env bash
# Builds the edge proxy's libFuzzer targets with clang and runs them for a bounded time.
#
#   tests/proxy/fuzz/run.sh                  # 60 s of fuzzing in total
#   FUZZ_SECONDS=600 tests/proxy/fuzz/run.sh
#
# 1. Configures and builds build/fuzz (clang, -DSLIPWAY_FUZZ=ON; ASan + UBSan + libFuzzer).
# 2. Runs every input in regressions/<target>/ and corpus/<target>/ once: each must pass.
# 3. Fuzzes each target, starting from a copy of its seed corpus: functions_fuzzer for a
#    third of FUZZ_SECONDS, edge_fuzzer for the rest.
# Exits non-zero when any input crashes; a crash found by fuzzing is kept under
# $FUZZ_ARTIFACTS with the command that reproduces it. The last line says PASS or FAIL.
#
# Environment:
#   FUZZ_SECONDS    total fuzzing time, both targets (default 60; 0 runs the inputs only)
#   FUZZ_BUILD_DIR  build directory (default build/fuzz)
#   FUZZ_JOBS       parallel compile jobs (default 2)
#   FUZZ_ARTIFACTS  where crash inputs found by fuzzing are kept (default $FUZZ_BUILD_DIR/artifacts)
#   FUZZ_KEEP_CORPUS  a directory: fuzz from and grow this corpus instead of a throw-away copy
#   SLIPWAY_FUZZ_STRICT=1  add the edge target's strict checks (and replay regressions/edge-strict)
#   SLIPWAY_FUZZ_SKIP      checks to skip while exploring past a known failure (README.md)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
BUILD_DIR="$(realpath -m "${FUZZ_BUILD_DIR:-$ROOT/build/fuzz}")"
JOBS="${FUZZ_JOBS:-2}"
ARTIFACTS="$(realpath -m "${FUZZ_ARTIFACTS:-$BUILD_DIR/artifacts}")"
TARGETS=(functions_fuzzer edge_fuzzer)

log() { echo "fuzz: $*"; }
fail_early() {
  echo "fuzz: error: $*" >&2
  echo "fuzz: FAIL (could not run: $*)"
  exit 1
}

# ---------------------------------------------------------------------------------------
# clang and its libFuzzer runtime (Debian: clang, libclang-rt-<version>-dev).
has_fuzzer_runtime() {
  local dir
  dir="$(clang++ -print-resource-dir 2>/dev/null)" || return 1
  ls "$dir"/lib/linux/libclang_rt.fuzzer-x86_64.a "$dir"/lib/*/libclang_rt.fuzzer*.a \
    >/dev/null 2>&1
}
if ! command -v clang++ >/dev/null 2>&1 || ! has_fuzzer_runtime; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing clang and the libFuzzer runtime (apt-get)"
  $SUDO apt-get update -qq || fail_early "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang || fail_early "cannot install clang"
  version="$(clang++ --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "libclang-rt-$version-dev" ||
    fail_early "cannot install libclang-rt-$version-dev"
fi

# ---------------------------------------------------------------------------------------
log "building $BUILD_DIR (clang, ASan+UBSan+libFuzzer)"
mkdir -p "$BUILD_DIR"
CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Debug \
  -DSLIPWAY_FUZZ=ON -DSLIPWAY_TESTS=OFF >"$BUILD_DIR/fuzz-configure.log" 2>&1 ||
  { tail -20 "$BUILD_DIR/fuzz-configure.log" >&2; fail_early "cmake configure failed"; }
if ! cmake --build "$BUILD_DIR" -j"$JOBS" --target "${TARGETS[@]}" >"$BUILD_DIR/fuzz-build.log" 2>&1; then
  grep -E "error|Error" "$BUILD_DIR/fuzz-build.log" | head -20 >&2
  fail_early "build failed (log: $BUILD_DIR/fuzz-build.log)"
fi

# ---------------------------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/slipway-fuzz-XXXXXX")"
FUZZER_PID=""
cleanup() {
  if [ -n "$FUZZER_PID" ]; then
    kill -TERM "$FUZZER_PID" 2>/dev/null || true
    wait "$FUZZER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$WORK/tmp" "$ARTIFACTS"
# The targets make their fixtures (static sites) under TMPDIR: all inside $WORK.
export TMPDIR="$WORK/tmp"
export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}abort_on_error=0:detect_leaks=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}${UBSAN_OPTIONS:+:}print_stacktrace=1:halt_on_error=1"

# Runs the fuzzer binary in the background so a signal to this script can stop it.
run_fuzzer() {  # log_file args...
  local log_file="$1" status=0
  shift
  "$@" >"$log_file" 2>&1 &
  FUZZER_PID=$!
  wait "$FUZZER_PID" || status=$?
  FUZZER_PID=""
  return "$status"
}

# The lines of a fuzzer log that say what failed: the check's message, the sanitizer's
# verdict, and the stack frames in Slipway's own code.
excerpt() {
  grep -a -E "slipway-fuzz:|ERROR: |SUMMARY|what\(\)|^    #[0-9]+ .* /[^ ]*/(src|tests/proxy/fuzz)/" "$1" |
    cut -c1-300 | head -14 | sed 's/^/    /'
}

failures=()
inputs=0
report_input() {  # target file log
  local rel="${2#"$ROOT"/}"
  failures+=("$1 $rel")
  echo "fuzz: FAILED input: $rel"
  excerpt "$3"
  echo "    reproduce: $BUILD_DIR/tests/proxy/fuzz/$1 $2"
}
for target in "${TARGETS[@]}"; do
  bin="$BUILD_DIR/tests/proxy/fuzz/$target"
  name="${target%_fuzzer}"
  files=()
  dirs=("$HERE/regressions/$name" "$HERE/corpus/$name")
  # Findings of checks the edge does not promise yet (README.md): only in strict mode.
  [ "${SLIPWAY_FUZZ_STRICT:-}" = 1 ] && dirs+=("$HERE/regressions/$name-strict")
  for dir in "${dirs[@]}"; do
    for file in "$dir"/*; do
      [ -f "$file" ] && files+=("$file")
    done
  done
  [ ${#files[@]} -gt 0 ] || continue
  inputs=$((inputs + ${#files[@]}))
  # All at once (one start-up); only when something fails, one by one to name each.
  run_fuzzer "$WORK/input.log" "$bin" -timeout=30 "${files[@]}" && continue
  for file in "${files[@]}"; do
    run_fuzzer "$WORK/input.log" "$bin" -timeout=30 "$file" ||
      report_input "$target" "$file" "$WORK/input.log"
  done
done
log "ran $inputs regression and seed inputs, ${#failures[@]} failed"

summary=()
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  functions_time=$((FUZZ_SECONDS / 3))
  [ "$functions_time" -ge 1 ] || functions_time=1
  edge_time=$((FUZZ_SECONDS - functions_time))
  [ "$edge_time" -ge 1 ] || edge_time=1
  for target in "${TARGETS[@]}"; do
    bin="$BUILD_DIR/tests/proxy/fuzz/$target"
    name="${target%_fuzzer}"
    seconds="$functions_time"
    extra=()
    if [ "$target" = edge_fuzzer ]; then
      seconds="$edge_time"
      extra=(-dict="$HERE/edge.dict" -max_len=16384)
    else
      extra=(-max_len=4096)
    fi
    if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then
      corpus="$FUZZ_KEEP_CORPUS/$name"
      mkdir -p "$corpus"
    else
      corpus="$WORK/corpus-$name"
      mkdir -p "$corpus"
    fi
    cp -n "$HERE/corpus/$name"/* "$corpus"/ 2>/dev/null || true
    log "fuzzing $target for ${seconds}s"
    status=0
    run_fuzzer "$WORK/$name.log" "$bin" -max_total_time="$seconds" -timeout=30 \
      -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$name-" "${extra[@]}" "$corpus" ||
      status=$?
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/$name.log" | tail -1)"
    cov="$(grep -a -E '^#[0-9]+' "$WORK/$name.log" | tail -1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')"
    summary+=("$target ${seconds}s ${execs:-?} execs cov ${cov:-?}")
    if [ "$status" -ne 0 ]; then
      artifact="$(sed -n "s/.*Test unit written to \(.*\)/\1/p" "$WORK/$name.log" | tail -1)"
      failures+=("$target found ${artifact:-a crash}")
      echo "fuzz: $target found a failing input (exit $status):"
      excerpt "$WORK/$name.log"
      [ -n "$artifact" ] && cp "$WORK/$name.log" "$artifact.log" 2>/dev/null || true
      echo "    input: ${artifact:-?} (log: ${artifact:-?}.log)"
      echo "    reproduce: $bin ${artifact:-<input>}"
      echo "    once fixed, keep it: cp ${artifact:-<input>} $HERE/regressions/$name/<what-it-was>"
    fi
  done
fi

if [ ${#failures[@]} -eq 0 ]; then
  echo "fuzz: PASS: $inputs inputs replayed${summary:+; }$(IFS=';'; echo "${summary[*]}")"
  exit 0
fi
echo "fuzz: FAIL: ${#failures[@]} failing: $(IFS=';'; echo "${failures[*]}")"
exit 1
