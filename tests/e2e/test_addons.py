"""Add-ons end to end: tests/e2e/fixtures/notes declares a postgres and a redis add-on and
keeps notes in one and a visit counter in the other. Real servers, real backups: rows
written, backed up, the table dropped, restored; the daemon killed and started again;
the PostgreSQL server killed; a corrupt backup, a port taken and a full disk refused
with a clear error and nothing lost."""

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import unittest

from harness import SlipwayTestCase, process_alive, wait_until

HOST = "web.notes.localhost"


class AddonsTest(SlipwayTestCase):
    server_per_test = True

    def setUp(self):
        super().setUp()
        self.app = self.slipway.copy_app("notes")
        up = self.slipway.up(self.app)
        self.assertDeployed(up, "web", "notes")
        self.assertRegex(up.stdout, r"==> add-on db: PostgreSQL 1\d\.\d+ on 127\.0\.0\.1:\d+ \(new\)")
        self.assertRegex(up.stdout, r"==> add-on cache: Redis \d\.\d+\.\d+ on 127\.0\.0\.1:\d+ \(new\)")

    # --- helpers -----------------------------------------------------------------

    def post_note(self, text):
        conn = http.client.HTTPConnection("127.0.0.1", self.slipway.http_port, timeout=10)
        try:
            conn.request("POST", "/notes", body=text.encode(), headers={"Host": HOST})
            response = conn.getresponse()
            status, body = response.status, response.read().decode()
        finally:
            conn.close()
        self.assertEqual(status, 201, body)
        return json.loads(body)["id"]

    def notes(self):
        status, body = self.slipway.http_get(HOST, "/notes")
        return [n["body"] for n in json.loads(body)["notes"]] if status == 200 else None

    def addons(self):
        return {a["name"]: a for a in self.slipway.api_get("/v1/projects/notes/addons")["addons"]}

    def cli(self, *args):
        return self.slipway.cli(*args, cwd=self.app)

    def backups(self):
        return self.slipway.api_get("/v1/projects/notes/backups")["backups"]

    def backup(self):
        result = self.cli("backups", "create")
        self.assertEqual(result.code, 0, f"{result}\n{self.server_log()}")
        self.assertRegex(result.stdout, r'Backup \d+ of "db" completed: \S+\.dump')
        return self.backups()[0]

    # --- tests -------------------------------------------------------------------

    def test_rows_written_backed_up_dropped_restored_and_kept_across_daemon_restarts(self):
        for text in ("first", "second", "third"):
            self.post_note(text)
        self.assertEqual(self.notes(), ["first", "second", "third"])
        self.assertEqual(self.slipway.get_json(HOST, "/visits"), {"visits": 1})
        self.assertEqual(self.slipway.get_json(HOST, "/whoami"), {"database": "notes", "user": "notes"})

        listed = self.cli("addons")
        self.assertRegex(listed.stdout, r"(?m)^\d+\s+db\s+postgres\s+running\s+\d+")
        self.assertRegex(listed.stdout, r"(?m)^\d+\s+cache\s+redis\s+running\s+\d+")
        variables = self.cli("variables", "list", "--service", "web")
        self.assertNotIn(self.database_password(), variables.output)

        backup = self.backup()
        self.assertEqual(backup["status"], "COMPLETED")
        self.assertTrue(os.path.getsize(backup["path"]) > 0)

        dropped = self.cli("run", "web", "--", "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c",
                           "DROP TABLE notes")
        self.assertEqual(dropped.code, 0, str(dropped))
        self.assertIsNone(self.notes(), "the table is gone")

        restored = self.cli("backups", "restore", str(backup["id"]))
        self.assertEqual(restored.code, 0, f"{restored}\n{self.server_log()}")
        wait_until(lambda: self.notes() == ["first", "second", "third"], 30, "the rows back")
        self.assertIn("before-restore", [b["trigger"] for b in self.backups()])

        # The daemon killed: the servers keep running and are adopted, nothing is lost.
        pg_pid = self.addons()["db"]["pid"]
        self.slipway.kill9()
        self.slipway.restart()
        self.assertEqual(self.addons()["db"]["pid"], pg_pid)
        self.assertEqual(self.notes(), ["first", "second", "third"])
        self.assertEqual(self.slipway.get_json(HOST, "/visits"), {"visits": 2})
        # Stopped with Ctrl-C and started again: stopped cleanly, started again, data kept.
        self.slipway.stop()
        self.assertFalse(process_alive(pg_pid))
        self.slipway.start()
        wait_until(lambda: self.notes() == ["first", "second", "third"], 60, "the notes after a restart")
        self.assertEqual(self.slipway.get_json(HOST, "/visits"), {"visits": 3})

    def database_password(self):
        result = self.cli("run", "web", "--", "printenv", "PGPASSWORD")
        self.assertEqual(result.code, 0, str(result))
        return result.stdout.strip() or "(none)"

    def test_a_killed_postgres_server_is_restarted_and_the_app_reconnects(self):
        self.post_note("survives")
        before = self.addons()["db"]
        os.kill(before["pid"], signal.SIGKILL)
        wait_until(
            lambda: (a := self.addons()["db"])["state"] == "running" and a["pid"] != before["pid"],
            60,
            "the postgres server to be restarted",
        )
        self.assertEqual(self.addons()["db"]["port"], before["port"])
        wait_until(lambda: self.notes() == ["survives"], 30, "the app to reconnect")
        events = self.slipway.server_log(200)
        self.assertIn("restart", events)

    def test_a_corrupt_backup_a_taken_port_and_a_full_disk_are_refused_and_lose_nothing(self):
        self.post_note("precious")
        backup = self.backup()
        with open(backup["path"], "r+b") as f:
            f.truncate(os.path.getsize(backup["path"]) // 2)
        corrupt = self.cli("backups", "restore", str(backup["id"]))
        self.assertEqual(corrupt.code, 1, str(corrupt))
        self.assertIn(f"backup {backup['id']} is corrupt", corrupt.stderr)
        self.assertIn("the database is unchanged", corrupt.stderr)
        self.assertEqual(len(corrupt.stderr.strip().splitlines()), 1, corrupt.stderr)
        self.assertEqual(self.notes(), ["precious"])

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            refused = self.cli("add", "redis", "--name", "other", "--port", str(port))
            self.assertEqual(refused.code, 1, str(refused))
            self.assertIn(f"port {port} on 127.0.0.1 is in use by another process", refused.stderr)
        self.assertNotIn("other", self.addons())

        if os.geteuid() != 0:
            self.skipTest("a full disk is made with a small tmpfs, which needs root")
        backups_dir = os.path.dirname(backup["path"])
        noise = secrets.token_hex(100_000)  # incompressible: a dump bigger than the tmpfs below
        self.post_note(noise)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", backups_dir], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", backups_dir], check=False)
        full = self.cli("backups", "create")
        self.assertEqual(full.code, 1, str(full))
        self.assertIn(backups_dir, full.stderr)
        self.assertIn("free space", full.stderr)
        latest = self.backups()[0]
        self.assertEqual(latest["status"], "FAILED")
        self.assertNotIn(latest["id"], [b["id"] for b in self.backups() if b["status"] == "COMPLETED"])
        self.assertEqual(os.listdir(backups_dir), [], "no partial file is left")
        self.assertEqual(self.notes(), ["precious", noise])


if __name__ == "__main__":
    unittest.main()
