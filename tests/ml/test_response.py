"""The budget response fit against scipy's least squares on the same
model: channels simulated from known Hill curves with adstock and noise
(no public spend/revenue data exists in a package), our sum of squared
errors must be no worse than scipy.optimize.least_squares' (1% slack)
from the same starting points, and the known curve must be recovered."""

import numpy as np

import mlref


def hill(p, a):
    base, beta, half, shape = p[:4]
    r = (np.maximum(a, 0) / half) ** shape
    return base + beta * r / (1 + r)


def adstock(x, lam):
    a = np.empty_like(x)
    prev = x[0] / (1 - lam)
    for t, v in enumerate(x):
        prev = v + lam * prev
        a[t] = prev
    return a


def channels(count, rng):
    out = []
    for i in range(count):
        truth = [rng.uniform(0, 500), rng.uniform(2000, 8000), rng.uniform(300, 2000),
                 rng.uniform(0.7, 2.5), rng.uniform(0, 0.6)]
        x = rng.uniform(100, 2500, 120) * (1 + 0.3 * np.sin(np.arange(120) / 9))
        r = hill(truth, adstock(x, truth[4])) * (1 + rng.normal(0, 0.05, 120))
        out.append((f"ch{i}", truth, x, r))
    return out


def scipy_sse(x, r):
    from scipy.optimize import least_squares

    xs, rs = x.mean(), r.mean()
    xn, rn = x / xs, r / rs
    rmax = rn.max()

    def resid(v):
        return rn - hill(v[:4], adstock(xn, v[4]))

    best = np.inf
    for half in (0.3, 1, 3):
        for shape in (1, 2):
            v0 = [0.2 * rmax, rmax, half, shape, 0.3]
            fit = least_squares(resid, v0, bounds=([0, 0, 0.01, 0.5, 0],
                                                   [rmax, 10 * rmax, 100, 3, 0.9]))
            best = min(best, 2 * fit.cost)
    return best * rs * rs


def test_response_fit_against_scipy():
    rng = np.random.default_rng(7)
    data = channels(12 if mlref.full_form() else 4, rng)
    ours = mlref.ml_eval("response", {"adstock": True, "channels": [
        {"id": cid, "spend": x.tolist(), "revenue": r.tolist()} for cid, _, x, r in data]})[0]
    rows = []
    for (cid, truth, x, r), ch in zip(data, ours["channels"]):
        assert "error" not in ch, ch
        p = [ch["base"], ch["beta"], ch["half"], ch["shape"]]
        sse = float(np.sum((r - hill(p, adstock(x, ch["lambda"]))) ** 2))
        ref = scipy_sse(x, r)
        true_sse = float(np.sum((r - hill(truth, adstock(x, truth[4]))) ** 2))
        rows.append([cid, sse / ref, sse / true_sse, ch["lambda"], truth[4],
                     ch["fit"]["mape"], ch["holdout"]["mape"], ch["fit_ms"]])
        assert sse <= 1.01 * ref, rows[-1]
        assert ch["holdout"]["mape"] < 10, rows[-1]
    mlref.print_table("Budget response (Hill + adstock), simulated channels",
                      ["channel", "SSE/scipy", "SSE/true curve", "lambda", "true lambda",
                       "MAPE fit %", "MAPE holdout %", "CPU ms"], rows)
