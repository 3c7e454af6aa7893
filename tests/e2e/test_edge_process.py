"""The edge is a process of its own: the server can stop, crash or be upgraded while the
edge serves on, and an edge that dies comes back with the same routes."""

import http.client
import os
import shutil
import signal
import socket
import ssl
import threading
import time
import unittest

from harness import SlipwayTestCase, free_ports, process_alive, wait_until

HOST = "web.node-hello.localhost"


class Load:
    """Requests through the edge in a loop until stopped: one client reusing its
    keep-alive connection (reconnecting when told to close), one opening a fresh
    connection per request. Every exception and every status but 200 is a failure."""

    def __init__(self, port, tls_context=None):
        self.port = port
        self.tls_context = tls_context  # HTTPS (SNI HOST) when set
        self.ok = 0
        self.failures = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(True,), daemon=True),
            threading.Thread(target=self._run, args=(False,), daemon=True),
        ]

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def _record(self, kind, error):
        with self._lock:
            if error is None:
                self.ok += 1
            else:
                self.failures.append(f"{kind} at {time.strftime('%H:%M:%S')}: {error}")

    def _connection(self):
        if self.tls_context is None:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        # TLS for HOST (SNI and certificate check), over TCP to 127.0.0.1.
        conn = http.client.HTTPSConnection(HOST, self.port, timeout=10, context=self.tls_context)
        conn._create_connection = lambda _address, timeout=10, *rest: socket.create_connection(
            ("127.0.0.1", self.port), timeout
        )
        return conn

    def _run(self, keep_alive):
        kind = ("https " if self.tls_context else "") + ("keep-alive" if keep_alive else "fresh")
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = self._connection()
                conn.request("GET", "/", headers={"Host": HOST})
                response = conn.getresponse()
                body = response.read()
                if response.status == 200:
                    self._record(kind, None)
                else:
                    self._record(kind, f"status {response.status}: {body[:200]!r}")
                if not keep_alive:
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 - every failure counts
                self._record(kind, f"{type(e).__name__}: {e}")
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def served(self):
        with self._lock:
            return self.ok

    def wait_for_more(self, count=20, timeout=30):
        """Waits until `count` more requests succeeded (the load really runs)."""
        target = self.served() + count
        wait_until(lambda: self.served() >= target, timeout, f"{count} more requests served")

    def stop(self):
        self._stop.set()
        for t in self._threads:
            if t.is_alive():
                t.join(30)


