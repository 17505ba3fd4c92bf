"""Churn probability, risk tier and top-3 SHAP reasons, computed for a whole batch at once."""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

# The function predict_proba calls for log_loss (sklearn's LogitLink.inverse), called the same way:
# served probabilities are predict_proba's of the same log-odds bit for bit, whatever the CPU.
# numpy's 1 / (1 + np.exp(-x)) is not: its SIMD exp is chosen by the CPU, and with AVX-512
# (numpy 2.4's AVX512_ICL loops) 3,779 of 200,010 values differed from expit by up to 2 ulp.
# expit is a plain ufunc (libm's exp, one value at a time): 0.25 µs on one row where the numpy
# expression took 2.4 µs (its errstate dominated), 5.1 µs on 1,000 rows against 3.8 µs. Importing
# scipy.special adds about 35 ms to a start (numba has imported scipy.linalg by then).
from scipy.special import expit

from model_server.features import FEATURE_ORDER, encode_rows
from model_server.schemas import ChurnPredictionRequest, Prediction, Reason
from model_server.table_cache import CompiledTables
from model_server.treeshap import GradientBoostingTreeShap, is_supported
from vocabulary.tiers import RISK_TIERS, TIER_EDGES, tier_of

TOP_REASONS = 3


# The start-up check: compiled probabilities must equal predict_proba's to this on the probe.
PROBE_TOLERANCE = 1e-12
PROBE_ROWS = 512

log = logging.getLogger("model_server")


@dataclass(frozen=True)
class BatchAnswer:
    """A batch's predictions as the JSON array the endpoint sends, and what the metrics count."""

    predictions_json: bytes
    probabilities: np.ndarray  # as served: rounded to 4 places
    tiers: np.ndarray  # index into RISK_TIERS, one per row


@dataclass(frozen=True)
class ServingPath:
    """How this replica computes probabilities: "compiled" or "scikit-learn", and why."""

    name: str
    reason: str

    def as_metadata(self) -> dict[str, str]:
        return {"serving_path": self.name, "serving_path_reason": self.reason}


