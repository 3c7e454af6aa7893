"""A FastAPI app deployed from its render.yaml alone (no slipway.toml, no Procfile)."""

import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def root():
    return {
        "greeting": os.environ.get("GREETING", ""),
        "service": os.environ.get("SLIPWAY_SERVICE", ""),
    }


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
