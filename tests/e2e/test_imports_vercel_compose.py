"""Apps configured only by vercel.json or docker-compose.yml deploy and answer; what
Slipway does not support is named in a warning; a malformed file is a one-line error
with its position and changes nothing deployed; `slipway config show` names origins."""

import json
import os
import unittest

from harness import SlipwayTestCase


class ImportsVercelComposeTest(SlipwayTestCase):
    def test_vercel_static_site(self):
        app = self.slipway.copy_app("vercel-static")
        result = self.slipway.up(app)
        self.assertDeployed(result, "web", "vercel-static")
        # The routing rules are applied by the edge: no warning names them.
        self.assertNotIn("not applied", result.stderr)

        host = "web.vercel-static.localhost"
        status, body = self.slipway.http_get(host, "/")
        self.assertEqual(status, 200, body)
        self.assertIn("<h1>Hello from a vercel.json site</h1>", body)
        # Served from outputDirectory, after buildCommand ran.
        self.assertEqual(
            self.slipway.http_get(host, "/build.txt"),
            (200, "built by the vercel.json buildCommand\n"),
        )
        # cleanUrls: the page is at /about, and /about.html redirects there.
        status, body = self.slipway.http_get(host, "/about")
        self.assertEqual(status, 200, body)
        self.assertIn("About this site", body)
        status, headers, _ = self.slipway.http_request(host, "/about.html")
        self.assertEqual((status, headers["location"]), (308, "/about"))
        # redirects (permanent: 308), trailingSlash false, headers on every answer.
        status, headers, _ = self.slipway.http_request(host, "/home?x=1")
        self.assertEqual((status, headers["location"]), (308, "/?x=1"))
        status, headers, _ = self.slipway.http_request(host, "/about/")
        self.assertEqual((status, headers["location"]), (308, "/about"))
        self.assertEqual(headers["x-content-type-options"], "nosniff")

    def test_compose_app(self):
        app = self.slipway.copy_app("compose-app")
        result = self.slipway.up(app)
        self.assertDeployed(result, "web", "compose-app")
        self.assertIn(
            "docker-compose.yml:5:14: service \"web\": port 8000 in the command is replaced "
            "with $PORT",
            result.stderr,
        )
        self.assertIn(
            'docker-compose.yml:19:3: service "db" becomes postgres add-on "db"', result.stderr
        )

        host = "web.compose-app.localhost"
        answer = self.slipway.get_json(host, "/")
        # GREETING interpolated from the .env next to docker-compose.yml; the app listens
        # on the port Slipway gave it, not the compose file's 8000.
        self.assertEqual(answer["greeting"], "hello from the .env file")
        self.assertEqual(answer["env"], "production")
        self.assertNotEqual(answer["port"], "8000")
        self.assertTrue(answer["port"].isdigit(), answer)
        self.assertEqual(self.slipway.get_json(host, "/health"), {"status": "ok"})
        # A value from .env is a secret: encrypted in the state, masked when listed.
        for name in os.listdir(self.slipway.home):
            if name.startswith("state.db"):
                with open(os.path.join(self.slipway.home, name), "rb") as f:
                    self.assertNotIn(b"hello from the .env file", f.read(), name)
        listed = self.slipway.cli("variables", "list", cwd=app)
        self.assertEqual(listed.code, 0, str(listed))
        self.assertNotIn("hello from the .env file", listed.stdout)
        self.assertIn("production", listed.stdout)  # APP_ENV, a plain value, is shown

    def assertRefusedAndUnchanged(self, app, project, filename, broken, where):
        def ids():
            return [(d["id"], d["status"]) for d in self.slipway.deployments(project)]

        before = ids()
        with open(os.path.join(app, filename), "w") as f:
            f.write(broken)
        result = self.slipway.up(app)
        self.assertFailed(result)
        error_lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
        self.assertEqual(len(error_lines), 1, result.stderr)
        self.assertTrue(error_lines[0].startswith(f"error: {where}"), result.stderr)
        self.assertEqual(ids(), before)
        return result

    def test_malformed_files_change_nothing_deployed(self):
        compose = self.slipway.copy_app("compose-app", name="compose-broken")
        self.assertDeployed(self.slipway.up(compose), "web", "compose-broken")
        self.assertRefusedAndUnchanged(
            compose,
            "compose-broken",
            "docker-compose.yml",
            "services:\n  web:\n    build: ./app\n   command: python3 main.py\n",
            "docker-compose.yml:4:",
        )
        self.assertRefusedAndUnchanged(
            compose,
            "compose-broken",
            "docker-compose.yml",
            "services:\n  web:\n    build: ./app\n    restart: sometimes\n",
            "docker-compose.yml:4:14: \"restart\" must be",
        )
        self.assertEqual(
            self.slipway.get_json("web.compose-broken.localhost", "/health"), {"status": "ok"}
        )

        site = self.slipway.copy_app("vercel-static", name="vercel-broken")
        self.assertDeployed(self.slipway.up(site), "web", "vercel-broken")
        self.assertRefusedAndUnchanged(
            site,
            "vercel-broken",
            "vercel.json",
            '{\n  "outputDirectory": "public",\n  "cleanUrls": true,\n}\n',
            "vercel.json:4:1:",
        )
        status, body = self.slipway.http_get("web.vercel-broken.localhost", "/")
        self.assertEqual(status, 200, body)

    def test_config_show_names_origins(self):
        app = self.slipway.copy_app("compose-app", name="compose-show")
        shown = self.slipway.cli("config", "show", app)
        self.assertEqual(shown.code, 0, str(shown))
        self.assertRegex(
            shown.stdout,
            r'startCommand = "uvicorn main:app --host 0\.0\.0\.0 --port \$PORT" +# '
            r"docker-compose\.yml:5:14\n",
        )
        self.assertRegex(shown.stdout, r'project = "compose-show" +# directory name\n')
        self.assertRegex(shown.stdout, r'kind = "postgres" +# docker-compose\.yml:19:3\n')
        # The .env value is not printed.
        self.assertRegex(
            shown.stdout, r'GREETING = "\*\*\*" +# docker-compose\.yml:9:17 \(\.env\)'
        )
        self.assertNotIn("hello from the .env file", shown.stdout)

        as_json = self.slipway.cli("config", "show", "--json", "--all", app)
        self.assertEqual(as_json.code, 0, str(as_json))
        config = json.loads(as_json.stdout)
        web = config["services"]["web"]
        self.assertEqual(
            web["healthcheckPath"], {"value": "/health", "origin": "docker-compose.yml:14:13"}
        )
        self.assertEqual(web["keepReleases"], {"value": 10, "origin": "default"})
        self.assertEqual(config["addons"]["db"]["kind"], "postgres")

        with open(os.path.join(app, "docker-compose.yml"), "a") as f:
            f.write("  worker:\n    build: [not, a, context\n")
        broken = self.slipway.cli("config", "show", app)
        self.assertNotEqual(broken.code, 0, str(broken))
        self.assertEqual(broken.stdout, "")
        self.assertRegex(broken.stderr.strip(), r"^error: docker-compose\.yml:\d+:\d+: [^\n]+$")


if __name__ == "__main__":
    unittest.main()
