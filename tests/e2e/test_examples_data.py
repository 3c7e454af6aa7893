"""The two data examples deployed with `slipway up`, with their real PostgreSQL and Redis
add-ons: examples/bytomorrow (results loaded into Postgres by its pre-deploy command and
filtered in SQL) and examples/climbiq (an SSE stream through the edge, a Redis job queue
with a worker, a nightly cron job writing to Postgres)."""

import http.client
import json
import time
import unittest

from harness import SlipwayTestCase, wait_until


class BytomorrowTest(SlipwayTestCase):
    def test_results_come_from_postgres_and_a_redeploy_loads_them_once(self):
        app = self.slipway.copy_app("bytomorrow")
        up = self.slipway.up(app)
        self.assertLive(up, "api")
        host = "api.bytomorrow.localhost"
        self.assertEqual(self.slipway.get_json(host, "/api/health"), {"status": "ok"})

        data = self.slipway.get_json(
            host, "/api/visualize/data?data_source=pile&params=60M,150M&metric=loss"
        )
        self.assertEqual([s["name"] for s in data["series"]], ["60M", "150M"])
        for series in data["series"]:
            steps = [p["step"] for p in series["points"]]
            self.assertEqual(steps, sorted(steps))
            self.assertGreater(len(steps), 1)

        count = "SELECT count(*) FROM experiment_results"
        rows = self.psql(app, count)
        self.assertGreater(rows, 0)
        # The filter is the database's: the API's points are the rows of that query.
        points = sum(len(s["points"]) for s in data["series"])
        self.assertEqual(
            points,
            self.psql(
                app,
                "SELECT count(*) FROM experiment_results WHERE data_source = 'pile' "
                "AND metric = 'loss' AND params IN ('60M', '150M')",
            ),
        )
        indexes = self.psql_text(
            app, "SELECT string_agg(indexdef, ' | ') FROM pg_indexes "
            "WHERE tablename = 'experiment_results'"
        )
        for column in ("data_source", "params", "metric"):
            self.assertIn(column, indexes)

        # Deploying again runs the pre-deploy command again: the rows are not doubled.
        again = self.slipway.up(app)
        self.assertLive(again, "api")
        self.assertEqual(self.psql(app, count), rows)

    def assertLive(self, up, service):
        # The project has a web service too (test_frontend.py), whose URL comes last.
        self.assertEqual(up.code, 0, f"deploy failed\n{up}\n{self.server_log()}")
        self.assertIn(f"{service} is live at {self.slipway.url(service, 'bytomorrow')}", up.stdout, str(up))

    def psql_text(self, app, sql):
        result = self.slipway.cli(
            "run", "api", "--", "psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql,
            cwd=app,
        )
        self.assertEqual(result.code, 0, str(result))
        return result.stdout.strip()

    def psql(self, app, sql):
        # `slipway run` has the app's PGHOST, PGUSER, PGPASSWORD, PGDATABASE: psql needs no URL.
        return int(self.psql_text(app, sql))


class ClimbiqTest(SlipwayTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.app = cls.slipway.copy_app("climbiq")
        cls.up = cls.slipway.up(cls.app)

    def setUp(self):
        super().setUp()
        self.assertEqual(self.up.code, 0, f"{self.up}\n{self.server_log()}")
        self.host = "api.climbiq.localhost"

    def test_up_names_what_each_service_is(self):
        self.assertIn(f"api is live at {self.slipway.url('api', 'climbiq')}", self.up.stdout)
        self.assertIn("worker is running (a worker: no URL)", self.up.stdout)
        self.assertRegex(self.up.stdout, r"nightly is scheduled: 0 2 \* \* \* \(UTC\), next run .* 02:00:00")
        health = self.slipway.get_json(self.host, "/api/health")
        self.assertEqual(health, {"status": "ok", "postgres": "ok", "redis": "ok"})

    def test_sse_events_arrive_one_by_one_through_the_edge(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.slipway.http_port, timeout=30)
        conn.request("GET", "/api/recommendations/stream?grade=V5", headers={"Host": self.host})
        response = conn.getresponse()
        self.assertEqual(response.status, 200)
        self.assertIn("text/event-stream", response.getheader("Content-Type", ""))
        events, arrivals, block = [], [], []
        while True:
            line = response.readline()  # de-chunked, as the events arrive
            if not line:
                break
            line = line.decode().rstrip("\r\n")
            if line:
                block.append(line)
                continue
            if block:
                fields = dict(item.split(": ", 1) for item in block)
                events.append(fields)
                arrivals.append(time.monotonic())
                block = []
        conn.close()
        self.assertEqual([e["event"] for e in events], ["phase"] * 5)
        phases = [json.loads(e["data"]) for e in events]
        self.assertEqual([p["phase"] for p in phases], [1, 2, 3, 4, 5])
        self.assertEqual(
            [p["name"] for p in phases],
            ["warm-up", "technique", "strength", "power-endurance", "cool-down"],
        )
        # The app sends them 500 ms apart: unbuffered, they arrive spread out, not at once.
        self.assertGreaterEqual(arrivals[-1] - arrivals[0], 1.5)

    def test_a_job_is_done_by_the_worker_and_the_nightly_job_writes_a_row(self):
        status, _, body = self.request(
            "POST", "/api/jobs", {"climber": "alex", "grade": "V5", "sessions_per_week": 3}
        )
        self.assertEqual(status, 202, body)
        job = json.loads(body)["id"]

        def done():
            s, payload = self.slipway.http_get(self.host, f"/api/jobs/{job}")
            return s == 200 and json.loads(payload)["status"] == "done" and json.loads(payload)

        result = wait_until(done, 60, "the worker to finish the job")["result"]
        self.assertEqual((result["climber"], result["grade"]), ("alex", "V5"))
        logs = self.slipway.cli("logs", "worker", "-n", "200", cwd=self.app)
        self.assertIn(f"job {job}", logs.stdout)

        before = self.slipway.get_json(self.host, "/api/nightly-runs")["runs"]
        run = self.slipway.cli("cron", "run", "nightly", cwd=self.app)
        self.assertEqual(run.code, 0, str(run))
        self.assertRegex(run.stdout, r"nightly: run \d+ at .*recommendations in the last 24 h")
        after = self.slipway.get_json(self.host, "/api/nightly-runs")["runs"]
        self.assertEqual(len(after), len(before) + 1)
        self.assertGreaterEqual(after[0]["recommendations"], 1)
        history = self.slipway.cli("cron", "runs", "nightly", cwd=self.app)
        self.assertRegex(history.stdout, r"(?m)^\d+\s+manual\s+.*SUCCEEDED\s+0\s*$")

    def request(self, method, path, payload):
        conn = http.client.HTTPConnection("127.0.0.1", self.slipway.http_port, timeout=10)
        try:
            conn.request(
                method,
                path,
                body=json.dumps(payload),
                headers={"Host": self.host, "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read().decode()
        finally:
            conn.close()


if __name__ == "__main__":
    unittest.main()
