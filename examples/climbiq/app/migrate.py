"""Pre-deploy command of the api service (`python3 migrate.py`): creates ClimbIQ's
tables and indexes when they are missing. Safe to run on every deploy (CREATE ... IF NOT
EXISTS, in one transaction under an advisory lock); exits 1 with the reason when the
database cannot be reached for 30 s, which stops the deploy before traffic switches."""

import sys

import psycopg2

from storage import SCHEMA, connect_patiently, first_line, log, require_env


def main():
    try:
        conn = connect_patiently(require_env("DATABASE_URL", "postgres"), "climbiq-migrate")
        try:
            with conn, conn.cursor() as cur:
                cur.execute(SCHEMA)
        finally:
            conn.close()
    except psycopg2.Error as e:
        log("migrate", f"failed: {first_line(e)}")
        sys.exit(1)
    log("migrate", "schema up to date (recommendations, nightly_runs)")


if __name__ == "__main__":
    main()
