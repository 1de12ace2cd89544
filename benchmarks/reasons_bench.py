"""Do the published reasons name each churner's true cause? Measured on the demo world, whose truth is known.

    python -m benchmarks.reasons_bench [--customers 20000] [--seed 7] [--work DIR] [--out FILE.json]

Generates a demo world (the `demo` package) and runs `custscore run --as-of AS_OF` on it in
a fresh home (validate, train, score, publish), a churn horizon before the history ends so
that who leaves next is known; exports the published score table with `custscore scores
export`; then scores again with the unusual-reasons rule off (`scoring.unusual_reasons.
percentile: null`; the champions exist, so that run only scores) for comparison. The truth
is each customer's churn driver as the data before AS_OF can show it
(`generate_demo_truth(..., seen_before=AS_OF)`: payment, service, demand, or none).

Among the customers still customers at AS_OF, for each driver's family of reasons (FAMILIES):

- recall: the share of the top decile of p_churn whose driver is that one that got at least
  one reason of the family among its reasons raising churn risk;
- false share: the share of the top decile's churners of another driver that got one.
  Both also over all churners, the share of all customers given one, and the same over every
  scored customer (most of whose top decile left years ago) under "all_scored".

Targets (payment family): recall >= 0.90, false share <= 0.20 (top decile). Figures and what
they show: benchmarks/README.md, "Reasons against the true churn cause". Run manually;
tests/pipelines/test_reasons_truth.py checks the all-churner measures on a smaller world.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
END = date(2026, 9, 30)
# Scored a churn horizon before the history ends, so that who leaves next, and why, is in the truth.
AS_OF = date(2026, 7, 1)

# Which reasons speak of which driver (feature-name patterns of docs/ARCHITECTURE.md).
FAMILIES: dict[str, str] = {
    "payment": r"(days_late_.*|invoice_on_time_rate_.*|overdue_open_amount|open_invoice_amount|collection_rate_.*|dso_days)",
    "service": r"(complaint_.*|ticket_count_.*|service_cost_.*|interaction_count_.*)",
    "demand": r"(order_count_.*|revenue_sum_.*|revenue_change_pct_.*|revenue_monthly_slope_.*|days_since_last_order"
              r"|recency_over_gap_mean|order_gap_mean_days|order_gap_std_days|margin_sum_.*|order_days_lifetime)",
}
TARGETS = {"payment": {"recall_top_decile": 0.90, "false_share_top_decile": 0.20}}


def raising_churn_features(reasons_json: str) -> list[str]:
    """The features of the reasons raising churn risk in one customer's `reasons` JSON."""
    parsed = json.loads(reasons_json) if reasons_json else {}
    return [r["feature"] for r in parsed.get("churn", {}).get("raises", [])]


def family_flags(scores: pd.DataFrame) -> pd.DataFrame:
    """Per customer (index customer_id): True where a reason raising churn risk belongs to each family."""
    features = scores["reasons"].map(raising_churn_features)
    flags = {family: features.map(lambda names, p=pattern: any(re.fullmatch(p, n) for n in names))
             for family, pattern in FAMILIES.items()}
    return pd.DataFrame(flags).set_axis(scores["customer_id"].to_numpy(), axis=0)


def reason_truth_measures(scores: pd.DataFrame, truth: pd.DataFrame, as_of: date, top_share: float = 0.10) -> dict:
    """Recall and false share of each driver's reasons against the truth (see the module doc).

    Measured among the customers still customers at `as_of` (truth: leaving on or after it, or
    not at all): those an account manager can still act on, whose cause the feature windows
    still show. The same over every scored customer, most of the top decile then customers
    who left years ago, is under "all_scored".
    """
    truth = truth.set_index("customer_id")
    scored = scores[scores["p_churn"].notna()]
    departure = truth["departure_date"].reindex(scored["customer_id"].to_numpy())
    current = (departure.isna() | (departure >= pd.Timestamp(as_of))).to_numpy()
    out = _measures(scored[current], truth, top_share)
    out["all_scored"] = _measures(scored, truth, top_share)
    return out