class EdgeProcessTest(SlipwayTestCase):
    server_per_test = True

    def deploy(self):
        app = self.slipway.copy_app("node-hello")
        self.assertDeployed(self.slipway.up(app), "web", "node-hello")
        self.assertEqual(self.slipway.http_get(HOST)[0], 200)
        return app

    def edge_pid(self):
        pid = self.slipway.edge_pid()
        self.assertIsNotNone(pid, f"no edge runs\n--- edge log ---\n{self.slipway.edge_log()}")
        return pid

    def assertNoFailures(self, load, what):
        self.assertGreater(load.ok, 0, "the load generator served nothing")
        self.assertEqual(
            load.failures,
            [],
            f"{len(load.failures)} of {load.ok + len(load.failures)} requests failed {what}\n"
            f"{self.server_log()}\n--- edge log ---\n{self.slipway.edge_log()}",
        )

    def test_server_restarts_drop_no_request(self):
        app = self.deploy()
        edge_before = self.edge_pid()
        apps_before = self.slipway.live_recorded_app_pids()
        self.assertEqual(len(apps_before), 1)

        with Load(self.slipway.http_port) as load:
            load.wait_for_more()
            for _ in range(3):
                self.assertEqual(self.slipway.terminate(), 0, self.server_log())
                load.wait_for_more()  # served while no server runs
                self.slipway.start()
                load.wait_for_more()
        self.assertNoFailures(load, "while the server restarted 3 times")

        self.assertEqual(self.edge_pid(), edge_before, "the edge was restarted")
        self.assertEqual(self.slipway.live_recorded_app_pids(), apps_before, "the app was restarted")
        # The control plane works after the restarts: a new deploy goes live.
        with open(os.path.join(app, "server.js")) as f:
            source = f.read()
        self.assertIn("hello from node", source)
        with open(os.path.join(app, "server.js"), "w") as f:
            f.write(source.replace("hello from node", "hello again from node"))
        self.assertDeployed(self.slipway.up(app), "web", "node-hello")
        status, body = self.slipway.http_get(HOST)
        self.assertEqual(status, 200, body)
        self.assertIn("hello again from node", body)
        self.assertEqual(self.edge_pid(), edge_before)

    def test_server_kill9_leaves_the_edge_serving_for_the_next_server(self):
        app = self.deploy()
        edge_before = self.edge_pid()

        self.slipway.kill9()
        with Load(self.slipway.http_port) as load:
            load.wait_for_more(50)
        self.assertNoFailures(load, "with the server killed")
        self.assertEqual(self.edge_pid(), edge_before)

        self.slipway.start()
        self.assertEqual(self.edge_pid(), edge_before, "the new server replaced the edge")
        status = self.slipway.cli("status", cwd=app)
        self.assertEqual(status.code, 0, str(status))
        self.assertIn("ACTIVE", status.stdout)
        self.assertEqual(self.slipway.http_get(HOST)[0], 200)
        # The new server reads the edge's metrics: the requests above were counted.
        metrics = self.slipway.cli("metrics")
        self.assertEqual(metrics.code, 0, str(metrics))
        self.assertIn(HOST, metrics.stdout)

    def test_upgrade_hands_the_listeners_to_a_new_edge(self):
        self.deploy()
        old_edge = self.edge_pid()
        with open(f"/proc/{old_edge}/stat") as f:
            old_start = int(f.read().rsplit(")", 1)[1].split()[19])
        new_bin = os.path.join(self.slipway.root, "slipway-upgraded")
        shutil.copy2(self.slipway.bin, new_bin)

        with Load(self.slipway.http_port) as load:
            load.wait_for_more()
            self.slipway.terminate()
            self.slipway.start(bin=new_bin)

            def replaced():
                pid = self.slipway.edge_pid()
                return pid if pid is not None and pid != old_edge else None

            new_edge = wait_until(replaced, 30, "a new edge to take over")
            wait_until(
                lambda: not process_alive(old_edge, old_start), 60, "the old edge to exit"
            )
            load.wait_for_more()
        self.assertNoFailures(load, "while a new edge took the listeners over")

        self.assertEqual(os.path.realpath(f"/proc/{new_edge}/exe"), os.path.realpath(new_bin))
        self.assertIn("took the listeners over", self.slipway.edge_log(200))
        self.assertEqual(self.slipway.http_get(HOST)[0], 200)

    def test_killed_edge_comes_back_with_the_same_routes(self):
        self.deploy()
        old_edge = self.edge_pid()

        os.kill(old_edge, signal.SIGKILL)

        def back():
            pid = self.slipway.edge_pid()
            if pid is None or pid == old_edge:
                return None
            return pid if self.slipway.http_get(HOST, timeout=2)[0] == 200 else None

        wait_until(back, 30, "the server to bring the edge back serving the app")
        # The new edge serves its saved table even before the server has logged the restart.
        wait_until(
            lambda: "was gone" in self.slipway.server_log(200), 30, "the server to log the restart"
        )
        status, body = self.slipway.http_get(HOST)
        self.assertEqual(status, 200, body)
        self.assertIn("hello from node", body)

    def test_other_addresses_replace_the_edge(self):
        self.deploy()
        old_edge = self.edge_pid()
        old_port = self.slipway.http_port

        self.slipway.terminate()
        self.slipway.http_port = free_ports(1)[0]
        self.slipway.start()

        new_edge = self.edge_pid()
        self.assertNotEqual(new_edge, old_edge)
        self.assertFalse(process_alive(old_edge), "the edge on the old address still runs")
        self.assertIn(f"listens on http 127.0.0.1:{old_port}", self.slipway.server_log(100))
        self.assertEqual(self.slipway.http_get(HOST)[0], 200)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", old_port), timeout=5).close()


class EdgeProcessHttpsTest(SlipwayTestCase):
    server_per_test = True
    https = True

    def test_upgrade_hands_over_the_https_listener_too(self):
        app = self.slipway.copy_app("node-hello")
        self.assertDeployed(self.slipway.up(app), "web", "node-hello")
        old_edge = self.slipway.edge_pid()
        self.assertIsNotNone(old_edge)
        new_bin = os.path.join(self.slipway.root, "slipway-upgraded")
        shutil.copy2(self.slipway.bin, new_bin)
        context = ssl.create_default_context(
            cafile=os.path.join(self.slipway.home, "certs", "ca.pem")
        )

        with Load(self.slipway.https_port, context) as tls_load, Load(
            self.slipway.http_port
        ) as plain_load:
            tls_load.wait_for_more()
            self.slipway.terminate()
            self.slipway.start(bin=new_bin)
            wait_until(
                lambda: self.slipway.edge_pid() not in (None, old_edge), 30, "a new edge"
            )
            wait_until(lambda: not process_alive(old_edge), 60, "the old edge to exit")
            tls_load.wait_for_more()
            plain_load.wait_for_more()
        for load, what in ((tls_load, "HTTPS"), (plain_load, "HTTP")):
            self.assertGreater(load.ok, 0)
            self.assertEqual(
                load.failures,
                [],
                f"{what} requests failed during the takeover\n"
                f"--- edge log ---\n{self.slipway.edge_log()}",
            )


if __name__ == "__main__":
    unittest.main()
