#!/usr/bin/env bash
# Installs what Slipway needs to build, test and run on Debian 12 (bookworm).
# Idempotent: installs only the packages that are missing, and runs `apt-get update`
# only when something is. Needs root (or sudo) only when it has something to install.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake pkg-config clang-format git curl ca-certificates
  # libraries the binary links
  libboost1.81-dev libssl-dev libsqlite3-dev nlohmann-json3-dev libtomlplusplus-dev
  libyaml-cpp-dev libsodium-dev libcli11-dev libspdlog-dev libfmt-dev libarchive-dev
  zlib1g-dev libbrotli-dev
  # tests: unit tests, the ACME test server, the libFuzzer build (clang + its runtime),
  # and the browser the e2e tests load frontends in (tests/e2e/browser drives it)
  libgtest-dev libgmock-dev libbenchmark-dev pebble clang libclang-rt-14-dev chromium
  # the add-ons Slipway runs for apps: real PostgreSQL and Redis servers
  postgresql redis-server
  # runtimes the example apps and the builder use, and the example apps' database drivers
  python3 python3-venv python3-pip python3-fastapi python3-uvicorn python3-psycopg2 python3-redis
)

# Node: Debian's nodejs/npm are fine, but a node installed another way (NodeSource,
# nvm) must not be replaced by them, so they are only installed when absent.
if command -v node >/dev/null 2>&1; then
  echo "setup: node found at $(command -v node) ($(node --version)); not installing nodejs"
else
  PACKAGES+=(nodejs)
fi
if command -v npm >/dev/null 2>&1; then
  echo "setup: npm found at $(command -v npm); not installing npm"
elif command -v node >/dev/null 2>&1 && ! dpkg -S "$(command -v node)" 2>/dev/null | grep -q '^nodejs:'; then
  echo "setup: warning: node is installed outside Debian's packages but npm is missing;" \
    "install npm the same way node was installed" >&2
else
  PACKAGES+=(npm)
fi

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
for package in "${PACKAGES[@]}"; do
  installed "$package" || missing+=("$package")
done

# The e2e tests' browser driver (playwright-core, which downloads no browser: it drives
# the chromium package above), from tests/e2e/browser/package-lock.json. Installed once;
# delete tests/e2e/browser/node_modules to install it again.
install_browser_driver() {
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/e2e/browser"
  if [ -d "$dir/node_modules/playwright-core" ]; then
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: warning: npm is missing; not installing $dir's packages" >&2
    return 0
  fi
  echo "setup: npm ci in $dir"
  # Not fatal: only the browser e2e tests need it, and they say so when it is missing.
  (cd "$dir" && npm ci --no-audit --no-fund) ||
    echo "setup: warning: npm ci in $dir failed; the browser e2e tests will fail" >&2
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages are installed"
  install_browser_driver
  exit 0
fi

echo "setup: installing: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "setup: error: these packages are missing and installing them needs root: ${missing[*]}" >&2
  echo "setup: run this script as root (sudo $0)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
echo "setup: installed: ${missing[*]}"
install_browser_driver
