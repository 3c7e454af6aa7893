"""Zero-downtime deploys (Slipway issue 4, "Done when 1").

Under continuous load (keep-alive and fresh connections, plus slow requests that outlast
each switch), a series of deploys, failed deploys, rollbacks and scale changes drops no
request, and once a command has returned success no request started afterwards is
answered by an older version. Then the same load across restarts of the daemon.
"""

import time
import unittest

from harness import SlipwayTestCase, wait_until, write_slipway_toml
from load import Load, Switch

PROJECT = "zdt"
HOST = f"web.{PROJECT}.localhost"


def config(app, version, keys, **extra_variables):
    """The example app's slipway.toml for one deploy of `version`; a failing deploy gets
    a short health check timeout so that it fails fast."""
    failing = bool(extra_variables)
    write_slipway_toml(
        app,
        PROJECT,
        keys={"healthcheckPath": "/health", "healthcheckTimeout": 3 if failing else 30, **keys},
        variables={"APP_VERSION": version, **extra_variables},
    )


# What the first test deploys with: a migration per deploy; old replicas get 10 s to drain.
FULL_KEYS = {"preDeployCommand": "python3 migrate.py", "drainingSeconds": 10}


class ZeroDowntimeTest(SlipwayTestCase):
    server_per_test = True

    def setUp(self):
        super().setUp()
        self.app = self.slipway.copy_app("python-stdlib", PROJECT)
        self.ids = {}  # version -> deployment id
        self.switches = []  # completed operations that (re)set the version served
        self.never = []  # versions of deploys that failed: they must never answer
        self.load = None
        self.keys = {}  # more service keys for every deploy

    def fail_with(self, message, result=None):
        parts = [message]
        if result is not None:
            parts.append(str(result))
        if self.load is not None:
            parts.append(self.load.summary())
        parts.append(self.server_log())
        self.fail("\n".join(parts))

    # --- operations ----------------------------------------------------------------------

    def deploy(self, version):
        config(self.app, version, self.keys)
        start = time.monotonic()
        result = self.slipway.up(self.app)
        end = time.monotonic()
        if result.code != 0:
            self.fail_with(f"deploy of {version} failed", result)
        latest = self.slipway.deployments(PROJECT)[0]
        self.assertEqual(latest["status"], "ACTIVE", f"{latest}\n{result}")
        self.ids[version] = latest["id"]
        self.switches.append(Switch(f"deploy {version}", start, end, version))

    def failed_deploy(self, version, **variables):
        config(self.app, version, self.keys, **variables)
        result = self.slipway.up(self.app)
        self.never.append(version)
        self.assertNotEqual(result.code, 0, f"the deploy of {version} should fail\n{result}")
        latest = self.slipway.deployments(PROJECT)[0]
        self.assertEqual(latest["status"], "DEPLOY_FAILED", f"{latest}\n{result}")
        return result

    def rollback(self, to_version=None, expect=None):
        """`slipway rollback web [--to ID]`; `expect`: the version it must bring back."""
        args = ["rollback", "web"]
        if to_version is not None:
            args += ["--to", str(self.ids[to_version])]
            expect = to_version
        before = self.slipway.deployments(PROJECT)[0]["id"]
        start = time.monotonic()
        result = self.slipway.cli(*args, cwd=self.app)
        end = time.monotonic()
        if result.code != 0:
            self.fail_with(f"rollback to {expect} failed", result)
        latest = self.slipway.deployments(PROJECT)[0]
        # A rollback is a new deployment record reusing the earlier release.
        self.assertGreater(latest["id"], before, f"no new deployment record\n{result}")
        self.assertEqual(latest["status"], "ACTIVE", f"{latest}\n{result}")
        self.assertEqual(
            latest["release_id"],
            self.slipway.deployment(self.ids[expect])["release_id"],
            f"the rollback does not reuse the release of {expect}",
        )
        self.switches.append(Switch(f"rollback to {expect}", start, end, expect))

    def scale(self, replicas):
        version = self.switches[-1].version
        start = time.monotonic()
        result = self.slipway.cli("scale", f"web={replicas}", cwd=self.app)
        end = time.monotonic()
        if result.code != 0:
            self.fail_with(f"scale web={replicas} failed", result)
        status = self.slipway.service_status(PROJECT)
        running = [r for r in status["replicas"] if r["state"] == "running"]
        self.assertEqual(len(running), replicas, f"{status}\n{result}")
        self.switches.append(Switch(f"scale web={replicas}", start, end, version))

    def assertServes(self, version):
        status, body = self.slipway.http_get(HOST, "/version")
        self.assertEqual(status, 200, body)
        self.assertIn(f'"version": "{version}"', body)

    def check_load(self):
        records = self.load.stop()
        failures = self.load.failures()
        if failures:
            self.fail_with(f"{len(failures)} failed request(s) under load")
        problems = self.load.check_versions(self.switches, self.never)
        if problems:
            shown = "\n".join(problems[:20])
            self.fail_with(f"{len(problems)} request(s) answered by the wrong version:\n{shown}")
        return records

    # --- tests ---------------------------------------------------------------------------

    def test_deploys_failures_rollbacks_and_scaling_under_load_drop_nothing(self):
        self.keys = FULL_KEYS
        self.deploy("v1")
        self.assertServes("v1")
        self.load = Load(self.slipway.http_port, HOST).start()
        wait_until(lambda: self.load.count_ok() >= 20, 30, "the load to get going")

        n = 1

        def deploys(count):
            nonlocal n
            for _ in range(count):
                n += 1
                self.deploy(f"v{n}")

        deploys(2)  # v2 v3
        self.failed_deploy("bad-health-1", HEALTH_FAIL="1")
        deploys(2)  # v4 v5
        self.rollback(to_version="v2")
        deploys(1)  # v6
        self.scale(2)
        deploys(1)  # v7
        result = self.failed_deploy("bad-migrate-1", PREDEPLOY_FAIL="1")
        self.assertIn("migration 0042 failed", result.output)  # the command's output
        deploys(2)  # v8 v9
        self.rollback(expect="v8")  # no --to: the release active before this one
        deploys(2)  # v10 v11
        self.failed_deploy("bad-health-2", HEALTH_FAIL="1")
        deploys(1)  # v12
        self.rollback(to_version="v10")
        deploys(2)  # v13 v14
        self.failed_deploy("bad-migrate-2", PREDEPLOY_FAIL="1")
        deploys(1)  # v15
        self.rollback(to_version="v13")
        deploys(2)  # v16 v17
        self.failed_deploy("bad-health-3", HEALTH_FAIL="1")
        deploys(1)  # v18
        self.scale(1)
        deploys(1)  # v19
        self.rollback(to_version="v16")
        deploys(2)  # v20 v21
        self.assertEqual(n, 21)  # 20 deploys under load

        # Keep the load on a little longer: slow requests started on the last switch end.
        last = self.switches[-1].end
        wait_until(
            lambda: any(r.kind == "slow" and r.start > last and r.ok for r in self.load.snapshot()),
            30,
            "a slow request started after the last deploy to be answered",
        )
        self.check_load()
        self.assertServes("v21")

        # The test can fail: requests really were in flight across the switches.
        moments = [sw.end for sw in self.switches]
        self.assertGreater(self.load.spanning(moments, "slow"), 10, self.load.summary())
        statuses = [d["status"] for d in self.slipway.deployments(PROJECT)]
        self.assertEqual(statuses.count("DEPLOY_FAILED"), 5, statuses)

    def test_daemon_restarts_under_load_drop_nothing(self):
        self.deploy("v1")
        self.load = Load(self.slipway.http_port, HOST).start()
        wait_until(lambda: self.load.count_ok() >= 20, 30, "the load to get going")

        for i in range(3):
            code = self.slipway.sigterm_restart()
            self.assertEqual(code, 0, f"slipway server exit code on SIGTERM\n{self.server_log()}")
            restarted = time.monotonic()
            wait_until(
                lambda: self.load.count_ok(since=restarted) >= 20,
                30,
                f"requests to be answered after restart {i + 1}",
            )
            status = self.slipway.cli("status", cwd=self.app)
            self.assertEqual(status.code, 0, str(status))
            self.assertIn("ACTIVE", status.stdout)

        # The restarted daemon still deploys, without a dropped request.
        self.deploy("v2")
        self.check_load()
        self.assertServes("v2")
        self.slipway.wait_app_groups(1)  # the old replica drained; nothing orphaned or doubled


if __name__ == "__main__":
    unittest.main()
