#!/usr/bin/env bash
# Slipway's edge serving a static site against nginx serving the same files, measured in
# the same run with wrk.
#
#   bench/static.sh                      # 10 s per measurement, 1 round
#   BENCH_SECONDS=10 BENCH_ROUNDS=3 bench/static.sh
#
# One directory holds /small (100 bytes) and /1m (1 MiB). nginx (one worker, sendfile on,
# access log off) and `slipway edge --threads 1` (a static route for that directory) serve
# it, one at a time; wrk drives each for the same time with the same connections.
# Printed: requests/s, p50, p99, transfer/s, errors, the server's CPU use during the run
# and its RSS after it, then Slipway's ratio to nginx. See bench/README.md.
#
# Environment (as bench/proxy.sh):
#   BENCH_SECONDS      length of each measured wrk run (default 10)
#   BENCH_WARMUP       length of the warm-up run before each measurement (default 2)
#   BENCH_CONNECTIONS  wrk connections (default 50)
#   BENCH_ROUNDS       repeat every measurement this many times; medians are shown (1)
#   BENCH_PIN          1 (default): server alone on CPU 1, wrk on CPU 0; 0: no pinning
#   BENCH_BUILD_DIR    where Slipway is built in Release (default build/bench)
#   BENCH_SLIPWAY      use this slipway binary instead of building one
#   BENCH_CMAKE_ARGS   extra arguments for configuring that build
#   BENCH_OUT          also write the raw results (TSV) here
#   BENCH_PROFILE      1: afterwards, profile Slipway on /small with perf and print its top symbols
#
# Only 127.0.0.1, free ports; every process started here is stopped by PID on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
WARMUP="${BENCH_WARMUP:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-50}"
ROUNDS="${BENCH_ROUNDS:-1}"
PIN="${BENCH_PIN:-1}"
BUILD_DIR="${BENCH_BUILD_DIR:-$ROOT/build/bench}"
HOST_HEADER="bench.localhost"

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------
# Tools: Debian packages, installed only when missing (nginx's service kept from starting).
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing ${need[*]} (apt-get)"
  policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  status=0
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" || status=$?
  [ "$policy_added" -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
  [ "$status" -eq 0 ] || die "apt-get install ${need[*]} failed"
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

CPUS="$(nproc)"
if [ "$PIN" = "1" ] && [ "$CPUS" -lt 2 ]; then
  log "only $CPUS CPU: not pinning"
  PIN=0
fi
if [ "$PIN" = "1" ]; then
  PIN_SERVER=(taskset -c 1)
  PIN_LOAD=(taskset -c 0)
else
  PIN_SERVER=()
  PIN_LOAD=()
fi

# ---------------------------------------------------------------------------------------
# Slipway, Release.
if [ -n "${BENCH_SLIPWAY:-}" ]; then
  SLIPWAY="$BENCH_SLIPWAY"
else
  log "building slipway (Release) in $BUILD_DIR"
  mkdir -p "$BUILD_DIR"
  # shellcheck disable=SC2086  # BENCH_CMAKE_ARGS is a list of words
  cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DSLIPWAY_TESTS=OFF \
    ${BENCH_CMAKE_ARGS:-} >"$BUILD_DIR/bench-configure.log" 2>&1 ||
    die "cmake configure failed (log: $BUILD_DIR/bench-configure.log)"
  cmake --build "$BUILD_DIR" -j"$(( CPUS < 2 ? CPUS : 2 ))" --target slipway \
    >"$BUILD_DIR/bench-build.log" 2>&1 ||
    die "building slipway failed: $(grep -m3 -E 'error' "$BUILD_DIR/bench-build.log") (log: $BUILD_DIR/bench-build.log)"
  SLIPWAY="$BUILD_DIR/slipway"
fi
[ -x "$SLIPWAY" ] || die "no slipway binary at $SLIPWAY"

# ---------------------------------------------------------------------------------------
# Processes and cleanup.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/slipway-bench-static-XXXXXX")"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local kept=()
  for i in "${PIDS[@]}"; do [ "$i" = "$pid" ] || kept+=("$i"); done
  PIDS=("${kept[@]}")
}

# Free ports on 127.0.0.1: bound together (so they differ), then released.
read -r PORT_NGINX PORT_SLIPWAY < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(2):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)

wait_http() {  # name port path pid
  local name="$1" port="$2" path="$3" pid="$4" i
  for i in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || die "$name exited at start; its log: $(tail -5 "$WORK/$name.log")"
    if curl -fsS -o /dev/null -H "Host: $HOST_HEADER" "http://127.0.0.1:$port$path" 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  die "$name did not answer on 127.0.0.1:$port within 10 s; its log: $(tail -5 "$WORK/$name.log")"
}

# ---------------------------------------------------------------------------------------
# The site, and the two servers' configurations.
mkdir -p "$WORK/www" "$WORK/nginx"
head -c 100 /dev/zero | tr '\0' 's' > "$WORK/www/small"
head -c $((1024 * 1024)) /dev/urandom > "$WORK/www/1m"

cat > "$WORK/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/client_body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:$PORT_NGINX backlog=4096;
    root $WORK/www;
  }
}
EOF

cat > "$WORK/routes.json" <<EOF
{"routes": [{"host": "$HOST_HEADER", "service": "bench/site", "static_root": "$WORK/www"}]}
EOF

