"""A static site under a bounded load: 20 deploys and 5 rollbacks fail no request, and no
request started after a switch completed is answered by an older release (switching a
static release is a swap of the edge's routing table; tests/e2e/fixtures/static-versioned
says which release it is in version.json)."""

import json
import os
import time
import unittest

from harness import SlipwayTestCase, wait_until
from load import Load, Switch

PROJECT = "static-versioned"
HOST = f"web.{PROJECT}.localhost"


class StaticSwitchesTest(SlipwayTestCase):
    def setUp(self):
        super().setUp()
        self.app = self.slipway.copy_app("static-versioned")
        self.switches, self.ids = [], {}

    def write_version(self, version):
        with open(os.path.join(self.app, "version.json"), "w") as f:
            json.dump({"version": version}, f)

    def deploy(self, version):
        self.write_version(version)
        start = time.monotonic()
        result = self.slipway.up(self.app)
        end = time.monotonic()
        self.assertDeployed(result, "web", PROJECT)
        self.ids[version] = self.slipway.deployments(PROJECT)[0]["id"]
        self.switches.append(Switch(f"deploy {version}", start, end, version))

    def rollback(self, version):
        start = time.monotonic()
        result = self.slipway.cli("rollback", "--to", str(self.ids[version]), cwd=self.app)
        end = time.monotonic()
        self.assertEqual(result.code, 0, f"{result}\n{self.server_log()}")
        self.assertIn("nothing to build", result.stdout)
        self.switches.append(Switch(f"rollback to {version}", start, end, version))

    def test_twenty_deploys_and_five_rollbacks_under_load_fail_no_request(self):
        self.deploy("v1")
        paths = {"keepalive": "/version.json", "fresh": "/version.json"}
        load = Load(self.slipway.http_port, HOST, keepalive=4, fresh=2, slow=0, paths=paths)
        load.start()
        self.addCleanup(load.stop)
        wait_until(lambda: load.count_ok() >= 20, 30, "the load to get going")
        n = 1
        for round_ in range(5):
            for _ in range(4):
                n += 1
                self.deploy(f"v{n}")
            self.rollback(f"v{n - 2}")
        self.assertEqual(n, 21)  # 20 deploys, 5 rollbacks, all under load
        last = self.switches[-1].end
        wait_until(lambda: load.count_ok(since=last) >= 20, 30, "requests after the last switch")
        load.stop()
        failures = load.failures()
        self.assertEqual(failures, [], load.summary())
        problems = load.check_versions(self.switches)
        self.assertEqual(problems, [], "\n".join(problems[:20]))
        # The test can fail: the load ran across every switch.
        self.assertGreater(len(load.snapshot()), 200, load.summary())
        self.assertEqual(self.slipway.get_json(HOST, "/version.json"), {"version": "v19"})


if __name__ == "__main__":
    unittest.main()
