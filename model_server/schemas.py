"""Request and response contracts of the model API (the chapter's schemas, to the letter)."""

from __future__ import annotations

from typing import TypedDict

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationInfo, field_validator

from model_server.features import CATEGORICAL_MAPS
from vocabulary.tiers import RISK_TIERS, TIER_EDGES

EXAMPLE_CUSTOMER: dict[str, JsonValue] = {
    "tenure": 14,
    "monthly_charges": 89.50,
    "total_charges": 1253.00,
    "contract_type": "month-to-month",
    "payment_method": "electronic_check",
    "num_support_tickets": 3,
    "internet_service": "fiber_optic",
    "streaming_services": 2,
    "paperless_billing": True,
    "senior_citizen": False,
}


class ChurnPredictionRequest(BaseModel):
    """Input features for churn prediction."""

    # No charge is infinite or NaN (literals Python's JSON parser accepts): a 422, not a score.
    model_config = ConfigDict(
        allow_inf_nan=False, json_schema_extra={"examples": [EXAMPLE_CUSTOMER]}
    )

    tenure: int = Field(
        ..., ge=0, le=120, description="Months the customer has been subscribed", examples=[14]
    )
    monthly_charges: float = Field(
        ..., ge=0, description="Current monthly charge in dollars", examples=[89.50]
    )
    total_charges: float = Field(
        ..., ge=0, description="Total charges to date in dollars", examples=[1253.00]
    )
    contract_type: str = Field(
        ...,
        description="Contract type: 'month-to-month', 'one-year', 'two-year'",
        examples=["month-to-month"],
    )
    payment_method: str = Field(
        ..., description="Payment method used by the customer", examples=["electronic_check"]
    )
    num_support_tickets: int = Field(
        ..., ge=0, description="Number of support tickets filed in last 6 months", examples=[3]
    )
    internet_service: str = Field(
        ...,
        description="Internet service type: 'dsl', 'fiber_optic', 'none'",
        examples=["fiber_optic"],
    )
    streaming_services: int = Field(
        ..., ge=0, description="Number of streaming services subscribed to (0-4)", examples=[2]
    )
    paperless_billing: bool = Field(
        ..., description="Whether the customer uses paperless billing", examples=[True]
    )
    senior_citizen: bool = Field(
        ..., description="Whether the customer is a senior citizen", examples=[False]
    )

    @field_validator("contract_type", "payment_method", "internet_service")
    @classmethod
    def check_known_category(cls, value: str, info: ValidationInfo) -> str:
        # Rejected here, as a 422 that names the field, rather than encoded as an unseen value
        # the model would silently mis-score.
        assert info.field_name is not None  # a field validator's info names its field
        allowed = CATEGORICAL_MAPS[info.field_name]
        if value not in allowed:
            raise ValueError(f"unknown value {value!r}; allowed: {', '.join(allowed)}")
        return value


class ShapReason(BaseModel):
    """A single SHAP explanation for a prediction."""

    feature: str = Field(..., description="Feature name")
    value: float = Field(..., description="Feature value for this customer")
    shap_contribution: float = Field(
        ..., description="SHAP contribution to churn probability (log-odds units)"
    )
    direction: str = Field(..., description="'increases_risk' or 'decreases_risk'")


class Reason(TypedDict):
    """One of a prediction's top reasons as the predictor builds it (ShapReason's fields)."""

    feature: str
    value: float
    shap_contribution: float
    direction: str


class Prediction(TypedDict):
    """One answer as the predictor builds it and the endpoint sends it (ChurnPredictionResponse's
    fields, in its order)."""

    churn_probability: float
    risk_tier: str
    top_reasons: list[Reason]
    model_version: str


class ChurnPredictionResponse(BaseModel):
    """Output from the churn prediction endpoint."""

    churn_probability: float = Field(
        ..., ge=0, le=1, description="Probability of churning within 30 days"
    )
    risk_tier: str = Field(
        ...,
        description=f"'{RISK_TIERS[0]}' (<{TIER_EDGES[0]}), '{RISK_TIERS[1]}' "
        f"({TIER_EDGES[0]}-{TIER_EDGES[1]}), '{RISK_TIERS[2]}' (>={TIER_EDGES[1]})",
    )
    top_reasons: list[ShapReason] = Field(..., description="Top 3 features driving the prediction")
    model_version: str = Field(
        ..., description="Version identifier of the model that made this prediction"
    )


class BatchPredictionRequest(BaseModel):
    """Multiple customers in a single request."""

    customers: list[ChurnPredictionRequest] = Field(
        ..., description="List of customer records to score", min_length=1, max_length=1000
    )


class BatchPredictionResponse(BaseModel):
    """Predictions for all customers in the batch."""

    predictions: list[ChurnPredictionResponse]
    batch_size: int
    processing_time_ms: float


class HealthResponse(BaseModel):
    status: str = Field(..., examples=["healthy"])
    model_version: str = Field(..., examples=["v2.3.1"])
