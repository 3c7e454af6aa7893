"""Workers and cron jobs: tests/e2e/fixtures/jobs has a web service, a worker (no port, no
route, the restart policy applies) and a nightly cron job (02:00 UTC) beside each other.

Cron runs are started with `slipway cron run` (02:00 does not come during a test; the
schedule itself is tested with a manual clock in tests/deploy/cron_runner_test.cc). A
run that must stay open waits for a file the test creates in the job's $HOME, so
nothing here depends on timing."""

import datetime
import os
import re
import unittest

from harness import SlipwayTestCase, process_alive, wait_until


def set_variable(app, service, name, value):
    """Sets `name = value` in [services.<service>.variables] of the app's slipway.toml."""
    path = os.path.join(app, "slipway.toml")
    with open(path) as f:
        text = f.read()
    header = f"[services.{service}.variables]\n"
    line = f'{name} = "{value}"\n'
    pattern = re.compile(rf"(?m)^{name} = .*\n")
    start = text.index(header) + len(header)
    end = text.find("\n[", start)
    end = len(text) if end < 0 else end + 1
    section = text[start:end]
    section = pattern.sub(line, section) if pattern.search(section) else line + section
    with open(path, "w") as f:
        f.write(text[:start] + section + text[end:])


class WorkersAndCronTest(SlipwayTestCase):
    server_per_test = True

    def deploy(self, *args):
        self.app = getattr(self, "app", None) or self.slipway.copy_app("jobs")
        up = self.slipway.up(self.app, *args)
        self.assertEqual(up.code, 0, f"{up}\n{self.server_log()}")
        return up

    def status(self, service):
        return self.slipway.service_status("jobs", service)

    def logs(self, service):
        result = self.slipway.cli("logs", service, "-n", "200", cwd=self.app)
        self.assertEqual(result.code, 0, str(result))
        return result.stdout

    def runs(self):
        return self.slipway.api_get("/v1/projects/jobs/cron/runs?service=nightly&limit=50")["runs"]

    def cron_run(self, service="nightly", *args):
        return self.slipway.cli("cron", "run", service, *args, cwd=self.app)

    def gate_of(self, run_id):
        """The file run `run_id` waits for (the job prints it), once it has started."""

        def printed():
            match = re.search(rf"waiting for (\S+/release-{run_id})\n", self.logs("nightly"))
            return match.group(1) if match else None

        return wait_until(printed, 30, f"run {run_id} to say what it waits for")

    def start_held_run(self):
        """Starts a run of the nightly job that waits to be released; returns its id."""
        started = self.cron_run("nightly", "--detach")
        self.assertEqual(started.code, 0, str(started))
        run_id = int(re.search(r"run (\d+) started", started.stdout).group(1))
        return run_id, self.gate_of(run_id)

    def test_up_status_and_no_route_for_a_worker_and_a_cron_job(self):
        up = self.deploy()
        self.assertIn(f"web is live at {self.slipway.url('web', 'jobs')}", up.stdout)
        self.assertIn("worker is running (a worker: no URL)", up.stdout)
        tomorrow = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
        self.assertRegex(
            up.stdout,
            r"nightly is scheduled: 0 2 \* \* \* \(UTC\), next run \d{4}-\d\d-\d\d 02:00:00",
        )
        next_run = re.search(r"next run (\S+) 02:00:00", up.stdout).group(1)
        self.assertIn(next_run, {datetime.date.today().isoformat(), tomorrow.date().isoformat()})

        worker = self.status("worker")
        self.assertEqual(worker["type"], "worker")
        self.assertEqual(worker["url"], "")
        self.assertEqual([r["state"] for r in worker["replicas"]], ["running"])
        self.assertEqual(worker["replicas"][0]["port"], 0)
        nightly = self.status("nightly")
        self.assertEqual((nightly["type"], nightly["schedule"]), ("cron", "0 2 * * *"))
        self.assertEqual(nightly["replicas"], [])
        self.assertEqual(nightly["health"], "scheduled")
        self.assertGreater(nightly["next_run"], 0)

        wait_until(lambda: "tick 2" in self.logs("worker"), 30, "the worker's ticks in its logs")
        self.assertIn("worker v1 started: PORT=<unset>", self.logs("worker"))
        for host in ("worker.jobs.localhost", "nightly.jobs.localhost"):
            status, _ = self.slipway.http_get(host, "/")
            self.assertEqual(status, 404, f"{host} must have no route")
        self.assertEqual(self.slipway.http_get("web.jobs.localhost", "/")[0], 200)

        status = self.slipway.cli("status", cwd=self.app)
        self.assertRegex(status.stdout, r"(?m)^worker\s+#\d+\s+ACTIVE\s+1/1\s+healthy\s+\(worker\)")
        self.assertRegex(
            status.stdout, r"(?m)^nightly\s+#\d+\s+ACTIVE\s+cron\s+scheduled\s+0 2 \* \* \* UTC, next"
        )
        listed = self.slipway.cli("cron", "list", cwd=self.app)
        self.assertRegex(listed.stdout, r"(?m)^nightly\s+0 2 \* \* \*\s+\d{4}-\d\d-\d\d 02:00:00\s+-$")

    def test_cron_run_streams_output_exits_with_its_code_and_is_kept_in_history(self):
        self.deploy()
        first = self.cron_run()
        self.assertEqual(first.code, 0, str(first))
        self.assertRegex(first.stdout, r"==> nightly: run \d+ started")
        self.assertIn("nightly v1 run", first.stdout)
        self.assertIn("PORT=<unset>", first.stdout)
        self.assertRegex(first.stdout, r"run \d+ SUCCEEDED after \d+\.\d s \(exit code 0\)")

        set_variable(self.app, "nightly", "NIGHTLY_EXIT", "7")
        self.deploy("--service", "nightly")
        failed = self.cron_run()
        self.assertEqual(failed.code, 7, str(failed))
        self.assertRegex(failed.stdout, r"run \d+ FAILED after .* \(exit code 7\)")

        runs = self.runs()
        self.assertEqual([r["status"] for r in runs], ["FAILED", "SUCCEEDED"])
        self.assertEqual([r["exit_code"] for r in runs], [7, 0])
        self.assertEqual({r["trigger"] for r in runs}, {"manual"})
        for r in runs:
            self.assertGreater(r["started_at"], 0)
            self.assertGreaterEqual(r["finished_at"], r["started_at"])
        history = self.slipway.cli("cron", "runs", "nightly", cwd=self.app)
        self.assertRegex(history.stdout, r"(?m)^\d+\s+manual\s+.*FAILED\s+7\s*$")
        self.assertRegex(history.stdout, r"(?m)^\d+\s+manual\s+.*SUCCEEDED\s+0\s*$")
        self.assertIn(f"nightly run {runs[0]['id']} done", self.logs("nightly"))

        for bad in (("cron", "run", "web"), ("cron", "runs", "worker")):
            result = self.slipway.cli(*bad, cwd=self.app)
            self.assertEqual(result.code, 1, str(result))
            self.assertIn("is not a cron service", result.stderr)
        scale = self.slipway.cli("scale", "nightly=2", cwd=self.app)
        self.assertEqual(scale.code, 1, str(scale))
        self.assertIn("is a cron service", scale.stderr)

    def test_a_deploy_lets_a_running_run_finish_and_a_second_run_is_refused(self):
        self.app = self.slipway.copy_app("jobs")
        set_variable(self.app, "nightly", "NIGHTLY_WAIT", "1")
        self.deploy()
        old_deployment = self.status("nightly")["active_deployment_id"]
        run_id, gate = self.start_held_run()

        refused = self.cron_run()
        self.assertEqual(refused.code, 1, str(refused))
        self.assertIn(f"run {run_id}", refused.stderr)
        self.assertIn("is still going; a cron service runs one at a time", refused.stderr)

        set_variable(self.app, "nightly", "NIGHTLY_VERSION", "v2")
        set_variable(self.app, "nightly", "NIGHTLY_WAIT", "")  # v2's runs do not wait
        self.deploy("--service", "nightly")
        self.assertNotEqual(self.status("nightly")["active_deployment_id"], old_deployment)
        self.assertEqual(self.slipway.deployment(old_deployment)["status"], "DRAINING")
        self.assertEqual(self.runs()[0]["status"], "RUNNING")

        with open(gate, "w"):
            pass
        wait_until(lambda: self.runs()[0]["status"] == "SUCCEEDED", 30, "the held run to end")
        self.assertIn(f"nightly run {run_id} done", self.logs_of_deployment(old_deployment))
        wait_until(
            lambda: self.slipway.deployment(old_deployment)["status"] == "REMOVED",
            30,
            "the old deployment to be REMOVED once its run ended",
        )
        after = self.cron_run()
        self.assertEqual(after.code, 0, str(after))
        self.assertIn("nightly v2 run", after.stdout)

    def logs_of_deployment(self, deployment_id):
        result = self.slipway.cli(
            "logs", "nightly", "--deployment", str(deployment_id), "-n", "200", cwd=self.app
        )
        self.assertEqual(result.code, 0, str(result))
        return result.stdout

    def test_a_run_outlives_a_daemon_restart_and_is_recorded_by_the_next(self):
        self.app = self.slipway.copy_app("jobs")
        set_variable(self.app, "nightly", "NIGHTLY_WAIT", "1")
        self.deploy()
        run_id, gate = self.start_held_run()
        pid = self.recorded_run_pid(run_id)
        self.slipway.sigterm_restart()
        self.assertTrue(process_alive(pid), "the run must survive the daemon's restart")
        self.assertEqual(self.runs()[0]["status"], "RUNNING")
        with open(gate, "w"):
            pass
        wait_until(lambda: self.runs()[0]["status"] == "SUCCEEDED", 30, "the new daemon to record it")
        self.assertEqual(self.runs()[0]["exit_code"], 0)
        self.assertIn("adopted", self.slipway.server_log(200))

    def recorded_run_pid(self, run_id):
        path = os.path.join(self.slipway.home, "run", f"cron-{run_id}", "app.pid")
        with open(path) as f:
            return int(f.read().split()[0])

    def test_worker_restart_policy_and_a_worker_failing_at_start(self):
        self.app = self.slipway.copy_app("jobs")
        set_variable(self.app, "worker", "EXIT_AFTER_SECONDS", "3")
        set_variable(self.app, "worker", "EXIT_CODE", "1")
        self.deploy()
        first = self.status("worker")["replicas"][0]

        def restarted():
            r = self.status("worker")["replicas"][0]
            return r["restarts"] >= 1 and r["state"] == "running" and r["pid"] != first["pid"]

        wait_until(restarted, 30, "the worker to be restarted (ON_FAILURE)")
        self.assertFalse(process_alive(first["pid"]))
        self.assertIn("worker exiting with code 1", self.logs("worker"))

        # A worker that cannot even start fails its deploy; the one before keeps running.
        serving = self.status("worker")["active_deployment_id"]
        set_variable(self.app, "worker", "EXIT_AFTER_SECONDS", "0")
        up = self.slipway.up(self.app, "--service", "worker")
        self.assertEqual(up.code, 1, str(up))
        self.assertIn("DEPLOY_FAILED: app exited", up.stderr)
        self.assertIn("worker exiting with code 1", up.stderr)
        self.assertEqual(self.status("worker")["active_deployment_id"], serving)


if __name__ == "__main__":
    unittest.main()
