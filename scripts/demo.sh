#!/usr/bin/env bash
# Demo: starts `slipway server` (data in $SLIPWAY_HOME, default ~/.slipway), deploys
# examples/bytomorrow and keeps the server in the foreground until Ctrl-C, which stops
# the server, its edge process and the apps it runs.
#
# Usage: scripts/demo.sh [path/to/slipway]   (default: build/release/slipway)
set -euo pipefail
cd "$(dirname "$0")/.."

SLIPWAY="${1:-build/release/slipway}"
if [ ! -x "$SLIPWAY" ]; then
  echo "demo: error: $SLIPWAY is not built; run \`make build\` first" >&2
  exit 1
fi
SLIPWAY="$(realpath "$SLIPWAY")"
API="127.0.0.1:7788"

api_up() { curl -fsS -o /dev/null --max-time 2 "http://$API/v1/health" 2>/dev/null; }

if api_up; then
  echo "demo: error: a Slipway API already answers on $API; stop that server first" >&2
  exit 1
fi

echo "demo: starting slipway server (API $API, apps on http://*.localhost:8080)"
# Ctrl-C reaches the whole foreground process group, the server included: the server
# stops its apps and exits, and this script (which ignores SIGINT) waits for that.
trap '' INT
"$SLIPWAY" server &
server_pid=$!

stop_server() {
  kill -INT "$server_pid" 2>/dev/null || true
  wait "$server_pid" || true
  exit 1
}
trap stop_server TERM

for _ in $(seq 1 300); do
  api_up && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "demo: error: slipway server exited before its API answered" >&2
    wait "$server_pid" || true
    exit 1
  fi
  sleep 0.2
done
if ! api_up; then
  echo "demo: error: slipway server did not answer on $API within 60s" >&2
  stop_server
fi

if ! "$SLIPWAY" up examples/bytomorrow; then
  echo "demo: error: the deploy failed (see above); the server keeps running, Ctrl-C stops it" >&2
else
  echo
  echo "demo: the research dashboard is up:"
  echo "  open http://web.bytomorrow.localhost:8080/coldbrewbubbletea/ in a browser"
  echo "  curl http://api.bytomorrow.localhost:8080/api/health"
  echo "  curl 'http://api.bytomorrow.localhost:8080/api/visualize/data?params=60M,1B&metric=loss'"
fi
echo "demo: Ctrl-C stops the server, its edge and its apps"
wait "$server_pid" || true
echo "demo: slipway server stopped" || true
