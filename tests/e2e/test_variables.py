"""Variables and secrets (Slipway issue 5, "Done when" 2 and 3).

Secrets written with `slipway variables set` reach the app (it serves a sha256 of each)
while no byte sequence of any of them appears in state.db, anywhere in the data dir's
logs, in the API's JSON answers or in the CLI's output -- even though the app and its
pre-deploy command print them. References resolve at deploy (a missing one fails `slipway
up` at once, naming it, with nothing deployed changed); environments keep their
variables apart; a change applies at the next deploy, or now with --deploy (no build,
no failed request under load).
"""

import hashlib
import json
import os
import secrets
import time
import unittest

from harness import SlipwayTestCase, wait_until, write_slipway_toml
from load import Load


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def write_two_services(root, project, web_variables):
    """A project with services "api" and "web", each a copy of the example app."""
    lines = [f'project = "{project}"']
    for name, variables in (("api", {}), ("web", web_variables)):
        lines += ["", f"[services.{name}]", f'rootDirectory = "{name}"', 'healthcheckPath = "/health"']
        if variables:
            lines += ["", f"[services.{name}.variables]"]
            lines += [f"{k} = {json.dumps(v)}" for k, v in variables.items()]
    with open(os.path.join(root, "slipway.toml"), "w") as f:
        f.write("\n".join(lines) + "\n")


