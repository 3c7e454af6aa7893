"""Apps configured only by another platform's file deploy with `slipway up`:
railway.json / railway.toml, render.yaml, app.json + Procfile. Unsupported fields are
named in warnings; a malformed file fails the deploy with FILE:LINE:COL and the running
deployment keeps serving."""

import json
import os
import unittest

from harness import SlipwayTestCase


def rewrite(path, old, new):
    with open(path) as f:
        text = f.read()
    assert old in text, f"{old!r} not in {path}"
    with open(path, "w") as f:
        f.write(text.replace(old, new, 1))


class ImportsTest(SlipwayTestCase):
    def assertStillServes(self, host):
        status, body = self.slipway.http_get(host, "/")
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def assertMalformedKeepsServing(self, app, host, filename, break_file, where):
        before = self.slipway.deployments(os.path.basename(app), host.split(".")[0])
        break_file(os.path.join(app, filename))
        result = self.slipway.up(app)
        self.assertFailed(result)
        error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        self.assertEqual(len(error_lines), 1, str(result))
        self.assertTrue(error_lines[0].startswith(f"error: {where}: "), str(result))
        # Nothing was deployed, and the live release still answers.
        after = self.slipway.deployments(os.path.basename(app), host.split(".")[0])
        self.assertEqual(len(after), len(before))
        self.assertStillServes(host)

    # --- railway ---------------------------------------------------------------------

    def test_railway_json(self):
        app = self.slipway.copy_app("railway-python")
        result = self.slipway.up(app)
        self.assertDeployed(result, "web", "railway-python")
        self.assertNotIn("warning:", result.stderr, str(result))
        host = "web.railway-python.localhost"

        body = self.assertStillServes(host)
        self.assertEqual(body["app"], "railway-python")
        self.assertEqual(body["service"], "web")
        # deploy.preDeployCommand ran before the release served.
        self.assertEqual(body["migrated"], "schema v1")
        self.assertEqual(self.slipway.http_get(host, "/health"), (200, "ok"))
        # deploy.healthcheckPath: the replica was probed on /health before it served.
        self.assertGreaterEqual(body["health_checks"], 1, body)
        # deploy.numReplicas
        self.assertEqual(len(self.slipway.service_status("railway-python")["replicas"]), 2)

        # A trailing comma: railway.json:4:3 (where the parser stopped).
        self.assertMalformedKeepsServing(
            app, host, "railway.json",
            lambda p: rewrite(p, '"railway.json"]', '"railway.json"],\n  }'),
            "railway.json:6:3")

    def test_railway_unsupported_fields_and_toml(self):
        app = self.slipway.copy_app("railway-python", "railway-toml")
        os.remove(os.path.join(app, "railway.json"))
        with open(os.path.join(app, "railway.toml"), "w") as f:
            f.write(
                "[build]\n"
                'builder = "NIXPACKS"\n'
                'dockerfilePath = "Dockerfile"\n'
                "\n"
                "[deploy]\n"
                'startCommand = "python3 server.py"\n'
                'healthcheckPath = "/health"\n'
                'region = "us-west2"\n'
                "sleepApplication = true\n"
            )
        result = self.slipway.up(app)
        self.assertDeployed(result, "web", "railway-toml")
        self.assertIn(
            'warning: railway.toml:3:1: "build.dockerfilePath" is not supported and is ignored',
            result.stderr)
        self.assertIn(
            'warning: railway.toml:8:1: "deploy.region" is not supported and is ignored',
            result.stderr)
        self.assertIn(
            'warning: railway.toml:9:1: "deploy.sleepApplication" is not supported and is ignored',
            result.stderr)
        host = "web.railway-toml.localhost"
        self.assertEqual(self.assertStillServes(host)["app"], "railway-python")

        self.assertMalformedKeepsServing(
            app, host, "railway.toml",
            lambda p: rewrite(p, 'startCommand = "python3 server.py"', "startCommand = python3"),
            "railway.toml:6:16")

    # --- render ----------------------------------------------------------------------

    def test_render_blueprint(self):
        app = self.slipway.copy_app("render-blueprint")
        result = self.slipway.up(app)
        self.assertDeployed(result, "greeter", "render-blueprint")
        # plan and region only mean something on Render: named, not silently dropped.
        self.assertIn('warning: render.yaml:7:5: "plan" is not supported and is ignored',
                      result.stderr)
        self.assertIn('warning: render.yaml:8:5: "region" is not supported and is ignored',
                      result.stderr)
        host = "greeter.render-blueprint.localhost"
        body = self.assertStillServes(host)
        self.assertEqual(body, {"greeting": "hello from a render blueprint", "service": "greeter"})
        self.assertEqual(self.slipway.get_json(host, "/healthz"), {"status": "ok"})

        # A key indented one space less than its siblings.
        self.assertMalformedKeepsServing(
            app, host, "render.yaml",
            lambda p: rewrite(p, "    healthCheckPath:", "   healthCheckPath:"),
            "render.yaml:11:4")

    def test_render_invalid_value_names_its_place(self):
        app = self.slipway.copy_app("render-blueprint", "render-invalid")
        rewrite(os.path.join(app, "render.yaml"), "numInstances: 1", "numInstances: many")
        result = self.slipway.up(app)
        self.assertFailed(result)
        self.assertIn('error: render.yaml:12:19: "numInstances" must be an integer from 1 to 32 '
                      '(got many)', result.stderr)
        status, _ = self.slipway.http_get("greeter.render-invalid.localhost", "/")
        self.assertNotEqual(status, 200)

    # --- heroku ----------------------------------------------------------------------

    def test_heroku_app_json_and_procfile(self):
        app = self.slipway.copy_app("heroku-app")
        result = self.slipway.up(app)
        self.assertDeployed(result, "web", "heroku-app")
        self.assertIn('warning: app.json:17:28: "formation.web.size" is not supported and is '
                      "ignored", result.stderr)
        self.assertIn("warning: app.json:2:3: \"name\", \"description\", \"repository\", "
                      "\"keywords\" are informational", result.stderr)
        host = "web.heroku-app.localhost"
        body = self.assertStillServes(host)
        self.assertEqual(body["greeting"], "hello from app.json")
        self.assertEqual(body["service"], "web")
        self.assertTrue(body["has_secret"])
        # healthchecks.web (startup, path /health): probed there before it served.
        self.assertGreaterEqual(body["health_checks"], 1, body)
        # formation.web.quantity
        self.assertEqual(len(self.slipway.service_status("heroku-app")["replicas"]), 2)
        # The Procfile's release: line ran (its output is in the deploy's log).
        self.assertIn("release: nothing to migrate", result.stdout)

        # A missing comma between two members.
        self.assertMalformedKeepsServing(
            app, host, "app.json",
            lambda p: rewrite(p, '"keywords": ["python", "stdlib"],', '"keywords": ["python"]'),
            "app.json:6:7")


if __name__ == "__main__":
    unittest.main()
