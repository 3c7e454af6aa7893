"""ByTomorrow research dashboard API: experiment results as line-chart series.

GET /api/health                 -> {"status": "ok"}
GET /api/visualize/options      -> the model sizes, metrics and data sources on file
GET /api/visualize/data?data_source=pile&params=60M,150M&metric=loss
                                -> one series per model size, points ordered by step
"""

import csv
import os
import re
from collections import defaultdict
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query
from fastapi.middleware.cors import CORSMiddleware

DATA_FILE = Path(
    os.environ.get("RESULTS_CSV", Path(__file__).parent / "data" / "experiment_results.csv")
)
DEFAULT_METRIC = "loss"
DEFAULT_DATA_SOURCE = "pile"
PARAMS_LABEL = re.compile(r"^\d+(\.\d+)?[KMBT]$")


def load_results(path):
    """Reads the CSV once at start-up into {(data_source, metric, params): [points]}."""
    series = defaultdict(list)
    params_numeric = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["data_source"], row["metric"], row["params"])
            series[key].append({"step": int(row["step"]), "value": float(row["value"])})
            params_numeric[row["params"]] = int(row["params_numeric"])
    for points in series.values():
        points.sort(key=lambda p: p["step"])
    return dict(series), params_numeric


SERIES, PARAMS_NUMERIC = load_results(DATA_FILE)

app = FastAPI(title="ByTomorrow API")
app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET"], allow_headers=["*"])


@app.get("/api/health")
def health():
    return {"status": "ok"}


@app.get("/api/visualize/options")
def options():
    return {
        "params": sorted(PARAMS_NUMERIC, key=PARAMS_NUMERIC.get),
        "metrics": sorted({metric for _, metric, _ in SERIES}),
        "data_sources": sorted({source for source, _, _ in SERIES}),
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


@app.get("/api/visualize/data")
def visualize_data(
    data_source: str = Query(DEFAULT_DATA_SOURCE),
    params: str = Query(None),
    metric: str = Query(DEFAULT_METRIC),
):
    wanted = parse_params(params)
    source = data_source or DEFAULT_DATA_SOURCE
    metric = metric or DEFAULT_METRIC
    sizes = wanted if wanted is not None else sorted(PARAMS_NUMERIC, key=PARAMS_NUMERIC.get)
    series = []
    for label in sizes:
        points = SERIES.get((source, metric, label))
        if points:
            series.append(
                {"name": label, "params_numeric": PARAMS_NUMERIC[label], "points": points}
            )
    return {"metric": metric, "data_source": source, "series": series}
