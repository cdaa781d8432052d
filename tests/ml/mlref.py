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
    """Best-AICc statsmodels ETSModel: (name, forecasts, CPU seconds)."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = np.asarray(y, float)
    start = time.process_time()
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
    return best[1], fc, time.process_time() - start


def _reference_job(job):
    sid, y, m, h = job
    name, fc, sec = statsmodels_ets(y, m, h)
    return sid, name, fc.tolist(), sec


def full_form() -> bool:
    return os.environ.get("OMNIFY_ML_FULL", "") not in ("", "0")


def compare_forecasts(series, m: int, h: int) -> dict:
    """Ours (ml-eval, auto selection) against statsmodels on the same
    series: series is a list of (id, train, test). Returns per-series rows
    and the overall figures."""
    from multiprocessing import Pool

    ours = ml_eval("forecast", {
        "period": m, "horizon": h,
        "series": [{"id": sid, "y": as_json_series(tr)} for sid, tr, _ in series]})
    jobs = [(sid, np.asarray(tr, float), m, h) for sid, tr, _ in series]
    with Pool(min(2, os.cpu_count() or 1)) as pool:
        refs = pool.map(_reference_job, jobs)
    rows = []
    for (sid, tr, te), o, (_, rname, rfc, rsec) in zip(series, ours, refs):
        assert "error" not in o, (sid, o.get("error"))
        rows.append({
            "id": sid, "model": o["model"], "ref_model": rname,
            "smape": smape(te, o["mean"]), "ref_smape": smape(te, rfc),
            "mase": mase(tr, te, o["mean"], m), "ref_mase": mase(tr, te, rfc, m),
            "ms": o["fit_ms"], "ref_ms": rsec * 1e3,
            "cover95": float(np.mean((np.asarray(te) >= o["lo95"]) &
                                     (np.asarray(te) <= o["hi95"]))),
        })
    mean = lambda k: float(np.mean([r[k] for r in rows]))
    return {"rows": rows, "n": len(rows),
            "smape": mean("smape"), "ref_smape": mean("ref_smape"),
            "mase": mean("mase"), "ref_mase": mean("ref_mase"),
            "ms": mean("ms"), "ref_ms": mean("ref_ms"),
            "cover95": mean("cover95"),
            "same_model": sum(r["model"] == r["ref_model"] for r in rows)}


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    """A plain text table on stdout (pytest -s shows it)."""
    cells = [header] + [[c if isinstance(c, str) else f"{c:.4g}" if isinstance(c, float) else str(c)
                         for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for i, r in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths)))
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))
