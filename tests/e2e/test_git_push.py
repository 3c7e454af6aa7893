"""git push to deploy: real `git push` over HTTP to the real daemon (docs/git.md).

The repository is tests/e2e/fixtures/gitpush: services api and web under their own
rootDirectory, each answering the message.txt beside it, and a nightly cron job.
"""

import os
import shutil
import subprocess
import urllib.error
import urllib.request

from harness import FIXTURES_DIR, SlipwayTestCase

GIT_TIMEOUT = 300


class GitPushTest(SlipwayTestCase):
    # --- helpers -------------------------------------------------------------------

    def make_repo(self, project):
        """A git repository of the fixture, named `project`, with one commit on main."""
        repo = os.path.join(self.slipway.apps_dir, project)
        shutil.copytree(os.path.join(FIXTURES_DIR, "gitpush"), repo)
        config = os.path.join(repo, "slipway.toml")
        with open(config) as f:
            text = f.read().replace('project = "gitpush"', f'project = "{project}"')
        with open(config, "w") as f:
            f.write(text)
        self.git(repo, "init", "-q", "-b", "main")
        self.commit(repo, "first")
        return repo

    def git(self, repo, *args, check=True):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.slipway.root,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "LANG": "C",
        }
        done = subprocess.run(
            ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
            cwd=repo,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"git {' '.join(args)} -> {done.returncode}\n{done.stdout}{done.stderr}\n"
                f"{self.server_log()}"
            )
        return done

    def commit(self, repo, message, files=None):
        for path, content in (files or {}).items():
            with open(os.path.join(repo, path), "w") as f:
                f.write(content)
        self.git(repo, "add", "-A")
        self.git(repo, "commit", "-q", "-m", message)
        return self.git(repo, "rev-parse", "HEAD").stdout.strip()

    def add_remote(self, repo, project):
        got = self.slipway.cli("git-remote", "--url", "--project", project)
        self.assertEqual(got.code, 0, str(got))
        url = got.stdout.strip()
        self.git(repo, "remote", "add", "slipway", url)
        return url

    def push(self, repo, *refs, ok=True):
        done = self.git(repo, "push", "slipway", *refs, check=False)
        output = done.stdout + done.stderr
        if ok:
            self.assertEqual(done.returncode, 0, f"git push failed\n{output}\n{self.server_log()}")
        return done.returncode, output

    def host(self, service, project, env="production"):
        return f"{service}.{project}.localhost" if env == "production" else (
            f"{service}.{project}-{env}.localhost"
        )

    def answer(self, service, project, env="production"):
        return self.slipway.get_json(self.host(service, project, env), "/")

    def active(self, project, service, env="production"):
        for s in self.slipway.api_get(f"/v1/projects/{project}/status?env={env}")["services"]:
            if s["name"] == service:
                return s["active_deployment_id"]
        raise AssertionError(f"{project} ({env}) has no service {service}")

    def token(self):
        with open(os.path.join(self.slipway.home, "token")) as f:
            return f.read().strip()

    # --- tests ---------------------------------------------------------------------

    def test_push_deploys_what_it_touched(self):
        sw, project = self.slipway, "pushed"
        repo = self.make_repo(project)
        shown = sw.cli("git-remote", cwd=repo)
        self.assertEqual(shown.code, 0, str(shown))
        self.assertRegex(
            shown.stdout,
            r"git remote add slipway http://slipway:[0-9a-f]{64}@127\.0\.0\.1:\d+/git/pushed\.git"
            r" && git push slipway main",
        )
        self.add_remote(repo, project)

        # The first push deploys every service and ends with the URLs.
        _, first = self.push(repo, "main")
        api_url = f"http://{self.host('api', project)}:{sw.http_port}"
        web_url = f"http://{self.host('web', project)}:{sw.http_port}"
        self.assertIn(f"remote: api is live at {api_url}", first)
        self.assertIn(f"remote: web is live at {web_url}", first)
        self.assertIn("remote: nightly is scheduled: 0 2 * * * (UTC)", first)
        self.assertIn("remote: ==> python3 -m py_compile server.py", first)  # the build log
        self.assertEqual(self.answer("api", project)["message"], "api v1")
        self.assertEqual(self.answer("web", project)["message"], "web v1")
        web, api = self.active(project, "web"), self.active(project, "api")

        # A push touching api/ only deploys api; web keeps its deployment.
        head = self.commit(repo, "api v2", {"api/message.txt": "api v2\n"})
        _, second = self.push(repo, "main")
        self.assertIn("remote:     api: deploying (1 file under api/ changed)", second)
        self.assertIn("remote:     web: not redeployed (no file under web/ changed)", second)
        self.assertIn(f"remote: api is live at {api_url}", second)
        self.assertNotIn("web is live", second)
        self.assertEqual(self.answer("api", project)["message"], "api v2")
        self.assertEqual(self.active(project, "web"), web)
        self.assertGreater(self.active(project, "api"), api)
        latest = sw.deployments(project, "api")[0]
        self.assertEqual(latest["source"], f"git push main {head[:7]}")

        # A change outside every service deploys nothing.
        self.commit(repo, "docs", {"README.md": "more words\n"})
        _, third = self.push(repo, "main")
        self.assertIn("remote: nothing to deploy for main", third)

        # The token is in the URL git was given, and in no log.
        token = self.token()
        for base in (os.path.join(sw.home, "logs"), sw.server_log_path):
            paths = [base] if os.path.isfile(base) else [
                os.path.join(d, f) for d, _, fs in os.walk(base) for f in fs
            ]
            for path in paths:
                with open(path, "rb") as f:
                    self.assertNotIn(token.encode(), f.read(), path)
        self.assertNotIn(token, first + second + third)

    def test_branch_preview_environment(self):
        sw, project = self.slipway, "previews"
        repo = self.make_repo(project)
        self.add_remote(repo, project)
        self.push(repo, "main")
        prod_web = self.active(project, "web")

        # A branch: its own environment, created from production, serving its code.
        self.git(repo, "checkout", "-q", "-b", "feature/login")
        self.commit(repo, "preview", {"web/message.txt": "web on feature/login\n"})
        _, pushed = self.push(repo, "feature/login")
        preview_url = f"http://{self.host('web', project, 'feature-login')}:{sw.http_port}"
        self.assertIn("new preview environment feature-login", pushed)
        self.assertIn(f"remote: web is live at {preview_url}", pushed)
        self.assertIn("nightly: not deployed (a cron job: cron jobs run in production only)", pushed)
        served = self.answer("web", project, "feature-login")
        self.assertEqual(served["message"], "web on feature/login")
        self.assertEqual(served["environment"], "feature-login")
        self.assertEqual(self.answer("web", project)["message"], "web v1")
        self.assertEqual(self.active(project, "web"), prod_web)
        listed = sw.cli("env", "list", "--project", project)
        self.assertEqual(listed.code, 0, str(listed))
        rows = [line.split() for line in listed.stdout.splitlines()]
        self.assertIn(["feature-login", "web", "ACTIVE", preview_url], rows, listed.stdout)
        self.assertIn(["feature-login", "nightly", "NOT", "DEPLOYED"], rows, listed.stdout)
        self.assertIn("feature-login: the preview of git branch feature/login", listed.stdout)

        # The branch again, touching api: the preview's api only.
        preview_web = self.active(project, "web", "feature-login")
        self.commit(repo, "api on the branch", {"api/message.txt": "api on feature/login\n"})
        _, again = self.push(repo, "feature/login")
        self.assertIn("remote:     web: not redeployed", again)
        self.assertEqual(self.active(project, "web", "feature-login"), preview_web)
        self.assertEqual(self.answer("api", project, "feature-login")["message"],
                         "api on feature/login")
        self.assertEqual(self.answer("api", project)["message"], "api v1")

        # Deleting the branch deletes the environment.
        _, deleted = self.push(repo, "--delete", "feature/login")
        self.assertIn("preview environment feature-login deleted", deleted)
        status, _ = sw.http_get(self.host("web", project, "feature-login"), "/")
        self.assertEqual(status, 404)
        listed = sw.cli("env", "list", "--project", project)
        self.assertNotIn("feature-login", listed.stdout)
        self.assertEqual(self.answer("web", project)["message"], "web v1")

    def test_push_without_the_token_is_refused(self):
        sw, project = self.slipway, "locked"
        repo = self.make_repo(project)
        url = f"{sw.api_url}/git/{project}.git"
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/info/refs?service=git-receive-pack", timeout=10)
        self.assertEqual(refused.exception.code, 401)
        self.assertEqual(refused.exception.headers["WWW-Authenticate"], 'Basic realm="Slipway"')

        done = self.git(repo, "push", url, "main", check=False)
        self.assertNotEqual(done.returncode, 0, done.stdout + done.stderr)
        wrong = url.replace("http://", "http://slipway:not-the-token@")
        done = self.git(repo, "push", wrong, "main", check=False)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("Authentication failed", done.stderr)
        projects = [p["name"] for p in sw.api_get("/v1/projects")["projects"]]
        self.assertNotIn(project, projects)

    def test_broken_build_refuses_the_push_and_production_keeps_serving(self):
        sw, project = self.slipway, "broken"
        repo = self.make_repo(project)
        self.add_remote(repo, project)
        self.push(repo, "main")
        web = self.active(project, "web")
        good = self.git(repo, "rev-parse", "HEAD").stdout.strip()

        with open(os.path.join(repo, "web", "server.py"), "a") as f:
            f.write("this is not python(\n")
        self.commit(repo, "broken")
        code, output = self.push(repo, "main", ok=False)
        self.assertNotEqual(code, 0, output)
        self.assertIn("SyntaxError", output)
        self.assertRegex(output, r"remote: error: web: deployment \d+ BUILD_FAILED")
        self.assertIn("the push is refused", output)
        self.assertIn("[remote rejected] main -> main (pre-receive hook declined)", output)
        self.assertEqual(self.active(project, "web"), web)
        self.assertEqual(self.answer("web", project)["message"], "web v1")
        # Slipway's main is still the good commit.
        remote = self.git(repo, "ls-remote", "slipway", "refs/heads/main").stdout
        self.assertTrue(remote.startswith(good), remote)

        # The broken commit on a new branch: refused too, and no preview is left behind.
        code, output = self.push(repo, "main:broken-feature", ok=False)
        self.assertNotEqual(code, 0, output)
        self.assertIn("preview environment broken-feature removed", output)
        envs = sw.api_get(f"/v1/projects/{project}/environments")["environments"]
        self.assertEqual([e["name"] for e in envs], ["production"])

        # Fixed: the push goes through and deploys web.
        self.git(repo, "revert", "--no-edit", "HEAD")
        self.commit(repo, "web v2", {"web/message.txt": "web v2\n"})
        _, fixed = self.push(repo, "main")
        self.assertIn("web is live", fixed)
        self.assertEqual(self.answer("web", project)["message"], "web v2")

    def test_production_branch_setting(self):
        sw, project = self.slipway, "trunked"
        repo = self.make_repo(project)
        self.git(repo, "branch", "-m", "main", "trunk")
        got = sw.cli("git-remote", "--project", project, "--production-branch", "trunk")
        self.assertEqual(got.code, 0, str(got))
        self.assertIn("trunk to production", got.stdout)
        self.add_remote(repo, project)
        _, pushed = self.push(repo, "trunk")
        self.assertIn("-> production", pushed)
        self.assertEqual(self.answer("web", project)["message"], "web v1")
        settings = sw.api_get(f"/v1/projects/{project}/git")
        self.assertEqual(settings["production_branch"], "trunk")
        refused = sw.cli("git-remote", "--project", project, "--production-branch", "a..b")
        self.assertFailed(refused)


if __name__ == "__main__":
    import unittest

    unittest.main()
