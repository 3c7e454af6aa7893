"""ClimbIQ nightly job (a Slipway `cron` service, cronSchedule "0 2 * * *": 02:00 UTC).

Writes one row to nightly_runs: when it ran and how many recommendations the worker
made in the 24 hours before. Creates the tables if they are missing. Prints the row and
exits 0; exits 1 with the reason when the database cannot be reached (for 30 s) or the
insert fails, so the platform records the run as failed.

Configuration, from the environment only: DATABASE_URL.
"""

import sys

import psycopg2

from storage import SCHEMA, connect_patiently, first_line, log, require_env

WHO = "nightly"


def main():
    url = require_env("DATABASE_URL", "postgres")
    try:
        conn = connect_patiently(url, "climbiq-nightly")
        try:
            with conn, conn.cursor() as cur:  # one transaction
                cur.execute(SCHEMA)
                cur.execute(
                    """
                    INSERT INTO nightly_runs (recommendations)
                    SELECT count(*) FROM recommendations
                     WHERE created_at > now() - interval '24 hours'
                    RETURNING id, ran_at, recommendations
                    """
                )
                run_id, ran_at, count = cur.fetchone()
        finally:
            conn.close()
    except psycopg2.Error as e:
        log(WHO, f"failed: {first_line(e)}")
        sys.exit(1)
    log(WHO, f"run {run_id} at {ran_at.isoformat()}: {count} recommendations in the last 24 h")


if __name__ == "__main__":
    main()
