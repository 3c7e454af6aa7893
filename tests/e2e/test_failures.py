"""A failed deploy says why, and the service's previous deployment keeps serving."""

import os
import re
import unittest

from harness import SlipwayTestCase


def rewrite_toml(app_dir, edit):
    """Rewrites the app's slipway.toml through `edit(text) -> text`; returns the old text."""
    path = os.path.join(app_dir, "slipway.toml")
    with open(path) as f:
        old = f.read()
    new = edit(old)
    assert new != old, "the edit changed nothing"
    with open(path, "w") as f:
        f.write(new)
    return old


class FailuresTest(SlipwayTestCase):
    server_per_test = True  # each test counts the app processes of its server

    def deploy_good_version(self, app, host):
        self.assertDeployed(self.slipway.up(app), "web", os.path.basename(app))
        status, body = self.slipway.http_get(host, "/")
        self.assertEqual(status, 200, body)
        self.assertIn("deployment ", body)  # the app names the deployment serving it
        return body

    def assertStillServes(self, host, body):
        # Checked several times: the route must stay on the old replica, not flap.
        for _ in range(5):
            self.assertEqual(self.slipway.http_get(host, "/"), (200, body))
        # Only the previous deployment's replica is left running.
        self.slipway.wait_app_groups(1)

    def test_build_failure_names_the_step_and_keeps_previous(self):
        app = self.slipway.copy_app("broken-build")
        host = "web.broken-build.localhost"
        failing = rewrite_toml(app, lambda t: re.sub(r"(?m)^buildCommand = .*\n", "", t))
        good_body = self.deploy_good_version(app, host)

        with open(os.path.join(app, "slipway.toml"), "w") as f:
            f.write(failing)
        result = self.slipway.up(app)

        self.assertFailed(result)
        self.assertRegex(result.stderr, r'build step ".+" failed with exit code 1')
        self.assertIn("error: syntax error in app.js", result.stderr)  # the build log's tail
        self.assertStillServes(host, good_body)

    def test_health_check_timeout_shows_app_log_and_keeps_previous(self):
        app = self.slipway.copy_app("never-healthy")
        host = "web.never-healthy.localhost"
        failing = rewrite_toml(
            app, lambda t: t.replace('healthcheckPath = "/health"', 'healthcheckPath = "/"')
        )
        good_body = self.deploy_good_version(app, host)

        with open(os.path.join(app, "slipway.toml"), "w") as f:
            f.write(failing)
        result = self.slipway.up(app)

        self.assertFailed(result)
        self.assertIn("health check /health timed out after 5s", result.stderr)
        self.assertIn("never-healthy fixture started on port", result.stderr)  # the app's log
        self.assertStillServes(host, good_body)

    def test_first_deploy_failing_its_build_leaves_nothing_routed(self):
        app = self.slipway.copy_app("broken-build")
        result = self.slipway.up(app)

        self.assertFailed(result)
        self.assertRegex(result.stderr, r'build step ".+" failed with exit code 1')
        status, _ = self.slipway.http_get("web.broken-build.localhost", "/")
        self.assertIn(status, (404, 502))  # unknown host, or a route without a replica
        self.assertEqual(self.slipway.live_app_groups(), [])


if __name__ == "__main__":
    unittest.main()
