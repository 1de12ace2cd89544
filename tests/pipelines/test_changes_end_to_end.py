"""The comparison a real scoring run publishes, against the comparison in one piece, on runs of a few thousand demo customers."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from demo import generate_demo_data, write_demo_data
from tests.pipelines.flow_home import module_home

pytestmark = pytest.mark.slow

N_CUSTOMERS = 3000
FIRST_AS_OF = "2026-05-01"
LATER_AS_OF = "2026-06-15"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("changes")
    write_demo_data(generate_demo_data(N_CUSTOMERS, seed=3, end=date(2026, 6, 30)), root / "data", "parquet")
    return root


@pytest.fixture(scope="module")
def home(world, prefect_harness):
    yield from module_home(world)


@pytest.fixture(scope="module")
def runs(world, home):
    """A trained run, then a score-only run six weeks later (compared with it while publishing)."""
    from pipelines.flows import retrain_and_score_flow, score_flow

    first = retrain_and_score_flow(data=str(world / "data"), as_of=FIRST_AS_OF, retrain=False)
    later = score_flow(data=str(world / "data"), as_of=LATER_AS_OF)
    return first["published"]["run_id"], later["published"]["run_id"]


def _store(home):
    from serving.store import ScoreStore

    return ScoreStore(home / "store")


def test_the_published_changes_equal_the_comparison_in_one_piece(runs, home):
    from serving.changes import CHANGES_TABLE, side_of_sink
    from tests.serving.changes_reference import reference_table

    first, later = runs
    store = _store(home)
    published = store.read_table(CHANGES_TABLE, later).drop(columns=["run_id"])
    expected = reference_table(side_of_sink(store, first), side_of_sink(store, later)).to_pandas()
    pd.testing.assert_frame_equal(published, expected)
    # Not a trivial pair: customers moved, with stated why-features, and the sentences say them.
    moved = published[published["p_churn_delta"].abs() >= 0.01]
    assert len(moved) > 100 and moved["churn_why_1"].notna().mean() > 0.9
    assert moved["sentence_en"].str.contains(r"\(\+|\(-", regex=True).mean() > 0.5


def test_small_partitions_give_the_same_table(runs, home, tmp_path):
    from serving.changes import changes_table, side_of_sink
    from tests.serving.changes_reference import reference_table

    first, later = runs
    store = _store(home)
    expected = reference_table(side_of_sink(store, first), side_of_sink(store, later))
    got = changes_table(side_of_sink(store, first), side_of_sink(store, later), partition_rows=701,
                        spill_to=tmp_path / "changes.arrow")
    assert got.equals(expected)
