"""ClimbIQ API: training recommendations for climbers.

GET  /api/health                        -> {"status":"ok","postgres":"ok","redis":"ok"}; 503 otherwise
GET  /api/recommendations/stream?grade=V5
                                        -> text/event-stream: five `event: phase` events, one
                                           every SSE_INTERVAL_MS (default 500), then the end
POST /api/jobs {"climber","grade","sessions_per_week"}
                                        -> 202 {"id","status":"queued"}: a job for the worker
GET  /api/jobs/{id}                     -> {"id","status","request","result","error"}
GET  /api/nightly-runs                  -> {"runs":[{"id","ran_at","recommendations"}]}, newest first

Configuration, from the environment only: DATABASE_URL, REDIS_URL (Slipway's postgres and
redis add-ons), PORT (uvicorn's --port), SSE_INTERVAL_MS.
"""

import asyncio
import json
import os
import re
import uuid

import psycopg2
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, conint, constr

from plans import GRADE, grade_number, session_phases
from storage import (
    JOB_TTL_SECONDS,
    QUEUE,
    REDIS_DOWN,
    Database,
    first_line,
    job_key,
    redis_client,
    require_env,
)

db = Database(require_env("DATABASE_URL", "postgres"), "climbiq-api")
cache = redis_client(require_env("REDIS_URL", "redis"))
SSE_INTERVAL_SECONDS = int(os.environ.get("SSE_INTERVAL_MS", "500")) / 1000
JOB_ID = re.compile(r"^[0-9a-f]{32}$")

app = FastAPI(title="ClimbIQ API")
app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])


@app.exception_handler(psycopg2.OperationalError)
@app.exception_handler(psycopg2.InterfaceError)
def database_unavailable(_request: Request, error: Exception):
    return JSONResponse(status_code=503, content={"detail": f"database unavailable: {first_line(error)}"})


def redis_unavailable(_request: Request, error: Exception):
    return JSONResponse(status_code=503, content={"detail": f"redis unavailable: {first_line(error)}"})


for _error in REDIS_DOWN:
    app.add_exception_handler(_error, redis_unavailable)


@app.get("/api/health")
def health():
    """200 when both the database and Redis answer; 503 naming the one that does not."""
    checks = {}
    try:
        db.execute("SELECT 1")
        checks["postgres"] = "ok"
    except psycopg2.Error as e:
        checks["postgres"] = f"error: {first_line(e)}"
    try:
        cache.ping()
        checks["redis"] = "ok"
    except REDIS_DOWN as e:
        checks["redis"] = f"error: {first_line(e)}"
    if all(v == "ok" for v in checks.values()):
        return {"status": "ok", **checks}
    return JSONResponse(status_code=503, content={"status": "unavailable", **checks})


def parse_grade(grade):
    try:
        return grade_number(grade)
    except ValueError as e:
        raise HTTPException(status_code=422, detail=str(e)) from None


def sse(event, data, event_id):
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@app.get("/api/recommendations/stream")
async def recommendations_stream(grade: str = Query("V4")):
    """Server-sent events: the five phases of a session, one at a time. Each event is
    written and flushed on its own (one chunk), SSE_INTERVAL_MS apart; after the fifth
    (its data has "phase" equal to "of": 5) the response ends. EventSource clients
    should close on that event, or they would reconnect and get the session again."""
    phases = session_phases(parse_grade(grade))

    async def events():
        for i, phase in enumerate(phases):
            if i:
                await asyncio.sleep(SSE_INTERVAL_SECONDS)
            yield sse("phase", phase, phase["phase"])

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class JobRequest(BaseModel):
    climber: constr(strip_whitespace=True, min_length=1, max_length=64)
    grade: constr(regex=GRADE.pattern)
    sessions_per_week: conint(ge=1, le=6) = 3


@app.post("/api/jobs", status_code=202)
def create_job(job: JobRequest):
    """Stores the job as a hash and queues its id for the worker, in one MULTI/EXEC."""
    job_id = uuid.uuid4().hex
    key = job_key(job_id)
    with cache.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping={"status": "queued", "request": job.json()})
        pipe.expire(key, JOB_TTL_SECONDS)
        pipe.rpush(QUEUE, job_id)
        pipe.execute()
    return {"id": job_id, "status": "queued"}


@app.get("/api/jobs/{job_id}")
def get_job(job_id: str):
    job = cache.hgetall(job_key(job_id)) if JOB_ID.match(job_id) else {}
    if not job:
        raise HTTPException(status_code=404, detail="job not found")
    return {
        "id": job_id,
        "status": job.get("status"),
        "request": json.loads(job["request"]) if "request" in job else None,
        "result": json.loads(job["result"]) if "result" in job else None,
        "error": job.get("error"),
    }


@app.get("/api/nightly-runs")
def nightly_runs():
    rows = db.execute(
        "SELECT id, ran_at, recommendations FROM nightly_runs ORDER BY id DESC LIMIT %s", (10,)
    )
    return {
        "runs": [
            {"id": i, "ran_at": ran_at.isoformat(), "recommendations": n} for i, ran_at, n in rows
        ]
    }
