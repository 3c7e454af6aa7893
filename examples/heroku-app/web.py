# A Heroku-style Python app (standard library only): app.json gives its config vars,
# formation and health check; the Procfile its commands (docs/importers/heroku.md).
#
#   /        {"greeting": $GREETING, "has_secret": ..., "service": ..., "health_checks": N, "pid": ...}
#   /health  200 "ok"
import http.server
import json
import os
import signal
import threading


health_checks = [0]  # /health requests this process answered (the platform's probes)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            health_checks[0] += 1
            body, kind = b"ok", "text/plain"
        else:
            body = json.dumps({
                "greeting": os.environ.get("GREETING", ""),
                "has_secret": bool(os.environ.get("SECRET_KEY")),
                "service": os.environ.get("SLIPWAY_SERVICE", ""),
                "health_checks": health_checks[0],
                "pid": os.getpid(),
            }).encode()
            kind = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
print(f"heroku-app listening on {server.server_address[1]}", flush=True)
server.serve_forever()
