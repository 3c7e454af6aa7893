"""Each example app deploys with `slipway up` and its printed URL serves it."""

import json
import unittest

from harness import SlipwayTestCase


class DeployAppsTest(SlipwayTestCase):
    def test_fastapi_procfile(self):
        app = self.slipway.copy_app("fastapi-procfile")
        url = self.assertDeployed(self.slipway.up(app), "web", "fastapi-procfile")
        host = url.split("//")[1].split(":")[0]

        status, body = self.slipway.http_get(host, "/")
        self.assertEqual(status, 200, body)
        # SLIPWAY_SERVICE is part of the environment every app gets.
        self.assertEqual(json.loads(body), {"message": "hello from fastapi", "service": "web"})
        self.assertEqual(self.slipway.http_get(host, "/health"), (200, '{"status":"ok"}'))

    def test_node_hello(self):
        app = self.slipway.copy_app("node-hello")
        self.assertDeployed(self.slipway.up(app), "web", "node-hello")

        status, body = self.slipway.http_get("web.node-hello.localhost", "/")
        self.assertEqual(status, 200, body)
        self.assertTrue(body.startswith("hello from node"), body)
        # Computed by the `ms` dependency: proves `npm ci` installed it.
        self.assertIn("one day is 86400000 ms", body)

    def test_static_site(self):
        app = self.slipway.copy_app("static-site")
        self.assertDeployed(self.slipway.up(app), "web", "static-site")
        host = "web.static-site.localhost"

        status, body = self.slipway.http_get(host, "/")
        self.assertEqual(status, 200, body)
        self.assertIn("<h1>Hello from a static site</h1>", body)
        status, headers, body = self.slipway.http_request(host, "/style.css")
        self.assertEqual(status, 200, body)
        self.assertIn("text/css", headers.get("content-type", ""))
        self.assertIn("font-family", body)
        status, body = self.slipway.http_get(host, "/about.html")
        self.assertEqual(status, 200, body)
        self.assertIn("<h1>About</h1>", body)
        status, _ = self.slipway.http_get(host, "/no-such-page.html")
        self.assertEqual(status, 404)

    def test_bytomorrow_api(self):
        app = self.slipway.copy_app("bytomorrow")
        up = self.slipway.up(app)
        # Its web service (the chart frontend, test_frontend.py) is deployed after the api.
        self.assertEqual(up.code, 0, f"deploy failed\n{up}\n{self.server_log()}")
        self.assertIn(f"api is live at {self.slipway.url('api', 'bytomorrow')}", up.stdout, str(up))
        self.assertDeployed(up, "web", "bytomorrow")
        host = "api.bytomorrow.localhost"

        self.assertEqual(self.slipway.get_json(host, "/api/health"), {"status": "ok"})

        data = self.slipway.get_json(host, "/api/visualize/data?params=60M,1B&metric=loss")
        self.assertEqual(data["metric"], "loss")
        self.assertEqual(data["data_source"], "pile")
        self.assertEqual([s["name"] for s in data["series"]], ["60M", "1B"])
        small, large = data["series"]
        self.assertEqual(large["params_numeric"], 1_000_000_000)
        for series in data["series"]:
            steps = [p["step"] for p in series["points"]]
            self.assertEqual(steps, sorted(steps))
            self.assertGreater(series["points"][0]["value"], series["points"][-1]["value"])
        self.assertLess(large["points"][-1]["value"], small["points"][-1]["value"])

        data = self.slipway.get_json(host, "/api/visualize/data?data_source=c4&metric=accuracy")
        self.assertEqual(len(data["series"]), 4)
        self.assertEqual(
            self.slipway.get_json(host, "/api/visualize/data?data_source=wikipedia")["series"], []
        )

        status, body = self.slipway.http_get(host, "/api/visualize/data?params=lots")
        self.assertEqual(status, 422, body)
        self.assertIn("params must be a comma-separated list", body)

        # A frontend on another host may call it (CORS), through the proxy.
        status, headers, _ = self.slipway.http_request(
            host, "/api/health", headers={"Origin": "http://web.bytomorrow.localhost"}
        )
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("access-control-allow-origin"), "*")

    def test_unknown_host_is_404(self):
        status, _ = self.slipway.http_get("nothing.here.localhost", "/")
        self.assertEqual(status, 404)


if __name__ == "__main__":
    unittest.main()
