"""Environments: production and staging of the same app side by side, isolated, and
`slipway env list|create|delete`."""

import json
import os
import signal
import unittest

from harness import SlipwayTestCase, process_alive, wait_until

PROJECT = "envs"
PROD = "web.envs.localhost"
STAGING = "web.envs-staging.localhost"


def write_config(app, version, variables=None):
    lines = [
        f'project = "{PROJECT}"',
        "[services.web]",
        'healthcheckPath = "/health"',
        "healthcheckTimeout = 20",
        "[services.web.variables]",
        f'APP_VERSION = "{version}"',
    ]
    lines += [f'{k} = "{v}"' for k, v in (variables or {}).items()]
    with open(os.path.join(app, "slipway.toml"), "w") as f:
        f.write("\n".join(lines) + "\n")


class EnvironmentsTest(SlipwayTestCase):
    server_per_test = True

    def served(self, host):
        status, body = self.slipway.http_get(host, "/version")
        self.assertEqual(status, 200, f"{host}: {body}")
        return json.loads(body)

    def prod_state(self):
        """What production serves and from which deployment and process."""
        s = self.slipway.service_status(PROJECT)
        body = self.served(PROD)
        return s["active_deployment_id"], s["active_status"], body["version"], body["pid"]

    def env_deployments(self, env):
        path = f"/v1/projects/{PROJECT}/deployments?env={env}&limit=100"
        return self.slipway.api_get(path)["deployments"]

    def test_staging_beside_production_isolated_and_deleted(self):
        sw = self.slipway
        app = sw.copy_app("python-stdlib", PROJECT)
        write_config(app, "prod-1")
        self.assertDeployed(sw.up(app), "web", PROJECT)
        write_config(app, "staging-1")
        up = sw.up(app, "--env", "staging")
        self.assertEqual(up.code, 0, str(up))
        staging_url = f"http://{STAGING}:{sw.http_port}"
        self.assertIn(staging_url, up.last_line())

        self.assertEqual(self.served(STAGING)["version"], "staging-1")
        prod = self.prod_state()
        self.assertEqual(prod[1:3], ("ACTIVE", "prod-1"))

        # Both environments listed, with their URLs.
        listed = sw.cli("env", "list", cwd=app)
        self.assertEqual(listed.code, 0, str(listed))
        rows = [line.split() for line in listed.stdout.splitlines()]
        self.assertIn(["production", "web", "ACTIVE", sw.url("web", PROJECT)], rows, listed.stdout)
        self.assertIn(["staging", "web", "ACTIVE", staging_url], rows, listed.stdout)
        # Outside any app directory, status lists every project and environment.
        status = sw.cli("status")
        self.assertEqual(status.code, 0, str(status))
        self.assertIn(f"Project {PROJECT}\n", status.stdout)
        self.assertIn(f"Project {PROJECT} (staging)\n", status.stdout)
        self.assertIn(staging_url, status.stdout)

        # Deploy, roll back and crash staging: production does not move.
        write_config(app, "staging-2")
        self.assertEqual(sw.up(app, "--env", "staging").code, 0)
        self.assertEqual(self.served(STAGING)["version"], "staging-2")
        back = sw.cli("rollback", "--env", "staging", cwd=app)
        self.assertEqual(back.code, 0, str(back))
        self.assertEqual(self.served(STAGING)["version"], "staging-1")
        write_config(app, "staging-3", {"HEALTH_FAIL": "1"})
        self.assertFailed(sw.up(app, "--env", "staging"))
        self.assertEqual(self.served(STAGING)["version"], "staging-1")
        staging_pid = self.served(STAGING)["pid"]
        os.kill(staging_pid, signal.SIGKILL)
        wait_until(
            lambda: self.served(STAGING)["pid"] != staging_pid, 30, "staging's replica restarted"
        )
        self.assertEqual(self.prod_state(), prod)

        # Deleting: refused without --yes when not on a terminal, and for production.
        refused = sw.cli("env", "delete", "staging", cwd=app)
        self.assertFailed(refused)
        self.assertIn("--yes", refused.stderr)
        self.assertEqual(self.served(STAGING)["version"], "staging-1")
        production = sw.cli("env", "delete", "production", "--yes", cwd=app)
        self.assertFailed(production)
        self.assertIn("production environment cannot be deleted", production.stderr)

        staging_ids = [d["id"] for d in self.env_deployments("staging")]
        self.assertGreaterEqual(len(staging_ids), 4)
        staging_pid = self.served(STAGING)["pid"]
        deleted = sw.cli("env", "delete", "staging", "--yes", cwd=app)
        self.assertEqual(deleted.code, 0, str(deleted))

        self.assertEqual(sw.http_get(STAGING, "/version")[0], 404)
        self.assertFalse(process_alive(staging_pid), "staging's app still runs")
        sw.wait_app_groups(1)  # production's only
        self.assertEqual(self.prod_state(), prod)
        for dep_id in staging_ids:
            for path in (f"logs/deployments/{dep_id}", f"releases/{dep_id}"):
                self.assertFalse(os.path.exists(os.path.join(sw.home, path)), path)
        listed = sw.cli("env", "list", cwd=app)
        self.assertNotIn("staging", listed.stdout)
        gone = sw.cli("deployments", "--env", "staging", cwd=app)
        self.assertFailed(gone)

    def test_create_from_copies_services_and_names_clash(self):
        sw = self.slipway
        app = sw.copy_app("python-stdlib", PROJECT)
        write_config(app, "prod-1")
        self.assertDeployed(sw.up(app), "web", PROJECT)
        set_var = sw.cli("variables", "set", "API_KEY=copied-with-the-environment", cwd=app)
        self.assertEqual(set_var.code, 0, str(set_var))
        created = sw.cli("env", "create", "preview", "--from", "production", cwd=app)
        self.assertEqual(created.code, 0, str(created))
        # The variables come along (still secrets); changing them in one environment leaves
        # the other alone.
        copied = sw.cli("variables", "list", "--env", "preview", "--reveal", cwd=app)
        self.assertIn("copied-with-the-environment", copied.stdout, str(copied))
        changed = sw.cli("variables", "set", "--env", "preview", "API_KEY=preview-only", cwd=app)
        self.assertEqual(changed.code, 0, str(changed))
        production = sw.cli("variables", "list", "--reveal", cwd=app)
        self.assertIn("copied-with-the-environment", production.stdout, str(production))
        self.assertNotIn("preview-only", production.stdout)
        listed = sw.cli("env", "list", cwd=app)
        self.assertIn(
            ["preview", "web", "NOT", "DEPLOYED", f"http://web.envs-preview.localhost:{sw.http_port}"],
            [line.split() for line in listed.stdout.splitlines()],
            listed.stdout,
        )
        again = sw.cli("env", "create", "preview", cwd=app)
        self.assertFailed(again)
        self.assertIn('already has an environment "preview"', again.stderr)
        bad = sw.cli("env", "create", "Bad_Name", cwd=app)
        self.assertFailed(bad)
        empty = sw.cli("env", "create", "qa", cwd=app)
        self.assertEqual(empty.code, 0, str(empty))
        self.assertEqual(sw.cli("env", "delete", "qa", "--yes", cwd=app).code, 0)
        missing = sw.cli("env", "delete", "qa", "--yes", cwd=app)
        self.assertFailed(missing)
        self.assertIn('no environment "qa"', missing.stderr)


if __name__ == "__main__":
    unittest.main()
