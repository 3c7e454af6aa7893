"""Custom domains: `slipway domains add` routes a host of the user's to a service."""

import unittest

from harness import SlipwayTestCase


class DomainsTest(SlipwayTestCase):
    server_per_test = True  # each test deploys the same example
    def test_add_list_remove(self):
        app = self.slipway.copy_app("static-site")
        self.assertDeployed(self.slipway.up(app), "web", "static-site")
        self.assertEqual(self.slipway.http_get("www.example.test", "/")[0], 404)

        added = self.slipway.cli("domains", "add", "WWW.Example.test", cwd=app)
        self.assertEqual(added.code, 0, added)
        self.assertIn("www.example.test now routes to static-site/web", added.stdout)
        status, body = self.slipway.http_get("www.example.test", "/")
        self.assertEqual(status, 200, body)
        self.assertIn("<h1>Hello from a static site</h1>", body)

        listed = self.slipway.cli("domains", "list", cwd=app)
        self.assertEqual(listed.code, 0, listed)
        self.assertRegex(listed.stdout, r"www\.example\.test\s+web\s+local CA")

        again = self.slipway.cli("domains", "add", "www.example.test", cwd=app)
        self.assertNotEqual(again.code, 0)
        self.assertIn("already routed", again.stderr)

        removed = self.slipway.cli("domains", "remove", "www.example.test", cwd=app)
        self.assertEqual(removed.code, 0, removed)
        self.assertEqual(self.slipway.http_get("www.example.test", "/")[0], 404)

    def test_invalid_domain_is_refused_with_the_rule(self):
        app = self.slipway.copy_app("static-site")
        self.assertDeployed(self.slipway.up(app), "web", "static-site")
        bad = self.slipway.cli("domains", "add", "not_a host", cwd=app)
        self.assertNotEqual(bad.code, 0)
        self.assertIn('domain "not_a host" is not a valid host name', bad.stderr)

    def test_domain_survives_a_restart_of_the_daemon(self):
        app = self.slipway.copy_app("static-site")
        self.assertDeployed(self.slipway.up(app), "web", "static-site")
        self.assertEqual(self.slipway.cli("domains", "add", "site.example.test", cwd=app).code, 0)
        self.slipway.kill9()
        self.slipway.restart()
        self.assertEqual(self.slipway.http_get("site.example.test", "/")[0], 200)


if __name__ == "__main__":
    unittest.main()