def _measures(scored: pd.DataFrame, truth: pd.DataFrame, top_share: float) -> dict:
    flags = family_flags(scored)
    driver = truth["churn_driver"].reindex(flags.index)
    n_top = max(1, int(round(top_share * len(scored))))
    top = scored.sort_values(["p_churn", "customer_id"], ascending=[False, True])["customer_id"].iloc[:n_top].to_numpy()
    in_top = flags.index.isin(top)
    churner = driver.ne("none").to_numpy()
    out: dict = {"customers": int(len(scored)), "top_decile": int(n_top),
                 "top_decile_drivers": driver[in_top].value_counts().to_dict(),
                 "churners": driver[churner].value_counts().to_dict()}
    for family in FAMILIES:
        got = flags[family].to_numpy()
        own = (driver == family).to_numpy()
        other = churner & ~own
        out[family] = {
            "recall_top_decile": _share(got, in_top & own),
            "false_share_top_decile": _share(got, in_top & other),
            "recall_churners": _share(got, own),
            "false_share_churners": _share(got, other),
            "share_of_customers": _share(got, np.ones(len(got), dtype=bool)),
            "top_decile_counts": {"own": int((in_top & own).sum()), "other": int((in_top & other).sum())},
        }
    return out


def _share(flag: np.ndarray, among: np.ndarray) -> float | None:
    return round(float(flag[among].mean()), 4) if among.any() else None


def _custscore(home: Path, *args: str) -> float:
    """Run one custscore command in `home`; its wall seconds."""
    env = {**os.environ, "CUSTSCORE_HOME": str(home), "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"custscore {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def make_world(folder: Path, customers: int, seed: int) -> pd.DataFrame:
    """Write the demo tables and their truth into `folder` (once); the truth as seen at AS_OF."""
    from demo import TRUTH_FILE, generate_demo_data, generate_demo_truth, write_demo_data, write_demo_truth

    if not (folder / TRUTH_FILE).exists():
        write_demo_data(generate_demo_data(customers, seed=seed, end=END), folder, "parquet")
        write_demo_truth(generate_demo_truth(customers, seed=seed, end=END), folder)
    # What the data before the scoring date can show: a driver whose trace comes later is none yet.
    return generate_demo_truth(customers, seed=seed, end=END, seen_before=AS_OF)


def rule_off_config(work: Path) -> Path:
    """The default configuration with the unusual-reasons rule switched off."""
    text = (ROOT / "configs" / "default.yaml").read_text(encoding="utf-8")
    text, n = re.subn(r"(unusual_reasons:.*\n\s+percentile:)\s*\d+", r"\1 null", text)
    if n != 1:
        raise SystemExit("configs/default.yaml: no scoring.unusual_reasons.percentile to switch off")
    path = work / "rule-off.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".work" / "reasons")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "reasons.json")
    args = parser.parse_args(argv)
    from benchmarks.scoring_bench import machine_info

    work = args.work / f"n{args.customers}-s{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    truth = make_world(work / "data", args.customers, args.seed)
    home = work / "home"
    result: dict = {"customers": args.customers, "seed": args.seed, "machine": machine_info(), "runs": {}}
    for label, extra in (("rule_on", []), ("rule_off", ["--config", str(rule_off_config(work))])):
        seconds = _custscore(home, "run", "--data", str(work / "data"), "--as-of", AS_OF.isoformat(), *extra)
        export = work / f"scores-{label}.parquet"
        _custscore(home, "scores", "export", "--output", str(export))
        measures = reason_truth_measures(pd.read_parquet(export), truth, AS_OF)
        result["runs"][label] = {"run_seconds": round(seconds, 1), **measures}
        print(f"{label}: " + "; ".join(
            f"{f} recall {measures[f]['recall_top_decile']} false {measures[f]['false_share_top_decile']}" for f in FAMILIES))
    on = result["runs"]["rule_on"]
    result["targets"] = {family: {name: {"target": bound, "measured": on[family][name],
                                         "met": on[family][name] is not None and (on[family][name] >= bound if name.startswith("recall")
                                                                                  else on[family][name] <= bound)}
                                  for name, bound in wanted.items()} for family, wanted in TARGETS.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    print(json.dumps(result["targets"], indent=2))
    return result


if __name__ == "__main__":
    main()
