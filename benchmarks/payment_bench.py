"""What payment risk adds to a score-only run: the same data, the same champions, payment_risk on and off.

    python -m benchmarks.payment_bench --customers 100000 [--repeats 2]

Makes the demo data (`custscore demo-data`) under benchmarks/.work/payment-<N>/ (git-ignored), trains
every model once (`custscore run --data DIR`, a fresh home in a temporary folder), then times score-only runs of the same
home alternately with `payment_risk.enabled: false` and `true` (the first of each pair warms the
file cache for the second). Each run is a `custscore` process timed from outside (wall seconds);
the flow's own log line "scoring seconds by stage" gives the payment_risk stage. Prints a JSON
summary; run manually, not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"


def custscore(args: list[str], home: Path) -> tuple[float, str]:
    """Run `custscore ARGS` in `home`; wall seconds and its output (stops on failure)."""
    env = {**os.environ, "CUSTSCORE_HOME": str(home), "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"custscore {' '.join(args)} failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds, done.stdout + done.stderr


def config_with(enabled: bool, folder: Path) -> Path:
    """The default configuration with payment_risk.enabled set, beside a copy of segments.yaml."""
    default = ROOT / "configs" / "default.yaml"
    text, n = re.subn(r"(payment_risk:.*\n  enabled: )\w+", rf"\g<1>{str(enabled).lower()}", default.read_text())
    if n != 1:
        raise SystemExit("configs/default.yaml should set payment_risk.enabled once")
    path = folder / f"payment-{'on' if enabled else 'off'}.yaml"
    path.write_text(text)
    shutil.copy(default.parent / "segments.yaml", folder / "segments.yaml")
    return path


def payment_stage_seconds(output: str) -> float | None:
    match = re.search(r"'payment_risk': ([0-9.]+)", output)
    return float(match.group(1)) if match else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    folder = WORK / f"payment-{args.customers}"
    # The home outside the repository: MLflow copies pyfunc_entry.py beside each model, and a .py under
    # benchmarks/ importing pipelines internals would trip test_benchmarks_use_public_entry_points_only.
    data, home = folder / "data", Path(tempfile.mkdtemp(prefix="custscore-payment-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    if not (data / "transactions.parquet").exists():
        custscore(["demo-data", "--customers", str(args.customers), "--out", str(data)], folder)
    on, off = config_with(True, folder), config_with(False, folder)
    train_seconds, _ = custscore(["run", "--data", str(data), "--config", str(on)], home)
    runs = []
    for _ in range(args.repeats):
        for enabled, config in ((False, off), (True, on)):
            seconds, output = custscore(["run", "--data", str(data), "--config", str(config)], home)
            runs.append({"payment_risk": enabled, "wall_seconds": round(seconds, 1),
                         "payment_stage_seconds": payment_stage_seconds(output)})
            print(json.dumps(runs[-1]), flush=True)
    mean = {flag: sum(r["wall_seconds"] for r in runs if r["payment_risk"] is flag) / args.repeats for flag in (False, True)}
    print(json.dumps({"customers": args.customers, "train_run_seconds": round(train_seconds, 1), "runs": runs,
                      "mean_off": round(mean[False], 1), "mean_on": round(mean[True], 1),
                      "added_pct": round(100 * (mean[True] / mean[False] - 1), 1),
                      "loadavg": os.getloadavg()}, indent=1))
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
