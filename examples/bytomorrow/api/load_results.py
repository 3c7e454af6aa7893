"""Pre-deploy command of the api service (`python3 load_results.py`).

Creates the table experiment_results and its index if they are missing, then makes the
table hold exactly the rows of data/experiment_results.csv (or $RESULTS_CSV): new rows
are inserted, changed values updated, rows no longer in the file deleted. All of it in
one transaction, so the release still serving never sees a half-loaded table, and a
failure leaves the table as it was (and the deploy fails, the old release serving on).

Safe to run on every deploy: a second run with the same file changes nothing
("0 inserted, 0 updated, 0 deleted"), and concurrent runs wait for each other (an
advisory lock) instead of racing on CREATE TABLE.

Exit status: 0 when the table matches the file; 1 with the reason otherwise (no
DATABASE_URL, database unreachable for 30 s, a malformed line in the file).
"""

import csv
import math
import os
import sys
import time
from pathlib import Path

import psycopg2
import psycopg2.extras

DATA_FILE = Path(
    os.environ.get("RESULTS_CSV", Path(__file__).parent / "data" / "experiment_results.csv")
)
CONNECT_DEADLINE_SECONDS = 30
LOCK_KEY = 0x6279746F6D6F72  # "bytomor": serialises concurrent runs of this script

# The query of GET /api/visualize/data filters on data_source and metric (equality), and
# on params (equality or = ANY), and reads each series in step order. One composite
# unique index answers all of that: equality columns first, step last, so the matching
# entries are one contiguous, step-ordered range per series; INCLUDE lets it be an
# index-only scan. Being UNIQUE, it is also the natural key the upsert below relies on
# (a re-run cannot duplicate a row). Single-column indexes on data_source, params and
# metric would each match far more rows than the query wants, and cost every write.
SCHEMA = """
CREATE TABLE IF NOT EXISTS experiment_results (
    params          text             NOT NULL,  -- model size label: 60M, 1B
    params_numeric  bigint           NOT NULL,  -- the same as a number: 60000000
    step            integer          NOT NULL,  -- training step
    metric          text             NOT NULL,  -- loss, accuracy
    value           double precision NOT NULL,
    data_source     text             NOT NULL,  -- pile, c4
    compute         double precision NOT NULL   -- training FLOPs up to this step
);
CREATE UNIQUE INDEX IF NOT EXISTS experiment_results_series
    ON experiment_results (data_source, metric, params, step)
    INCLUDE (params_numeric, value);
"""

COLUMNS = ("params", "params_numeric", "step", "metric", "value", "data_source", "compute")

# New rows inserted, changed ones updated (unchanged ones left alone); xmax = 0 tells a
# freshly inserted row from an updated one.
UPSERT = """
INSERT INTO experiment_results AS t
       (params, params_numeric, step, metric, value, data_source, compute)
SELECT params, params_numeric, step, metric, value, data_source, compute FROM incoming
    ON CONFLICT (data_source, metric, params, step) DO UPDATE
   SET params_numeric = EXCLUDED.params_numeric, value = EXCLUDED.value, compute = EXCLUDED.compute
 WHERE (t.params_numeric, t.value, t.compute)
       IS DISTINCT FROM (EXCLUDED.params_numeric, EXCLUDED.value, EXCLUDED.compute)
RETURNING (xmax = 0)
"""

# Rows no longer in the file.
DELETE_GONE = """
DELETE FROM experiment_results t
 WHERE NOT EXISTS (SELECT 1 FROM incoming i
                    WHERE (i.data_source, i.metric, i.params, i.step)
                        = (t.data_source, t.metric, t.params, t.step))
"""


def fail(message):
    print(f"load_results: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def read_rows(path):
    """The file's rows as tuples in COLUMNS order; fails naming the line of a bad one."""
    rows, seen = [], {}
    try:
        f = open(path, newline="")
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    with f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            fail(f"{path}:1: missing column(s) {', '.join(missing)} (expected {','.join(COLUMNS)})")
        for row in reader:
            line = reader.line_num
            try:
                if None in row or None in row.values():
                    raise ValueError(f"expected {len(reader.fieldnames)} fields")
                value, compute = float(row["value"]), float(row["compute"])
                if not (math.isfinite(value) and math.isfinite(compute)):
                    raise ValueError("value and compute must be finite numbers")
                record = (
                    row["params"].strip(),
                    int(row["params_numeric"]),
                    int(row["step"]),
                    row["metric"].strip(),
                    value,
                    row["data_source"].strip(),
                    compute,
                )
            except (TypeError, ValueError) as e:
                fail(f"{path}:{line}: {e}")
            key = (record[5], record[3], record[0], record[2])
            if key in seen:
                fail(f"{path}:{line}: same data_source, metric, params and step as line {seen[key]}")
            seen[key] = line
            rows.append(record)
    return rows


def connect(url):
    """Connects, retrying for a while: the add-on's server may still be starting."""
    deadline = time.monotonic() + CONNECT_DEADLINE_SECONDS
    while True:
        try:
            return psycopg2.connect(url, connect_timeout=5, application_name="bytomorrow-load")
        except psycopg2.OperationalError as e:
            if time.monotonic() >= deadline:
                fail(f"cannot connect to the database: {str(e).strip().splitlines()[0]}")
            print("load_results: database not reachable yet, retrying", flush=True)
            time.sleep(1)


def main():
    url = os.environ.get("DATABASE_URL")
    if not url:
        fail('DATABASE_URL is not set: declare [addons.db] kind = "postgres" in slipway.toml')
    rows = read_rows(DATA_FILE)
    conn = connect(url)
    try:
        with conn, conn.cursor() as cur:  # one transaction: committed on success, else rolled back
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            cur.execute(SCHEMA)
            cur.execute("CREATE TEMPORARY TABLE incoming (LIKE experiment_results) ON COMMIT DROP")
            psycopg2.extras.execute_values(
                cur,
                "INSERT INTO incoming (params, params_numeric, step, metric, value, data_source,"
                " compute) VALUES %s",
                rows,
                page_size=1000,
            )
            cur.execute(UPSERT)
            written = [inserted for (inserted,) in cur.fetchall()]
            cur.execute(DELETE_GONE)
            deleted = cur.rowcount
            inserted = sum(written)
            updated = len(written) - inserted
            if inserted or updated or deleted:
                cur.execute("ANALYZE experiment_results")
    except psycopg2.Error as e:
        fail(f"loading {DATA_FILE.name} failed, nothing changed: {str(e).strip()}")
    finally:
        conn.close()
    print(
        f"load_results: experiment_results holds the {len(rows)} rows of {DATA_FILE.name} "
        f"({inserted} inserted, {updated} updated, {deleted} deleted)",
        flush=True,
    )


if __name__ == "__main__":
    main()