start_server() {  # name -> sets SERVER_PID, SERVER_PORT
  local name="$1"
  case "$name" in
    nginx)
      SERVER_PORT="$PORT_NGINX"
      "${PIN_SERVER[@]}" "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" \
        -e "$WORK/nginx/error.log" >"$WORK/$name.log" 2>&1 &
      ;;
    slipway)
      SERVER_PORT="$PORT_SLIPWAY"
      "${PIN_SERVER[@]}" "$SLIPWAY" edge --http "127.0.0.1:$PORT_SLIPWAY" \
        --routes "$WORK/routes.json" --threads 1 >"$WORK/$name.log" 2>&1 &
      ;;
  esac
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_http "$name" "$SERVER_PORT" /small "$SERVER_PID"
  local small big
  small="$(curl -fsS -H "Host: $HOST_HEADER" "http://127.0.0.1:$SERVER_PORT/small" | wc -c)"
  big="$(curl -fsS -H "Host: $HOST_HEADER" "http://127.0.0.1:$SERVER_PORT/1m" | cmp - "$WORK/www/1m" && echo same)"
  [ "$small" -eq 100 ] || die "$name: /small returned $small bytes, not 100"
  [ "$big" = "same" ] || die "$name: /1m differs from the file"
}

cpu_ticks() {  # pid -> utime+stime of the process (all threads)
  awk '{print $14 + $15}' "/proc/$1/stat"
}

RESULTS="$WORK/results.tsv"
printf 'round\tproxy\tpath\trps\tp50_ms\tp99_ms\ttransfer_mb_s\terrors\tcpu_pct\trss_kb\n' > "$RESULTS"

measure() {  # round name port pid path
  local round="$1" name="$2" port="$3" pid="$4" path="$5"
  local url="http://127.0.0.1:$port$path"
  "${PIN_LOAD[@]}" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" -H "Host: $HOST_HEADER" "$url" >/dev/null
  local t0 t1 c0 c1 hz out
  hz="$(getconf CLK_TCK)"
  c0="$(cpu_ticks "$pid")"
  t0="$(date +%s.%N)"
  out="$("${PIN_LOAD[@]}" wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency \
    -H "Host: $HOST_HEADER" "$url")"
  t1="$(date +%s.%N)"
  c1="$(cpu_ticks "$pid")"
  local rss
  rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")"
  echo "$out" > "$WORK/wrk-$round-$name-${path#/}.txt"
  python3 "$ROOT/bench/wrk_parse.py" "$WORK/wrk-$round-$name-${path#/}.txt" \
    "$round" "$name" "$path" "$(python3 -c "print(round(100.0 * ($c1 - $c0) / $hz / ($t1 - $t0), 1))")" \
    "$rss" >> "$RESULTS"
  tail -1 "$RESULTS" | awk -F'\t' '{printf "bench: round %s %-8s %-6s %10s req/s  p50 %s ms  p99 %s ms  errors %s  cpu %s%%\n", $1, $2, $3, $4, $5, $6, $8, $9}' >&2
}

log "load average before: $(cut -d' ' -f1-3 /proc/loadavg); cpus: $CPUS; pinning: $([ "$PIN" = 1 ] && echo 'server on CPU 1, wrk on CPU 0' || echo off)"
log "slipway: $SLIPWAY ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && [ -n "$(git status --porcelain -- src 2>/dev/null)" ] && echo ', src modified'))"
log "nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
log "wrk -t1 -c$CONNECTIONS -d${SECONDS_PER_RUN}s --latency (after a ${WARMUP}s warm-up), rounds: $ROUNDS"

for round in $(seq "$ROUNDS"); do
  # Alternate which server goes first, so neither always runs on a warmer machine.
  if [ $((round % 2)) -eq 1 ]; then order="nginx slipway"; else order="slipway nginx"; fi
  for name in $order; do
    start_server "$name"
    for path in /small /1m; do
      measure "$round" "$name" "$SERVER_PORT" "$SERVER_PID" "$path"
    done
    stop_pid "$SERVER_PID"
  done
done

[ -n "${BENCH_OUT:-}" ] && cp "$RESULTS" "$BENCH_OUT"
python3 "$ROOT/bench/wrk_table.py" "$RESULTS" static

if [ "${BENCH_PROFILE:-0}" = 1 ]; then
  if ! command -v perf >/dev/null 2>&1; then
    log "BENCH_PROFILE=1 but perf is not installed (Debian: linux-perf); skipping the profile"
    exit 0
  fi
  start_server slipway
  url="http://127.0.0.1:$SERVER_PORT/small"
  "${PIN_LOAD[@]}" wrk -t1 -c"$CONNECTIONS" -d"$((SECONDS_PER_RUN + 2))s" \
    -H "Host: $HOST_HEADER" "$url" >/dev/null &
  WRK_PID=$!
  PIDS+=("$WRK_PID")
  sleep 1
  perf record -F 1999 -g -o "$WORK/perf.data" -p "$SERVER_PID" -- sleep "$SECONDS_PER_RUN" \
    >/dev/null 2>"$WORK/perf.log" || { cat "$WORK/perf.log" >&2; die "perf record failed"; }
  wait "$WRK_PID" || true
  echo
  echo "Slipway on /small, where its CPU time goes (perf, by binary):"
  perf report -i "$WORK/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9]' | sed -E 's/ {2,}/  /g' | head -6 || true
  echo "Top symbols in user space:"
  perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio -g none \
    --dsos "$(basename "$SLIPWAY")",libc.so.6,libstdc++.so.6 2>/dev/null |
    grep -E '^ +[0-9]' | sed -E 's/ {2,}/  /g' | cut -c1-150 | head -25 || true
  echo "Top symbols overall (kernel included):"
  perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9]' | sed -E 's/ {2,}/  /g' | cut -c1-150 | head -15 || true
fi
