"""A FastAPI app deployed from docker-compose.yml (no slipway.toml)."""

import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def root():
    return {
        "greeting": os.environ.get("GREETING", ""),
        "env": os.environ.get("APP_ENV", ""),
        "port": os.environ.get("PORT", ""),
    }


@app.get("/health")
def health():
    return {"status": "ok"}