class Predictor:
    """Wraps one fitted model and its TreeSHAP explainer; thread-safe for concurrent batches.

    On the compiled path the probability comes out of the SHAP pass itself: the kernel that
    explains a row also adds up the leaves the row reaches (see treeshap._explain_rows), so the
    log-odds cost no second walk. Measured on v2.3.1 (one row, medians of 20,000 interleaved
    calls on a busy 2-core machine): the SHAP pass alone 34.5 µs, with the leaf sum 36.0 µs,
    where scikit-learn's ``predict_proba`` took about 430 µs and onnxruntime's compiled trees
    29 µs. Taking the log-odds as expected value + the SHAP values' sum would have been free
    too, but it rounds differently from sklearn (up to 8e-15 in log-odds on 20,000 rows); adding
    the reached leaves in tree order is sklearn's own arithmetic, and the probability is then
    ``scipy.special.expit`` of it, the call ``predict_proba`` makes: on x86-64 the probabilities
    are bit-for-bit ``predict_proba``'s (37,280 rows of each served model, with and without
    AVX-512). Only the log-odds could differ in the last bit elsewhere, where scikit-learn's
    compiler fuses its ``out += scale * value`` into one rounding (an FMA, as GCC may on aarch64)
    and numba does not; the start-up probe and the tests allow for that (PROBE_TOLERANCE).
    """

    def __init__(self, model: Any, version: str) -> None:
        self.model = model
        self.version = version
        self.fast_explainer: GradientBoostingTreeShap | None = None
        if is_supported(model):
            # Compiles once per process (seconds); the server warms up before reporting ready.
            self.fast_explainer = GradientBoostingTreeShap(model)
            self.fast_explainer.warm()
        else:
            # Imported only here: shap (with pandas, matplotlib, ...) adds about 0.5 s to every
            # start, and the served models all take the compiled explainer above.
            import shap

            self.explainer = shap.TreeExplainer(model)
        self.serving_path = self._choose_serving_path()
        if self.serving_path.name == "compiled":
            log.info("model %s: compiled serving path (%s)", version, self.serving_path.reason)
        else:
            log.warning(
                "model %s: falling back to scikit-learn's predict_proba: %s",
                version,
                self.serving_path.reason,
            )

    @classmethod
    def from_tables(cls, tables: CompiledTables, version: str) -> Predictor:
        """The compiled path from tables an earlier start of the same artifact built and checked
        (model_server.table_cache): no model object, so no scikit-learn."""
        predictor = cls.__new__(cls)
        predictor.model = None
        predictor.version = version
        predictor.fast_explainer = GradientBoostingTreeShap.from_arrays(
            tables.arrays, tables.n_features, tables.init_raw
        )
        predictor.fast_explainer.warm()
        predictor.serving_path = ServingPath("compiled", tables.serving_reason)
        log.info(
            "model %s: compiled serving path (%s; tables from the cache)",
            version,
            tables.serving_reason,
        )
        return predictor

    def compiled_tables(self) -> CompiledTables | None:
        """What ``from_tables`` needs to serve as this one does; None off the compiled path."""
        if self.serving_path.name != "compiled" or self.fast_explainer is None:
            return None
        return CompiledTables(
            arrays=self.fast_explainer.arrays(),
            n_features=self.fast_explainer.n_features,
            init_raw=self.fast_explainer.init_raw,
            serving_reason=self.serving_path.reason,
        )

    def _choose_serving_path(self) -> ServingPath:
        if self.fast_explainer is None:
            return ServingPath(
                "scikit-learn",
                f"{type(self.model).__name__} is not a binary GradientBoostingClassifier the "
                "compiled trees support",
            )
        loss = getattr(self.model, "loss", None)
        if loss != "log_loss":
            return ServingPath("scikit-learn", f"loss {loss!r}: the compiled path needs log_loss")
        probe = probe_rows(self.model, PROBE_ROWS)
        compiled = self._compiled_probabilities(probe)[0]
        reference = self.model.predict_proba(probe)[:, 1]
        gap = float(np.max(np.abs(compiled - reference)))
        if not gap <= PROBE_TOLERANCE:
            return ServingPath(
                "scikit-learn",
                f"compiled probabilities differ from predict_proba by {gap:.1e} on the start-up "
                "probe",
            )
        return ServingPath(
            "compiled", f"equal to predict_proba within {gap:.0e} on {PROBE_ROWS} probe rows"
        )

    def _compiled_probabilities(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self.fast_explainer is not None
        raw, contributions = self.fast_explainer.explain(matrix)
        # log_loss on two classes: predict_proba is scipy.special.expit of the raw log-odds, a
        # float64 vector of shape (n_rows,) as sklearn's decision_function gives it.
        return expit(raw), contributions

    def predict(self, customers: Sequence[ChurnPredictionRequest]) -> list[Prediction]:
        """One predict_proba and one SHAP call for all rows; row i equals a single call on i."""
        matrix = encode_rows(customers)
        probabilities, contributions = self.score(matrix)
        if len(matrix) == 1:
            return [self._one_result(matrix[0], float(probabilities[0]), contributions[0])]
        predictions: list[Prediction] = orjson.loads(
            self._batch_json(matrix, probabilities, contributions)[0]
        )
        return predictions

    def predict_batch(self, matrix: np.ndarray) -> BatchAnswer:
        """Encoded rows in, the ``predictions`` array of the answer out, as JSON bytes."""
        probabilities, contributions = self.score(matrix)
        return BatchAnswer(*self._batch_json(matrix, probabilities, contributions))

    def _batch_json(
        self, matrix: np.ndarray, probabilities: np.ndarray, contributions: np.ndarray
    ) -> tuple[bytes, np.ndarray, np.ndarray]:
        """The rows' answers as orjson writes the list of their dicts, byte for byte.

        Building 1,000 answer dicts (4,000 with the reasons) and serialising them cost about as
        much as scoring the batch. Here every number is computed as whole arrays, written by one
        ``orjson.dumps`` of a flat list (so each is spelt as orjson spells it in a dict), and
        the rows are filled into one template by a single ``%``.
        """
        n_rows = len(matrix)
        rounded = np.round(probabilities, 4)
        tiers = tier_indexes(probabilities)
        cells = np.empty((n_rows, 2 + 4 * TOP_REASONS), dtype=object)
        cells[:, 0] = _spell(rounded)
        cells[:, 1] = _TIERS_JSON[tiers]
        cells[:, 2:] = _reason_cells(matrix, contributions)
        template = _row_template(self.version)
        body = (b"[" + b",".join([template] * n_rows) + b"]") % tuple(cells.ravel().tolist())
        return body, rounded, tiers

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        """The churn probabilities of encoded rows without their SHAP values: on the compiled
        path the trees' log-odds alone (``score``'s probabilities, bit for bit)."""
        if self.serving_path.name == "compiled":
            assert self.fast_explainer is not None
            return np.asarray(expit(self.fast_explainer.log_odds(matrix)))
        return np.asarray(self.model.predict_proba(matrix)[:, 1])

    def outputs(self, matrix: np.ndarray, *, reasons: bool) -> RowOutputs:
        """The answers of encoded rows as columns, the SHAP pass run only for ``reasons``: the
        served probabilities (rounded as /predict's), tier indexes and, when asked, each row's
        top reasons as the JSON array /predict sends."""
        if len(matrix) == 1:
            served, tier, top = self.one_row(matrix, reasons=reasons)
            return RowOutputs(np.array([served]), np.array([tier]), None if top is None else [top])
        if not reasons:
            probabilities = self.probabilities(matrix)
            return RowOutputs(np.round(probabilities, 4), tier_indexes(probabilities), None)
        probabilities, contributions = self.score(matrix)
        return RowOutputs(
            np.round(probabilities, 4),
            tier_indexes(probabilities),
            reasons_json(matrix, contributions),
        )

    def one_row(self, matrix: np.ndarray, *, reasons: bool) -> tuple[float, int, bytes | None]:
        """``outputs`` of one row as plain values: the served probability, its tier's index,
        and the top reasons' JSON when asked for (numpy's per-call costs outweigh one row's
        work, as in ``_one_result``)."""
        if not reasons:
            probability = float(self.probabilities(matrix)[0])
            top = None
        else:
            probabilities, contributions = self.score(matrix)
            probability = float(probabilities[0])
            top = orjson.dumps(_one_row_reasons(matrix[0], contributions[0]))
        return _round4(probability), bisect.bisect_right(TIER_EDGES, probability), top

    def _one_result(
        self, row: np.ndarray, probability: float, contributions: np.ndarray
    ) -> Prediction:
        """The same answer as the batch code for one row, in plain Python.

        On one row numpy's per-call overhead (argsort, fancy indexing, object arrays) cost more
        than the compiled kernel; these are the same operations on ten floats: a stable sort
        (ties in feature order), the tier as edges passed, and numpy's rounding (rint of the
        value times 10**4, divided back; Python's round is also half-to-even).
        """
        return {
            "churn_probability": _round4(probability),
            "risk_tier": tier_of(probability),
            "top_reasons": _one_row_reasons(row, contributions),
            "model_version": self.version,
        }

    def score(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(churn probabilities, SHAP values) of encoded rows, by the serving path."""
        if self.serving_path.name == "compiled":
            return self._compiled_probabilities(matrix)
        probabilities = self.model.predict_proba(matrix)[:, 1]
        if self.fast_explainer is not None:
            return probabilities, self.fast_explainer.shap_values(matrix)
        values = self.explainer.shap_values(matrix, check_additivity=False)
        # Older shap returns [class_0, class_1] for classifiers; we explain churn (class 1).
        if isinstance(values, list):
            values = values[1]
        if values.ndim == 3:
            values = values[:, :, 1]
        return probabilities, np.asarray(values)


@dataclass(frozen=True)
class RowOutputs:
    """Answers as columns: probabilities as served (4 places), tier indexes into RISK_TIERS,
    each row's top reasons as JSON (None when not asked for)."""

    probabilities: np.ndarray
    tiers: np.ndarray
    reasons: list[bytes] | None


def tier_indexes(probabilities: np.ndarray) -> np.ndarray:
    """Each probability's index into RISK_TIERS (tier_of's edges, for a whole array)."""
    return np.searchsorted(np.asarray(TIER_EDGES), probabilities, side="right")


def reasons_json(matrix: np.ndarray, contributions: np.ndarray) -> list[bytes]:
    """Each row's top reasons as the JSON array /predict sends in ``top_reasons``, byte for byte.

    One ``%`` fills every row's template, joined by a NUL byte (which JSON never holds raw:
    orjson escapes it inside strings) so the rows split apart again."""
    n_rows = len(matrix)
    if n_rows == 1:
        # numpy's per-call costs outweigh one row's work (as in Predictor._one_result).
        return [orjson.dumps(_one_row_reasons(matrix[0], contributions[0]))]
    if n_rows == 0:
        return []
    cells = _reason_cells(matrix, contributions)
    template = _REASONS_TEMPLATE
    return ((b"\0".join([template] * n_rows)) % tuple(cells.ravel().tolist())).split(b"\0")


def _reason_cells(matrix: np.ndarray, contributions: np.ndarray) -> np.ndarray:
    """The spelt values of each row's top reasons: (n_rows, 4 * TOP_REASONS), per reason its
    feature, value, contribution and direction, as JSON."""
    n_rows = len(matrix)
    # Stable sort so ties resolve in feature order, identically for batch and single calls.
    top = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :TOP_REASONS]
    rows = np.arange(n_rows)[:, None]
    top_contributions = contributions[rows, top]
    numbers = np.empty((n_rows, 2 * TOP_REASONS), dtype=np.float64)
    numbers[:, 0::2] = matrix[rows, top]
    numbers[:, 1::2] = np.round(top_contributions, 4)
    spelt = _spell(numbers.ravel()).reshape(numbers.shape)
    cells = np.empty((n_rows, 4 * TOP_REASONS), dtype=object)
    cells[:, 0::4] = _FEATURES_JSON[top]
    cells[:, 1::4] = spelt[:, 0::2]
    cells[:, 2::4] = spelt[:, 1::2]
    cells[:, 3::4] = _DIRECTIONS_JSON[(top_contributions > 0).astype(np.intp)]
    return cells


def _spell(numbers: np.ndarray) -> np.ndarray:
    """Each float as orjson spells it in a document (one ``dumps`` of the flat list)."""
    return np.asarray(orjson.dumps(numbers.tolist())[1:-1].split(b","), dtype=object)


_TIERS_JSON = np.asarray([orjson.dumps(tier) for tier in RISK_TIERS], dtype=object)
_FEATURES_JSON = np.asarray([orjson.dumps(name) for name in FEATURE_ORDER], dtype=object)
_DIRECTIONS_JSON = np.asarray(
    [orjson.dumps("decreases_risk"), orjson.dumps("increases_risk")], dtype=object
)


_REASON_TEMPLATE = b'{"feature":%s,"value":%s,"shap_contribution":%s,"direction":%s}'
_REASONS_TEMPLATE = b"[" + b",".join([_REASON_TEMPLATE] * TOP_REASONS) + b"]"


def _row_template(version: str) -> bytes:
    """One answer with %s for its values, keys in the order of the single-row dict."""
    served_by = orjson.dumps(version).replace(b"%", b"%%")
    return (
        b'{"churn_probability":%s,"risk_tier":%s,"top_reasons":'
        + _REASONS_TEMPLATE
        + b',"model_version":'
        + served_by
        + b"}"
    )


def _one_row_reasons(row: np.ndarray, contributions: np.ndarray) -> list[Reason]:
    """One row's top reasons in plain Python (``_reason_cells``' operations on ten floats)."""
    phi = contributions.tolist()
    values = row.tolist()
    top = sorted(range(len(phi)), key=lambda i: -abs(phi[i]))[:TOP_REASONS]
    return [
        {
            "feature": FEATURE_ORDER[i],
            "value": values[i],
            "shap_contribution": _round4(phi[i]),
            "direction": "increases_risk" if phi[i] > 0 else "decreases_risk",
        }
        for i in top
    ]


def _round4(value: float) -> float:
    """np.round(value, 4) for one float, sign of zero included (np.rint(-0.3) is -0.0)."""
    return math.copysign(round(value * 1e4) / 1e4, value)


def probe_rows(model: Any, n_rows: int) -> np.ndarray:
    """Rows on both sides of every split the trees make (and at the split value itself)."""
    n_features = int(model.n_features_in_)
    candidates: list[list[float]] = [[0.0] for _ in range(n_features)]
    for estimator in model.estimators_.ravel():
        tree = estimator.tree_
        for feature, threshold in zip(tree.feature, tree.threshold, strict=True):
            if feature >= 0:
                value = float(np.float32(threshold))
                candidates[feature] += [value, float(np.nextafter(np.float32(value), np.inf))]
    rng = np.random.default_rng(0)
    return np.column_stack([rng.choice(values, n_rows) for values in candidates])
