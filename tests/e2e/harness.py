"""End-to-end test harness: drives the real `slipway` binary (daemon + CLI).

Each `Slipway` owns a temp directory holding its data dir (SLIPWAY_HOME), the copies
of the apps it deploys and the server's log. It starts `slipway server` on two free
127.0.0.1 ports (control API and edge HTTP), runs CLI commands against it and sends
requests through the edge with a chosen Host header. `cleanup()` always leaves
nothing behind: it stops the server, stops the edge process the server started
(SLIPWAY_HOME/run/edge.pid), kills every process group the supervisor recorded under
SLIPWAY_HOME/run/ and any other process still working for this data dir, then deletes
the temp directory.

Python 3 standard library only. SLIPWAY_BIN names the binary under test.
"""

import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES_DIR = os.path.join(REPO_ROOT, "examples")
FIXTURES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")

# How long the server may take to answer its health route after being started.
SERVER_START_TIMEOUT = 60
# Default time limit of one CLI command (a deploy includes a build).
CLI_TIMEOUT = 300

_LIVE = set()  # Slipway instances not yet cleaned up, for the exit hooks below.


def slipway_bin():
    path = os.environ.get("SLIPWAY_BIN", "")
    if not path:
        raise RuntimeError(
            "SLIPWAY_BIN is not set: run these tests through ctest, or set "
            "SLIPWAY_BIN=/path/to/build/slipway"
        )
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"SLIPWAY_BIN={path} is not an executable file")
    return os.path.abspath(path)


def free_ports(count):
    """`count` distinct free TCP ports on 127.0.0.1 (bound to port 0, then released)."""
    sockets, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def wait_until(fn, timeout, what, interval=0.1):
    """Polls `fn()` until it returns a truthy value, which is returned.

    Raises AssertionError naming `what` (and the last value or exception seen) when
    `timeout` seconds pass first. Exceptions raised by `fn` count as "not yet".
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = fn()
            if value:
                return value
            last = value
        except _ServerExited:
            raise  # the server is gone: waiting longer cannot help
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


class CliResult:
    """What one CLI invocation printed and how it exited."""

    def __init__(self, args, code, stdout, stderr):
        self.args = args
        self.code = code
        self.stdout = stdout
        self.stderr = stderr

    @property
    def output(self):
        return self.stdout + self.stderr

    def last_line(self):
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def __str__(self):
        return (
            f"$ slipway {' '.join(self.args)}\n-> exit {self.code}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


# --- /proc helpers -------------------------------------------------------------------


def _read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def _proc_stat(pid):
    """(pgrp, start_time) of a live process, or None."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # fields from 3 (state) on
    if fields[0] == "Z":
        return None  # a zombie is dead for our purposes
    return int(fields[2]), int(fields[19])


def _all_pids():
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def process_alive(pid, start_time=None):
    stat = _proc_stat(pid)
    return stat is not None and (start_time is None or stat[1] == start_time)