class VariablesTest(SlipwayTestCase):
    def digest(self, host, name):
        return self.slipway.get_json(host, f"/env-digest?name={name}")

    def api_text(self, path):
        """An API answer exactly as a client receives it (raw bytes, before JSON parsing)."""
        import urllib.request

        request = urllib.request.Request(self.slipway.api_url + path)
        with open(os.path.join(self.slipway.home, "token")) as f:
            request.add_header("Authorization", "Bearer " + f.read().strip())
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    def assertCli(self, result):
        self.assertEqual(result.code, 0, f"{result}\n{self.server_log()}")
        return result

    # --- (a) secrets never leak ---------------------------------------------------------

    def test_a_secret_a_frontend_build_would_publish_is_named_in_a_warning(self):
        app = self.slipway.copy_app("static-site", "frontend")
        self.assertCli(self.slipway.cli("variables", "set", "VITE_STRIPE_KEY=pk_live_0123456789",
                                        "--service", "web", cwd=app))
        self.assertCli(self.slipway.cli("variables", "set", "--plain", "VITE_API_BASE=/api",
                                        "--service", "web", cwd=app))
        up = self.assertCli(self.slipway.up(app))
        self.assertIn(
            'warning: service "web": VITE_STRIPE_KEY is a secret, but frontend builds put VITE_* '
            "variables into the files they serve to anyone",
            up.stderr,
        )
        self.assertNotIn("VITE_API_BASE", up.stderr)

    def test_secrets_reach_the_app_and_nothing_else(self):
        app = self.slipway.copy_app("python-stdlib", "vault")
        host = "web.vault.localhost"
        values = {
            "API_TOKEN": "tok_" + secrets.token_urlsafe(48),
            "DB_PASSWORD": "pw-" + secrets.token_hex(40),
            "SIGNING_KEY": secrets.token_urlsafe(2000),  # long: spans reads and JSON fields
            "PASSPHRASE": "correct horse " + secrets.token_hex(8) + " battery staple",
        }
        database_url = "postgres://app:" + values["DB_PASSWORD"] + "@db.internal:5432/app"
        write_slipway_toml(
            app,
            "vault",
            keys={"healthcheckPath": "/health"},
            variables={
                "APP_VERSION": "v1",
                "PRINT_VARIABLES": "API_TOKEN,DB_PASSWORD,SIGNING_KEY,PASSPHRASE,DATABASE_URL",
                "DATABASE_URL": "postgres://app:${{ DB_PASSWORD }}@db.internal:5432/app",
            },
        )
        outputs = []  # every CLI output that must be clean
        set_result = self.assertCli(
            self.slipway.cli("variables", "set", *[f"{k}={v}" for k, v in values.items()], cwd=app)
        )
        outputs.append(set_result.output)
        self.assertIn("take effect at the next deploy", set_result.stdout)
        up = self.slipway.up(app)
        self.assertDeployed(up, "web", "vault")
        outputs.append(up.output)

        # The app got the right values (and the reference made from one).
        for name, value in values.items():
            self.assertEqual(self.digest(host, name)["sha256"], sha256(value), name)
        self.assertEqual(self.digest(host, "DATABASE_URL")["sha256"], sha256(database_url))

        # It printed them; the log has *** in their place.
        def logged():
            result = self.slipway.cli("logs", "-n", "50", cwd=app)
            return result if "PASSPHRASE=***" in result.stdout else None

        logs = wait_until(logged, 30, "the app's printed variables in `slipway logs`")
        outputs.append(logs.output)
        self.assertIn("API_TOKEN=***", logs.stdout)
        # Made from a secret, so a secret too: masked whole.
        self.assertIn("DATABASE_URL=***", logs.stdout)
        build_logs = self.assertCli(self.slipway.cli("logs", "--build", cwd=app))
        outputs.append(build_logs.output)
        self.assertIn("migrate: DB_PASSWORD=***", build_logs.stdout)
        self.assertIn("migrate: SIGNING_KEY=***", build_logs.stdout)

        listed = self.assertCli(self.slipway.cli("variables", "list", cwd=app))
        outputs.append(listed.output)
        for name in values:
            self.assertRegex(listed.stdout, rf"(?m)^{name}\s+\*\*\*\s+cli$")
        self.assertRegex(listed.stdout, r"(?m)^APP_VERSION\s+v1\s+config file$")
        for args in (("status",), ("deployments",)):
            outputs.append(self.assertCli(self.slipway.cli(*args, cwd=app)).output)

        api_answers = [
            self.api_text(path)
            for path in (
                "/v1/projects/vault/status",
                "/v1/projects",
                "/v1/projects/vault/deployments?service=web",
                "/v1/projects/vault/variables?service=web",
                "/v1/projects/vault/logs?service=web&lines=200",
                "/v1/projects/vault/logs?service=web&build=1&lines=200",
                "/v1/deployments/" + str(self.slipway.deployments("vault")[0]["id"]),
            )
        ]

        # Token holders see them with --reveal.
        revealed = self.assertCli(self.slipway.cli("variables", "list", "--reveal", cwd=app))
        for name, value in values.items():
            self.assertIn(value, revealed.stdout, name)

        # No byte sequence of a secret anywhere the platform writes or answers.
        files = []
        for base, _, names in os.walk(self.slipway.home):
            for n in names:
                if base.startswith(os.path.join(self.slipway.home, "releases")):
                    continue  # the app's own code, copied from the upload
                files.append(os.path.join(base, n))
        self.assertIn(os.path.join(self.slipway.home, "state.db"), files)
        self.assertTrue(any("/logs/" in f for f in files), files)
        blobs = []
        for f in files:
            if f.endswith("/secret.key") or not os.path.isfile(f):
                continue  # the key itself; sockets
            with open(f, "rb") as data:
                blobs.append((f, data.read()))
        blobs += [(f"API answer {i}", a) for i, a in enumerate(api_answers)]
        blobs += [(f"CLI output {i}", o.encode()) for i, o in enumerate(outputs)]
        for value in list(values.values()) + [database_url]:
            needles = {value.encode(), value[:24].encode(), value[-24:].encode()}
            for where, blob in blobs:
                for needle in needles:
                    self.assertNotIn(needle, blob, f"a secret's bytes in {where}")

        # The shim learnt the secrets from its environment, not from its argv.
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            for value in values.values():
                self.assertNotIn(value.encode(), cmdline)

    def test_bad_input_is_one_line_and_changes_nothing(self):
        app = self.slipway.copy_app("python-stdlib", "badvars")
        self.assertCli(self.slipway.cli("variables", "set", "GOOD=value-1", cwd=app))
        cases = [
            (("variables", "set", "NOEQUALS"), 'expected KEY=VALUE, got "NOEQUALS"'),
            (("variables", "set", "1BAD=x"), '"1BAD" is not a variable name'),
            (("variables", "set", "PORT=1"), "PORT is set by Slipway itself"),
            (("variables", "set", "SLIPWAY_SERVICE=x"), "SLIPWAY_SERVICE is set by Slipway"),
            (("variables", "set", "BIG=" + "x" * (64 * 1024 + 1)), "a variable holds at most 64 KiB"),
            (("variables", "unset", "NEVER_SET"), "no variable NEVER_SET is set"),
        ]
        for args, message in cases:
            result = self.slipway.cli(*args, cwd=app)
            self.assertNotEqual(result.code, 0, str(result))
            self.assertIn(message, result.stderr)
            self.assertEqual(len(result.stderr.strip().splitlines()), 1, str(result))
        listed = self.assertCli(self.slipway.cli("variables", "list", "--reveal", cwd=app))
        self.assertEqual(listed.stdout.split(), ["NAME", "VALUE", "SOURCE", "GOOD", "value-1", "cli"])

    # --- (b) references ---------------------------------------------------------------

    def test_references_resolve_and_a_missing_one_fails_up_changing_nothing(self):
        root = os.path.join(self.slipway.apps_dir, "refs")
        os.makedirs(root)
        for name in ("api", "web"):
            os.rename(self.slipway.copy_app("python-stdlib", f"refs-{name}"), os.path.join(root, name))
        self.assertCli(self.slipway.cli("variables", "set", "--shared", "REGION=eu-west", "--plain", cwd=root))
        self.assertCli(self.slipway.cli("variables", "set", "--service", "api", "API_KEY=" + "k" * 40, cwd=root))
        web_vars = {
            "API_URL": "${{ api.SLIPWAY_PRIVATE_URL }}/v1",
            "WHERE": "${{shared.REGION}}",
            "KEY_COPY": "${{ api.API_KEY }}",
            "SELF_REF": "${{ WHERE }}-1",
            "SESSION_SECRET": "${{ secret(40) }}",
        }
        write_two_services(root, "refs", web_vars)
        up = self.slipway.up(root)
        self.assertEqual(up.code, 0, f"{up}\n{self.server_log()}")
        web = "web.refs.localhost"
        api_url = f"http://api.refs.localhost:{self.slipway.http_port}/v1"
        self.assertEqual(self.digest(web, "API_URL")["sha256"], sha256(api_url))
        self.assertEqual(self.digest(web, "WHERE")["sha256"], sha256("eu-west"))
        self.assertEqual(self.digest(web, "REGION")["sha256"], sha256("eu-west"))
        self.assertEqual(self.digest(web, "KEY_COPY")["sha256"], sha256("k" * 40))
        self.assertEqual(self.digest(web, "SELF_REF")["sha256"], sha256("eu-west-1"))
        # Every app knows its own private URL; the referenced one really reaches api.
        self.assertTrue(self.digest(web, "SLIPWAY_PRIVATE_URL")["set"])
        status, _ = self.slipway.http_get("api.refs.localhost", "/health")
        self.assertEqual(status, 200)
        # The generated secret is kept across deploys and listed as generated.
        generated = self.digest(web, "SESSION_SECRET")["sha256"]
        listed = self.assertCli(self.slipway.cli("variables", "list", "--service", "web", cwd=root))
        self.assertRegex(listed.stdout, r"(?m)^SESSION_SECRET\s+\*\*\*\s+generated$")
        self.assertRegex(listed.stdout, r"(?m)^REGION\s+eu-west\s+shared, cli$")
        self.assertEqual(self.slipway.up(root, "--service", "web").code, 0)
        self.assertEqual(self.digest(web, "SESSION_SECRET")["sha256"], generated)

        def deployment_ids():
            return {s: [(d["id"], d["release_id"]) for d in self.slipway.deployments("refs", s)]
                    for s in ("api", "web")}

        before = deployment_ids()
        active = {s: self.slipway.service_status("refs", s)["active_deployment_id"] for s in ("api", "web")}
        write_two_services(root, "refs", {**web_vars, "DATABASE_URL": "${{ postgres.DATABASE_URL }}"})
        failed = self.slipway.up(root)
        self.assertNotEqual(failed.code, 0, str(failed))
        self.assertIn(
            'variable DATABASE_URL of service "web": ${{ postgres.DATABASE_URL }}: no service or '
            'add-on named "postgres" in project "refs" (production)',
            failed.stderr,
        )
        for cycle_vars, message in (
            ({"A": "${{ B }}", "B": "${{ A }}"}, "reference cycle: web.A -> web.B -> web.A"),
            ({"X": "${{ api.NOPE }}"}, 'service "api" has no variable NOPE'),
            ({"X": "${{ api.API_KEY"}, 'unterminated "${{"'),
        ):
            write_two_services(root, "refs", {**web_vars, **cycle_vars})
            result = self.slipway.up(root)
            self.assertNotEqual(result.code, 0, str(result))
            self.assertIn(message, result.stderr)
        self.assertEqual(deployment_ids(), before)  # no deployment was even queued
        for s in ("api", "web"):
            self.assertEqual(self.slipway.service_status("refs", s)["active_deployment_id"], active[s])
        self.assertEqual(self.digest(web, "SESSION_SECRET")["sha256"], generated)

    # --- (c) environments ----------------------------------------------------------------

    def test_environments_keep_their_variables_apart(self):
        app = self.slipway.copy_app("python-stdlib", "envs")
        write_slipway_toml(app, "envs", keys={"healthcheckPath": "/health"})
        prod_value = "prod-" + secrets.token_hex(24)
        staging_value = "staging-" + secrets.token_hex(24)
        self.assertCli(self.slipway.cli("variables", "set", f"STRIPE_KEY={prod_value}", cwd=app))
        self.assertCli(
            self.slipway.cli(
                "variables", "set", "--env", "staging", f"STRIPE_KEY={staging_value}",
                "STAGING_ONLY=yes-really", cwd=app,
            )
        )
        self.assertEqual(self.slipway.up(app).code, 0)
        staged = self.slipway.up(app, "--env", "staging")
        self.assertEqual(staged.code, 0, f"{staged}\n{self.server_log()}")
        prod, staging = "web.envs.localhost", "web.envs-staging.localhost"
        self.assertEqual(self.digest(prod, "STRIPE_KEY")["sha256"], sha256(prod_value))
        self.assertEqual(self.digest(staging, "STRIPE_KEY")["sha256"], sha256(staging_value))
        self.assertFalse(self.digest(prod, "STAGING_ONLY")["set"])
        self.assertTrue(self.digest(staging, "STAGING_ONLY")["set"])
        prod_list = self.assertCli(self.slipway.cli("variables", "list", "--reveal", cwd=app))
        self.assertIn(prod_value, prod_list.stdout)
        self.assertNotIn(staging_value, prod_list.stdout)
        self.assertNotIn("STAGING_ONLY", prod_list.stdout)

    # --- (d) applying a change -------------------------------------------------------------

    def test_set_waits_for_the_next_deploy_and_deploy_applies_it_without_build_or_failures(self):
        app = self.slipway.copy_app("python-stdlib", "apply")
        host = "web.apply.localhost"
        write_slipway_toml(app, "apply", keys={"healthcheckPath": "/health"})
        self.assertCli(self.slipway.cli("variables", "set", "--plain", "APP_VERSION=v1", cwd=app))
        self.assertEqual(self.slipway.up(app).code, 0)
        active = self.slipway.service_status("apply")["active_deployment_id"]
        self.assertIn('"version": "v1"', self.slipway.http_get(host, "/version")[1])

        self.assertCli(self.slipway.cli("variables", "set", "--plain", "APP_VERSION=v2", cwd=app))
        self.assertEqual(self.slipway.service_status("apply")["active_deployment_id"], active)
        self.assertEqual(self.slipway.deployments("apply")[0]["id"], active)
        self.assertIn('"version": "v1"', self.slipway.http_get(host, "/version")[1])

        load = Load(self.slipway.http_port, host, slow=1, slow_ms=500).start()
        try:
            wait_until(lambda: load.count_ok() >= 20, 30, "the load to get going")
            applied = self.slipway.cli("variables", "set", "--plain", "--deploy", "SECRET_SALT_UNUSED=1", "APP_VERSION=v3", cwd=app)
            done = time.monotonic()
            wait_until(lambda: load.count_ok(since=done) >= 20, 30, "load after the switch")
        finally:
            load.stop()
        self.assertCli(applied)
        self.assertIn("reusing release", applied.stdout)
        self.assertNotIn("==> pip", applied.stdout)
        self.assertEqual(load.failures(), [], load.summary())
        latest = self.slipway.deployments("apply")[0]
        self.assertEqual(latest["source"], "variables changed")
        self.assertEqual(latest["status"], "ACTIVE")
        self.assertEqual(latest["release_id"], self.slipway.deployment(active)["release_id"])
        self.assertIn('"version": "v3"', self.slipway.http_get(host, "/version")[1])
        late = [r for r in load.snapshot() if r.start > done and r.ok and r.version != "v3"]
        self.assertEqual(late, [], "answers by the old variables after --deploy returned")

        # A rollback brings back the variables the release ran with.
        back = self.slipway.cli("rollback", "--to", str(active), cwd=app)
        self.assertCli(back)
        self.assertIn('"version": "v1"', self.slipway.http_get(host, "/version")[1])


if __name__ == "__main__":
    unittest.main()
