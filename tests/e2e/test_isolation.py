"""Apps are kept apart: each runs as its own user in its own view of the data dir
(docs/isolation.md). Checked from inside an app with `slipway run`, which runs in the
same sandbox as the app's replicas."""

import os
import unittest

from harness import SlipwayTestCase

BETA_SECRET = "beta-secret-3f9c1e7a5b2d4c6e8f0a"


def status_ids(pid):
    """(uid, gid) of a process, from /proc."""
    ids = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid"):
                ids[key] = int(value.split()[0])
    return ids["Uid"], ids["Gid"]


@unittest.skipUnless(os.geteuid() == 0, "isolation needs the server to run as root")
class IsolationTest(SlipwayTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        sw = cls.slipway
        cls.apps = {}
        for name in ("alpha", "beta"):
            app = sw.copy_app("python-stdlib", name)
            with open(os.path.join(app, "slipway.toml"), "w") as f:
                f.write(f'project = "{name}"\n[services.web]\nhealthcheckPath = "/health"\n')
            cls.apps[name] = app
        secret = sw.cli("variables", "set", f"BETA_SECRET={BETA_SECRET}", cwd=cls.apps["beta"])
        assert secret.code == 0, str(secret)
        for name, app in cls.apps.items():
            up = sw.up(app)
            assert up.code == 0, str(up)

    def version(self, project):
        return self.slipway.get_json(f"web.{project}.localhost", "/version")

    def run_in(self, project, script):
        return self.slipway.cli("run", "--", "sh", "-c", script, cwd=self.apps[project])

    def release_dir(self, project):
        active = self.slipway.service_status(project)["active_deployment_id"]
        return os.path.join(self.slipway.home, "releases", str(active))

    def test_each_app_has_its_own_user(self):
        alpha = status_ids(self.version("alpha")["pid"])
        beta = status_ids(self.version("beta")["pid"])
        self.assertNotEqual(alpha[0], 0)
        self.assertNotEqual(alpha, beta)
        # A one-off command runs as its service's user.
        out = self.run_in("alpha", "id -u; id -g; id -G")
        self.assertEqual(out.code, 0, str(out))
        self.assertEqual(out.stdout.split(), [str(alpha[0]), str(alpha[1]), str(alpha[1])])

    def test_the_platforms_files_and_other_apps_are_not_there(self):
        home = self.slipway.home
        out = self.run_in("alpha", f"ls -A {home}")
        self.assertEqual(out.code, 0, str(out))
        self.assertEqual(sorted(out.stdout.split()), ["appdata", "releases"])
        for path in ("state.db", "secret.key", "token", "logs/edge.log",
                     os.path.join(self.release_dir("beta"), "app", "server.py")):
            full = path if path.startswith("/") else os.path.join(home, path)
            self.assertTrue(os.path.exists(full), full)  # there on the host
            denied = self.run_in("alpha", f"cat {full}")
            self.assertNotEqual(denied.code, 0, f"alpha could read {full}")
            self.assertIn("No such file or directory", denied.stderr + denied.stdout)

    def test_another_apps_variables_cannot_be_read(self):
        beta_pid = self.version("beta")["pid"]
        with open(f"/proc/{beta_pid}/environ", "rb") as f:
            self.assertIn(BETA_SECRET.encode(), f.read())  # the secret is really there
        out = self.run_in("alpha", f"cat /proc/{beta_pid}/environ")
        self.assertNotEqual(out.code, 0, str(out))
        self.assertIn("Permission denied", out.stdout + out.stderr)
        self.assertNotIn(BETA_SECRET, out.stdout + out.stderr)

    def test_writes_to_the_release_are_the_processs_own_and_home_lasts(self):
        release = self.release_dir("alpha")
        out = self.run_in("alpha", "echo scratch > note.txt && cat note.txt && echo kept > $HOME/kept")
        self.assertEqual(out.code, 0, str(out))
        self.assertEqual(out.stdout, "scratch\n")
        self.assertFalse(os.path.exists(os.path.join(release, "app", "note.txt")))
        again = self.run_in("alpha", "cat note.txt 2>/dev/null || echo no-note; cat $HOME/kept")
        self.assertEqual(again.stdout, "no-note\nkept\n", str(again))
        # The app cannot change a file of its release in place.
        changed = self.run_in("alpha", "echo more >> server.py")
        self.assertNotEqual(changed.code, 0, str(changed))


if __name__ == "__main__":
    unittest.main()
