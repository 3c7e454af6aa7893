"""What the api, the worker and the nightly job share: configuration (from the
environment only), the PostgreSQL schema and connections, the Redis client and keys."""

import os
import sys
import threading
import time

import psycopg2
import psycopg2.extensions
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# Redis: a job is a hash at job:<id>; its id is pushed on the list `queue` for the worker.
QUEUE = "climbiq:jobs"
JOB_TTL_SECONDS = 7 * 24 * 3600


def job_key(job_id):
    return f"climbiq:job:{job_id}"


def require_env(name, addon):
    value = os.environ.get(name, "")
    if not value:
        sys.exit(
            f"{name} is not set: ClimbIQ needs a {addon} add-on "
            f'([addons.NAME] kind = "{addon}" in slipway.toml)'
        )
    return value


def log(who, message):
    print(f"{who}: {message}", flush=True)


def first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# Created by the api's pre-deploy command (migrate.py), and by the worker and the nightly
# job before they first write, since any of them may be the first to run. One
# multi-statement query is one transaction; the advisory lock makes concurrent runs wait
# for each other instead of racing on CREATE TABLE.
SCHEMA = """
SELECT pg_advisory_xact_lock(7268796);  -- a fixed key: ClimbIQ's schema changes
CREATE TABLE IF NOT EXISTS recommendations (
    job_id      text        PRIMARY KEY,             -- the Redis job's id
    climber     text        NOT NULL,
    grade       text        NOT NULL,
    plan        jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS recommendations_created_at ON recommendations (created_at);
CREATE TABLE IF NOT EXISTS nightly_runs (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ran_at           timestamptz NOT NULL DEFAULT now(),
    recommendations  integer     NOT NULL  -- made in the 24 hours before ran_at
);
"""

CONNECT_TIMEOUT_SECONDS = 3
STATEMENT_TIMEOUT_MS = 5000


def connect_patiently(url, name, deadline_seconds=30):
    """One connection for a one-off script (pre-deploy, cron), retrying for a while: the
    add-on's server may be starting or restarting. Raises the last error after that."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            return psycopg2.connect(url, connect_timeout=5, application_name=name)
        except psycopg2.OperationalError as e:
            if time.monotonic() >= deadline:
                raise
            log(name, f"database not reachable yet ({first_line(e)}), retrying")
            time.sleep(1)


class Database:
    """A small pool of autocommit connections to DATABASE_URL that survives a restart of
    the server.

    Connections are opened on first use (a process starts even while the database is
    down) and at most `size` idle ones are kept. A statement that fails because a pooled
    connection broke (server restarted, idle connection dropped) is sent once more on a
    fresh connection; callers only send statements that are safe to repeat (reads,
    inserts with ON CONFLICT DO NOTHING). A failure on a fresh connection is raised.
    """

    def __init__(self, dsn, name, size=4):
        self._dsn = dsn
        self._name = name
        self._size = size
        self._idle = []
        self._lock = threading.Lock()

    def _connect(self):
        conn = psycopg2.connect(
            self._dsn,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name=self._name,
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        )
        conn.autocommit = True
        return conn

    def _take(self):
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def _give_back(self, conn):
        if not conn.closed and conn.status == psycopg2.extensions.STATUS_READY:
            with self._lock:
                if len(self._idle) < self._size:
                    self._idle.append(conn)
                    return
        conn.close()

    def execute(self, sql, args=()):
        """Runs one parameterised statement; its rows, or None when it returns none."""
        while True:
            conn, pooled = self._take()
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, args)
                    rows = cur.fetchall() if cur.description is not None else None
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
                broken = bool(conn.closed)  # psycopg2 marks a connection the server lost
                self._give_back(conn)  # closes it when broken
                if broken and pooled:
                    log(self._name, f"database connection lost ({first_line(e)}); reconnecting")
                    continue
                raise
            except BaseException:
                self._give_back(conn)
                raise
            self._give_back(conn)
            return rows


def redis_client(url, socket_timeout=5):
    """A client that reconnects by itself: a command on a connection the server dropped
    (it restarted) is retried once on a new connection; when the server is down, redis'
    ConnectionError is raised and the caller decides."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=3,
        socket_timeout=socket_timeout,
        health_check_interval=15,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )


REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


class Backoff:
    """0.5 s, doubling to at most 2 s, between attempts at reaching a server that is down
    (short enough that a restarted server is back in use within about 2 s)."""

    def __init__(self, first=0.5, most=2.0):
        self.first, self.most = first, most
        self.failures = 0

    def next_wait(self):
        self.failures += 1
        return min(self.first * 2 ** (self.failures - 1), self.most)

    def reset(self):
        self.failures = 0


def sleep_unless(seconds, stopping):
    """Sleeps in short slices; returns early once stopping() is true."""
    deadline = time.monotonic() + seconds
    while not stopping() and time.monotonic() < deadline:
        time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
