"""Restart policies: ON_FAILURE, ALWAYS and NEVER, with examples/python-stdlib exiting on cue
(EXIT_AFTER_SECONDS / EXIT_CODE) after its deploy went live."""

import time
import unittest

from harness import SlipwayTestCase, process_alive, wait_until, write_slipway_toml

EXIT_LINE = "exiting with code {code} after {seconds}s (EXIT_AFTER_SECONDS)"
# Longer than the backoff before a first restart (0.5 s) by a wide margin.
NO_RESTART_OBSERVED_FOR = 5


class RestartPolicyTest(SlipwayTestCase):
    server_per_test = True  # each test counts the app processes of its server

    def deploy(self, policy, exit_code, exit_after=3, max_retries=None):
        project = f"restart-{policy.lower().replace('_', '-')}"
        self.project, self.host = project, f"web.{project}.localhost"
        self.app = self.slipway.copy_app("python-stdlib", project)
        keys = {"healthcheckPath": "/health", "restartPolicyType": policy}
        if max_retries is not None:
            keys["restartPolicyMaxRetries"] = max_retries
        write_slipway_toml(
            self.app,
            project,
            keys=keys,
            variables={
                "APP_VERSION": "v1",
                "EXIT_AFTER_SECONDS": exit_after,
                "EXIT_CODE": exit_code,
            },
        )
        self.assertDeployed(self.slipway.up(self.app), "web", project)
        self.dep = self.slipway.deployments(project)[0]
        self.assertEqual(self.dep["status"], "ACTIVE", self.dep)
        replicas = self.slipway.service_status(project)["replicas"]
        self.assertEqual(len(replicas), 1, replicas)
        return replicas[0]

    def replica(self):
        replicas = self.slipway.service_status(self.project)["replicas"]
        self.assertEqual(len(replicas), 1, replicas)
        return replicas[0]

    def assertRestarted(self, first):
        """The replica's process exited and a new one serves in its place."""

        def restarted():
            r = self.replica()
            return r["restarts"] >= 1 and r["state"] == "running" and r["pid"] != first["pid"]

        try:
            wait_until(restarted, 30, "the replica to be restarted")
        except AssertionError as e:
            self.fail(f"{e}\n{self.slipway.service_status(self.project)}\n{self.server_log()}")
        self.assertFalse(process_alive(first["pid"]), "the first process should have exited")
        wait_until(lambda: self.slipway.http_get(self.host, "/")[0] == 200, 30, "it to serve again")
        # One process at a time (it may be between two runs right now, never two at once).
        self.assertLessEqual(len(self.slipway.live_app_groups()), 1)
        self.assertEqual(self.slipway.deployment(self.dep["id"])["status"], "ACTIVE")

    def assertNotRestarted(self, first):
        """The replica's process exited and nothing replaces it (observed for a while)."""
        wait_until(lambda: not process_alive(first["pid"]), 30, "the app to exit")
        wait_until(
            lambda: all(
                r["state"] != "running"
                for r in self.slipway.service_status(self.project)["replicas"]
            ),
            10,
            "the status to show the replica is no longer running",
        )
        deadline = time.monotonic() + NO_RESTART_OBSERVED_FOR
        while time.monotonic() < deadline:
            self.assertEqual(self.slipway.live_app_groups(), [], "the app was started again")
            for r in self.slipway.service_status(self.project)["replicas"]:
                self.assertEqual(r["restarts"], 0, r)
                self.assertNotEqual(r["state"], "running", r)
            time.sleep(0.2)  # observing that nothing happens, not waiting for something

    def assertCrashedWithLog(self, code, seconds):
        def crashed():
            record = self.slipway.deployment(self.dep["id"])
            return record if record["status"] == "CRASHED" else None

        try:
            record = wait_until(crashed, 60, f"deployment {self.dep['id']} to be CRASHED")
        except AssertionError as e:
            self.fail(f"{e}\n{self.slipway.deployments(self.project)[:2]}\n{self.server_log()}")
        self.assertIn(EXIT_LINE.format(code=code, seconds=seconds), record["error"])
        self.assertEqual(self.slipway.live_app_groups(), [])
        listing = self.slipway.cli("deployments", cwd=self.app)
        self.assertRegex(listing.stdout, rf"(?m)^{self.dep['id']}\s+web\s+CRASHED", str(listing))
        return record

    def app_starts(self):
        """How many times the app started, by its log."""
        logs = self.slipway.cli(
            "logs", "web", "--deployment", str(self.dep["id"]), "-n", "1000", cwd=self.app
        )
        self.assertEqual(logs.code, 0, str(logs))
        return logs.stdout.count("listening on port")

    # --- tests ---------------------------------------------------------------------------

    def test_on_failure_restarts_a_failed_exit(self):
        first = self.deploy("ON_FAILURE", exit_code=3)
        self.assertRestarted(first)

    def test_on_failure_leaves_a_clean_exit_alone(self):
        first = self.deploy("ON_FAILURE", exit_code=0)
        self.assertNotRestarted(first)

    def test_on_failure_gives_up_after_max_retries(self):
        self.deploy("ON_FAILURE", exit_code=3, exit_after=2, max_retries=2)
        self.assertCrashedWithLog(code=3, seconds=2)
        self.assertEqual(self.app_starts(), 3)  # the first start and 2 retries
        self.assertNotEqual(self.slipway.http_get(self.host, "/")[0], 200)

    def test_always_restarts_a_clean_exit(self):
        first = self.deploy("ALWAYS", exit_code=0)
        self.assertRestarted(first)

    def test_never_restarts_and_the_deployment_crashes(self):
        first = self.deploy("NEVER", exit_code=3)
        self.assertNotRestarted(first)
        self.assertCrashedWithLog(code=3, seconds=3)
        self.assertEqual(self.app_starts(), 1)


if __name__ == "__main__":
    unittest.main()
