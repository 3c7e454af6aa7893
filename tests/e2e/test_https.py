"""HTTPS at the edge: certificates from Slipway's local CA, chosen by SNI."""

import http.client
import os
import socket
import ssl
import unittest

from harness import SlipwayTestCase


class HttpsTest(SlipwayTestCase):
    https = True
    server_per_test = True  # each test deploys the same example
    server_args = ("--redirect-https",)

    def https_get(self, host, path="/"):
        """GET over TLS with SNI `host`, verified against Slipway's local CA."""
        ca = os.path.join(self.slipway.home, "certs", "ca.pem")
        context = ssl.create_default_context(cafile=ca)  # checks the chain and the host name
        raw = socket.create_connection(("127.0.0.1", self.slipway.https_port), timeout=10)
        with context.wrap_socket(raw, server_hostname=host) as tls:
            cert = tls.getpeercert()
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            response = http.client.HTTPResponse(tls)
            response.begin()
            return response.status, response.read().decode(), cert

    def test_local_ca_certificate_per_host_and_redirect(self):
        app = self.slipway.copy_app("static-site")
        self.assertDeployed(self.slipway.up(app), "web", "static-site")

        status, body, cert = self.https_get("web.static-site.localhost")
        self.assertEqual(status, 200, body)
        self.assertIn("<h1>Hello from a static site</h1>", body)
        names = [value for kind, value in cert["subjectAltName"] if kind == "DNS"]
        self.assertIn("web.static-site.localhost", names)

        # Plain HTTP to an app is sent to HTTPS.
        status, headers, _ = self.slipway.http_request("web.static-site.localhost", "/about.html")
        self.assertEqual(status, 308)
        self.assertEqual(
            headers["location"],
            f"https://web.static-site.localhost:{self.slipway.https_port}/about.html",
        )

    def test_certs_command_names_the_ca_to_trust(self):
        app = self.slipway.copy_app("static-site")
        self.assertDeployed(self.slipway.up(app), "web", "static-site")
        self.https_get("web.static-site.localhost")
        result = self.slipway.cli("certs")
        self.assertEqual(result.code, 0, result)
        self.assertIn(os.path.join(self.slipway.home, "certs", "ca.pem"), result.stdout)
        self.assertIn("web.static-site.localhost", result.stdout)

    def test_unknown_names_get_no_certificate(self):
        with self.assertRaises(ssl.SSLError):
            self.https_get("bank.example.com")


if __name__ == "__main__":
    unittest.main()
