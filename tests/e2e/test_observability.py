"""What the edge records: an access log line per request and per-route metrics."""

import json
import os
import unittest

from harness import SlipwayTestCase, wait_until


class ObservabilityTest(SlipwayTestCase):
    def test_access_log_and_metrics(self):
        app = self.slipway.copy_app("static-site")
        self.assertDeployed(self.slipway.up(app), "web", "static-site")
        host = "web.static-site.localhost"
        for _ in range(3):
            self.assertEqual(self.slipway.http_get(host, "/")[0], 200)
        status, headers, _ = self.slipway.http_request(
            host, "/missing.html", headers={"X-Request-Id": "trace-me-42"}
        )
        self.assertEqual(status, 404)
        self.assertEqual(headers["x-request-id"], "trace-me-42")

        log_path = os.path.join(self.slipway.home, "logs", "access.log")

        def logged():
            if not os.path.exists(log_path):
                return None
            with open(log_path) as f:
                for line in f:
                    entry = json.loads(line)
                    if entry.get("request_id") == "trace-me-42":
                        return entry
            return None

        entry = wait_until(logged, 10, "the request in the access log")
        self.assertEqual(entry["status"], 404)
        self.assertEqual(entry["host"], host)
        self.assertEqual(entry["path"], "/missing.html")

        metrics = self.slipway.cli("metrics")
        self.assertEqual(metrics.code, 0, metrics)
        row = next(l for l in metrics.stdout.splitlines() if l.startswith(host))
        fields = row.split()
        # ROUTE SERVICE REQUESTS 2XX 4XX 5XX ...
        self.assertEqual(fields[1], "static-site/web")
        self.assertGreaterEqual(int(fields[2]), 4)
        self.assertGreaterEqual(int(fields[3]), 3)
        self.assertGreaterEqual(int(fields[4]), 1)


if __name__ == "__main__":
    unittest.main()
