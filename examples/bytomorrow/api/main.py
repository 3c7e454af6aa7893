"""ByTomorrow research dashboard API: experiment results as line-chart series, from PostgreSQL.

GET /api/health                 -> {"status": "ok"}; 503 when the database cannot answer
GET /api/visualize/options      -> the model sizes, metrics and data sources on file
GET /api/visualize/data?data_source=pile&params=60M,150M&metric=loss
                                -> one series per model size, points ordered by step

The results live in the table experiment_results, which the pre-deploy command
(`python3 load_results.py`) creates and fills from data/experiment_results.csv. The only
configuration is DATABASE_URL (set by Slipway's postgres add-on).
"""

import logging
import os
import re
import sys
import threading

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

DATABASE_URL = os.environ.get("DATABASE_URL", "")
if not DATABASE_URL:
    sys.exit(
        'DATABASE_URL is not set: the api needs a postgres add-on ([addons.db] kind = "postgres" '
        "in slipway.toml, or `slipway add postgres`)"
    )

DEFAULT_METRIC = "loss"
DEFAULT_DATA_SOURCE = "pile"
PARAMS_LABEL = re.compile(r"^\d+(\.\d+)?[KMBT]$")
POOL_SIZE = 4  # idle connections kept; more are opened under load and closed after use
CONNECT_TIMEOUT_SECONDS = 3
STATEMENT_TIMEOUT_MS = 5000

log = logging.getLogger("bytomorrow")


class Database:
    """A small pool of read-only connections to DATABASE_URL that survives a server restart.

    Connections are opened on first use, so the app starts even while the database is
    still coming up (the health check says so), and at most POOL_SIZE idle ones are kept.
    When a query fails because a pooled connection broke (the server restarted, or dropped
    an idle connection), it is run once more on a fresh connection: the queries here are
    read-only, so running one again is safe. A failure on a fresh connection is raised.
    """

    def __init__(self, dsn, size):
        self._dsn = dsn
        self._size = size
        self._idle = []
        self._lock = threading.Lock()

    def _connect(self):
        conn = psycopg2.connect(
            self._dsn,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name="bytomorrow-api",
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        )
        conn.set_session(readonly=True, autocommit=True)
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

    def query(self, sql, args=()):
        """Rows of one parameterised query (psycopg2 sends the values apart from the SQL)."""
        while True:
            conn, pooled = self._take()
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, args)
                    rows = cur.fetchall()
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
                broken = bool(conn.closed)  # psycopg2 marks a connection the server lost
                self._give_back(conn)  # closes it when broken
                if broken and pooled:
                    log.warning("database connection lost (%s); reconnecting", first_line(e))
                    continue
                raise  # the server is down, or e.g. a statement timeout: not retried
            except BaseException:
                self._give_back(conn)  # an SQL error leaves an autocommit connection usable
                raise
            self._give_back(conn)
            return rows


def first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


db = Database(DATABASE_URL, POOL_SIZE)

app = FastAPI(title="ByTomorrow API")
app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET"], allow_headers=["*"])


@app.exception_handler(psycopg2.OperationalError)
@app.exception_handler(psycopg2.InterfaceError)
def database_unavailable(_request: Request, error: Exception):
    return JSONResponse(status_code=503, content={"detail": f"database unavailable: {first_line(error)}"})


@app.exception_handler(psycopg2.errors.UndefinedTable)
def table_missing(_request: Request, _error: Exception):
    return JSONResponse(
        status_code=503,
        content={"detail": "table experiment_results is missing: run `python3 load_results.py`"},
    )


@app.get("/api/health")
def health():
    """200 once the app can serve: the database answers and the results table exists."""
    try:
        db.query("SELECT 1 FROM experiment_results LIMIT 1")
    except psycopg2.errors.UndefinedTable:
        return JSONResponse(
            status_code=503,
            content={"status": "unavailable", "detail": "table experiment_results is missing"},
        )
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
        return JSONResponse(
            status_code=503,
            content={"status": "unavailable", "detail": f"database: {first_line(e)}"},
        )
    return {"status": "ok"}


SIZES_SQL = """
    SELECT params, min(params_numeric) AS params_numeric
      FROM experiment_results
     GROUP BY params
     ORDER BY 2, 1
"""


@app.get("/api/visualize/options")
def options():
    return {
        "params": [label for label, _ in db.query(SIZES_SQL)],
        "metrics": [m for (m,) in db.query("SELECT DISTINCT metric FROM experiment_results ORDER BY 1")],
        "data_sources": [
            s for (s,) in db.query("SELECT DISTINCT data_source FROM experiment_results ORDER BY 1")
        ],
    }


def parse_params(raw):
    """Turns '60M,150M' into ['60M', '150M']; None when absent (all sizes); 422 on bad syntax."""
    if raw is None or raw.strip() == "":
        return None
    labels = [label.strip() for label in raw.split(",")]
    bad = [label for label in labels if not PARAMS_LABEL.match(label)]
    if bad:
        raise HTTPException(
            status_code=422,
            detail=f"params must be a comma-separated list of model sizes like 60M,150M,1B; "
            f"got {bad[0]!r}",
        )
    return list(dict.fromkeys(labels))  # drop repeats, keep order


# Both served by the unique index (data_source, metric, params, step) INCLUDE
# (params_numeric, value): equality on its first two (three) columns, then step order.
SERIES_SQL = """
    SELECT params, params_numeric, step, value
      FROM experiment_results
     WHERE data_source = %(data_source)s AND metric = %(metric)s
     ORDER BY params_numeric, params, step
"""
SERIES_OF_SIZES_SQL = """
    SELECT params, params_numeric, step, value
      FROM experiment_results
     WHERE data_source = %(data_source)s AND metric = %(metric)s AND params = ANY(%(params)s)
     ORDER BY params_numeric, params, step
"""


@app.get("/api/visualize/data")
def visualize_data(
    data_source: str = Query(DEFAULT_DATA_SOURCE),
    params: str = Query(None),
    metric: str = Query(DEFAULT_METRIC),
):
    wanted = parse_params(params)
    source = data_source or DEFAULT_DATA_SOURCE
    metric = metric or DEFAULT_METRIC
    args = {"data_source": source, "metric": metric, "params": wanted}
    rows = db.query(SERIES_SQL if wanted is None else SERIES_OF_SIZES_SQL, args)

    by_label = {}  # smallest model first (the rows' order), each one's points by step
    for label, numeric, step, value in rows:
        series = by_label.setdefault(label, {"name": label, "params_numeric": numeric, "points": []})
        series["points"].append({"step": step, "value": value})
    order = wanted if wanted is not None else list(by_label)  # as asked, else smallest first
    series = [by_label[label] for label in order if label in by_label]
    return {"metric": metric, "data_source": source, "series": series}
