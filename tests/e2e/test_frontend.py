"""The research dashboard's frontend as a person sees it: examples/bytomorrow deployed with
`slipway up` (api on PostgreSQL, web built with npm and served by the edge at the privacy
path /coldbrewbubbletea/), loaded in headless Chromium (tests/e2e/browser/render.mjs),
which must draw one SVG line per model size from the live API, through the edge's
rewrite of /coldbrewbubbletea/api/* to the api service.

Needs Debian's chromium and tests/e2e/browser's npm packages (scripts/setup.sh installs
both; this test runs `npm ci` there itself when node_modules is missing). Each run keeps
its screenshots in a directory whose path it prints (SLIPWAY_E2E_ARTIFACTS names another).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from harness import SlipwayTestCase

BROWSER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "browser")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PROJECT = "bytomorrow"
PRIVACY_PATH = "/coldbrewbubbletea/"
SIZES = ["60M", "150M", "350M", "1B"]
# render.mjs's own deadline (browser start, page load, chart drawn); the subprocess gets more.
RENDER_TIMEOUT_MS = 30_000


def ensure_browser_driver():
    """npm ci in tests/e2e/browser unless playwright-core is there; an error says what to do."""
    if not os.path.exists(CHROMIUM):
        raise AssertionError(f"no browser at {CHROMIUM}: run scripts/setup.sh (it installs chromium)")
    if os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise AssertionError("npm is not installed: run scripts/setup.sh")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=BROWSER_DIR,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"npm ci in {BROWSER_DIR} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
        )


def render(url, screenshot, *args):
    """Runs render.mjs on `url`; returns (exit code, its JSON report or None, stderr)."""
    command = ["node", os.path.join(BROWSER_DIR, "render.mjs"), url, "--screenshot", screenshot,
               "--timeout", str(RENDER_TIMEOUT_MS), "--chromium", CHROMIUM, *args]
    try:
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=RENDER_TIMEOUT_MS / 1000 + 30,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"render.mjs did not finish: {e}") from None
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = None
    return done.returncode, report, done.stderr


class FrontendTest(SlipwayTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        ensure_browser_driver()
        cls.artifacts = os.environ.get("SLIPWAY_E2E_ARTIFACTS") or tempfile.mkdtemp(prefix="e2e-frontend-")
        os.makedirs(cls.artifacts, exist_ok=True)
        print(f"\n[test_frontend] screenshots in {cls.artifacts}", file=sys.stderr)
        cls.app = cls.slipway.copy_app(PROJECT)
        cls.up = cls.slipway.up(cls.app)

    def setUp(self):
        super().setUp()
        self.assertEqual(self.up.code, 0, f"deploy failed\n{self.up}\n{self.server_log()}")
        self.web_host = f"web.{PROJECT}.localhost"
        self.api_host = f"api.{PROJECT}.localhost"
        self.page_url = self.slipway.url("web", PROJECT) + PRIVACY_PATH

    def shot(self, name):
        path = os.path.join(self.artifacts, name)
        print(f"[test_frontend] screenshot: {path}", file=sys.stderr)
        return path

    def assertApiRoutedThroughWeb(self):
        """The page's API calls work only once the edge applies the web service's rewrite
        of /coldbrewbubbletea/api/* to the api service: checked first, with plain HTTP,
        so that a missing rewrite is named instead of showing up as an empty chart."""
        path = PRIVACY_PATH + "api/visualize/options"
        status, headers, body = self.slipway.http_request(self.web_host, path)
        direct = self.slipway.get_json(self.api_host, "/api/visualize/options")
        try:
            answer = json.loads(body) if "json" in headers.get("content-type", "") else None
        except ValueError:
            answer = None
        if status != 200 or answer != direct:
            # What a person sees then, for the failure message.
            shot = self.shot(f"{self._testMethodName}-no-api.png")
            _, report, stderr = render(self.page_url, shot)
            seen = report["chart"]["status_text"] if report and report.get("chart") else stderr.strip()
            self.fail(
                f"the page says {seen!r} (screenshot {shot}): "
                f"GET http://{self.web_host}{path} answered {status} "
                f"({headers.get('content-type', 'no Content-Type')}): {body[:200]!r}, not the api's "
                f"{direct}. The edge does not apply the rewrite in examples/bytomorrow/slipway.toml "
                f'([[services.web.rewrites]] source "/coldbrewbubbletea/api/:path*" -> '
                f'"${{{{ api.SLIPWAY_PRIVATE_URL }}}}/api/:path*"): rewrites to another '
                f"service arrive with the edge's static-site routing."
            )

    def assertChart(self, report, code, stderr, data):
        """The drawn chart is `data` (the API's answer): one line per series with its
        points, a legend naming each, labelled axes, and no browser errors."""
        self.assertIsNotNone(report, f"render.mjs printed no report (exit {code}):\n{stderr}")
        context = json.dumps({k: report.get(k) for k in (
            "outcome", "error", "chart", "console_errors", "failed_requests", "http_errors")}, indent=1)
        self.assertEqual((code, report["outcome"]), (0, "drawn"), f"chart not drawn:\n{context}\n{stderr}")
        chart = report["chart"]
        names = [s["name"] for s in data["series"]]
        self.assertEqual([s["name"] for s in chart["series"]], names, context)
        self.assertEqual(
            [s["points"] for s in chart["series"]], [len(s["points"]) for s in data["series"]], context
        )
        self.assertEqual(chart["legend"], names, context)
        label = {"loss": "Loss", "accuracy": "Accuracy"}[data["metric"]]
        self.assertEqual(chart["axis_labels"], ["Training step", label], context)
        self.assertGreaterEqual(len(chart["x_ticks"]), 3, context)
        self.assertGreaterEqual(len(chart["y_ticks"]), 3, context)
        self.assertEqual(chart["x_ticks"][-1], f"{max(p['step'] for s in data['series'] for p in s['points']):,}", context)
        self.assertEqual(report["console_errors"] + report["page_errors"], [], context)
        self.assertEqual(report["failed_requests"] + report["http_errors"], [], context)

    def test_the_page_is_at_the_privacy_path_only(self):
        status, body = self.slipway.http_get(self.web_host, PRIVACY_PATH)
        self.assertEqual(status, 200, body[:300])
        self.assertIn('<svg id="chart"', body)
        self.assertIn(f'src="{PRIVACY_PATH}assets/', body)
        status, _ = self.slipway.http_get(self.web_host, "/")
        self.assertNotEqual(status, 200, "the dashboard must not be served at the site's root")

    def test_the_chart_draws_every_model_size_from_the_live_api(self):
        self.assertApiRoutedThroughWeb()
        data = self.slipway.get_json(self.api_host, "/api/visualize/data?data_source=pile&metric=loss")
        self.assertEqual([s["name"] for s in data["series"]], SIZES)
        code, report, stderr = render(self.page_url, self.shot("default-pile-loss.png"))
        self.assertChart(report, code, stderr, data)
        self.assertEqual(report["chart"]["series_count"], 4)

    def test_controls_redraw_the_chart(self):
        self.assertApiRoutedThroughWeb()
        # From a linked selection, then a click on "Accuracy" and one unticking 1B.
        code, report, stderr = render(
            self.page_url + "?data_source=c4&metric=loss&params=60M,1B",
            self.shot("c4-accuracy-60M.png"),
            "--click", "input[name=metric][value=accuracy]",
            "--click", 'input[name=params][value="1B"]',
        )
        data = self.slipway.get_json(self.api_host, "/api/visualize/data?data_source=c4&metric=loss&params=60M,1B")
        self.assertChart(report, code, stderr, data)
        accuracy = self.slipway.get_json(
            self.api_host, "/api/visualize/data?data_source=c4&metric=accuracy&params=60M,1B"
        )
        first, second = report["after_clicks"]
        self.assertChart({**report, **first}, code, stderr, accuracy)
        only_60m = {**accuracy, "series": accuracy["series"][:1]}
        self.assertChart({**report, **second}, code, stderr, only_60m)
        self.assertIn("params=60M", report["final_url"])
        self.assertIn("metric=accuracy", report["final_url"])


class FrontendOnApiHostTest(SlipwayTestCase):
    """The same page built with VITE_API_BASE pointing at the api's own host: a service
    variable reaches Vite's build, and the chart is drawn from the live API across
    origins (the api allows any). Needs no rewrite."""

    def test_vite_api_base_sends_the_page_to_the_api_host(self):
        ensure_browser_driver()
        app = self.slipway.copy_app(PROJECT)
        api_base = self.slipway.url("api", PROJECT) + "/api"
        result = self.slipway.cli("variables", "set", f"VITE_API_BASE={api_base}", "--service", "web", cwd=app)
        self.assertEqual(result.code, 0, str(result))
        up = self.slipway.up(app)
        self.assertDeployed(up, "web", PROJECT)

        artifacts = os.environ.get("SLIPWAY_E2E_ARTIFACTS") or tempfile.mkdtemp(prefix="e2e-frontend-")
        os.makedirs(artifacts, exist_ok=True)
        shot = os.path.join(artifacts, "api-host-c4-accuracy.png")
        print(f"\n[test_frontend] screenshot: {shot}", file=sys.stderr)
        code, report, stderr = render(
            self.slipway.url("web", PROJECT) + PRIVACY_PATH + "?data_source=c4&metric=accuracy", shot
        )
        data = self.slipway.get_json(f"api.{PROJECT}.localhost", "/api/visualize/data?data_source=c4&metric=accuracy")
        FrontendTest.assertChart(self, report, code, stderr, data)
        self.assertEqual(report["chart"]["legend"], SIZES)


if __name__ == "__main__":
    unittest.main()
