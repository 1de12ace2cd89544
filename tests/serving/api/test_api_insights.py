"""/v1/changes, /v1/actions and /v1/accounts: what the commands print, as JSON, with the API's checks."""

from __future__ import annotations

import pytest


def test_changes_between_the_two_latest_runs_by_default(client):
    body = client.get("/v1/changes").json()
    assert (body["from"]["run_id"], body["to"]["run_id"]) == ("run-jan", "run-feb")
    assert body["customers"]["both"] == 2 and body["customers"]["new"] == 23  # k01, k02 in both; k03..k25 new
    # k01 0.20 -> 0.04 (-0.16), k02 0.30 -> 0.08 (-0.22): the larger move first
    assert [m["customer_id"] for m in body["movers"]["p_churn"]] == ["k02", "k01"]
    assert body["movers"]["p_churn"][0]["p_churn_delta"] == pytest.approx(-0.22)
    assert {(t["from_segment"], t["to_segment"]) for t in body["transitions"]} >= {("regular", "regular"), ("(new)", "at_risk")}


def test_changes_in_chinese_and_for_one_segment(client):
    body = client.get("/v1/changes", params={"lang": "zh", "segment": "at_risk", "top": 1}).json()
    assert all("at_risk" in (t["from_segment"], t["to_segment"]) for t in body["transitions"])
    # k01 moved from regular into at_risk (odd ids are at_risk in February); k02 stays regular
    assert [m["customer_id"] for m in body["movers"]["p_churn"]] == ["k01"]
    assert body["movers"]["p_churn"][0]["segment_after"] == "at_risk" and body["movers"]["p_churn"][0]["sentence"]


@pytest.mark.parametrize(("params", "status"), [
    ({"from_run": "nope"}, 404), ({"to_run": "x'; DROP TABLE runs;--"}, 400), ({"segment": "vip"}, 404),
    ({"top": 0}, 400), ({"top": 1001}, 400), ({"lang": "fr"}, 400),
])  # fmt: skip
def test_bad_change_parameters_are_400_or_404_in_json(client, params, status):
    answer = client.get("/v1/changes", params=params)
    assert answer.status_code == status and set(answer.json()) == {"error"}


def test_the_action_list_ranks_by_expected_gain_within_the_budget(client):
    # February: p_churn = i/25, clv = 100 i, so gain = i/25 x 0.2 x 100 i - 50 = 0.8 i^2 - 50 > 0 for i >= 8
    # (k07 has no p_churn and is never offered): k08..k25, 18 customers, k25 first.
    body = client.get("/v1/actions").json()
    ids = [c["customer_id"] for c in body["customers"]]
    assert ids[0] == "k25" and len(ids) == 18 and "k07" not in ids
    assert body["customers"][0]["expected_gain"] == pytest.approx(0.8 * 25**2 - 50)
    assert body["policy"]["save_rate"] == 0.2
    five = client.get("/v1/actions", params={"budget": 5}).json()["customers"]
    assert [c["customer_id"] for c in five] == ["k25", "k24", "k23", "k22", "k21"]


@pytest.mark.parametrize("params", [{"save_rate": 2}, {"save_rate": 0}, {"budget": 0}, {"budget": 2.5},
                                    {"budget_kind": "calls"}, {"offer_cost": -1}, {"budget": 5000}])
def test_bad_action_parameters_are_400(client, params):
    answer = client.get("/v1/actions", params=params)
    assert answer.status_code == 400 and set(answer.json()) == {"error"}


def test_account_grades_of_a_run_published_without_them_are_404(client):
    answer = client.get("/v1/accounts")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_graded"
    assert client.get("/v1/accounts", params={"grade": "vip"}).status_code == 400


def test_the_insight_routes_need_a_key(client):
    for path in ("/v1/changes", "/v1/actions", "/v1/accounts"):
        assert client.get(path, headers={"X-API-Key": "cs_000000000000_wrong"}).status_code == 401
