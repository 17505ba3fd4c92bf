import orjson
import pytest

from gateway.shadow.compare import (
    BadAnswer,
    Row,
    compare_row,
    compare_rows,
    parse_rows,
    probability_bin,
    quantile,
)
from vocabulary.buckets import PROBABILITY_BOUNDS


def answer(p: float, tier: str, reasons: list[str]) -> dict:
    return {
        "churn_probability": p,
        "risk_tier": tier,
        "top_reasons": [
            {"feature": f, "value": 1.0, "shap_contribution": 0.1, "direction": "increases_risk"}
            for f in reasons
        ],
        "model_version": "v2.3.1",
    }


def test_parse_single_and_batch_answers():
    single = orjson.dumps(answer(0.42, "medium", ["tenure", "contract_type", "monthly_charges"]))
    assert parse_rows(single) == [
        Row(0.42, "medium", ("tenure", "contract_type", "monthly_charges"))
    ]
    batch = orjson.dumps(
        {
            "predictions": [answer(0.1, "low", ["a", "b", "c"]), answer(0.9, "high", ["c"])],
            "batch_size": 2,
            "processing_time_ms": 1.0,
        }
    )
    rows = parse_rows(batch)
    assert [r.tier for r in rows] == ["low", "high"]
    assert rows[1].reasons == ("c",)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (orjson.dumps({"predictions": 3}), "predictions is not a list"),
        (orjson.dumps(answer(1.5, "high", [])), "outside 0..1"),
        (orjson.dumps(answer(0.5, "extreme", [])), "risk_tier"),
        (orjson.dumps({**answer(0.5, "medium", []), "churn_probability": True}), "not a number"),
        (orjson.dumps({**answer(0.5, "medium", []), "top_reasons": [{"x": 1}]}), "feature name"),
    ],
)
def test_bad_answers_are_named(body, message):
    with pytest.raises(BadAnswer, match=message):
        parse_rows(body)


def test_row_comparison_delta_top_feature_and_overlap():
    a = Row(0.30, "medium", ("tenure", "contract_type", "monthly_charges"))
    b = Row(0.25, "low", ("contract_type", "tenure", "num_support_tickets"))
    c = compare_row(a, b)
    assert c.abs_delta == pytest.approx(0.05)
    assert not c.same_top
    assert c.overlap == 2
    assert not c.same_tier
    same = compare_row(a, a)
    assert same.abs_delta == 0 and same.same_top and same.overlap == 3 and same.same_tier
    empty = compare_row(Row(0.1, "low", ()), Row(0.1, "low", ()))
    assert not empty.same_top and empty.overlap == 0


def test_rows_must_pair_up():
    row = Row(0.1, "low", ("a",))
    with pytest.raises(BadAnswer, match="1 rows and the shadow 2"):
        compare_rows([row], [row, row])


def test_probability_bins_are_inclusive_upper_bounds():
    assert probability_bin(0.0) == 0
    assert probability_bin(0.1) == 0
    assert probability_bin(0.1000001) == 1
    assert probability_bin(0.95) == 9
    assert probability_bin(1.0) == 9
    assert len(PROBABILITY_BOUNDS) == 10


def test_quantile_matches_linear_interpolation():
    values = sorted([0.5, 0.1, 0.4, 0.2, 0.3])
    assert quantile(values, 0.5) == 0.3
    assert quantile(values, 0.95) == pytest.approx(0.4 + 0.1 * 0.8)
    assert quantile([], 0.5) is None
    assert quantile([0.7], 0.99) == 0.7
