"""The CLI's read commands, and the errors a user meets before anything deploys."""

import os
import re
import unittest

from harness import Slipway, SlipwayTestCase, free_ports

BUILD_MARKER = "build-marker-7f3a"

APP_TOML = f"""\
[services.web]
buildCommand = "echo {BUILD_MARKER}"
healthcheckPath = "/health"
"""


def row_of(table, word):
    """The first line of `table` containing `word` as a whole word."""
    for line in table.splitlines():
        if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", line):
            return line
    return None


class CliTest(SlipwayTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # node-hello with a build step of our own; project "cli-app" (its directory).
        cls.app = cls.slipway.copy_app("node-hello", name="cli-app")
        with open(os.path.join(cls.app, "slipway.toml"), "w") as f:
            f.write(APP_TOML)
        cls.deploy = cls.slipway.up(cls.app)

    def setUp(self):
        super().setUp()
        self.assertDeployed(self.deploy, "web", "cli-app")

    def deployment_id(self):
        """The id the app was started with, from its own log line."""
        logs = self.slipway.cli("logs", "web", cwd=self.app)
        self.assertEqual(logs.code, 0, str(logs))
        match = re.search(r"node-hello listening on port \d+ \(deployment (\S+)\)", logs.stdout)
        self.assertIsNotNone(match, f"no start line in the runtime log\n{logs}")
        return match.group(1)

    def test_status(self):
        deployment = self.deployment_id()
        result = self.slipway.cli("status", cwd=self.app)
        self.assertEqual(result.code, 0, str(result))
        row = row_of(result.stdout, "web")
        self.assertIsNotNone(row, str(result))
        self.assertRegex(row, rf"(?<![\w-]){re.escape(deployment)}(?![\w-])")
        self.assertIn("ACTIVE", row)
        self.assertIn(self.slipway.url("web", "cli-app"), row)

    def test_status_outside_an_app_lists_every_project(self):
        result = self.slipway.cli("status", cwd=self.slipway.root)
        self.assertEqual(result.code, 0, str(result))
        self.assertIn("cli-app", result.stdout)
        self.assertIn(self.slipway.url("web", "cli-app"), result.stdout)

    def test_logs_and_build_logs(self):
        runtime = self.slipway.cli("logs", "web", cwd=self.app)
        self.assertEqual(runtime.code, 0, str(runtime))
        self.assertIn("node-hello listening on port", runtime.stdout)
        self.assertNotIn(BUILD_MARKER, runtime.stdout)

        build = self.slipway.cli("logs", "--build", "web", cwd=self.app)
        self.assertEqual(build.code, 0, str(build))
        self.assertIn(BUILD_MARKER, build.stdout)
        self.assertNotIn("node-hello listening on port", build.stdout)

    def test_deployments_history(self):
        app = self.slipway.copy_app("node-hello", name="cli-history")
        first = self.slipway.up(app)
        self.assertDeployed(first, "web", "cli-history")
        with open(os.path.join(app, "slipway.toml"), "w") as f:
            f.write('[services.web]\nbuildCommand = "exit 3"\n')
        self.assertFailed(self.slipway.up(app))

        result = self.slipway.cli("deployments", "web", cwd=app)
        self.assertEqual(result.code, 0, str(result))
        self.assertEqual(len(re.findall(r"\bACTIVE\b", result.stdout)), 1, str(result))
        self.assertEqual(len(re.findall(r"\bBUILD_FAILED\b", result.stdout)), 1, str(result))
        logs = self.slipway.cli("logs", "web", cwd=app)
        match = re.search(r"\(deployment (\S+)\)", logs.stdout)
        self.assertIsNotNone(match, str(logs))
        self.assertIn("ACTIVE", row_of(result.stdout, match.group(1)) or "", str(result))

    def test_no_daemon(self):
        (dead_port,) = free_ports(1)
        result = self.slipway.cli(
            "status", cwd=self.app, env={"SLIPWAY_URL": f"http://127.0.0.1:{dead_port}"}
        )
        self.assertNotEqual(result.code, 0, str(result))
        self.assertIn("slipway server", result.stderr)

    def test_no_daemon_ever_started(self):
        with Slipway("never-started") as fresh:  # empty data dir, no server
            result = fresh.cli("status", cwd=self.app)
        self.assertNotEqual(result.code, 0, str(result))
        self.assertIn("slipway server", result.stderr)

    def test_wrong_token(self):
        result = self.slipway.cli("status", cwd=self.app, env={"SLIPWAY_TOKEN": "wrong"})
        self.assertNotEqual(result.code, 0, str(result))
        self.assertIn("token", result.stderr.lower())
        self.assertNotIn("ACTIVE", result.stdout)

    def test_nothing_to_deploy(self):
        app = self.slipway.copy_app("empty-dir")
        result = self.slipway.up(app)
        self.assertFailed(result)
        self.assertIn("nothing to deploy", result.stderr)

    def test_bad_toml_names_line_and_key(self):
        app = self.slipway.copy_app("bad-toml")
        with open(os.path.join(app, "slipway.toml")) as f:
            line = next(i for i, text in enumerate(f, 1) if text.startswith("healthcheck_path"))
        result = self.slipway.up(app)
        self.assertFailed(result)
        self.assertIn(f"slipway.toml:{line}", result.stderr)
        self.assertIn("healthcheck_path", result.stderr)


if __name__ == "__main__":
    unittest.main()
