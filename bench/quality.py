"""Quality report numbers: ``python -m bench.quality [--rows 1000000] [--customers 200000]``.

1. Outcomes needed, paired against unpaired: the shipped v2.3.1 (stable) and v2.4.0
   (candidate) score fresh customers of the training generator; each customer's outcome is
   drawn from their true churn probability. DeLong's variance of the AUC difference times the
   number of outcomes is a constant per design (variance falls as 1 / n); from it, the outcomes
   a 95% interval of +-0.01 needs, and those the quality gate (always-valid bounds, margin
   0.01) needs to pass two versions that rank alike. Checked against the spread of the
   difference over independent replicates.
2. The report's time over a million labelled predictions (90% stable, 10% candidate, every
   assignment, plus 10% of the requests shadowed): a fresh process's first call and the best of
   five; again with probabilities rounded to 3 decimals (ties everywhere).
3. The same end to end as GET /quality does it: the million labelled predictions (and the
   shadow rows) in a SQLite prediction store, read (``outcomes.quality_input``), reported on
   and serialised: each part's time, first call and best of five.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path
from statistics import NormalDist

import joblib
import numpy as np

from outcomes.quality.compare import compare_paired, compare_unpaired
from outcomes.quality.gate import confidence_sequence_radius, tuned_rho
from outcomes.quality.metrics import delong
from tests.outcomes.quality.synthetic import draw_customers

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
STABLE, CANDIDATE = "v2.3.1", "v2.4.0"
HALF_WIDTH = 0.01
Z = NormalDist().inv_cdf(0.975)


def scores(version: str, features: np.ndarray) -> np.ndarray:
    model = joblib.load(ARTIFACTS / version / "model.joblib")
    return np.asarray(model.predict_proba(features)[:, 1], dtype=np.float64)


def gate_information(margin: float, alpha: float = 0.05) -> float:
    """Intrinsic time 1 / variance at which the gate's radius reaches ``margin``."""
    rho = tuned_rho(margin, alpha)
    low, high = 1.0, 1e15
    for _ in range(200):
        mid = math.sqrt(low * high)
        if confidence_sequence_radius(1 / mid, alpha, rho) > margin:
            low = mid
        else:
            high = mid
    return high


def outcomes_needed(customers: int, replicates: int, seed: int) -> None:
    pool = draw_customers(customers, seed)
    stable = scores(STABLE, pool.features)
    candidate = scores(CANDIDATE, pool.features)
    rng = np.random.default_rng(seed + 1)
    churned = rng.random(customers) < pool.true_probability
    aucs, cov = delong(np.vstack([candidate, stable]), churned)
    k_c, k_s = cov[0, 0] * customers, cov[1, 1] * customers
    k_paired = (cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]) * customers
    corr = cov[0, 1] / math.sqrt(cov[0, 0] * cov[1, 1])
    print(
        f"{customers} customers: AUC {CANDIDATE} {aucs[0]:.4f}, {STABLE} {aucs[1]:.4f}, "
        f"difference {aucs[0] - aucs[1]:+.4f}; corr(AUCs) {corr:.3f}"
    )
    designs = {
        "paired": k_paired,
        "unpaired 50/50": k_c / 0.5 + k_s / 0.5,
        "unpaired 90/10": k_c / 0.1 + k_s / 0.9,
    }
    info = gate_information(HALF_WIDTH)
    for name, k in designs.items():
        fixed = math.ceil(k * (Z / HALF_WIDTH) ** 2)
        gate = math.ceil(k * info)
        print(
            f"  {name:15s} variance x outcomes {k:.4f}: 95% interval +-{HALF_WIDTH} at "
            f"{fixed} outcomes; gate (margin {HALF_WIDTH}) decides two alike at {gate}; "
            f"{k / k_paired:.1f} x paired"
        )

    # The same constants from the spread of the estimates over independent samples.
    n = 4000
    paired_d, unpaired_d, paired_v, unpaired_v = [], [], [], []
    for _ in range(replicates):
        pick = rng.integers(0, customers, n)
        y = rng.random(n) < pool.true_probability[pick]
        c = compare_paired(candidate[pick], stable[pick], y)
        assert c.auc is not None
        paired_d.append(c.auc.estimate)
        paired_v.append(c.auc.variance)
        half = n // 2
        u = compare_unpaired(candidate[pick[:half]], y[:half], stable[pick[half:]], y[half:])
        assert u.auc is not None
        unpaired_d.append(u.auc.estimate)
        unpaired_v.append(u.auc.variance)
    print(
        f"  {replicates} replicates of {n} outcomes: variance x outcomes, observed "
        f"(DeLong's mean): paired {np.var(paired_d, ddof=1) * n:.4f} "
        f"({np.mean(paired_v) * n:.4f}), unpaired 50/50 {np.var(unpaired_d, ddof=1) * n:.4f} "
        f"({np.mean(unpaired_v) * n:.4f}); ratio "
        f"{np.var(unpaired_d, ddof=1) / np.var(paired_d, ddof=1):.1f}"
    )


