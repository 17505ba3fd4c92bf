"""Build the StreamFlow churn artifacts: a seeded synthetic data set and one model per version.

    python -m model_server.train [--out artifacts] [--version v2.3.1 ...]

Same command, same bytes of data, same predictions: every random draw is seeded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.base import ClassifierMixin
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from model_server.artifact import METADATA_FILE
from model_server.features import FEATURE_ORDER

DATA_SEED = 20240131
DATA_ROWS = 20_000
MODEL_FILE = "model.joblib"
DEFAULT_OUT = Path("artifacts")


@dataclass(frozen=True)
class VersionRecipe:
    description: str
    build: Callable[[], ClassifierMixin]
    # Share of training labels flipped (seeded): 0 for the shipped versions. The holdout AUC is
    # always measured on the true labels.
    label_noise: float = 0.0


NOISE_SEED = 20240229
# A deliberately worse model for tests of the quality gate: v2.3.1's recipe trained on labels
# of which 40% are flipped. Flipping is symmetric, so it keeps the ranking in expectation but
# leaves a fifth of the signal: the trees fit noise (holdout AUC 0.77 against 0.84). Never
# in the shipped routing.yaml.
NOISY_VERSION = "v2.4.0-noisy"


# Both stay shallow boosted trees: exact TreeSHAP cost grows with depth, and the batch endpoint
# explains 1,000 rows per request.
RECIPES: dict[str, VersionRecipe] = {
    "v2.3.1": VersionRecipe(
        "GradientBoostingClassifier, 200 trees, depth 3, learning rate 0.1",
        lambda: GradientBoostingClassifier(
            n_estimators=200, max_depth=3, learning_rate=0.1, random_state=7
        ),
    ),
    "v2.4.0": VersionRecipe(
        "GradientBoostingClassifier, 300 trees, depth 4, learning rate 0.05, subsample 0.8",
        lambda: GradientBoostingClassifier(
            n_estimators=300, max_depth=4, learning_rate=0.05, subsample=0.8, random_state=11
        ),
    ),
    NOISY_VERSION: VersionRecipe(
        "GradientBoostingClassifier, 200 trees, depth 3, learning rate 0.1, "
        "on training labels 40% flipped (a deliberately worse model, for tests)",
        lambda: GradientBoostingClassifier(
            n_estimators=200, max_depth=3, learning_rate=0.1, random_state=7
        ),
        label_noise=0.4,
    ),
}


def generate_dataset(rows: int = DATA_ROWS, seed: int = DATA_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic subscribers whose churn follows the chapter's story, plus noise."""
    features, _, churned = draw_customers(rows, seed)
    return features, churned.astype(np.int64)


def draw_customers(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The generator's customers: (features, the true churn probability each outcome was drawn
    from, the outcome). Tests of model quality need the probability; training uses the rest."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(3, size=rows, p=[0.55, 0.25, 0.20])
    tenure = np.clip(rng.gamma(2.0, 12.0 + 10.0 * contract, size=rows), 0, 120).round()
    internet = rng.choice(3, size=rows, p=[0.15, 0.40, 0.45])
    streaming = rng.integers(0, 5, size=rows)
    monthly = np.clip(20 + 25 * internet + 7 * streaming + rng.normal(0, 8, rows), 18, 150)
    total = np.clip(monthly * tenure * rng.normal(1.0, 0.05, rows), 0, None).round(2)
    payment = rng.choice(4, size=rows, p=[0.35, 0.20, 0.22, 0.23])
    tickets = rng.poisson(1.0 + 1.2 * (internet == 2), size=rows)
    paperless = rng.random(rows) < 0.6
    senior = rng.random(rows) < 0.16

    logit = (
        -1.2
        - 0.045 * tenure
        + 1.3 * (contract == 0)
        - 0.8 * (contract == 2)
        + 0.7 * (payment == 0)
        + 0.32 * tickets
        + 0.6 * (internet == 2)
        + 0.012 * (monthly - 70)
        + 0.25 * paperless
        + 0.35 * senior
        - 0.08 * streaming
        + rng.normal(0, 0.6, rows)
    )
    probability = 1 / (1 + np.exp(-logit))
    churned = rng.random(rows) < probability

    features = np.column_stack(
        [
            tenure,
            monthly.round(2),
            total,
            contract,
            payment,
            tickets,
            internet,
            streaming,
            paperless,
            senior,
        ]
    ).astype(np.float64)
    return features, probability, churned


def dataset_id(features: np.ndarray, labels: np.ndarray) -> str:
    digest = hashlib.sha256(features.tobytes() + labels.tobytes()).hexdigest()[:12]
    return f"streamflow-synthetic-{DATA_SEED}-{digest}"


def flip_labels(labels: np.ndarray, share: float) -> np.ndarray:
    """``labels`` with a seeded ``share`` of them flipped (the same ones every build)."""
    if not share:
        return labels
    flip = np.random.default_rng(NOISE_SEED).random(len(labels)) < share
    return np.where(flip, 1 - labels, labels)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_version(version: str, out_dir: Path) -> dict[str, Any]:
    """Train one version and write its model file and metadata.json; return the metadata."""
    recipe = RECIPES[version]
    features, labels = generate_dataset()
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=0.2, random_state=42, stratify=labels
    )
    model = recipe.build()
    model.fit(x_train, flip_labels(y_train, recipe.label_noise))
    auc = float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))

    version_dir = out_dir / version
    version_dir.mkdir(parents=True, exist_ok=True)
    model_path = version_dir / MODEL_FILE
    joblib.dump(model, model_path)
    metadata = {
        "version": version,
        "model_file": MODEL_FILE,
        "sha256": sha256_file(model_path),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": recipe.description,
        "training_data": {
            "dataset_id": dataset_id(features, labels),
            "rows": int(len(labels)),
            "train_rows": int(len(y_train)),
            "holdout_rows": int(len(y_test)),
            "churn_rate": round(float(labels.mean()), 4),
            **({"label_noise": recipe.label_noise} if recipe.label_noise else {}),
        },
        "metrics": {"holdout_auc": round(auc, 4)},
        "sklearn_version": sklearn.__version__,
        "feature_order": list(FEATURE_ORDER),
    }
    (version_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def ensure_artifacts(out_dir: Path, versions: list[str]) -> None:
    """Train only the versions whose artifacts are missing (used by the stack and images)."""
    for version in versions:
        if not (out_dir / version / METADATA_FILE).exists():
            train_version(version, out_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="artifact root directory")
    parser.add_argument(
        "--version", action="append", choices=sorted(RECIPES), help="version(s) to build"
    )
    parser.add_argument(
        "--if-missing", action="store_true", help="skip versions that already have artifacts"
    )
    args = parser.parse_args(argv)
    versions = args.version or sorted(RECIPES)
    for version in versions:
        if args.if_missing and (args.out / version / METADATA_FILE).exists():
            print(f"{version}: present in {args.out / version}, skipped")
            continue
        print(f"{version}: training ...", flush=True)
        meta = train_version(version, args.out)
        print(
            f"{version}: holdout AUC {meta['metrics']['holdout_auc']}, "
            f"sha256 {meta['sha256'][:12]}, written to {args.out / version}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
