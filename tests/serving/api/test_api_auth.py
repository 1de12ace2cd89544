"""Who may read: the key matrix (none, wrong, revoked, valid, in the query string) and read-only methods."""

from __future__ import annotations

import pytest

from serving.api import ApiKeys


def test_no_wrong_unknown_and_revoked_keys_get_the_same_401(anonymous, keys, key):
    revoked = keys.create("old")
    ApiKeys(keys.path).revoke("old")
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    unknown = "cs_000000000000_" + key.split("_", 2)[2]
    answers = [anonymous.get("/v1/runs"),
               anonymous.get("/v1/runs", headers={"X-API-Key": wrong}),
               anonymous.get("/v1/runs", headers={"Authorization": f"Bearer {unknown}"}),
               anonymous.get("/v1/runs", headers={"X-API-Key": revoked}),
               anonymous.get("/v1/runs", headers={"Authorization": f"Basic {key}"})]
    assert [a.status_code for a in answers] == [401] * 5
    assert len({a.content for a in answers}) == 1
    assert answers[0].json()["error"]["code"] == "unauthorized"
    assert key not in answers[1].text and revoked not in answers[3].text


@pytest.mark.parametrize("header", ["X-API-Key", "Authorization"])
def test_a_valid_key_in_either_header_reads(anonymous, key, header):
    value = key if header == "X-API-Key" else f"Bearer {key}"
    answer = anonymous.get("/v1/customers/k01", headers={header: value})
    assert answer.status_code == 200 and answer.json()["customer_id"] == "k01"


@pytest.mark.parametrize("query", ["api_key={key}", "key={key}", "token={key}", "access_token={key}", "x={key}",
                                   "lang=en&apikey=whatever"])
def test_a_key_in_the_query_string_is_refused_even_with_a_valid_header(client, key, query):
    answer = client.get("/v1/customers/k01?" + query.format(key=key))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "key_in_query"
    assert key not in answer.text


def test_healthz_and_docs_need_no_key(anonymous):
    assert anonymous.get("/healthz").json() == {"status": "ok"}
    assert anonymous.get("/docs").status_code == 200
    spec = anonymous.get("/openapi.json").json()
    assert "/v1/segments/{segment}/customers" in spec["paths"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
@pytest.mark.parametrize("path", ["/v1/runs", "/v1/customers/k01", "/healthz", "/v1/runs/run-feb"])
def test_every_method_but_get_is_refused_with_405(client, method, path):
    answer = client.request(method, path)
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET"
    if method != "HEAD":
        assert answer.json()["error"]["code"] == "method_not_allowed"
