"""What a team reads: runs, a customer (en/zh), a history, a segment page by page; bad input gets 400/404, never 500."""

from __future__ import annotations

import datetime as dt

import pytest

from serving.scored_run import ScoredRun
from serving.store import RunMetadata, ScoreStore
from tests.serving.api.conftest import FEB_IDS, score_rows


def test_runs_are_listed_oldest_first_with_the_latest_named(client):
    body = client.get("/v1/runs").json()
    assert [r["run_id"] for r in body["runs"]] == ["run-jan", "run-feb"]
    assert body["latest_run_id"] == "run-feb"
    assert body["runs"][1]["as_of"] == "2026-02-28" and body["runs"][1]["score_rows"] == 25
    assert "folder" not in body["runs"][0]  # where the store keeps files is not the client's business


def test_a_run_with_its_summary_and_nan_as_null(client):
    body = client.get("/v1/runs/run-feb").json()
    assert body["run"]["run_id"] == "run-feb" and body["run"]["churn_model_version"] == "2"
    assert body["segments"] == [{"group": "at_risk", "label_en": "At risk", "label_zh": "流失风险客户", "customers": 25,
                                 "share_customers": 1.0, "current_value": 1.0, "share_current_value": 1.0,
                                 "predicted_value": 2.0, "share_predicted_value": 1.0, "mean_p_churn": 0.5}]
    assert body["value_tiers"][0]["predicted_value"] is None


def test_a_customer_s_latest_score_in_english_and_chinese(client):
    en = client.get("/v1/customers/k03").json()
    assert en["run_id"] == "run-feb" and en["as_of"] == "2026-02-28"
    assert en["p_churn"] == pytest.approx(3 / 25) and en["clv"] == 300.0
    assert (en["segment"], en["segment_label"], en["value_tier"]) == ("at_risk", "At risk", "C")
    assert en["reasons"] == "Raises churn risk: no order for 2 days." and en["lang"] == "en"
    answer = client.get("/v1/customers/k03?lang=zh")
    assert answer.headers["content-type"] == "application/json"
    assert "推高流失风险：已2天未下单。".encode() in answer.content  # UTF-8 as is, not escaped or mangled
    zh = answer.json()
    assert zh["reasons"] == "推高流失风险：已2天未下单。" and zh["segment_label"] == "流失风险客户"


def test_a_missing_probability_is_null_and_an_older_run_can_be_asked_for(client):
    assert client.get("/v1/customers/k07").json()["p_churn"] is None
    assert client.get("/v1/customers/k01?run_id=run-jan").json()["p_churn"] == 0.2
    assert client.get("/v1/customers/k25?run_id=run-jan").status_code == 404


def test_history_has_one_entry_per_run_oldest_first(client):
    body = client.get("/v1/customers/k02/history").json()
    assert [(r["run_id"], r["as_of"], r["p_churn"]) for r in body["runs"]] == [
        ("run-jan", "2026-01-31", 0.3), ("run-feb", "2026-02-28", 2 / 25)]
    assert client.get("/v1/customers/nobody/history").json()["error"]["code"] == "customer_not_found"


def test_segment_filters(client):
    def ids(query: str) -> list[str]:
        return [c["customer_id"] for c in client.get(f"/v1/segments/at_risk/customers?{query}").json()["customers"]]

    at_risk = [i for n, i in enumerate(FEB_IDS, 1) if n % 2]
    assert ids("") == at_risk
    assert ids("tier=A") == ["k17", "k19", "k21", "k23", "k25"]
    assert ids("min_value=2300") == ["k23", "k25"]  # clv of kNN is NN x 100, bound inclusive
    assert ids("min_p_churn=0.8") == ["k21", "k23", "k25"]  # k07's missing p_churn never passes a bound
    assert ids("tier=C&min_p_churn=0.2") == ["k05", "k09", "k11", "k13", "k15"]


def test_paging_walks_every_customer_once_on_the_run_it_started_with(client, home):
    first = client.get("/v1/segments/regular/customers?limit=5").json()
    assert [c["customer_id"] for c in first["customers"]] == ["k02", "k04", "k06", "k08", "k10"]
    # A new run is published between two pages: the listing stays on the run it began with.
    newer = score_rows(["k02", "zz"], p_churn=[0.5, 0.5], clv=[1.0, 1.0], segment=["regular"] * 2, tier=["A"] * 2)
    ScoreStore(home / "store").publish(RunMetadata(run_id="run-mar", as_of=dt.date(2026, 3, 31)), ScoredRun.from_tables(newer))
    seen, cursor = [c["customer_id"] for c in first["customers"]], first["next_cursor"]
    while cursor:
        page = client.get("/v1/segments/regular/customers", params={"limit": 5, "cursor": cursor}).json()
        assert page["run_id"] == "run-feb"
        seen += [c["customer_id"] for c in page["customers"]]
        cursor = page["next_cursor"]
    assert seen == [i for n, i in enumerate(FEB_IDS, 1) if n % 2 == 0]
    assert client.get("/v1/segments/regular/customers").json()["run_id"] == "run-mar"


