"""Static sites through the real binary: a single-page app under a base path (Vite's
`base`), its API reached through a rewrite to another service, precompressed variants
written at build time, validators, caching, and a rollback that brings back the old
release's files and rules at once."""

import os
import unittest

from harness import SlipwayTestCase

WEB = "web.bubbletea.localhost"
BASE = "/coldbrewbubbletea"


class StaticSitesTest(SlipwayTestCase):
    def deploy(self, app, *args):
        result = self.slipway.up(app, *args)
        self.assertEqual(result.code, 0, f"deploy failed\n{result}\n{self.server_log()}")
        self.assertIn(f"web is live at {self.slipway.url('web', 'bubbletea')}", result.stdout)
        return result

    def test_spa_under_a_base_path_with_its_api(self):
        app = self.slipway.copy_app("static-spa")
        self.deploy(app)
        http = self.slipway.http_request

        # The base path: the site's files are its root; the prefix alone redirects.
        status, headers, body = http(WEB, BASE + "/")
        self.assertEqual(status, 200, body)
        self.assertIn("/coldbrewbubbletea/assets/index-BXmP9dcA.js", body)
        self.assertEqual(headers["cache-control"], "public, max-age=0, must-revalidate")
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        status, headers, _ = http(WEB, BASE)
        self.assertEqual((status, headers["location"]), (308, BASE + "/"))

        # Fingerprinted assets are cached for a year; variants were written by the build.
        status, headers, body = http(WEB, BASE + "/assets/index-BXmP9dcA.js")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["cache-control"], "public, max-age=31536000, immutable")
        self.assertEqual(headers["content-type"], "text/javascript; charset=utf-8")
        size = int(headers["content-length"])
        for encoding, accept in (("br", "gzip, deflate, br"), ("gzip", "gzip")):
            status, headers, _ = http(
                WEB, BASE + "/assets/index-BXmP9dcA.js", headers={"Accept-Encoding": accept}
            )
            self.assertEqual(status, 200)
            self.assertEqual(headers.get("content-encoding"), encoding)
            self.assertEqual(headers["vary"], "Accept-Encoding")
            self.assertLess(int(headers["content-length"]), size)

        # Validators: the ETag revalidates with a 304.
        _, headers, _ = http(WEB, BASE + "/assets/index-4f3a9c2b.css")
        status, _, body = http(
            WEB, BASE + "/assets/index-4f3a9c2b.css", headers={"If-None-Match": headers["etag"]}
        )
        self.assertEqual((status, body), (304, ""))
        status, _, body = http(
            WEB,
            BASE + "/assets/index-4f3a9c2b.css",
            headers={"If-Modified-Since": headers["last-modified"]},
        )
        self.assertEqual((status, body), (304, ""))

        # Ranges: one range is a 206 of those bytes; one past the end a 416.
        _, _, whole = http(WEB, BASE + "/assets/index-BXmP9dcA.js")
        status, headers, part = http(
            WEB, BASE + "/assets/index-BXmP9dcA.js", headers={"Range": "bytes=10-29"}
        )
        self.assertEqual(status, 206)
        self.assertEqual(part, whole[10:30])
        self.assertEqual(headers["content-range"], f"bytes 10-29/{len(whole.encode())}")
        self.assertEqual(headers["accept-ranges"], "bytes")
        status, headers, _ = http(
            WEB, BASE + "/assets/index-BXmP9dcA.js", headers={"Range": "bytes=999999-"}
        )
        self.assertEqual(status, 416)
        self.assertEqual(headers["content-range"], f"bytes */{len(whole.encode())}")
        status, headers, body = http(WEB, BASE + "/assets/index-BXmP9dcA.js", method="HEAD")
        self.assertEqual((status, body), (200, ""))
        self.assertEqual(int(headers["content-length"]), len(whole.encode()))

        # Client-side routes get the app; a missing asset stays a 404.
        status, _, body = http(WEB, BASE + "/orders/42")
        self.assertEqual(status, 200, body)
        self.assertIn('<div id="app"></div>', body)
        status, _, _ = http(WEB, BASE + "/assets/missing-11aa22bb.js")
        self.assertEqual(status, 404)

        # cleanUrls and a redirect, inside the base path.
        status, _, body = http(WEB, BASE + "/menu")
        self.assertEqual(status, 200, body)
        self.assertIn("<h1>Menu</h1>", body)
        status, headers, _ = http(WEB, BASE + "/menu.html")
        self.assertEqual((status, headers["location"]), (308, BASE + "/menu"))
        status, headers, _ = http(WEB, BASE + "/menu.php?size=l")
        self.assertEqual((status, headers["location"]), (301, BASE + "/menu?size=l"))

        # The API, through the rewrite to ${{ api.SLIPWAY_PRIVATE_URL }}: method, body and
        # query go along; the API sees its own host.
        status, _, body = http(WEB, BASE + "/api/orders?sort=new", method="GET")
        self.assertEqual(status, 200, body)
        self.assertIn('"path": "/api/orders?sort=new"', body)
        self.assertIn(f'"host": "api.bubbletea.localhost:{self.slipway.http_port}"', body)
        self.assertIn(f'"forwarded_host": "{WEB}"', body)

    def test_rollback_switches_files_and_rules_together(self):
        app = self.slipway.copy_app("static-spa", "bubbletea")
        self.deploy(app)
        # The second release: another page, and no SPA fallback.
        index = os.path.join(app, "web", "dist", "index.html")
        with open(index) as f:
            first = f.read()
        with open(index, "w") as f:
            f.write(first.replace("<title>Cold brew", "<title>Second release"))
        toml = os.path.join(app, "slipway.toml")
        with open(toml) as f:
            config = f.read()
        with open(toml, "w") as f:
            f.write(
                config.replace(
                    '[[services.web.rewrites]]\nsource = "/(.*)"\ndestination = "/index.html"\n',
                    "",
                )
            )
        self.deploy(app, "--service", "web")
        status, _, body = self.slipway.http_request(WEB, BASE + "/")
        self.assertIn("Second release", body)
        status, _, _ = self.slipway.http_request(WEB, BASE + "/orders/42")
        self.assertEqual(status, 404)

        rolled = self.slipway.cli("rollback", "web", cwd=app)
        self.assertEqual(rolled.code, 0, str(rolled))
        status, _, body = self.slipway.http_request(WEB, BASE + "/")
        self.assertIn("<title>Cold brew", body)
        status, _, _ = self.slipway.http_request(WEB, BASE + "/orders/42")
        self.assertEqual(status, 200)


if __name__ == "__main__":
    unittest.main()
