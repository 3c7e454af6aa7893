# A Python web app with no dependencies (standard library only): `slipway up` in this
# directory deploys it in a second; it also misbehaves on cue to try deploys, rollbacks
# and restart policies (see README below).
#
# Endpoints:
#   /  and  /version   {"version": $APP_VERSION, "deployment": $SLIPWAY_DEPLOYMENT_ID, "pid": ...}
#   /slow?ms=N         the same, after sleeping N milliseconds
#   /health            200 "ok" (or 503/500, see below)
#   /env-digest?name=K {"name": K, "set": true, "sha256": sha256 of $K} (null when unset):
#                      checks that a secret arrived without showing it
#
# PRINT_VARIABLES=A,B prints "A=<value>" for each at start (as careless apps do; the
# platform masks secrets in the log).
#
# Misbehaviour on cue, by variables (slipway.toml [services.web.variables]):
#   HEALTH_FAIL=1            /health answers 500 from the start
#   HEALTHY_AFTER_SECONDS=N  /health answers 503 for the first N seconds (slow to boot)
#   FAIL_AFTER_SECONDS=N     /health and / answer 500 once N seconds have passed
#   ERROR_RATE=0.5           this share of answers (but /health's) are 500s, evenly spread
#   SLOW_MS=N                every answer is delayed N milliseconds
#   LEAK_MB=N                N MiB are allocated (and touched) at start
#   EXIT_AFTER_SECONDS=N     the process exits after N seconds with EXIT_CODE (default 1)
#   PREDEPLOY_FAIL=1         migrate.py (the pre-deploy command) exits 1
#
# SIGTERM (or SIGINT): stop accepting connections, finish the requests in flight (idle
# keep-alive connections are closed), exit 0.
import hashlib
import http.server
import json
import os
import select
import signal
import sys
import threading
import time
import urllib.parse

STARTED = time.monotonic()
VERSION = os.environ.get("APP_VERSION", "dev")
DEPLOYMENT = os.environ.get("SLIPWAY_DEPLOYMENT_ID", "")


def env_float(name, default=0.0):
    text = os.environ.get(name, "")
    try:
        return float(text) if text else default
    except ValueError:
        sys.exit(f"{name} must be a number (got {text!r})")


HEALTH_FAIL = os.environ.get("HEALTH_FAIL") == "1"
HEALTHY_AFTER = env_float("HEALTHY_AFTER_SECONDS")
FAIL_AFTER = env_float("FAIL_AFTER_SECONDS", -1)
ERROR_RATE = env_float("ERROR_RATE")
SLOW_MS = env_float("SLOW_MS")
LEAK_MB = int(env_float("LEAK_MB"))
EXIT_AFTER = env_float("EXIT_AFTER_SECONDS", -1)
EXIT_CODE = int(env_float("EXIT_CODE", 1))

# Touched pages, so that they count in the process's resident memory.
LEAK = bytearray(b"\x5a") * (LEAK_MB << 20) if LEAK_MB > 0 else None

stopping = threading.Event()
lock = threading.Lock()
counter = [0]  # answers counted for ERROR_RATE


def log(message):
    print(f"python-stdlib {VERSION}: {message}", flush=True)


def failing_now():
    return FAIL_AFTER >= 0 and time.monotonic() - STARTED >= FAIL_AFTER


def error_now():
    """True for ERROR_RATE of the answers: answer n fails when floor(n*rate) grows."""
    if ERROR_RATE <= 0:
        return False
    with lock:
        n = counter[0]
        counter[0] += 1
    return int((n + 1) * ERROR_RATE) > int(n * ERROR_RATE)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "python-stdlib-example"

    def handle(self):
        """Serves requests on this connection until it closes or the server stops.

        Waits for each request in short select() slices so that an idle keep-alive
        connection closes once SIGTERM arrives, while a request already on its way is
        still answered."""
        self.close_connection = False
        while not self.close_connection:
            while True:
                readable, _, _ = select.select([self.connection], [], [], 0.2)
                if readable:
                    break
                if stopping.is_set():
                    return
            self.handle_one_request()

    def answer(self, status, body, content_type="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-App-Version", VERSION)
        if stopping.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def version_body(self):
        return json.dumps({"version": VERSION, "deployment": DEPLOYMENT, "pid": os.getpid()}) + "\n"

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if SLOW_MS > 0:
            time.sleep(SLOW_MS / 1000)
        if url.path == "/health":
            if HEALTH_FAIL:
                return self.answer(500, "unhealthy (HEALTH_FAIL=1)\n", "text/plain")
            if time.monotonic() - STARTED < HEALTHY_AFTER:
                return self.answer(503, "starting (HEALTHY_AFTER_SECONDS)\n", "text/plain")
            if failing_now():
                return self.answer(500, "unhealthy (FAIL_AFTER_SECONDS)\n", "text/plain")
            return self.answer(200, "ok\n", "text/plain")
        if url.path == "/env-digest":
            name = urllib.parse.parse_qs(url.query).get("name", [""])[0]
            value = os.environ.get(name)
            digest = hashlib.sha256(value.encode()).hexdigest() if value is not None else None
            body = {"name": name, "set": value is not None, "sha256": digest}
            return self.answer(200, json.dumps(body) + "\n")
        if url.path not in ("/", "/version", "/slow"):
            return self.answer(404, json.dumps({"error": "not found", "path": url.path}) + "\n")
        if url.path == "/slow":
            query = urllib.parse.parse_qs(url.query)
            try:
                ms = float(query.get("ms", ["1000"])[0])
            except ValueError:
                return self.answer(400, json.dumps({"error": "ms must be a number"}) + "\n")
            time.sleep(min(max(ms, 0), 60_000) / 1000)
        if failing_now():
            return self.answer(500, json.dumps({"error": "failing (FAIL_AFTER_SECONDS)"}) + "\n")
        if error_now():
            return self.answer(500, json.dumps({"error": "failing (ERROR_RATE)"}) + "\n")
        return self.answer(200, self.version_body())

    do_HEAD = do_GET

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # no access log: the platform's edge keeps one


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for the requests in flight
    block_on_close = True
    allow_reuse_address = True


def main():
    port = int(os.environ.get("PORT", "8000"))
    server = Server(("0.0.0.0", port), Handler)

    def on_signal(signum, _frame):
        if stopping.is_set():
            return
        stopping.set()
        log(f"got signal {signum}: finishing the requests in flight")
        # shutdown() waits for serve_forever() to return: call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if EXIT_AFTER >= 0:

        def exit_later():
            time.sleep(EXIT_AFTER)
            log(f"exiting with code {EXIT_CODE} after {EXIT_AFTER:g}s (EXIT_AFTER_SECONDS)")
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_CODE)

        threading.Thread(target=exit_later, daemon=True).start()

    for name in filter(None, os.environ.get("PRINT_VARIABLES", "").split(",")):
        log(f"{name}={os.environ.get(name, '')}")
    leaked = f", holding {LEAK_MB} MiB (LEAK_MB)" if LEAK else ""
    log(f"listening on port {port}, deployment {DEPLOYMENT or '-'}{leaked}")
    server.serve_forever(poll_interval=0.2)
    server.server_close()  # joins the handler threads: in-flight requests are answered
    log("stopped")


if __name__ == "__main__":
    main()
