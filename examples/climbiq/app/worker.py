"""ClimbIQ worker (a Slipway `worker` service: no PORT, no route).

Waits on the Redis list climbiq:jobs (BLPOP) for job ids queued by POST /api/jobs; for
each, computes the weekly plan, stores it in PostgreSQL (table recommendations) and
writes the result back to the job's hash in Redis (status done, result), where
GET /api/jobs/{id} reads it.

- SIGTERM (or SIGINT): the job in hand is finished and written back, then the worker
  exits 0. While idle it notices within a second (BLPOP waits 1 s at a time).
- Redis restarting or down: logged, retried with backoff (0.5 s doubling to 2 s) until it
  is back; a result not yet written back is kept and written once Redis answers.
- PostgreSQL restarting: the store is retried for a few seconds on a fresh connection;
  if the database stays away the job is marked failed with the reason.

Configuration, from the environment only: REDIS_URL, DATABASE_URL, WORK_SECONDS (how
long a job takes, standing in for real work; default 1).
"""

import json
import os
import signal
import sys
import time

import psycopg2

from plans import weekly_plan
from storage import (
    QUEUE,
    REDIS_DOWN,
    SCHEMA,
    Backoff,
    Database,
    first_line,
    job_key,
    log,
    redis_client,
    require_env,
    sleep_unless,
)

WHO = "worker"
WORK_SECONDS = float(os.environ.get("WORK_SECONDS", "1"))
STORE_ATTEMPTS = 5  # about 5 s: a database restart takes about one

stopping = False


def on_signal(signum, _frame):
    # Only a flag: the loop below looks at it between jobs and between BLPOP waits.
    global stopping
    if not stopping:
        log(WHO, f"got {signal.Signals(signum).name}: finishing the current job, then exiting")
    stopping = True


class Worker:
    def __init__(self):
        self.cache = redis_client(require_env("REDIS_URL", "redis"))
        self.db = Database(require_env("DATABASE_URL", "postgres"), "climbiq-worker", size=1)
        self.schema_ready = False

    def redis(self, what, call):
        """call() against Redis, waiting out an outage (also while stopping: the job in
        hand must be written back). Gives up after 60 s so a stop cannot hang forever."""
        backoff, deadline = Backoff(), time.monotonic() + 60
        while True:
            try:
                result = call()
                if backoff.failures:
                    log(WHO, "redis is back")
                return result
            except REDIS_DOWN as e:
                if time.monotonic() > deadline:
                    raise
                wait = backoff.next_wait()
                log(WHO, f"redis unavailable while {what} ({first_line(e)}); retrying in {wait:g}s")
                time.sleep(wait)

    def store(self, job_id, request, plan):
        """Inserts the recommendation (again: a no-op), retried over a database restart."""
        for attempt in range(1, STORE_ATTEMPTS + 1):
            try:
                if not self.schema_ready:
                    self.db.execute(SCHEMA)
                    self.schema_ready = True
                self.db.execute(
                    "INSERT INTO recommendations (job_id, climber, grade, plan)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (job_id) DO NOTHING",
                    (job_id, request["climber"], plan["grade"], json.dumps(plan)),
                )
                return
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
                if attempt == STORE_ATTEMPTS:
                    raise
                log(WHO, f"database unavailable ({first_line(e)}); retrying in 1s")
                time.sleep(1)

    def process(self, job_id):
        key = job_key(job_id)
        job = self.redis("reading the job", lambda: self.cache.hgetall(key))
        if not job:
            log(WHO, f"job {job_id}: unknown or expired, skipped")
            return
        if job.get("status") in ("done", "failed"):
            log(WHO, f"job {job_id}: already {job['status']}, skipped")
            return
        started = time.monotonic()
        self.redis("marking the job running", lambda: self.cache.hset(key, "status", "running"))
        try:
            request = json.loads(job["request"])
            plan = weekly_plan(request["climber"], request["grade"], int(request["sessions_per_week"]))
        except (KeyError, TypeError, ValueError) as e:
            fields = {"status": "failed", "error": f"bad job: {e}"}
        else:
            time.sleep(WORK_SECONDS)  # stands in for the real work (a model, an external API)
            try:
                self.store(job_id, request, plan)
                fields = {"status": "done", "result": json.dumps(plan)}
            except psycopg2.Error as e:
                fields = {"status": "failed", "error": f"could not store the plan: {first_line(e)}"}
        self.redis("writing the result", lambda: self.cache.hset(key, mapping=fields))
        log(WHO, f"job {job_id}: {fields['status']} in {time.monotonic() - started:.2f}s")

    def run(self):
        log(WHO, f"waiting for jobs on {QUEUE}")
        backoff = Backoff()
        while not stopping:
            try:
                item = self.cache.blpop(QUEUE, timeout=1)
            except REDIS_DOWN as e:
                wait = backoff.next_wait()
                log(WHO, f"redis unavailable ({first_line(e)}); retrying in {wait:g}s")
                sleep_unless(wait, lambda: stopping)
                continue
            if backoff.failures:
                log(WHO, "redis is back")
                backoff.reset()
            if item is not None:
                self.process(item[1])
        log(WHO, "stopped")


def main():
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        Worker().run()
    except REDIS_DOWN as e:
        log(WHO, f"giving up: redis unavailable for 60s ({first_line(e)})")
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
