"""Cost of the key-account scorecard alone on N synthetic customers: CPU, wall time, table size, peak memory.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/scorecard_bench.py 1000000
"""

import resource
import sys
import time

import numpy as np
import pandas as pd

from serving.scorecard import ScorecardRules, account_grades_table


def main(n: int) -> None:
    rng = np.random.default_rng(0)
    nums = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "clv": rng.gamma(2, 500, n),
                         "tenure_days": rng.uniform(1, 2000, n), "current_value": rng.gamma(1, 500, n) * (rng.random(n) < .8),
                         "expected_revenue": rng.gamma(2, 500, n), "cost_to_serve": rng.gamma(2, 50, n), "is_new": False})
    feat = pd.DataFrame({"customer_id": nums.customer_id, "order_days_lifetime": rng.integers(1, 50, n).astype(float),
                         "collection_rate": np.where(rng.random(n) < .7, rng.random(n), np.nan),
                         "invoice_on_time_rate": np.where(rng.random(n) < .7, rng.random(n), np.nan)})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    wall, cpu = time.perf_counter(), time.process_time()
    table = account_grades_table(nums, [feat], ScorecardRules())
    print(f"n={n} wall {time.perf_counter() - wall:.1f}s cpu {time.process_time() - cpu:.1f}s table {table.nbytes / 1e6:.0f} MB "
          f"peak RSS {before:.2f} -> {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
