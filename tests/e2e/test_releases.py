"""Kept releases: rollback without a rebuild, retention (keepReleases), scale kept across deploys."""

import json
import os
import re
import unittest

from harness import SlipwayTestCase, wait_until

HOST = "web.releases.localhost"


def write_config(app, version, extra=""):
    with open(os.path.join(app, "slipway.toml"), "w") as f:
        f.write(
            'project = "releases"\n[services.web]\nhealthcheckPath = "/health"\nkeepReleases = 2\n'
            f'{extra}[services.web.variables]\nAPP_VERSION = "{version}"\n'
        )


class ReleasesTest(SlipwayTestCase):
    server_per_test = True

    def version(self):
        status, body = self.slipway.http_get(HOST, "/version")
        self.assertEqual(status, 200, body)
        return json.loads(body)["version"]

    def deploy(self, app, version, extra=""):
        write_config(app, version, extra)
        self.assertDeployed(self.slipway.up(app), "web", "releases")
        self.assertEqual(self.version(), version)
        return self.deployment_ids()[0]

    def deployment_ids(self):
        out = self.slipway.cli("deployments", "web", "--project", "releases")
        self.assertEqual(out.code, 0, str(out))
        return [int(line.split()[0]) for line in out.stdout.splitlines()[1:] if line.strip()]

    def releases_on_disk(self):
        return sorted(os.listdir(os.path.join(self.slipway.home, "releases")))

    def test_rollback_reuses_kept_releases_and_old_ones_are_deleted(self):
        app = self.slipway.copy_app("python-stdlib", "releases")
        nothing = self.slipway.cli("rollback", cwd=app)
        self.assertFailed(nothing)  # nothing deployed yet

        first = self.deploy(app, "1")
        only = self.slipway.cli("rollback", cwd=app)
        self.assertFailed(only)
        self.assertIn("no earlier release of web to roll back to", only.stderr)

        self.deploy(app, "2")
        third = self.deploy(app, "3")
        self.deploy(app, "4")
        # keepReleases = 2: the active release and the one before it; 1 and 2 are gone
        # (2 once it has drained, if it was still draining when 4 went live).
        wait_until(
            lambda: self.releases_on_disk() == sorted([str(third), str(third + 1)]),
            30,
            f"only releases {third} and {third + 1} on disk (now {self.releases_on_disk()})",
        )

        gone = self.slipway.cli("rollback", "--to", str(first), cwd=app)
        self.assertFailed(gone)
        self.assertIn("is no longer kept", gone.stderr)
        self.assertEqual(self.version(), "4")  # a refused rollback changes nothing

        back = self.slipway.cli("rollback", cwd=app)
        self.assertEqual(back.code, 0, str(back))
        self.assertIn("nothing to build", back.stdout)
        self.assertIn(f"http://{HOST}:{self.slipway.http_port}", back.last_line())
        self.assertEqual(self.version(), "3")
        listing = self.slipway.cli("deployments", "web", "--project", "releases").stdout
        self.assertRegex(listing, rf"(?m)^\d+\s+web\s+ACTIVE \*.*rollback to #{third}")
        # The rollback reused release 3: nothing new on disk.
        self.assertEqual(self.releases_on_disk(), sorted([str(third), str(third + 1)]))

    def test_scale_applies_at_once_and_is_kept_for_later_deploys(self):
        app = self.slipway.copy_app("python-stdlib", "releases")
        self.deploy(app, "1")
        bad = self.slipway.cli("scale", "web=0", cwd=app)
        self.assertFailed(bad)
        self.assertIn("replicas must be from 1 to 32", bad.stderr)

        scaled = self.slipway.cli("scale", "web=3", cwd=app)
        self.assertEqual(scaled.code, 0, str(scaled))
        status = self.slipway.cli("status", cwd=app).stdout
        self.assertRegex(status, r"(?m)^web\s+#\d+\s+ACTIVE\s+3/3\s+healthy")
        pids = {json.loads(self.slipway.http_get(HOST, "/version")[1])["pid"] for _ in range(12)}
        self.assertEqual(len(pids), 3, "requests are spread over the three replicas")

        self.deploy(app, "2")  # numReplicas is not set: the scale is kept
        status = self.slipway.cli("status", cwd=app).stdout
        self.assertRegex(status, r"(?m)^web\s+#\d+\s+ACTIVE\s+3/3\s+healthy")

        down = self.slipway.cli("scale", "web=1", cwd=app)
        self.assertEqual(down.code, 0, str(down))
        wait_until(lambda: len(self.slipway.live_app_groups()) == 1, 30, "two replicas stopped")
        self.assertEqual(self.version(), "2")


if __name__ == "__main__":
    unittest.main()
