"""Published reasons against the demo world's truth: a reason every churner gets is no reason.

The main job runs once on a small demo world, scoring a churn horizon before its history ends
(so who leaves next, and why, is known), with the unusual-reasons rule on (the default), then
scores again with it off. Measured over the customers still customers at the scoring date:
the share of churners of each cause given a reason of each family (benchmarks/reasons_bench.py
has the figures of a larger world and the top-decile targets).
"""

from __future__ import annotations

import re
from datetime import date

import pytest

from benchmarks.reasons_bench import reason_truth_measures
from demo import generate_demo_data, generate_demo_truth, write_demo_data

pytestmark = pytest.mark.slow

N_CUSTOMERS = 5000  # the smallest world with a few dozen churners of each cause still customers at AS_OF
END = date(2026, 9, 30)
AS_OF = date(2026, 7, 1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("reasons-truth")
    write_demo_data(generate_demo_data(N_CUSTOMERS, seed=7, end=END), root / "data", "parquet")
    return root, generate_demo_truth(N_CUSTOMERS, seed=7, end=END, seen_before=AS_OF)


@pytest.fixture(scope="module")
def measures(world, prefect_harness):
    """Truth measures of the published scores with the rule on, then off (same champions)."""
    from pipelines.config import DEFAULT_CONFIG
    from pipelines.flows import retrain_and_score_flow
    from serving.store import ScoreStore

    root, truth = world
    mp = pytest.MonkeyPatch()
    mp.setenv("CUSTSCORE_HOME", str(root / "home"))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        out = {}
        text, replaced = re.subn(r"(unusual_reasons:.*\n\s+percentile:)\s*\d+", r"\1 null", DEFAULT_CONFIG.read_text())
        assert replaced == 1, "configs/default.yaml should set scoring.unusual_reasons.percentile once"
        (root / "off.yaml").write_text(text)
        for label, config in (("on", str(DEFAULT_CONFIG)), ("off", str(root / "off.yaml"))):
            result = retrain_and_score_flow(data=str(root / "data"), as_of=AS_OF.isoformat(), config=config, retrain=False)
            scores = ScoreStore(root / "home" / "store").read_scores(run_id=result["published"]["run_id"])
            out[label] = reason_truth_measures(scores, truth, AS_OF)
        print({label: {f: m[f] for f in ("payment", "service", "demand")} for label, m in out.items()})
        return out
    finally:
        mp.undo()


def test_the_reasons_every_churner_got_go_to_far_fewer_with_the_rule(measures):
    on, off = measures["on"]["demand"], measures["off"]["demand"]
    # Without the rule, spend and order-count reasons reach most churners of every cause.
    assert off["false_share_churners"] > 0.5
    assert on["false_share_churners"] < off["false_share_churners"] - 0.2


def test_payment_and_complaint_reasons_go_to_their_own_churners_more_than_to_others(measures):
    payment, service = measures["on"]["payment"], measures["on"]["service"]
    assert payment["recall_churners"] > payment["false_share_churners"] + 0.15, payment
    assert service["recall_churners"] > 2 * service["false_share_churners"], service
