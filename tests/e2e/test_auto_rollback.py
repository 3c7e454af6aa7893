"""Automatic rollback, superseded deploys, and a daemon killed in the middle of a deploy.

Each trigger test deploys a good version (v1) of examples/python-stdlib, then a second
version that misbehaves on cue (health check failing after a while, 5xx answers, slow
answers, too much memory), with small thresholds and windows in slipway.toml. The second
deployment must end ROLLED_BACK with the reason shown by `slipway deployments` and
`slipway status`, and v1 must serve again.
"""

import re
import threading
import time
import unittest

from harness import SlipwayTestCase, wait_until, write_slipway_toml
from load import Load, Switch

UNFINISHED = ("QUEUED", "BUILDING", "DEPLOYING")
# How long a rollback is watched for staying put (longer than a trigger takes to fire).
STABLE_FOR = 8


def config(app, project, version, variables=None, auto_rollback=None, **keys):
    """slipway.toml for one deploy of `version`; with `auto_rollback` rules, health probes
    every second during the watch window."""
    if auto_rollback:
        keys = {"healthcheckInterval": 1, "drainingSeconds": 5, **keys}
    write_slipway_toml(
        app,
        project,
        keys={"healthcheckPath": "/health", "healthcheckTimeout": 30, **keys},
        variables={"APP_VERSION": version, **(variables or {})},
        tables={"autoRollback": {"enabled": True, **auto_rollback}} if auto_rollback else None,
    )


def served_version(slipway, host):
    status, body = slipway.http_get(host, "/version", timeout=10)
    match = re.search(r'"version": "([^"]*)"', body)
    return match.group(1) if status == 200 and match else None


class Traffic:
    """Requests sent to a host in the background (what makes the edge's metrics move)."""

    def __init__(self, slipway, host, threads=4, pause=0.05):
        self.slipway, self.host, self.pause = slipway, host, pause
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self):
        while not self._stop.is_set():
            try:
                self.slipway.http_get(self.host, "/", timeout=10)
            except OSError:
                pass  # what the app answers is the test's business, not the traffic's
            self._stop.wait(self.pause)

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(15)


