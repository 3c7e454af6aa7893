"""The control plane can crash and come back without losing or duplicating apps."""

import time
import unittest

from harness import SlipwayTestCase, process_alive, wait_until

# The product's promise: after a crash, the URL serves again this fast once restarted.
SERVES_AGAIN_WITHIN = 10


class RestartTest(SlipwayTestCase):
    server_per_test = True  # each test counts the app processes of its server

    def deploy_node_hello(self):
        app = self.slipway.copy_app("node-hello")
        self.assertDeployed(self.slipway.up(app), "web", "node-hello")
        status, body = self.slipway.http_get("web.node-hello.localhost", "/")
        self.assertEqual(status, 200, body)
        return app

    def test_kill9_then_restart_adopts_the_running_replica(self):
        app = self.deploy_node_hello()
        groups_before = self.slipway.live_app_groups()
        self.assertEqual(len(groups_before), 1, "one replica, one app process group")
        pids_before = self.slipway.live_recorded_app_pids()
        self.assertEqual(len(pids_before), 1, str(self.slipway.recorded_replicas()))

        self.slipway.kill9()
        restarted_at = time.monotonic()
        self.slipway.restart()

        def serves():
            return self.slipway.http_get("web.node-hello.localhost", "/", timeout=2)[0] == 200

        remaining = SERVES_AGAIN_WITHIN - (time.monotonic() - restarted_at)
        wait_until(serves, max(remaining, 0.1), "the URL to serve again after the restart")

        status = self.slipway.cli("status", cwd=app)
        self.assertEqual(status.code, 0, str(status))
        self.assertIn("ACTIVE", status.stdout)
        self.assertIn(self.slipway.url("web", "node-hello"), status.stdout)

        # Exactly one replica runs: the one from before (adopted) or a replacement,
        # never both.
        self.slipway.wait_app_groups(1)
        old_pid = pids_before[0]
        if process_alive(old_pid):
            self.assertEqual(self.slipway.live_app_groups(), groups_before)
            self.assertIn(old_pid, self.slipway.live_recorded_app_pids())
        self.assertEqual(len(self.slipway.live_recorded_app_pids()), 1)
        self.assertEqual(self.slipway.http_get("web.node-hello.localhost", "/")[0], 200)

    def test_sigint_stops_the_apps(self):
        self.deploy_node_hello()
        self.assertEqual(len(self.slipway.live_app_groups()), 1)

        self.slipway.stop()

        self.assertEqual(self.slipway.live_app_groups(), [])
        self.assertEqual(self.slipway.live_recorded_app_pids(), [])


if __name__ == "__main__":
    unittest.main()
