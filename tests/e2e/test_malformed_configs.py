"""A malformed config file of any format Slipway reads stops `slipway up` with one error
line naming the file and line, and changes nothing deployed (issue 5, Done when 4)."""

import os
import re
import unittest

from harness import SlipwayTestCase

PROJECT = "steady"

# (file, broken contents, line the error must name)
BROKEN = [
    ("slipway.toml", 'project = "steady"\n[services.web]\nnumReplicas = "two"\n', 3),
    ("railway.json", '{\n  "deploy": {\n    "startCommand": "python3 server.py",\n  }\n}\n', 4),
    ("railway.toml", '[deploy]\nstartCommand = "python3 server.py\n', 2),
    ("render.yaml", "services:\n  - type: web\n    name: web\n   startCommand: x\n", 4),
    ("vercel.json", '{\n  "outputDirectory": ".",\n  "cleanUrls": "yes"\n}\n', 3),
    ("app.json", '{\n  "name": "steady"\n  "env": {}\n}\n', 3),
    ("docker-compose.yml", "services:\n  web:\n    build: .\n    deploy:\n      replicas: many\n", 5),
    ("Procfile", "web python3 server.py\n", 1),
]

CONFIG_FILES = [name for name, _, _ in BROKEN]


class MalformedConfigTest(SlipwayTestCase):
    def test_every_format_names_file_and_line_and_keeps_what_runs(self):
        sw = self.slipway
        app = sw.copy_app("python-stdlib", PROJECT)
        with open(os.path.join(app, "slipway.toml"), "w") as f:
            f.write(f'project = "{PROJECT}"\n[services.web]\nhealthcheckPath = "/health"\n')
        self.assertDeployed(sw.up(app), "web", PROJECT)
        before = [(d["id"], d["status"]) for d in sw.deployments(PROJECT)]
        serving = sw.get_json(f"web.{PROJECT}.localhost", "/version")

        for filename, text, line in BROKEN:
            with self.subTest(filename):
                for name in CONFIG_FILES:
                    path = os.path.join(app, name)
                    if os.path.exists(path):
                        os.remove(path)
                with open(os.path.join(app, filename), "w") as f:
                    f.write(text)
                result = sw.up(app)
                self.assertFailed(result)
                errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
                self.assertEqual(len(errors), 1, result.stderr)
                match = re.match(rf"error: {re.escape(filename)}:(\d+)(:\d+)?: \S", errors[0])
                self.assertIsNotNone(match, errors[0])
                self.assertEqual(int(match.group(1)), line, errors[0])
                self.assertEqual([(d["id"], d["status"]) for d in sw.deployments(PROJECT)], before)
                self.assertEqual(sw.get_json(f"web.{PROJECT}.localhost", "/version"), serving)


if __name__ == "__main__":
    unittest.main()
