"""`domains add --acme` against Debian's real pebble ACME server: the server publishes
the HTTP-01 answer to the edge process, pebble fetches it through the edge's HTTP
listener, and the edge then serves the certificate pebble issued."""

import json
import os
import socket
import ssl
import subprocess
import unittest
import urllib.request

from harness import Slipway, SlipwayTestCase, free_ports, wait_until

PEBBLE = "/usr/bin/pebble"
CHALLTESTSRV = "/usr/bin/pebble-challtestsrv"
DOMAIN = "shop.example.test"


def _tls_files(directory):
    """A self-signed certificate for 127.0.0.1 that pebble serves its API with."""
    cert = os.path.join(directory, "pebble-cert.pem")
    key = os.path.join(directory, "pebble-key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-subj", "/CN=localhost", "-addext",
         "subjectAltName=IP:127.0.0.1,DNS:localhost", "-days", "2",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )
    return cert, key


@unittest.skipUnless(os.access(PEBBLE, os.X_OK) and os.access(CHALLTESTSRV, os.X_OK),
                     "pebble is not installed (apt install pebble)")
class AcmeTest(SlipwayTestCase):
    @classmethod
    def setUpClass(cls):
        unittest.TestCase.setUpClass()  # no shared server: each test starts its own

    def setUp(self):
        # The Slipway instance (its ports) first, then the CA that checks its edge, then
        # the server pointed at that CA.
        unittest.TestCase.setUp(self)
        self.slipway = Slipway("acme", https=True)
        self.addCleanup(self.slipway.cleanup)
        self.procs = []
        self.addCleanup(self._stop_procs)
        cert, key = _tls_files(self.slipway.root)
        dns_port, dns_management, pebble_port, pebble_management, tls_port = free_ports(5)
        self._spawn(
            [CHALLTESTSRV, "-dns01", f"127.0.0.1:{dns_port}", "-http01", "", "-https01", "",
             "-tlsalpn01", "", "-management", f"127.0.0.1:{dns_management}",
             "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
            "challtestsrv.log",
        )
        config = os.path.join(self.slipway.root, "pebble.json")
        with open(config, "w") as f:
            json.dump(
                {"pebble": {
                    "listenAddress": f"127.0.0.1:{pebble_port}",
                    "managementListenAddress": f"127.0.0.1:{pebble_management}",
                    "certificate": cert,
                    "privateKey": key,
                    "httpPort": self.slipway.http_port,  # HTTP-01 checks go to the edge
                    "tlsPort": tls_port,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }},
                f,
            )
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
        env.pop("PEBBLE_VA_ALWAYS_VALID", None)
        self._spawn([PEBBLE, "-config", config, "-dnsserver", f"127.0.0.1:{dns_port}"],
                    "pebble.log", env)
        directory = f"https://127.0.0.1:{pebble_port}/dir"
        context = ssl.create_default_context(cafile=cert)

        def serves_directory():
            with urllib.request.urlopen(directory, context=context, timeout=2) as r:
                return r.status == 200

        wait_until(serves_directory, 30, "pebble to serve its directory")
        self.slipway.extra_args = ["--acme-directory", directory, "--acme-ca-bundle", cert]
        self.slipway.start()

    def _spawn(self, argv, log_name, env=None):
        log = open(os.path.join(self.slipway.root, log_name), "ab")
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env=env))
        log.close()

    def _stop_procs(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def _log(self, name):
        with open(os.path.join(self.slipway.root, name), errors="replace") as f:
            return f.read()[-3000:]

    def served_issuer(self):
        """The issuer of the certificate the edge presents for DOMAIN."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(("127.0.0.1", self.slipway.https_port), timeout=5)
        with context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            der = tls.getpeercert(binary_form=True)
        out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-issuer"],
                             input=der, capture_output=True, check=True)
        return out.stdout.decode()

    def test_acme_certificate_is_obtained_through_the_edge_and_served(self):
        app = self.slipway.copy_app("node-hello")
        self.assertDeployed(self.slipway.up(app), "web", "node-hello")
        added = self.slipway.cli("domains", "add", DOMAIN, "--acme", cwd=app)
        self.assertEqual(added.code, 0, str(added))

        def issued_by_pebble():
            return "Pebble" in self.served_issuer()

        try:
            wait_until(issued_by_pebble, 120, f"the edge to serve pebble's certificate for {DOMAIN}")
        except AssertionError as e:
            raise AssertionError(
                f"{e}\n{self.server_log()}\n--- edge log ---\n{self.slipway.edge_log()}\n"
                f"--- pebble ---\n{self._log('pebble.log')}"
            ) from None
        certs = self.slipway.cli("certs")
        self.assertEqual(certs.code, 0, str(certs))
        self.assertRegex(certs.stdout, rf"{DOMAIN}\s+acme")
        # pebble fetched the answer from the edge: the access log (flushed every second)
        # has the request.
        def challenge_answered():
            with open(os.path.join(self.slipway.home, "logs", "access.log")) as f:
                challenges = [json.loads(line) for line in f if "acme-challenge" in line]
            return any(c["status"] == 200 for c in challenges)

        wait_until(challenge_answered, 30, "the challenge request in the access log")


if __name__ == "__main__":
    unittest.main()
