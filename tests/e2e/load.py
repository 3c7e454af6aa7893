"""A bounded load generator for the end-to-end tests: real HTTP on loopback, stdlib only.

`Load` runs worker threads against the edge (127.0.0.1:<port> with a Host header) until
stopped (or `max_seconds` pass):

- keep-alive workers: one persistent connection each (reopened after an error), GET /version;
- fresh-connection workers: a new connection per request, GET /;
- slow workers: GET /slow?ms=N on a fresh connection, answers that outlast a switch.

Every request is recorded (monotonic start/end, status, the app version in the answer,
the error). A request fails when it raises, answers anything but 200, or its body is not
the example app's JSON. `check_versions` checks which versions answered against the
moments switches completed.

Used against examples/python-stdlib, whose answers are {"version": ..., "deployment": ...},
and (with `paths`) against a static site's version.json.
"""

import http.client
import json
import threading
import time


class Record:
    __slots__ = ("kind", "path", "start", "end", "status", "version", "error")

    def __init__(self, kind, path, start):
        self.kind = kind
        self.path = path
        self.start = start
        self.end = None
        self.status = None
        self.version = None
        self.error = None

    @property
    def ok(self):
        return self.error is None and self.status == 200 and self.version is not None

    def __repr__(self):
        return self.describe()

    def describe(self, t0=0.0):
        end = f"{self.end - t0:.3f}" if self.end is not None else "?"
        what = self.error or f"HTTP {self.status}"
        return (
            f"{self.kind} GET {self.path} [{self.start - t0:.3f}s..{end}s] -> {what}"
            f" (version {self.version})"
        )


class Switch:
    """One operation that changes (or re-confirms) the version served: it started at
    `start` and its CLI command returned success at `end`; from then on `version` serves."""

    def __init__(self, label, start, end, version):
        self.label = label
        self.start = start
        self.end = end
        self.version = version

    def __repr__(self):
        return f"Switch({self.label!r}, {self.start:.3f}, {self.end:.3f}, {self.version!r})"


class Load:
    def __init__(
        self,
        port,
        host,
        keepalive=4,
        fresh=2,
        slow=2,
        slow_ms=1500,
        pause=0.02,
        timeout=30,
        max_seconds=600,
        paths=None,
    ):
        self.port = port
        self.host = host
        # What each kind of worker requests; every answer must be JSON with a "version".
        self.paths = {"keepalive": "/version", "fresh": "/", "slow": f"/slow?ms={slow_ms}"}
        self.paths.update(paths or {})
        self.counts = {"keepalive": keepalive, "fresh": fresh, "slow": slow}
        self.slow_ms = slow_ms
        self.pause = pause  # between two requests of one worker: bounds the request rate
        self.timeout = timeout  # one request's time limit; taking longer is a failure
        self.max_seconds = max_seconds
        self.records = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        self.started_at = None

    # --- running -----------------------------------------------------------------------

    def start(self):
        self.started_at = time.monotonic()
        for kind, count in self.counts.items():
            for i in range(count):
                t = threading.Thread(target=self._worker, args=(kind,), name=f"load-{kind}-{i}")
                t.daemon = True
                t.start()
                self._threads.append(t)
        return self

    def stop(self):
        """Stops the workers and waits for their requests in flight. Returns the records."""
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        return self.records

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _done(self):
        return self._stop.is_set() or time.monotonic() - self.started_at > self.max_seconds

    def _connect(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)

    def _worker(self, kind):
        path = self.paths[kind]
        conn = None
        while not self._done():
            if conn is None or kind != "keepalive":
                conn = self._connect()
            record = Record(kind, path, time.monotonic())
            try:
                conn.request("GET", path, headers={"Host": self.host})
                response = conn.getresponse()
                body = response.read()
                record.status = response.status
                if response.status == 200:
                    try:
                        record.version = json.loads(body)["version"]
                    except (ValueError, KeyError, TypeError):
                        record.error = f"HTTP 200 with an unexpected body: {body[:200]!r}"
                else:
                    record.error = f"HTTP {response.status}: {body[:200]!r}"
            except (OSError, http.client.HTTPException) as e:
                record.error = f"{type(e).__name__}: {e}"
            record.end = time.monotonic()
            if record.error is not None or kind != "keepalive":
                conn.close()
                conn = None
            with self._lock:
                self.records.append(record)
            self._stop.wait(self.pause)
        if conn is not None:
            conn.close()

    # --- results -----------------------------------------------------------------------

    def snapshot(self):
        with self._lock:
            return list(self.records)

    def count_ok(self, since=0.0):
        return sum(1 for r in self.snapshot() if r.ok and r.start >= since)

    def failures(self):
        return [r for r in self.snapshot() if not r.ok]

    def summary(self, limit=20):
        records = self.snapshot()
        failures = [r for r in records if not r.ok]
        by_kind = {}
        for r in records:
            by_kind[r.kind] = by_kind.get(r.kind, 0) + 1
        versions = {}
        for r in records:
            if r.version is not None:
                versions[r.version] = versions.get(r.version, 0) + 1
        lines = [
            f"{len(records)} requests ({', '.join(f'{k} {n}' for k, n in sorted(by_kind.items()))}),"
            f" {len(failures)} failed; versions seen: {versions}"
        ]
        lines += ["  " + r.describe(self.started_at) for r in failures[:limit]]
        if len(failures) > limit:
            lines.append(f"  ... and {len(failures) - limit} more failures")
        return "\n".join(lines)

    def check_versions(self, switches, never=()):
        """Problems (strings) with the versions that answered, given the completed
        `switches` (in order; the first one done before the load started) and versions
        that must `never` answer (deploys that failed).

        A request started at `s` may be answered by the version of the last switch
        completed at or before `s`, or by the version of any later switch that began
        before the request ended (it may have been routed mid-switch)."""
        problems = []
        never = set(never)
        t0 = self.started_at
        for r in self.snapshot():
            if r.version is None:
                continue
            if r.version in never:
                problems.append(f"answered by a failed deploy's version: {r.describe(t0)}")
                continue
            last = None
            for i, sw in enumerate(switches):
                if sw.end <= r.start:
                    last = i
            if last is None:
                continue  # started before any switch completed: nothing to compare
            allowed = {switches[last].version}
            allowed |= {sw.version for sw in switches[last + 1 :] if sw.start <= r.end}
            if r.version not in allowed:
                problems.append(
                    f"answered by {r.version!r} after {switches[last].label} completed at "
                    f"{switches[last].end - t0:.3f}s (allowed {sorted(allowed)}): {r.describe(t0)}"
                )
        return problems

    def spanning(self, moments, kind=None):
        """How many requests (of `kind`) were in flight across one of the `moments`."""
        return sum(
            1
            for r in self.snapshot()
            if (kind is None or r.kind == kind)
            and r.end is not None
            and any(r.start < m < r.end for m in moments)
        )
