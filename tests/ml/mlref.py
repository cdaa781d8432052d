"""Shared helpers of the ml reference checks: run ml-eval, the statsmodels
ETS reference with the same model selection, and the accuracy measures.

Nothing here is a test; test_*.py use it, and so does `python -m mlref`
(the full forms, by hand)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def ml_eval_path() -> Path:
    build = Path(os.environ.get("OMNIFY_BUILD_DIR", REPO / "build"))
    return build / "bin" / "ml-eval"


def ml_eval(command: str, doc: dict) -> list[dict]:
    """Runs ml-eval COMMAND with doc on stdin; one dict per output line."""
    out = subprocess.run([str(ml_eval_path()), command],
                         input=json.dumps(doc, allow_nan=False).encode(),
                         capture_output=True, check=True)
    return [json.loads(line) for line in out.stdout.decode().splitlines()]


def as_json_series(y) -> list:
    return [None if not np.isfinite(v) else float(v) for v in y]


# ---------------------------------------------------------------------------
# Accuracy measures (M3 / M4 conventions).
# ---------------------------------------------------------------------------

def smape(actual, forecast) -> float:
    a, f = np.asarray(actual, float), np.asarray(forecast, float)
    return float(np.mean(200 * np.abs(a - f) / (np.abs(a) + np.abs(f))))


def mase(train, actual, forecast, m: int) -> float:
    t = np.asarray(train, float)
    lag = m if len(t) > m else 1
    scale = np.mean(np.abs(t[lag:] - t[:-lag]))
    return float(np.mean(np.abs(np.asarray(actual) - np.asarray(forecast))) / scale)


# ---------------------------------------------------------------------------
# The reference: statsmodels' ETSModel, every admissible model, best AICc.
# The same set as ours: error A/M, trend N/A/Ad, season N/A/M, no A-error
# with M season; multiplicative models only on positive data; a model only
# when the series has its minimum history (ets.h).
# ---------------------------------------------------------------------------

def n_params(trend: str, season: str, m: int) -> int:
    p = 2
    if trend != "N":
        p += 2
    if trend == "Ad":
        p += 1
    if season != "N":
        p += m
    return p


def min_history(trend: str, season: str, m: int) -> int:
    need = n_params(trend, season, m) + 5
    if season != "N":
        need = max(need, 2 * m)
    return need


def candidate_models(y, m: int):
    positive = bool(np.all(y > 0))
    for e in ("A", "M"):
        for t in ("N", "A", "Ad"):
            for s in ("N", "A", "M"):
                if s != "N" and m < 2:
                    continue
                if e == "A" and s == "M":
                    continue
                if (e == "M" or s == "M") and not positive:
                    continue
                if len(y) < min_history(t, s, m):
                    continue
                yield e, t, s


def statsmodels_ets(y, m: int, h: int):
    """Best-AICc statsmodels ETSModel: (name, forecasts, seconds)."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = np.asarray(y, float)
    start = time.perf_counter()
    best = None
    for e, t, s in candidate_models(y, m):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                mod = ETSModel(y, error="add" if e == "A" else "mul",
                               trend=None if t == "N" else "add",
                               damped_trend=t == "Ad",
                               seasonal=None if s == "N" else
                               ("add" if s == "A" else "mul"),
                               seasonal_periods=m if s != "N" else None)
                res = mod.fit(disp=False)
            except Exception:  # a model statsmodels cannot fit is skipped
                continue
        if not np.isfinite(res.aicc):
            continue
        if best is None or res.aicc < best[0]:
            best = (res.aicc, f"ETS({e},{t},{s})", res)
    fc = np.asarray(best[2].forecast(h), float)
    return best[1], fc, time.perf_counter() - start
