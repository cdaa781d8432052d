"""The ml group's routes over HTTP with nothing but ml and an edge running:
the answers that need no numbers from analytics. Bad parameters are named
(400 by field from the schema, 422 by the rule the schema cannot state),
roles are enforced, a forecast is accepted at once (202, its id and where
its result will be) and stays pending while analytics does not answer,
tenants never see each other's forecasts, and models too small to train
say so. test_ml.py has the end-to-end flow with analytics.
"""

import time
import uuid

import pytest

from conftest import assert_problem, default_claims, http, make_jwt, wait_status


@pytest.fixture(scope="module")
def ml(session, module_procs):
    w = type("World", (), {})()
    w.session = session
    # Each tenant's scheduled refresh every 10 s (a day by default).
    w.group = module_procs.start_group("ml", OMNIFY_ML_REFRESH_INTERVAL_S="10")
    w.edge = module_procs.start_edge()
    w.url = w.edge.url
    wait_status(w.url, "ml")
    w.a, w.b = str(uuid.uuid4()), str(uuid.uuid4())
    return w


def call(w, method, path, tenant, role="owner", body=None, user="u1"):
    claims = default_claims(sub=str(uuid.uuid5(uuid.NAMESPACE_URL, tenant + user)), tid=tenant,
                            roles=(role,))
    h = {"Authorization": "Bearer " + make_jwt(w.session.jwt_secret, claims)}
    return http(method, w.url + path, headers=h, json_body=body, timeout=60)


def test_forecast_accepted_pending_and_private(ml):
    r = call(ml, "POST", "/api/ml/forecasts", ml.a, role="member",
             body={"metric": "revenue", "horizon": 30})
    assert r.status == 202, r
    fid = r.body["forecast_id"]
    assert r.body == {"forecast_id": fid, "status": "pending",
                      "location": f"/api/ml/forecasts/{fid}"}
    # The same definition again is the same forecast (refreshed).
    again = call(ml, "POST", "/api/ml/forecasts", ml.a, role="member",
                 body={"metric": "revenue", "horizon": 30})
    assert again.body["forecast_id"] == fid, again
    r = call(ml, "GET", f"/api/ml/forecasts/{fid}", ml.a, role="viewer")
    assert r.status == 200 and r.body["status"] == "pending", r
    assert r.body["metric"] == "revenue" and r.body["horizon"] == 30, r
    r = call(ml, "GET", "/api/ml/forecasts", ml.a, role="viewer")
    assert [f["forecast_id"] for f in r.body["forecasts"]] == [fid], r
    # Another tenant neither reads, lists nor deletes it.
    assert_problem(call(ml, "GET", f"/api/ml/forecasts/{fid}", ml.b), 404)
    assert call(ml, "GET", "/api/ml/forecasts", ml.b).body["forecasts"] == []
    assert_problem(call(ml, "DELETE", f"/api/ml/forecasts/{fid}", ml.b), 404)
    # Its owner does.
    assert call(ml, "DELETE", f"/api/ml/forecasts/{fid}", ml.a, role="member").status == 204
    assert_problem(call(ml, "GET", f"/api/ml/forecasts/{fid}", ml.a), 404)


