"""`slipway run`: a one-off command in a service's active release, with its env."""

import os
import signal
import subprocess
import time
import unittest

from harness import CLI_TIMEOUT, SlipwayTestCase, process_alive, wait_until


class RunTest(SlipwayTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        sw = cls.slipway
        cls.app = sw.copy_app("python-stdlib", "runapp")
        with open(os.path.join(cls.app, "slipway.toml"), "w") as f:
            f.write(
                'project = "runapp"\n[services.web]\nhealthcheckPath = "/health"\n'
                '[services.web.variables]\nGREETING = "hello from the release"\n'
            )
        up = sw.up(cls.app)
        assert up.code == 0, str(up)

    def run_cli(self, *args):
        return self.slipway.cli("run", *args, cwd=self.app)

    def test_output_and_exit_code(self):
        out = self.run_cli("--", "sh", "-c", 'echo "$GREETING"; echo to-stderr >&2; exit 3')
        self.assertEqual(out.code, 3, str(out))
        self.assertEqual(out.stdout, "hello from the release\nto-stderr\n")
        ok = self.run_cli("web", "--", "true")
        self.assertEqual(ok.code, 0, str(ok))
        killed = self.run_cli("--", "sh", "-c", "kill -9 $$")
        self.assertEqual(killed.code, 128 + 9, str(killed))

    def test_runs_in_the_active_release_with_the_replicas_env_but_port(self):
        out = self.run_cli("--", "sh", "-c", "pwd; env; cat /proc/self/status | grep PPid")
        self.assertEqual(out.code, 0, str(out))
        lines = out.stdout.splitlines()
        active = self.slipway.service_status("runapp")["active_deployment_id"]
        self.assertEqual(lines[0], os.path.join(self.slipway.home, "releases", str(active), "app"))
        env = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
        self.assertEqual(env["SLIPWAY_SERVICE"], "web")
        self.assertEqual(env["SLIPWAY_PROJECT"], "runapp")
        self.assertEqual(env["SLIPWAY_ENVIRONMENT"], "production")
        self.assertEqual(env["SLIPWAY_DEPLOYMENT_ID"], str(active))
        self.assertEqual(env["GREETING"], "hello from the release")
        self.assertNotIn("PORT", env)
        self.assertNotIn("SLIPWAY_REPLICA_INDEX", env)
        # Not the CLI's environment: the daemon started it.
        self.assertNotIn("SLIPWAY_URL", env)

    def test_errors_before_the_command_runs(self):
        nothing = self.run_cli("web")
        self.assertFailed(nothing)
        self.assertIn("no command", nothing.stderr)
        missing = self.run_cli("--", "no-such-command-xyz")
        self.assertFailed(missing)
        self.assertIn('"no-such-command-xyz" not found', missing.stderr)
        other = self.run_cli("api", "--", "true")
        self.assertFailed(other)
        # A service that exists but never went live.
        broken = self.slipway.copy_app("python-stdlib", "runbroken")
        with open(os.path.join(broken, "slipway.toml"), "w") as f:
            f.write(
                'project = "runbroken"\n[services.web]\nhealthcheckPath = "/health"\n'
                "healthcheckTimeout = 3\n[services.web.variables]\nHEALTH_FAIL = \"1\"\n"
            )
        self.assertFailed(self.slipway.up(broken))
        none = self.slipway.cli("run", "--", "true", cwd=broken)
        self.assertFailed(none)
        self.assertEqual(none.stderr.count("\n"), 1, none.stderr)
        self.assertIn("web (production) has no active deployment", none.stderr)

    def test_timeout_kills_the_command(self):
        started = time.monotonic()
        out = self.run_cli("--timeout", "1", "--", "sleep", "60")
        self.assertFailed(out)
        self.assertIn("timeout of 1s", out.stderr)
        self.assertLess(time.monotonic() - started, 30)

    def test_output_streams_and_ctrl_c_kills_the_process_group(self):
        cli = subprocess.Popen(
            [self.slipway.bin, "run", "--", "sh", "-c",
             'sleep 120 & echo "child $!"; echo "leader $$"; wait'],
            cwd=self.app,
            env=self.slipway._env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(cli.stderr.close)
        self.addCleanup(cli.stdout.close)
        self.addCleanup(lambda: cli.poll() is None and cli.kill())
        pids = {}
        deadline = time.monotonic() + CLI_TIMEOUT
        # Both lines arrive while the command still runs: output is streamed.
        while len(pids) < 2 and time.monotonic() < deadline:
            line = cli.stdout.readline()
            if not line:
                break
            word, pid = line.split()
            pids[word] = int(pid)
        self.assertEqual(sorted(pids), ["child", "leader"], cli.stderr.read() if cli.poll() else "")
        self.assertIsNone(cli.poll(), "the CLI returned before the command ended")
        for pid in pids.values():
            self.assertTrue(process_alive(pid))
        cli.send_signal(signal.SIGINT)
        cli.wait(30)
        for name, pid in pids.items():
            wait_until(lambda: not process_alive(pid), 30, f"the remote {name} ({pid}) to be killed")


if __name__ == "__main__":
    unittest.main()