class AutoRollbackTest(SlipwayTestCase):
    def deploy(self, project, version, variables=None, auto_rollback=None, **keys):
        """Deploys examples/python-stdlib as `project` at `version`; returns its record."""
        app = self.apps.get(project) or self.slipway.copy_app("python-stdlib", project)
        self.apps[project] = app
        config(app, project, version, variables, auto_rollback, **keys)
        result = self.slipway.up(app)
        self.assertDeployed(result, "web", project)
        record = self.slipway.deployments(project)[0]
        self.assertEqual(record["status"], "ACTIVE", f"{record}\n{result}")
        return record

    def setUp(self):
        super().setUp()
        self.apps = {}

    def check_rolled_back(self, project, good, bad, reason_pattern):
        """`bad` (a deployment record) becomes ROLLED_BACK with an automatic-rollback
        reason matching `reason_pattern`, shown by the CLI; `good`'s release (v1) serves
        again through one new deployment, and stays (no rollback of the rollback)."""
        host = f"web.{project}.localhost"

        def rolled_back():
            record = self.slipway.deployment(bad["id"])
            return record if record["status"] == "ROLLED_BACK" else None

        try:
            record = wait_until(rolled_back, 90, f"deployment {bad['id']} to be ROLLED_BACK")
        except AssertionError as e:
            self.fail(f"{e}\n{self.slipway.deployments(project)[:3]}\n{self.server_log()}")
        reason = record["error"]
        self.assertRegex(reason, r"^automatic rollback: ", record)
        self.assertRegex(reason, reason_pattern, record)

        def newer():
            return [d for d in self.slipway.deployments(project) if d["id"] > bad["id"]]

        wait_until(lambda: served_version(self.slipway, host) == "v1", 30, "v1 to serve again")
        def rollback_active():
            after = newer()
            if [d["status"] for d in after] != ["ACTIVE"]:
                seen = [(d["id"], d["status"], d["release_id"], d["source"]) for d in after]
                raise AssertionError(f"{len(seen)} deployment(s) after #{bad['id']}: {seen[:6]}")
            return True

        wait_until(rollback_active, 30, "the rollback to be the only deployment after v2, ACTIVE")
        # And it stays so for longer than the triggers take to fire: the requests v2 was
        # still answering at the switch must not roll back the rollback.
        deadline = time.monotonic() + STABLE_FOR
        while time.monotonic() < deadline:
            self.assertEqual(served_version(self.slipway, host), "v1")
            after = newer()
            self.assertEqual(
                [(d["status"], d["release_id"]) for d in after],
                [("ACTIVE", good["release_id"])],
                f"one deployment after the rolled-back one, serving v1's release: {after}",
            )
            time.sleep(0.2)  # observing that nothing changes, not waiting for something

        app = self.apps[project]
        listing = self.slipway.cli("deployments", cwd=app)
        self.assertEqual(listing.code, 0, str(listing))
        row = [line for line in listing.stdout.splitlines() if line.split()[:1] == [str(bad["id"])]]
        self.assertEqual(len(row), 1, str(listing))
        self.assertIn("ROLLED_BACK", row[0])
        self.assertIn("automatic rollback", row[0])
        status = self.slipway.cli("status", cwd=app)
        self.assertEqual(status.code, 0, str(status))
        # Status names the rolled-back deployment and says why.
        note = [line for line in status.stdout.splitlines() if reason.splitlines()[0] in line]
        self.assertEqual(len(note), 1, str(status))
        self.assertRegex(note[0], rf"#?\b{bad['id']}\b", str(status))
        return reason

    def test_failed_health_checks_roll_back(self):
        project = "rb-health"
        rules = {"watchSeconds": 120, "failedHealthChecks": 2}
        good = self.deploy(project, "v1", auto_rollback=rules)
        bad = self.deploy(project, "v2", {"FAIL_AFTER_SECONDS": 4}, rules)
        self.check_rolled_back(project, good, bad, r"(?i)health")

    def test_5xx_rate_rolls_back(self):
        project = "rb-errors"
        rules = {
            "watchSeconds": 120,
            "errorRatePercent": 10,
            "errorRateWindowSeconds": 10,
            "errorRateMinRequests": 10,
        }
        good = self.deploy(project, "v1", auto_rollback=rules)
        with Traffic(self.slipway, f"web.{project}.localhost"):
            bad = self.deploy(project, "v2", {"ERROR_RATE": "0.5"}, rules)
            reason = self.check_rolled_back(project, good, bad, r"5xx rate \d+(\.\d+)?%")
        self.assertIn("above 10", reason)

    def test_5xx_rollback_is_not_undone_by_answers_still_in_flight(self):
        # v2 is slow as well as failing: many of its 5xx answers are still on their way
        # when the rollback switches back to v1. They are v2's, not the rollback's.
        project = "rb-inflight"
        rules = {
            "watchSeconds": 120,
            "errorRatePercent": 10,
            "errorRateWindowSeconds": 10,
            "errorRateMinRequests": 10,
        }
        good = self.deploy(project, "v1", auto_rollback=rules)
        with Traffic(self.slipway, f"web.{project}.localhost", threads=8):
            bad = self.deploy(project, "v2", {"ERROR_RATE": "0.5", "SLOW_MS": 400}, rules)
            self.check_rolled_back(project, good, bad, r"5xx rate")

    def test_a_fix_is_not_rolled_back_for_the_old_versions_errors(self):
        # v1 answers every request with a 500 after 1.5 s (its health check passes): a
        # broken release. v2 fixes it. The 500s v1 is still finishing after the switch
        # are v1's: they must not count against v2 and bring v1 back.
        project = "rb-fix"
        rules = {
            "watchSeconds": 120,
            "errorRatePercent": 5,
            "errorRateWindowSeconds": 10,
            "errorRateMinRequests": 10,
        }
        self.deploy(project, "v1", {"ERROR_RATE": "1", "SLOW_MS": 1500})
        host = f"web.{project}.localhost"
        with Traffic(self.slipway, host, threads=8, pause=0.2):
            wait_until(
                lambda: self.slipway.http_get(host, "/")[0] == 500, 30, "v1 to answer 500s"
            )
            fix = self.deploy(project, "v2", None, rules)
            deadline = time.monotonic() + STABLE_FOR
            while time.monotonic() < deadline:
                record = self.slipway.deployment(fix["id"])
                self.assertEqual(record["status"], "ACTIVE", record)
                self.assertEqual(served_version(self.slipway, host), "v2")
                time.sleep(0.2)  # observing that nothing changes, not waiting for something
        self.assertEqual(self.slipway.deployments(project)[0]["id"], fix["id"])

    def test_p95_latency_rolls_back(self):
        project = "rb-latency"
        rules = {
            "watchSeconds": 120,
            "p95Ms": 200,
            "errorRateWindowSeconds": 10,
            "errorRateMinRequests": 10,
        }
        good = self.deploy(project, "v1", auto_rollback=rules)
        with Traffic(self.slipway, f"web.{project}.localhost"):
            bad = self.deploy(project, "v2", {"SLOW_MS": 500}, rules)
            self.check_rolled_back(project, good, bad, r"p95")

    def test_memory_limit_rolls_back(self):
        project = "rb-memory"
        rules = {"watchSeconds": 120, "memoryMb": 80}
        good = self.deploy(project, "v1", auto_rollback=rules)
        bad = self.deploy(project, "v2", {"LEAK_MB": 150}, rules)
        self.check_rolled_back(project, good, bad, r"(?i)memory")

    def test_a_queued_deploy_is_skipped_when_a_newer_one_arrives(self):
        project = "supersede"
        app = self.slipway.copy_app("python-stdlib", project)
        self.apps[project] = app
        self.deploy(project, "v1")
        ids = {}
        for version, variables in (("v2", {"HEALTHY_AFTER_SECONDS": 5}), ("v3", {}), ("v4", {})):
            config(app, project, version, variables)
            result = self.slipway.up(app, "--detach")
            self.assertEqual(result.code, 0, str(result))
            found = re.findall(r"deployment (\d+)", result.stdout)
            self.assertEqual(len(found), 1, str(result))
            ids[version] = int(found[0])

        def finished(version):
            record = self.slipway.deployment(ids[version])
            return record if record["status"] not in UNFINISHED else None

        last = wait_until(lambda: finished("v4"), 120, "the last deploy to finish")
        self.assertEqual(last["status"], "ACTIVE", last)
        skipped = self.slipway.deployment(ids["v3"])
        self.assertEqual(skipped["status"], "SKIPPED", skipped)
        self.assertEqual(served_version(self.slipway, f"web.{project}.localhost"), "v4")
        self.assertNotEqual(self.slipway.deployment(ids["v2"])["status"], "ACTIVE")
        listing = self.slipway.cli("deployments", cwd=app)
        self.assertRegex(listing.stdout, rf"(?m)^{ids['v3']}\s+web\s+SKIPPED")


