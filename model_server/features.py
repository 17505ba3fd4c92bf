"""Feature order and categorical encodings shared by training and serving.

Both sides import this module so an artifact can never be trained on one encoding and served
with another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

FEATURE_ORDER: tuple[str, ...] = (
    "tenure",
    "monthly_charges",
    "total_charges",
    "contract_type",
    "payment_method",
    "num_support_tickets",
    "internet_service",
    "streaming_services",
    "paperless_billing",
    "senior_citizen",
)

CONTRACT_MAP: dict[str, int] = {"month-to-month": 0, "one-year": 1, "two-year": 2}
PAYMENT_MAP: dict[str, int] = {
    "electronic_check": 0,
    "mailed_check": 1,
    "bank_transfer": 2,
    "credit_card": 3,
}
INTERNET_MAP: dict[str, int] = {"none": 0, "dsl": 1, "fiber_optic": 2}

CATEGORICAL_MAPS: dict[str, dict[str, int]] = {
    "contract_type": CONTRACT_MAP,
    "payment_method": PAYMENT_MAP,
    "internet_service": INTERNET_MAP,
}


def encode_rows(rows: Sequence[Any]) -> np.ndarray:
    """Encode validated requests into one float matrix in FEATURE_ORDER.

    Requests are already validated, so every category is known; a plain numpy matrix (no
    DataFrame) keeps single-row latency low and matches how the artifact was fitted.
    """
    matrix = np.empty((len(rows), len(FEATURE_ORDER)), dtype=np.float64)
    for i, row in enumerate(rows):
        matrix[i] = (
            row.tenure,
            row.monthly_charges,
            row.total_charges,
            CONTRACT_MAP[row.contract_type],
            PAYMENT_MAP[row.payment_method],
            row.num_support_tickets,
            INTERNET_MAP[row.internet_service],
            row.streaming_services,
            float(row.paperless_billing),
            float(row.senior_citizen),
        )
    return matrix
