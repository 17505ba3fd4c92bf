"""The Prometheus metric families the product exposes, each with its labels.

Writers name their families from here (the gateway, its shadow comparison, the replicas), and so
do readers of the exposed samples (the status page's counters, the rollout controller's sources,
the container test's traffic check), so a renamed family cannot leave a reader counting
nothing. Names are families as registered; exposed samples add ``_total`` (counters),
``_bucket`` / ``_count`` / ``_sum`` (histograms), as ``total``, ``bucket`` and ``count`` say.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Family"]


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    labels: tuple[str, ...] = ()

    @property
    def total(self) -> str:
        return f"{self.name}_total"

    @property
    def bucket(self) -> str:
        return f"{self.name}_bucket"

    @property
    def count(self) -> str:
        return f"{self.name}_count"


# --- the gateway -------------------------------------------------------------------------------
# Client requests answered: by the version that answered, X-Route-Reason, status (or class).
GATEWAY_REQUESTS = Family("gateway_requests", ("version", "reason", "status"))
GATEWAY_REQUEST_DURATION = Family("gateway_request_duration_seconds", ("version",))
# Requests the routed version failed that stable served.
GATEWAY_FALLBACKS = Family("gateway_fallbacks", ("from_version", "to_version", "cause"))
GATEWAY_UPSTREAM_ERRORS = Family("gateway_upstream_errors", ("version", "replica", "cause"))
GATEWAY_REPLICA_EJECTIONS = Family("gateway_replica_ejections", ("version", "replica"))
GATEWAY_CONFIG_RELOADS = Family("gateway_config_reloads")
GATEWAY_CONFIG_RELOAD_FAILURES = Family("gateway_config_reload_failures")
GATEWAY_CONFIG_INFO = Family("gateway_config_info", ("revision", "mode", "stable"))
GATEWAY_CONFIG_SETTLED_INFO = Family("gateway_config_settled_info", ("revision",))
GATEWAY_CONFIG_LAST_RELOAD_FAILED = Family("gateway_config_last_reload_failed")
GATEWAY_CONNECTIONS_REFUSED = Family("gateway_connections_refused")
GATEWAY_REQUEST_HEADS_TOO_LARGE = Family("gateway_request_heads_too_large")
GATEWAY_CLIENT_TIMEOUTS = Family("gateway_client_timeouts", ("phase",))
GATEWAY_SHED_REQUESTS = Family("gateway_shed_requests", ("version",))
GATEWAY_OPEN_CONNECTIONS = Family("gateway_open_connections")
GATEWAY_QUEUED_REQUESTS = Family("gateway_queued_requests")
GATEWAY_REPLICA_HEALTHY = Family("gateway_replica_healthy", ("version", "replica", "state"))
GATEWAY_ROUTE_WEIGHT = Family("gateway_route_weight_percent", ("version",))
# Rows a client got from a version whose answers the gateway reads anyway (a ``protocol: v2``
# version: any V2 server), by probability bin: that version's prediction histogram, since such a
# server exports none of its own (model_churn_probability is our replicas').
GATEWAY_SERVED_PROBABILITY_ROWS = Family("gateway_served_probability_rows", ("version", "bin"))

# --- the gateway's shadow comparison: labelled by the pair (primary, shadow) ---------------------
SHADOW_PAIR = ("primary", "shadow")
GATEWAY_SHADOW_REQUESTS = Family("gateway_shadow_requests", (*SHADOW_PAIR, "outcome"))
GATEWAY_SHADOW_ROWS = Family("gateway_shadow_rows", (*SHADOW_PAIR, "primary_tier", "shadow_tier"))
GATEWAY_SHADOW_PROBABILITY_ROWS = Family(
    "gateway_shadow_probability_rows", (*SHADOW_PAIR, "side", "bin")
)
GATEWAY_SHADOW_SAME_TOP_REASON_ROWS = Family("gateway_shadow_same_top_reason_rows", SHADOW_PAIR)
GATEWAY_SHADOW_REASON_OVERLAP_ROWS = Family(
    "gateway_shadow_reason_overlap_rows", (*SHADOW_PAIR, "overlap")
)
GATEWAY_SHADOW_ABS_DELTA = Family("gateway_shadow_abs_delta", SHADOW_PAIR)
GATEWAY_SHADOW_LATENCY = Family("gateway_shadow_latency_seconds", (*SHADOW_PAIR, "side"))

# --- a model-server replica --------------------------------------------------------------------
MODEL_PREDICTIONS = Family("model_predictions", ("endpoint", "risk_tier", "shadow"))
MODEL_REQUEST_DURATION = Family("model_request_duration_seconds", ("endpoint",))
MODEL_BATCH_SIZE = Family("model_batch_size")
MODEL_INFO = Family("model_info", ("version",))
MODEL_CHURN_PROBABILITY = Family("model_churn_probability", ("version", "shadow"))

# --- the gateway's prediction log and the outcomes joined to it (outcomes/) -------------------
# Answers written to the prediction store (a batch answer is one).
GATEWAY_PREDICTION_LOG_ANSWERS = Family("gateway_prediction_log_answers")
# Answers not logged, by cause: queue_full (the writer's queue at its cap) or store_error.
GATEWAY_PREDICTION_LOG_DROPPED = Family("gateway_prediction_log_dropped", ("cause",))
# Predictions labelled by posted outcomes, and posted outcomes that matched no prediction.
GATEWAY_OUTCOMES_LABELLED = Family("gateway_outcomes_labelled")
GATEWAY_OUTCOMES_UNMATCHED = Family("gateway_outcomes_unmatched")
# Model quality on labelled outcomes (GET /quality's default window), per configured version:
# ROC AUC and Brier score, recomputed at most every GATEWAY_QUALITY_METRICS_INTERVAL_S.
GATEWAY_QUALITY_AUC = Family("gateway_quality_auc", ("version",))
GATEWAY_QUALITY_BRIER = Family("gateway_quality_brier", ("version",))
GATEWAY_QUALITY_LABELLED = Family("gateway_quality_labelled", ("version",))
