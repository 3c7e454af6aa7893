# A Python web app (standard library only) configured by railway.json alone: `slipway up`
# in this directory reads the start command, pre-deploy command, health check path and
# replica count from it (docs/importers/railway.md).
#
#   /        {"app": "railway-python", "service": ..., "migrated": ..., "pid": ...}
#   /health  200 "ok"
import http.server
import json
import os
import signal
import threading



def migrated():
    try:
        with open(os.path.join(os.environ["HOME"], "migrated.txt")) as f:
            return f.read().strip()
    except OSError:
        return ""


health_checks = [0]  # /health requests this process answered (the platform's probes)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            health_checks[0] += 1
            body, kind = b"ok", "text/plain"
        else:
            body = json.dumps({
                "app": "railway-python",
                "service": os.environ.get("SLIPWAY_SERVICE", ""),
                "migrated": migrated(),
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
print(f"railway-python listening on {server.server_address[1]}", flush=True)
server.serve_forever()
