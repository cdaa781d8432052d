"""Onboarding over HTTP: a client's checklist completes from real events of
auth (signup: its workspace) and from events of auth, integrations and
analytics as those groups publish them (EVENTS.md, produced with kcat
until they flow for real); skip with a reason; progress; tenants apart;
roles."""

import uuid

import pytest

from conftest import assert_problem, http, login, signup, wait_all_status
from infra_helpers import auth, produce_event, token, until


@pytest.fixture(scope="module")
def mono(module_procs):
    m = module_procs.start_monolith(env={"OMNIFY_ARGON2_M_COST_KIB": "1024",
                                         "OMNIFY_ARGON2_T_COST": "1"})
    wait_all_status(m.url)
    return m


def owner(url):
    email, r = signup(url)
    assert r.status == 201, r
    tok = login(url, email, "correct horse battery").body["access_token"]
    return tok, r.body["tenant_id"], r.body["id"]


CLIENT = {"name": "Acme", "website": "https://acme.example", "goals": ["roas 4"],
          "monthly_budget_minor": 500000, "currency": "EUR",
          "contacts": [{"name": "Bo", "email": "bo@acme.example"}],
          "providers": ["google_ads"]}


def terms_and_team(session, tenant, user):
    """auth's events of the terms accepted and a team member invited."""
    now = "2026-12-06T12:00:00Z"
    produce_event(session, "auth", "auth.legal.accepted",
                  {"user_id": user, "type": "terms", "version": "1", "accepted_at": now}, tenant)
    produce_event(session, "auth", "auth.org.invitation_created",
                  {"org_id": tenant, "invitation_id": str(uuid.uuid4()), "role": "member",
                   "invited_by": user}, tenant)


def test_checklist_completes_from_events(mono, session):
    tok, tenant, user = owner(mono.url)
    r = http("POST", mono.url + "/api/onboarding/clients", json_body=CLIENT, headers=auth(tok))
    assert r.status == 201, r
    cid = r.body["id"]
    keys = [s["key"] for s in r.body["steps"]]
    assert keys == ["workspace_created", "terms_accepted", "team_invited",
                    "connected:google_ads", "synced:google_ads",
                    "dashboard_viewed", "report_scheduled"]
    # The signup's own auth.user.registered completes the workspace step.
    until(lambda: http("GET", f"{mono.url}/api/onboarding/clients/{cid}", headers=auth(tok))
          .body["steps"][0]["status"] == "done", timeout=30, what="workspace step done")
    terms_and_team(session, tenant, user)
    # As schemas/integrations.json declares them: ids are UUIDs, and the
    # sync events name their account too.
    conn_id, sync_id = str(uuid.uuid4()), str(uuid.uuid4())
    produce_event(session, "integrations", "integrations.connection.connected",
                  {"connection_id": conn_id, "provider": "google_ads", "account_id": "a1",
                   "account_name": "Acme Ads"}, tenant)
    for _ in range(2):  # a redelivery changes nothing
        produce_event(session, "integrations", "integrations.sync.completed",
                      {"sync_id": sync_id, "connection_id": conn_id, "provider": "google_ads",
                       "account_id": "a1", "kind": "scheduled", "records": 10,
                       "streams": {"campaigns": 10}, "first_sync": True}, tenant)
    produce_event(session, "analytics", "analytics.dashboard.viewed",
                  {"user_id": user, "first": True}, tenant)
    r = until(lambda: (lambda x: x if x.body["progress"]["percent"] == 6 * 100 // 7 else None)(
        http("GET", f"{mono.url}/api/onboarding/clients/{cid}", headers=auth(tok))),
        timeout=60, what="six of seven steps done")
    assert r.body["progress"]["next"] == "report_scheduled"
    assert r.body["progress"]["blocking"]["party"] == "agency"
    produce_event(session, "analytics", "analytics.report.scheduled",
                  {"report_id": "r1", "schedule": "weekly"}, tenant)
    r = until(lambda: (lambda x: x if x.body["progress"]["complete"] else None)(
        http("GET", f"{mono.url}/api/onboarding/clients/{cid}", headers=auth(tok))),
        timeout=60, what="checklist complete")
    assert r.body["progress"]["percent"] == 100
    lst = http("GET", mono.url + "/api/onboarding/clients", headers=auth(tok))
    assert [c["id"] for c in lst.body["clients"]] == [cid]


def test_skip_with_a_reason_and_refusals(mono, session):
    tok, tenant, user = owner(mono.url)
    cid = http("POST", mono.url + "/api/onboarding/clients", json_body=CLIENT,
               headers=auth(tok)).body["id"]
    base = f"{mono.url}/api/onboarding/clients/{cid}/steps"
    r = http("POST", f"{base}/team_invited/skip", json_body={"reason": "solo founder"},
             headers=auth(tok))
    assert r.status == 200, r
    step = next(s for s in r.body["steps"] if s["key"] == "team_invited")
    assert step["status"] == "skipped" and step["skip"]["reason"] == "solo founder"
    assert r.body["progress"]["skipped"] == 1
    assert_problem(http("POST", f"{base}/nope/skip", json_body={"reason": "x"},
                        headers=auth(tok)), 404)
    assert_problem(http("POST", f"{base}/team_invited/skip", json_body={},
                        headers=auth(tok)), 400, ["reason"])
    until(lambda: http("GET", f"{mono.url}/api/onboarding/clients/{cid}", headers=auth(tok))
          .body["steps"][0]["status"] == "done", timeout=30, what="workspace step done")
    assert_problem(http("POST", f"{base}/workspace_created/skip", json_body={"reason": "x"},
                        headers=auth(tok)), 409)
    # Another organisation sees nothing of it.
    other, _, _ = owner(mono.url)
    assert_problem(http("GET", f"{mono.url}/api/onboarding/clients/{cid}", headers=auth(other)), 404)
    assert http("GET", mono.url + "/api/onboarding/clients", headers=auth(other)).body["clients"] == []
    viewer = token(session, roles=("viewer",), tid=tenant)
    assert_problem(http("POST", mono.url + "/api/onboarding/clients", json_body=CLIENT,
                        headers=auth(viewer)), 403)
    assert_problem(http("POST", mono.url + "/api/onboarding/clients",
                        json_body=dict(CLIENT, workspace_id=str(uuid.uuid4())),
                        headers=auth(tok)), 404)
    assert_problem(http("POST", mono.url + "/api/onboarding/clients",
                        json_body=dict(CLIENT, providers=["myspace"]), headers=auth(tok)), 400)
