"""The read API over a real PostgreSQL sink answers as it does over the store (same runs, same JSON)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from serving.api import ApiKeys, create_app
from serving.postgres import PostgresSink
from serving.store import ScoreStore
from tests.serving.api.conftest import publish_runs


@pytest.fixture
def clients(postgres_url, pg_schema, tmp_path):
    """A client over PostgreSQL and one over the store, both holding the same two runs, with one key."""
    postgres = PostgresSink(postgres_url, pg_schema)
    publish_runs(postgres)
    publish_runs(tmp_path / "store")
    keys = ApiKeys(tmp_path / "api_keys.json")
    key = keys.create("bi")
    with TestClient(create_app(postgres, keys)) as over_pg, \
            TestClient(create_app(ScoreStore(tmp_path / "store", index_runs=True), keys)) as over_store:
        for client in (over_pg, over_store):
            client.headers["Authorization"] = f"Bearer {key}"
        yield over_pg, over_store


@pytest.mark.parametrize("path", [
    "/v1/customers/k03", "/v1/customers/k03?lang=zh", "/v1/customers/k01/history",
    "/v1/segments/at_risk/customers?limit=5&tier=A", "/v1/segments/regular/customers?min_p_churn=0.3",
    "/v1/changes", "/v1/actions?budget=3",
])  # fmt: skip
def test_postgresql_answers_as_the_store_does(clients, path):
    over_pg, over_store = clients
    from_pg, from_store = over_pg.get(path), over_store.get(path)
    assert from_pg.status_code == from_store.status_code == 200
    assert from_pg.json() == from_store.json()


def test_paging_over_postgresql_walks_every_customer_once(clients):
    over_pg, _ = clients
    seen, cursor = [], None
    while True:
        body = over_pg.get("/v1/segments/at_risk/customers", params={"limit": 4, **({"cursor": cursor} if cursor else {})}).json()
        seen += [c["customer_id"] for c in body["customers"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"k{i:02d}" for i in range(1, 26, 2)]