def test_page_size_is_100_by_default_and_at_most_1000(client, home):
    ids = [f"m{i:04d}" for i in range(1001)]
    many = score_rows(ids, p_churn=[0.5] * 1001, clv=[1.0] * 1001, segment=["regular"] * 1001, tier=["A"] * 1001)
    ScoreStore(home / "store").publish(RunMetadata(run_id="run-big", as_of=dt.date(2026, 4, 30)), ScoredRun.from_tables(many))
    default = client.get("/v1/segments/regular/customers").json()
    assert len(default["customers"]) == 100 and default["next_cursor"]
    largest = client.get("/v1/segments/regular/customers?limit=1000").json()
    assert [c["customer_id"] for c in largest["customers"]] == ids[:1000]
    last = client.get("/v1/segments/regular/customers", params={"limit": 1000, "cursor": largest["next_cursor"]}).json()
    assert [c["customer_id"] for c in last["customers"]] == ["m1000"] and last["next_cursor"] is None
    for limit in ("1001", "0", "-1", "ten"):
        answer = client.get(f"/v1/segments/regular/customers?limit={limit}")
        assert answer.status_code == 400 and "limit" in answer.json()["error"]["message"]


def test_a_cursor_is_tied_to_its_filters(client):
    cursor = client.get("/v1/segments/regular/customers?limit=2").json()["next_cursor"]
    for params in ({"cursor": cursor, "tier": "A"}, {"cursor": cursor + "x"}, {"cursor": "bm90IGpzb24"},
                   {"cursor": cursor, "run_id": "run-jan"}):
        answer = client.get("/v1/segments/regular/customers", params=params)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_cursor", params
    assert client.get("/v1/segments/at_risk/customers", params={"cursor": cursor}).status_code == 400


TEN_KB = "x" * 10_240
BAD_CUSTOMER_IDS = {  # what goes in the path -> status
    "' OR '1'='1": 404, "k01'; DROP TABLE scores; --": 404, 'k01" --': 404, "%25": 404, "k%25x": 404, "*": 404,
    "%00": 400, "k01%00": 400, "%0A": 400, TEN_KB: 400, "k01%0D%0AX-Injected:%201": 400, "..": 404,
}


@pytest.mark.parametrize("customer", list(BAD_CUSTOMER_IDS), ids=lambda c: c[:20])
@pytest.mark.parametrize("suffix", ["", "/history"])
def test_bad_customer_ids_get_400_or_404_in_json(client, customer, suffix):
    answer = client.get(f"/v1/customers/{customer}{suffix}")
    assert answer.status_code == BAD_CUSTOMER_IDS[customer]
    assert answer.headers["content-type"] == "application/json"
    assert set(answer.json()["error"]) == {"status", "code", "message"}
    assert "Traceback" not in answer.text and len(answer.content) < 1_000


BAD_QUERIES = [  # (path and query, status)
    ("/v1/segments/nonsense/customers", 404), ("/v1/segments/at_risk'--/customers", 404),
    ("/v1/segments/%25/customers", 404), ("/v1/segments/at_risk%00/customers", 404), (f"/v1/segments/{TEN_KB}/customers", 400),
    ("/v1/segments/at_risk/customers?tier=Z", 400), ("/v1/segments/at_risk/customers?tier=%25", 400),
    ("/v1/segments/at_risk/customers?tier=A%00", 400), (f"/v1/segments/at_risk/customers?tier={TEN_KB}", 400),
    ("/v1/segments/at_risk/customers?min_value=abc", 400), ("/v1/segments/at_risk/customers?min_value=nan", 400),
    ("/v1/segments/at_risk/customers?min_value=inf", 400), ("/v1/segments/at_risk/customers?min_p_churn=1.5", 400),
    ("/v1/segments/at_risk/customers?min_p_churn=-0.1", 400), ("/v1/segments/at_risk/customers?min_value=1e999", 400),
    ("/v1/segments/at_risk/customers?run_id=nope", 404), ("/v1/segments/at_risk/customers?run_id=x'%3BDROP", 400),
    ("/v1/segments/at_risk/customers?cursor=%00", 400), (f"/v1/segments/at_risk/customers?cursor={TEN_KB}", 400),
    ("/v1/runs/nope", 404), ("/v1/runs/run'--", 400), ("/v1/runs/%25", 400), ("/v1/runs/run%00", 400),
    (f"/v1/runs/{TEN_KB}", 400), ("/v1/customers/k01?lang=fr", 400), ("/v1/customers/k01?lang=%00", 400),
    ("/v1/customers/k01?run_id=nope", 404), ("/v1/customers/k01?run_id=%25", 400), ("/v1/nothing", 404),
]


@pytest.mark.parametrize(("url", "status"), BAD_QUERIES, ids=[u[:50] for u, _ in BAD_QUERIES])
def test_bad_parameters_get_400_or_404_in_json_never_500(client, url, status):
    # The client raises any exception that reaches the catch-all handler, so a pass proves it was not reached.
    answer = client.get(url)
    assert answer.status_code == status
    body = answer.json()["error"]
    assert body["status"] == status and body["message"]
    assert "Traceback" not in answer.text and TEN_KB not in answer.text and "\x00" not in answer.text


def test_an_unexpected_failure_is_a_generic_500_that_names_nothing(home, keys, key, caplog):
    from fastapi.testclient import TestClient

    from serving.api import create_app

    class BrokenReader(ScoreStore):
        def list_runs(self):
            raise RuntimeError("/secret/path/manifest.json exploded")

    app = create_app(BrokenReader(home / "store"), keys)
    with TestClient(app, raise_server_exceptions=False) as broken:
        answer = broken.get("/v1/runs", headers={"X-API-Key": key})
    assert answer.status_code == 500
    assert answer.json() == {"error": {"status": 500, "code": "internal", "message": "internal error; the server log has the details"}}
    assert "exploded" in caplog.text and key not in caplog.text
