#!/usr/bin/env bash
# How fast a deploy and a rollback reach users, for a trivial app on this machine.
#
#   bench/deploy.sh                      # 10 deploys and 10 rollbacks
#   BENCH_ROUNDS=5 bench/deploy.sh
#
# Starts `slipway server` on free 127.0.0.1 ports with a fresh data dir and deploys
# examples/python-stdlib once (so dependency installs, if it had any, are cached). Then,
# each round: changes APP_VERSION in its slipway.toml and measures the time from running
# `slipway up` to the first response of the new version through the edge; then runs
# `slipway rollback` and measures the time to the first response of the previous version.
# The peer measured in the same run is the app itself: the time from starting its own
# start command by hand to its first answer (what no platform can go below). Printed:
# median and max of each, and the deploy time minus the app's start time (Slipway's own
# overhead). See docs/performance.md.
#
# Environment:
#   BENCH_ROUNDS       deploys and rollbacks measured (default 10)
#   BENCH_BUILD_DIR    where Slipway is built in Release (default build/bench)
#   BENCH_SLIPWAY      use this slipway binary instead of building one
#   BENCH_OUT          also write the raw timings (TSV) here
#
# Only 127.0.0.1, free ports; every process started here is stopped by PID on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${BENCH_ROUNDS:-10}"
BUILD_DIR="${BENCH_BUILD_DIR:-$ROOT/build/bench}"
APP="$ROOT/examples/python-stdlib"

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }

[ -d "$APP" ] || die "missing $APP"
[ -x /usr/bin/python3 ] || die "needs /usr/bin/python3 (apt-get install python3)"

if [ -n "${BENCH_SLIPWAY:-}" ]; then
  SLIPWAY="$(realpath "$BENCH_SLIPWAY")"  # the bench runs commands in other directories
else
  log "building slipway (Release) in $BUILD_DIR"
  mkdir -p "$BUILD_DIR"
  cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DSLIPWAY_TESTS=OFF \
    >"$BUILD_DIR/bench-configure.log" 2>&1 ||
    die "cmake configure failed (log: $BUILD_DIR/bench-configure.log)"
  CPUS="$(nproc)"
  cmake --build "$BUILD_DIR" -j"$(( CPUS < 2 ? CPUS : 2 ))" --target slipway \
    >"$BUILD_DIR/bench-build.log" 2>&1 ||
    die "building slipway failed (log: $BUILD_DIR/bench-build.log)"
  SLIPWAY="$BUILD_DIR/slipway"
fi
[ -x "$SLIPWAY" ] || die "no slipway binary at $SLIPWAY"

exec /usr/bin/python3 - "$SLIPWAY" "$APP" "$ROUNDS" "${BENCH_OUT:-}" <<'PY'
import http.client, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

slipway, app_src, rounds, out_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
work = tempfile.mkdtemp(prefix="slipway-bench-deploy-")
home = os.path.join(work, "home")
started = []  # Popen objects to stop on exit


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(port, host, path="/version", timeout=2):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host})
        res = conn.getresponse()
        return res.status, res.read().decode(errors="replace")
    finally:
        conn.close()


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.002)
    raise SystemExit(f"bench: error: timed out waiting for {what}")


def stop_all():
    for p in started:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGINT)  # the server stops its apps
                p.wait(30)
            except Exception:
                p.kill()
    shutil.rmtree(work, ignore_errors=True)


try:
    api, http_port = free_port(), free_port()
    env = dict(os.environ, SLIPWAY_HOME=home, SLIPWAY_URL=f"http://127.0.0.1:{api}")
    server_log = open(os.path.join(work, "server.log"), "w")
    server = subprocess.Popen(
        [slipway, "server", "--api", f"127.0.0.1:{api}", "--http", f"127.0.0.1:{http_port}"],
        env=env, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True)
    started.append(server)
    wait_for(lambda: get(api, "x", "/v1/health")[0] == 200, 30, "the server")

    app = os.path.join(work, "app")
    shutil.copytree(app_src, app)
    toml_path = os.path.join(app, "slipway.toml")

    def set_version(v):
        # The Procfile gives the start and release commands; the version is a variable.
        with open(toml_path, "w") as f:
            f.write('project = "bench"\n[services.web]\nhealthcheckPath = "/health"\n'
                    f'[services.web.variables]\nAPP_VERSION = "{v}"\n')

    host = "web.bench.localhost"

    def version_is(v):
        status, body = get(http_port, host)
        return status == 200 and json.loads(body).get("version") == v

    def up():
        return subprocess.Popen([slipway, "up"], cwd=app, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)

    # The app alone: its own start command, started by hand, to its first answer.
    app_starts = []
    for _ in range(rounds):
        port = free_port()
        t0 = time.monotonic()
        p = subprocess.Popen(["/usr/bin/python3", "server.py"], cwd=app,
                             env=dict(os.environ, PORT=str(port), APP_VERSION="solo"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(p)
        t1 = wait_for(lambda: get(port, host, "/health")[0] == 200, 30, "the app started by hand")
        app_starts.append(t1 - t0)
        p.terminate()
        p.wait()

    set_version("0")
    first = subprocess.Popen([slipway, "up"], cwd=app, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    if first.wait() != 0:
        server_log.flush()
        with open(os.path.join(work, "server.log")) as log:
            raise SystemExit("bench: error: first deploy failed: " + first.stdout.read().decode()
                             + "\nserver log:\n" + log.read()[-3000:])
    wait_for(lambda: version_is("0"), 30, "version 0")

    deploys, rollbacks = [], []
    serving = "0"
    for i in range(1, rounds + 1):
        set_version(str(i))
        t0 = time.monotonic()
        p = up()
        t1 = wait_for(lambda: version_is(str(i)), 60, f"version {i}")
        deploys.append(t1 - t0)
        if p.wait() != 0:
            raise SystemExit("bench: error: deploy failed: " + p.stderr.read().decode())
        # Back to the release that served before this deploy.
        t0 = time.monotonic()
        p = subprocess.Popen([slipway, "rollback"], cwd=app, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        t1 = wait_for(lambda: version_is(serving), 60, f"rollback to version {serving}")
        rollbacks.append(t1 - t0)
        if p.wait() != 0:
            raise SystemExit("bench: error: rollback failed: " + p.stderr.read().decode())

    def ms(x):
        return f"{x * 1000:7.0f} ms"

    app_start = statistics.median(app_starts)
    print(f"trivial app (examples/python-stdlib), {rounds} rounds, slipway {slipway}")
    print(f"{'':28}{'median':>10}{'max':>11}")
    print(f"{'app start by hand (peer)':28}{ms(app_start):>10}{ms(max(app_starts)):>11}")
    print(f"{'slipway up -> new version':28}{ms(statistics.median(deploys)):>10}{ms(max(deploys)):>11}")
    print(f"{'slipway rollback -> old':28}{ms(statistics.median(rollbacks)):>10}{ms(max(rollbacks)):>11}")
    overhead = statistics.median(deploys) - app_start
    print(f"deploy overhead over the app's own start: {overhead * 1000:.0f} ms (target < 2000 ms)")
    print(f"rollback: {statistics.median(rollbacks) * 1000:.0f} ms (target < 1000 ms); "
          f"deploy / app start = {statistics.median(deploys) / app_start:.1f}x")
    if out_path:
        with open(out_path, "w") as f:
            f.write("kind\tseconds\n")
            for k, values in (("app_start", app_starts), ("deploy", deploys), ("rollback", rollbacks)):
                for v in values:
                    f.write(f"{k}\t{v:.4f}\n")
finally:
    stop_all()
PY
