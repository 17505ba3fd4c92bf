"""Which prediction an outcome belongs to: the join rule, written once for every store.

- **By request id** (``{"request_id": ..., "row": n}``, row 0 when absent): exactly the
  predictions recorded with that request id and row, at most one per version (the latest, should
  a client have reused the id). A mirrored request shares its client request's id, so one
  outcome labels both the answer the client got and the shadow version's answer to the same
  customer: that is what the paired comparison reads.
- **By customer id** (``{"customer_id": ...}``, matched against the customer key: the value of
  the routing's sticky header on the request): for each version, the **latest** prediction for
  that customer made **at or before** ``observed_at`` and **after** ``observed_at - window``
  (``GATEWAY_OUTCOMES_WINDOW_DAYS``, 30 days by default). So a customer scored every night gets
  their outcome on the last score before it was observed, once per version that scored them
  (served, shadow); a score older than the window is not what the outcome judges.
- A prediction takes at most one outcome: the first joined keeps it (a later outcome for the
  same prediction is stored, and joins nothing new).
- An outcome that labels no prediction is *unmatched*: stored, counted and reported, not an
  error. Posting it again (idempotent) joins it again, so an outcome that arrived before its
  prediction reached the store (within one flush interval) is labelled on the next post, and
  ``PredictionStore.join`` re-joins every unmatched one.

The SQL below is plain enough for SQLite and PostgreSQL alike (``?`` placeholders; the
PostgreSQL store turns them into ``%s``). ``{outcomes}`` is the set of outcome rows to join: the
staged batch, or every outcome without a label.
"""

from __future__ import annotations

__all__ = ["DEFAULT_WINDOW_S", "customer_bounds", "label_sql"]

DEFAULT_WINDOW_S = 30 * 86400.0

_LABEL_COLUMNS = (
    "prediction_id, outcome_id, time, version, assignment, churn_probability, risk_tier, "
    "churned, request_id, row_index, customer_key"
)

_RANKED = """
INSERT INTO labels ({columns})
SELECT {columns} FROM (
    SELECT p.id AS prediction_id, o.id AS outcome_id, p.time, p.version, p.assignment,
           p.churn_probability, p.risk_tier, o.churned, p.request_id, p.row_index,
           p.customer_key,
           ROW_NUMBER() OVER (
               PARTITION BY o.id, p.version ORDER BY p.time DESC, p.id DESC
           ) AS rank
    FROM {tables}
    WHERE {rule}
) ranked
WHERE rank = 1
ON CONFLICT (prediction_id) DO NOTHING
"""

BY_REQUEST = "o.kind = 'request' AND p.request_id = o.key AND p.row_index = o.row_index"
# Parameters: the window's width, then the bounds of the scan (lowest observed_at - window,
# highest observed_at).
BY_CUSTOMER = (
    "o.kind = 'customer' AND p.customer_key = o.key "
    "AND p.time <= o.observed_at AND p.time > o.observed_at - ? "
    "AND p.time > ? AND p.time <= ?"
)


def label_sql(outcomes: str) -> tuple[str, str]:
    """The two statements that label predictions from ``outcomes`` (a SELECT of outcome rows
    with id, kind, key, row_index, churned, observed_at): by request id (no parameter; the
    request index finds each), then by customer id (three parameters: the window in seconds,
    and the scan's bounds, ``customer_bounds``).

    Customer keys have no index: customers arrive in random order, and keeping an index on
    random keys was most of the prediction log's write cost (and grew with the table). So the
    customer join reads the predictions made in the batch's window once, in time order (the
    time index), and looks each up among the batch's outcomes (``CROSS JOIN`` keeps SQLite's
    loops in that order; PostgreSQL hashes the outcomes). A batch's cost is one pass over its
    window's predictions: send customer outcomes in large batches (the CLI's chunks are).
    """
    by_request = _RANKED.format(
        columns=_LABEL_COLUMNS,
        tables=f"({outcomes}) o JOIN predictions p ON true",
        rule=BY_REQUEST,
    )
    by_customer = _RANKED.format(
        columns=_LABEL_COLUMNS,
        tables=f"predictions p CROSS JOIN ({outcomes}) o",
        rule=BY_CUSTOMER,
    )
    return by_request, by_customer


def customer_bounds(outcomes: str) -> str:
    """The lowest and highest observed_at of the customer outcomes in ``outcomes``."""
    return f"SELECT MIN(observed_at), MAX(observed_at) FROM ({outcomes}) b WHERE kind = 'customer'"