class Slipway:
    """One `slipway server` with its own data dir and ports, and a CLI pointed at it."""

    def __init__(self, name="slipway", https=False, extra_args=()):
        self.bin = slipway_bin()
        self.root = os.path.realpath(tempfile.mkdtemp(prefix=f"e2e-{name}-"))
        self.home = os.path.join(self.root, "home")
        self.apps_dir = os.path.join(self.root, "apps")
        os.makedirs(self.home)
        os.makedirs(self.apps_dir)
        self.api_port, self.http_port, https_port = free_ports(3)
        self.https_port = https_port if https else None
        self.extra_args = list(extra_args)
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.server_log_path = os.path.join(self.root, "server.log")
        self.server = None
        self.bins = {self.bin}  # every slipway binary a server of this instance ran
        self._cleaned = False
        _LIVE.add(self)

    # --- server lifecycle ------------------------------------------------------------

    def start(self, bin=None):
        """Starts the server (of `bin`, default SLIPWAY_BIN) and returns once GET
        /v1/health answers."""
        assert self.server is None or self.server.poll() is not None, "server already running"
        bin = os.path.abspath(bin) if bin else self.bin
        self.bins.add(bin)
        log = open(self.server_log_path, "ab")
        log.write(f"\n===== slipway server started at {time.strftime('%H:%M:%S')} =====\n".encode())
        log.flush()
        self.server = subprocess.Popen(
            [
                bin,
                "server",
                "--api",
                f"127.0.0.1:{self.api_port}",
                "--http",
                f"127.0.0.1:{self.http_port}",
                *([f"--https=127.0.0.1:{self.https_port}"] if self.https_port else []),
                *self.extra_args,
            ],
            cwd=self.root,
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C on the test run reaches it only through stop()
        )
        log.close()
        self.wait_ready()
        return self

    def wait_ready(self, timeout=SERVER_START_TIMEOUT):
        def ready():
            if self.server.poll() is not None:
                raise _ServerExited(self.server.returncode)
            return self.api_health() is not None

        try:
            wait_until(ready, timeout, f"slipway server to answer {self.api_url}/v1/health")
        except (_ServerExited, AssertionError) as e:
            raise AssertionError(f"{e}\n--- server log ---\n{self.server_log(80)}") from None

    def api_health(self):
        """The HTTP status of GET /v1/health, or None when nothing answers."""
        request = urllib.request.Request(self.api_url + "/v1/health")
        token = _read(os.path.join(self.home, "token"))
        if token:
            request.add_header("Authorization", "Bearer " + token.strip())
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as e:
            return e.code if e.code < 500 else None
        except (OSError, http.client.HTTPException):
            return None

    def _signal_and_wait(self, sig, timeout):
        """Sends `sig` to the server and waits for its exit; returns the exit code."""
        self.server.send_signal(sig)
        try:
            self.server.wait(timeout)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
            raise AssertionError(
                f"slipway server did not exit within {timeout}s of {signal.Signals(sig).name}\n"
                f"--- server log ---\n{self.server_log(80)}"
            )
        return self.server.returncode

    def terminate(self, timeout=60):
        """SIGTERM (the server stops alone: edge and apps serve on); waits for the exit."""
        assert self.running(), "server is not running"
        return self._signal_and_wait(signal.SIGTERM, timeout)

    def running(self):
        return self.server is not None and self.server.poll() is None

    def stop(self, timeout=60):
        """SIGINT (the server stops its apps), then waits; returns the exit code."""
        if self.server is None:
            return None
        if self.server.poll() is None:
            return self._signal_and_wait(signal.SIGINT, timeout)
        return self.server.returncode

    def kill9(self):
        """SIGKILL to the server process only (not its group): a crash."""
        assert self.running(), "server is not running"
        self.server.kill()
        self.server.wait()

    def restart(self):
        """Starts the server again on the same data dir and ports (stopping it first if up)."""
        if self.running():
            self.stop()
        return self.start()

    def sigterm_restart(self, timeout=60):
        """SIGTERM to the server (what an init system sends on upgrade), waits for it to
        exit, then starts it again on the same data dir and ports. Returns the exit code."""
        code = self.terminate(timeout)
        self.start()
        return code

    # --- control API (what the CLI reads) ----------------------------------------------

    def api_get(self, path, timeout=10):
        """GET `path` on the control API with the data dir's token; returns the JSON.
        Raises AssertionError with the answer on a non-2xx status."""
        request = urllib.request.Request(self.api_url + path)
        token = _read(os.path.join(self.home, "token"))
        if token:
            request.add_header("Authorization", "Bearer " + token.strip())
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as e:
            body = e.read().decode("utf-8", "replace")[:500]
            raise AssertionError(f"GET {path} on the control API -> {e.code}: {body}") from None

    def deployments(self, project, service="web", limit=200):
        """The service's deployment records (dicts with id, status, error, active...),
        newest first, as `slipway deployments` gets them."""
        path = f"/v1/projects/{project}/deployments?service={service}&limit={limit}"
        return self.api_get(path)["deployments"]

    def deployment(self, deployment_id):
        return self.api_get(f"/v1/deployments/{deployment_id}")

    def service_status(self, project, service="web"):
        """The service's entry of GET /v1/projects/P/status (replicas, active deployment)."""
        for s in self.api_get(f"/v1/projects/{project}/status")["services"]:
            if s["name"] == service:
                return s
        raise AssertionError(f"project {project} has no service {service}")

    def server_log(self, lines=60):
        text = _read(self.server_log_path) or ""
        return "\n".join(text.splitlines()[-lines:])

    # --- CLI and HTTP ----------------------------------------------------------------

    def _env(self, extra=None):
        env = dict(os.environ)
        env.pop("SLIPWAY_TOKEN", None)
        env.update(
            {
                "SLIPWAY_HOME": self.home,
                "SLIPWAY_URL": self.api_url,
                "NO_COLOR": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        env.update(extra or {})
        return env

    def cli(self, *args, cwd=None, env=None, timeout=CLI_TIMEOUT):
        """Runs `slipway ARGS` (cwd defaults to the temp root); never raises on exit code."""
        try:
            done = subprocess.run(
                [self.bin, *args],
                cwd=cwd or self.root,
                env=self._env(env),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:
            raise AssertionError(
                f"slipway {' '.join(args)} did not finish within {timeout}s\n"
                f"--- stdout ---\n{_text(e.stdout)}\n--- stderr ---\n{_text(e.stderr)}\n"
                f"--- server log ---\n{self.server_log(60)}"
            ) from None
        return CliResult(list(args), done.returncode, done.stdout, done.stderr)

    def up(self, app_dir, *args, timeout=CLI_TIMEOUT):
        """`slipway up` run inside `app_dir` (as a user would)."""
        return self.cli("up", *args, cwd=app_dir, timeout=timeout)

    def url(self, service, project):
        return f"http://{service}.{project}.localhost:{self.http_port}"

    def http_request(self, host, path="/", method="GET", headers=None, timeout=10):
        """Sends one request to the edge with Host `host`; returns (status, headers, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        try:
            conn.request(method, path, headers={"Host": host, **(headers or {})})
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body
        finally:
            conn.close()

    def http_get(self, host, path="/", headers=None, timeout=10):
        """GET through the edge with Host `host`; returns (status, body)."""
        status, _, body = self.http_request(host, path, headers=headers, timeout=timeout)
        return status, body

    def get_json(self, host, path):
        status, body = self.http_get(host, path)
        if status != 200:
            raise AssertionError(f"GET {host}{path} -> {status}: {body[:500]}")
        return json.loads(body)

    # --- apps ------------------------------------------------------------------------

    def copy_app(self, source, name=None):
        """Copies an app directory into the temp dir; returns the copy's path.

        `source` is a path or the name of a directory in examples/ or
        tests/e2e/fixtures/. The copy keeps the directory's name (or takes `name`),
        which is the project name when its config does not set one.
        """
        if not os.path.isabs(source):
            for base in (EXAMPLES_DIR, FIXTURES_DIR):
                if os.path.isdir(os.path.join(base, source)):
                    source = os.path.join(base, source)
                    break
            else:
                raise FileNotFoundError(f"no example or fixture named {source!r}")
        dest = os.path.join(self.apps_dir, name or os.path.basename(source.rstrip("/")))
        shutil.copytree(
            source, dest, ignore=shutil.ignore_patterns("node_modules", "__pycache__", "*.pyc")
        )
        return dest

    # --- the edge process -------------------------------------------------------------

    def edge_pid(self):
        """The pid in SLIPWAY_HOME/run/edge.pid when that process is a live edge of this
        data dir, else None."""
        text = _read(os.path.join(self.home, "run", "edge.pid")) or ""
        parts = text.split()
        if not parts or not parts[0].isdigit():
            return None
        pid = int(parts[0])
        if len(parts) >= 2 and parts[1].isdigit():
            if not process_alive(pid, int(parts[1])):
                return None
        elif not process_alive(pid):
            return None
        return pid if self._is_our_edge(pid) else None

    def _is_our_edge(self, pid):
        """True for a `slipway edge --home <our home>` process."""
        argv = [a.decode("utf-8", "replace") for a in (_read(f"/proc/{pid}/cmdline", "rb") or b"").split(b"\0")]
        if "edge" not in argv[1:2]:
            return False
        if "--home" in argv and argv.index("--home") + 1 < len(argv):
            return argv[argv.index("--home") + 1] == self.home
        return self._is_ours(pid)

    def edge_log(self, lines=40):
        text = _read(os.path.join(self.home, "logs", "edge.log")) or ""
        return "\n".join(text.splitlines()[-lines:])

    def _stop_edge(self, timeout=15):
        """SIGTERM to the edge of this data dir (it drains and exits), SIGKILL past
        `timeout`. Returns what was done, or None when no edge ran."""
        pid = self.edge_pid()
        if pid is None:
            return None
        start = _proc_stat(pid)
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            return None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not (start and process_alive(pid, start[1])):
                return f"edge {pid} stopped"
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        return f"edge {pid} killed"

    # --- processes -------------------------------------------------------------------

    def recorded_replicas(self):
        """[(run_dir, app_pid or None, (shim_pid, shim_start) or None)] under home/run."""
        found = []
        run_root = os.path.join(self.home, "run")
        for dirpath, _, filenames in os.walk(run_root):
            if "app.pid" not in filenames and "shim.pid" not in filenames:
                continue
            app_pid, shim = None, None
            text = _read(os.path.join(dirpath, "app.pid"))
            if text and text.split() and text.split()[0].isdigit():
                app_pid = int(text.split()[0])
            text = _read(os.path.join(dirpath, "shim.pid"))
            parts = (text or "").split()
            if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                shim = (int(parts[0]), int(parts[1]))
            found.append((dirpath, app_pid, shim))
        return found

    def _is_ours(self, pid):
        """True when the process works for this data dir: its cwd is in our temp root,
        or its environment names our SLIPWAY_HOME."""
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = ""
        if cwd == self.root or cwd.startswith(self.root + "/"):
            return True
        environ = _read(f"/proc/{pid}/environ", "rb") or b""
        return f"SLIPWAY_HOME={self.home}".encode() in environ.split(b"\0")

    def _is_slipway_process(self, pid):
        """True for a process of the slipway binary itself (server, shim, edge)."""
        bins = {os.path.realpath(b) for b in self.bins}
        try:
            if os.path.realpath(f"/proc/{pid}/exe") in bins:
                return True
        except OSError:
            pass
        argv = (_read(f"/proc/{pid}/cmdline", "rb") or b"").split(b"\0")
        return any(arg.decode("utf-8", "replace") in self.bins for arg in argv[:2])

    def live_app_groups(self):
        """Process groups of apps still running: every pgid of a live process of ours
        that carries the platform's app environment (SLIPWAY_DEPLOYMENT_ID) and is not
        slipway itself (a shim may carry the app's environment too). Sorted."""
        groups = set()
        for pid in _all_pids():
            if pid == os.getpid():
                continue
            stat = _proc_stat(pid)
            if stat is None:
                continue
            environ = _read(f"/proc/{pid}/environ", "rb") or b""
            if b"\0SLIPWAY_DEPLOYMENT_ID=" not in b"\0" + environ:
                continue
            if self._is_ours(pid) and not self._is_slipway_process(pid):
                groups.add(stat[0])
        return sorted(groups)

    def wait_app_groups(self, count, timeout=30):
        """Waits until exactly `count` app process groups run; returns them. On timeout
        the error lists the groups seen with their command lines."""
        seen = []

        def settled():
            seen[:] = self.live_app_groups()
            return len(seen) == count

        try:
            wait_until(settled, timeout, f"exactly {count} app process group(s)")
        except AssertionError:
            described = "; ".join(f"pgid {g}: {_cmdline(g)}" for g in seen) or "none"
            raise AssertionError(
                f"expected {count} app process group(s) within {timeout}s, found "
                f"{len(seen)}: {described}"
            ) from None
        return list(seen)

    def live_recorded_app_pids(self):
        """App pids recorded in run dirs whose process is alive."""
        return sorted(
            pid for _, pid, _ in self.recorded_replicas() if pid and process_alive(pid)
        )

    def _kill_leftovers(self):
        """SIGKILLs what this instance may have left running. Returns what was killed."""
        killed = []
        # 1. Replicas the supervisor recorded: the app's process group, then the shim.
        pids = _all_pids()
        stats = {pid: _proc_stat(pid) for pid in pids}
        for _, app_pid, shim in self.recorded_replicas():
            if app_pid:
                members = [p for p, st in stats.items() if st and st[0] == app_pid]
                if any(self._is_ours(p) for p in members):
                    try:
                        os.killpg(app_pid, signal.SIGKILL)
                        killed.append(f"app group {app_pid}")
                    except OSError:
                        pass
            if shim and process_alive(*shim):
                try:
                    os.kill(shim[0], signal.SIGKILL)
                    killed.append(f"shim {shim[0]}")
                except OSError:
                    pass
        # 2. Anything else still working for this data dir (edge, builds, strays).
        me = os.getpid()
        for pid in _all_pids():
            if pid != me and _proc_stat(pid) and self._is_ours(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(f"process {pid} ({_cmdline(pid)})")
                except OSError:
                    pass
        return killed

    def cleanup(self):
        """Stops the server, kills leftovers, deletes the temp dir. Idempotent; never raises."""
        if self._cleaned:
            return
        self._cleaned = True
        _LIVE.discard(self)
        try:
            if self.running():
                try:
                    self.stop(timeout=30)
                except AssertionError:
                    pass
            # The edge outlives a server stopped with SIGTERM or killed: stop it too.
            edge = self._stop_edge()
            if edge and edge.endswith("killed"):
                print(f"[harness] cleanup: {edge}", file=sys.stderr)
            killed = self._kill_leftovers()
            if killed:
                print(f"[harness] cleanup killed leftovers: {', '.join(killed)}", file=sys.stderr)
                # Give the kernel a moment to reap them before deleting their cwd.
                wait_until(
                    lambda: not any(self._is_ours(p) and _proc_stat(p) for p in _all_pids()),
                    10,
                    "leftover processes to die",
                )
        except Exception as e:  # noqa: BLE001 - cleanup must go on
            print(f"[harness] cleanup problem: {e}", file=sys.stderr)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


class _ServerExited(Exception):
    def __init__(self, code):
        super().__init__(f"slipway server exited with code {code} before answering")


def _text(data):
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def _cmdline(pid):
    raw = _read(f"/proc/{pid}/cmdline", "rb") or b""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()[:120]


URL_RE = re.compile(r"http://[a-z0-9.-]+\.localhost:\d+")


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_slipway_toml(app_dir, project, service="web", keys=None, variables=None, tables=None):
    """Writes `app_dir`/slipway.toml declaring one service: `keys` (camelCase service
    keys), `variables`, and `tables` ({"autoRollback": {...}}: sub-tables of the
    service). Returns the text written."""
    lines = [f"project = {_toml_value(project)}", "", f"[services.{service}]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in (keys or {}).items()]
    for name, table in (tables or {}).items():
        lines += ["", f"[services.{service}.{name}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    if variables:
        lines += ["", f"[services.{service}.variables]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in variables.items()]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(app_dir, "slipway.toml"), "w") as f:
        f.write(text)
    return text


class SlipwayTestCase(unittest.TestCase):
    """A test case with a running Slipway in `self.slipway`, cleaned up always.

    One server is shared by the class's tests, or with `server_per_test = True` each
    test gets its own (for tests that count the processes of the whole server).
    """

    maxDiff = None
    server_per_test = False
    https = False  # also serve HTTPS (self.slipway.https_port)
    server_args = ()  # more `slipway server` flags

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not cls.server_per_test:
            cls.slipway = Slipway(cls.__name__.lower(), cls.https, cls.server_args)
            cls.addClassCleanup(cls.slipway.cleanup)
            cls.slipway.start()

    def setUp(self):
        super().setUp()
        if self.server_per_test:
            self.slipway = Slipway(
                self._testMethodName.removeprefix("test_")[:40], self.https, self.server_args
            )
            self.addCleanup(self.slipway.cleanup)
            self.slipway.start()

    def assertDeployed(self, result, service, project):
        """`slipway up` succeeded and its last line gives the service's URL; returns the URL."""
        url = self.slipway.url(service, project)
        self.assertEqual(result.code, 0, f"deploy failed\n{result}\n{self.server_log()}")
        self.assertIn(url, result.last_line(), f"URL not on the last line\n{result}")
        return url

    def assertFailed(self, result):
        self.assertNotEqual(result.code, 0, f"expected a failure\n{result}")
        self.assertIn("error:", result.stderr, str(result))

    def server_log(self):
        return f"--- server log ---\n{self.slipway.server_log(40)}"


def _cleanup_all():
    for instance in list(_LIVE):
        instance.cleanup()


def _on_sigterm(signum, frame):
    _cleanup_all()
    sys.exit(128 + signum)


atexit.register(_cleanup_all)
signal.signal(signal.SIGTERM, _on_sigterm)