class KilledMidDeployTest(SlipwayTestCase):
    server_per_test = True  # kills its server

    def test_daemon_killed_mid_deploy_keeps_serving_and_settles_the_deploy(self):
        project = "killed"
        host = f"web.{project}.localhost"
        app = self.slipway.copy_app("python-stdlib", project)
        config(app, project, "v1")
        start = time.monotonic()
        self.assertDeployed(self.slipway.up(app), "web", project)
        switches = [Switch("deploy v1", start, time.monotonic(), "v1")]

        load = Load(self.slipway.http_port, host, keepalive=2, fresh=1, slow=1).start()
        try:
            wait_until(lambda: load.count_ok() >= 10, 30, "the load to get going")
            config(app, project, "v2", {"HEALTHY_AFTER_SECONDS": 20}, healthcheckTimeout=60)
            result = self.slipway.up(app, "--detach")
            self.assertEqual(result.code, 0, str(result))
            v2 = int(re.findall(r"deployment (\d+)", result.stdout)[0])
            wait_until(
                lambda: self.slipway.deployment(v2)["status"] == "DEPLOYING"
                and len(self.slipway.live_app_groups()) == 2,
                60,
                "v2 to be deploying with its replica started",
            )

            self.slipway.kill9()
            killed = time.monotonic()
            # Requests go on while the control plane is down...
            wait_until(
                lambda: sum(1 for r in load.snapshot() if r.start > killed) >= 20,
                30,
                "requests while the server is down",
            )
            self.slipway.start()
            restarted = time.monotonic()

            def settled():
                record = self.slipway.deployment(v2)
                return record if record["status"] not in UNFINISHED else None

            record = wait_until(settled, 120, f"deployment {v2} to finish after the restart")
            settled_at = time.monotonic()
            wait_until(lambda: load.count_ok(since=settled_at) >= 10, 30, "requests after it")
        finally:
            load.stop()

        summary = load.summary()
        if load.failures():
            self.fail(f"requests failed across the kill and restart of the daemon:\n{summary}")
        during = [r for r in load.snapshot() if killed < r.start < restarted]
        self.assertGreaterEqual(len(during), 20, summary)
        if record["status"] == "ACTIVE":  # the restarted daemon finished the deploy
            switches.append(Switch("deploy v2", killed, settled_at, "v2"))
            never = []
        else:
            self.assertEqual(record["status"], "DEPLOY_FAILED", record)
            self.assertTrue(record["error"].strip(), f"no reason given: {record}")
            never = ["v2"]
        self.assertEqual(load.check_versions(switches, never), [], summary)
        self.assertTrue(all(r.version == "v1" for r in during), summary)
        self.slipway.wait_app_groups(1)  # no replica of v2 left over (or of v1, if v2 won)


if __name__ == "__main__":
    unittest.main()