# Both scripts below score one synthetic population: customers with a true churn probability,
# their outcomes drawn from it, and two models that see it through noise (the candidate more).
POPULATION = """
import sys
import numpy as np
rows = int(sys.argv[1])
rng = np.random.default_rng(5)
truth = rng.beta(2.0, 4.0, rows)
churned = rng.random(rows) < truth
def model(sd):
    logit = np.log(truth) - np.log1p(-truth) + rng.normal(0, sd, rows)
    return 1 / (1 + np.exp(-logit))
stable, candidate = model(0.5), model(0.6)
"""

REPORT_SCRIPT = (
    POPULATION
    + """
import time, json
from outcomes.quality.report import QualityInput, ShadowPairs, VersionRows, build_report
if len(sys.argv) > 2:  # rounded: many ties, the slower path of DeLong's components
    stable, candidate = stable.round(int(sys.argv[2])), candidate.round(int(sys.argv[2]))
assignment = rng.choice(6, rows, p=[0.6, 0.3, 0.04, 0.02, 0.02, 0.02]).astype(np.int8)
cut = rows * 9 // 10
shadowed = rng.random(cut) < 0.1
data = QualityInput(
    "v2.3.1", "v2.4.0",
    (VersionRows("v2.3.1", stable[:cut], churned[:cut], assignment[:cut]),
     VersionRows("v2.4.0", candidate[cut:], churned[cut:], assignment[cut:])),
    (ShadowPairs("v2.4.0", "v2.3.1", candidate[:cut][shadowed], stable[:cut][shadowed],
                 churned[:cut][shadowed]),),
)
times, cpu = [], []
for _ in range(5):
    start, start_cpu = time.perf_counter(), time.process_time()
    report = build_report(data)
    json.dumps(report, allow_nan=False)
    times.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
ties = f", probabilities rounded to {sys.argv[2]} decimals" if len(sys.argv) > 2 else ""
print(f"{rows} labelled predictions (+{int(shadowed.sum())} shadow pairs{ties}): first call "
      f"{times[0]:.3f} s ({cpu[0]:.3f} s CPU), best of five {min(times):.3f} s "
      f"({min(cpu):.3f} s CPU)")
"""
)


STORE_SCRIPT = (
    POPULATION
    + """
import time, json, tempfile
from pathlib import Path
from outcomes.quality.report import build_report
from outcomes.quality_input import quality_input
from outcomes.store.sqlite import SqliteStore
names = np.array(["weighted", "sticky", "pinned", "blue_green", "fallback"])
assignment = names[rng.choice(5, rows, p=[0.6, 0.3, 0.04, 0.02, 0.04])]
cut = rows * 9 // 10
version = np.where(np.arange(rows) < cut, "v2.3.1", "v2.4.0")
probability = np.where(np.arange(rows) < cut, stable, candidate)
shadowed = np.flatnonzero(rng.random(cut) < 0.1)
t0 = 1.7e9
with tempfile.TemporaryDirectory() as tmp:
    store = SqliteStore(Path(tmp) / "predictions.sqlite3")
    # The labels table as the outcome join leaves it (served answers, then the shadow copies
    # of a tenth of stable's requests, scored by the candidate).
    labels = [
        (i, i, t0 + i * 1e-3, str(version[i]), str(assignment[i]), float(probability[i]),
         "low", int(churned[i]), f"req-{i}", 0, None)
        for i in range(rows)
    ] + [
        (rows + k, rows + k, t0 + i * 1e-3, "v2.4.0", "shadow", float(candidate[i]), "low",
         int(churned[i]), f"req-{i}", 0, None)
        for k, i in enumerate(shadowed.tolist())
    ]
    with store._transaction() as cursor:
        cursor.executemany("INSERT INTO labels VALUES (?,?,?,?,?,?,?,?,?,?,?)", labels)
    del labels
    store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    times = []
    for _ in range(5):
        start = time.perf_counter()
        data = quality_input(store, start=0, end=2e9, stable="v2.3.1", candidate="v2.4.0")
        read = time.perf_counter()
        report = build_report(data)
        json.dumps(report, allow_nan=False)
        times.append((read - start, time.perf_counter() - read, time.perf_counter() - start))
    store.close()
best = min(times, key=lambda t: t[2])
print(f"{rows} labelled predictions (+{shadowed.size} shadow rows) in SQLite, end to end: first "
      f"call {times[0][2]:.3f} s (read {times[0][0]:.3f} s, report {times[0][1]:.3f} s), best "
      f"of five {best[2]:.3f} s (read {best[0]:.3f} s, report {best[1]:.3f} s)")
"""
)


def report_time(rows: int) -> None:
    subprocess.run([sys.executable, "-c", REPORT_SCRIPT, str(rows)], check=True)
    subprocess.run([sys.executable, "-c", REPORT_SCRIPT, str(rows), "3"], check=True)
    subprocess.run([sys.executable, "-c", STORE_SCRIPT, str(rows)], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--replicates", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20261203)
    args = parser.parse_args(argv)
    outcomes_needed(args.customers, args.replicates, args.seed)
    report_time(args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
