"""A minimal FastAPI app deployed from its Procfile (no slipway.toml)."""

import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def root():
    return {
        "message": "hello from fastapi",
        "service": os.environ.get("SLIPWAY_SERVICE", ""),
    }


@app.get("/health")
def health():
    return {"status": "ok"}