def test_the_tenants_schedule_asks_again(ml):
    """A tenant that created a forecast has a durable schedule: it fires
    ml.refresh, which asks analytics again for every forecast (nobody
    answers here: the request time moves on, the forecast stays pending)."""
    r = call(ml, "POST", "/api/ml/forecasts", ml.a, role="member",
             body={"metric": "orders", "horizon": 7})
    assert r.status == 202, r
    path = f"/api/ml/forecasts/{r.body['forecast_id']}"
    first = call(ml, "GET", path, ml.a).body["requested_at"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        f = call(ml, "GET", path, ml.a).body
        if f["requested_at"] != first:
            break
        time.sleep(1)
    assert f["requested_at"] > first and f["status"] == "pending", (first, f)


@pytest.mark.parametrize("body,fields", [
    ({"metric": "happiness"}, {"metric"}),
    ({}, {"metric"}),
    ({"metric": "spend", "horizon": 0}, {"horizon"}),
    ({"metric": "spend", "horizon": 366}, {"horizon"}),
    ({"metric": "spend", "horizon": "soon"}, {"horizon"}),
    ({"metric": "spend", "currency": "EURO"}, {"currency"}),
    ({"metric": "spend", "colour": "red"}, {"colour"}),
])
def test_forecast_bad_parameters_named(ml, body, fields):
    assert_problem(call(ml, "POST", "/api/ml/forecasts", ml.a, role="member", body=body),
                   400, fields)


def test_forecast_rules_the_schema_cannot_state(ml):
    r = call(ml, "POST", "/api/ml/forecasts", ml.a, role="member",
             body={"metric": "spend", "campaign_id": "c1"})
    assert "campaign_id needs provider" in assert_problem(r, 422)["detail"]
    r = call(ml, "POST", "/api/ml/forecasts", ml.a, role="member",
             body={"metric": "orders", "provider": "shopify", "campaign_id": "c1"})
    assert "orders is not one" in assert_problem(r, 422)["detail"]


def test_roles(ml):
    assert_problem(call(ml, "POST", "/api/ml/forecasts", ml.a, role="viewer",
                        body={"metric": "spend"}), 403)
    assert_problem(call(ml, "POST", "/api/ml/models/lead/train", ml.a, role="viewer"), 403)
    assert_problem(http("GET", ml.url + "/api/ml/anomalies"), 401)


def test_anomalies_parameters(ml):
    r = call(ml, "GET", "/api/ml/anomalies?from=2026-01-01&to=2026-01-31", ml.a, "viewer")
    assert r.status == 200 and r.body == {"from": "2026-01-01", "to": "2026-01-31",
                                          "anomalies": []}, r
    assert_problem(call(ml, "GET", "/api/ml/anomalies?from=2026-13-01", ml.a), 400, {"from"})
    assert_problem(call(ml, "GET", "/api/ml/anomalies?metric=mood", ml.a), 400, {"metric"})
    r = call(ml, "GET", "/api/ml/anomalies?from=2026-02-01&to=2026-01-01", ml.a)
    assert "from is after to" in assert_problem(r, 422)["detail"]
    r = call(ml, "GET", "/api/ml/anomalies?from=2024-01-01&to=2026-01-01", ml.a)
    assert "at most 366 days" in assert_problem(r, 422)["detail"]


def test_models_too_small_and_absent(ml):
    r = call(ml, "POST", "/api/ml/models/lead/train", ml.b, role="member")
    assert "too few examples to train a lead model: 0 contacts" in \
        assert_problem(r, 422)["detail"]
    r = call(ml, "POST", "/api/ml/models/churn/train", ml.b, role="member")
    assert "too few examples to train a churn model: 0 customers" in \
        assert_problem(r, 422)["detail"]
    assert_problem(call(ml, "POST", "/api/ml/models/fraud/train", ml.b, role="member"),
                   400, {"kind"})
    assert "no lead model yet" in \
        assert_problem(call(ml, "GET", "/api/ml/scores/lead", ml.b), 404)["detail"]
    assert_problem(call(ml, "GET", "/api/ml/models/churn", ml.b), 404)
    r = call(ml, "GET", "/api/ml/models/anomaly", ml.b)
    assert r.body["versions"][0]["model_version"] == "anomaly/robust-seasonal/v1", r
    assert_problem(call(ml, "GET", "/api/ml/budget/pacing", ml.b), 404)
    r = call(ml, "POST", "/api/ml/budget/what-if", ml.b,
             body={"from": "google_ads", "to": "meta_ads", "amount_minor": 100})
    assert_problem(r, 404)


def test_training_schedule(ml):
    r = call(ml, "PUT", "/api/ml/models/lead/schedule", ml.a, role="member",
             body={"every_days": 7})
    assert r.status == 200 and r.body == {"kind": "lead", "every_days": 7}, r
    r = call(ml, "PUT", "/api/ml/models/lead/schedule", ml.a, role="member",
             body={"every_days": 7})
    assert r.status == 200, r
    assert_problem(call(ml, "PUT", "/api/ml/models/lead/schedule", ml.a, role="member",
                        body={"every_days": 91}), 400, {"every_days"})
    r = call(ml, "PUT", "/api/ml/models/lead/schedule", ml.a, role="member",
             body={"every_days": 0})
    assert r.status == 200 and r.body["every_days"] == 0, r
