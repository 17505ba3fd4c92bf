"""Process settings of one gateway (env prefix GATEWAY_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", frozen=True)

    routing_file: Path = Path("routing.yaml")
    # curl --resolve style map from a replica's "host:port" in routing.yaml to the address that
    # really serves it ("127.0.0.1:9101"), so the local stack needs no second routing file.
    # From the environment as JSON: GATEWAY_RESOLVE='{"model-v2-3-1-a:8000": "127.0.0.1:9101"}'.
    resolve: dict[str, str] = Field(default_factory=dict)

    # Replica hosts the gateway resolves itself (gateway/dns.py: a headless Service's pods, one
    # pool member per address): looked up this often, and on a failed connection at most once
    # per dns_min_gap_s per host. 0: never looked up (each host dialed by name).
    dns_refresh_s: float = Field(default=5.0, ge=0)
    dns_min_gap_s: float = Field(default=1.0, ge=0)

    reload_interval_s: float = 0.5
    health_interval_s: float = 1.0
    health_timeout_s: float = 1.0

    connect_timeout_s: float = 1.0
    read_timeout_s: float = 10.0
    # Every try of one client request, retries and fallback included, fits in this budget.
    request_budget_s: float = 15.0

    eject_after_failures: int = 3
    eject_cooldown_s: float = 5.0
    max_inflight_per_replica: int = 128
    # How long a request may wait for room when every replica of its version is at the cap,
    # before its 503 (gateway/admission.py); 0 sheds at once.
    queue_timeout_s: float = Field(default=0.1, ge=0)
    max_body_bytes: int = 1024 * 1024

    # A replica's answer body over this is a 502 bad_upstream (its head is capped at 64 KiB).
    max_response_bytes: int = Field(default=64 * 1024 * 1024, gt=0)

    # Slow and abusive clients (gateway/client_limits.py): a request's head must arrive within
    # header_timeout_s, its body without a gap over body_timeout_s and at body_min_rate bytes a
    # second overall, else a 408; over max_connections a new connection is refused with a 503.
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=10.0, gt=0)
    body_min_rate: float = Field(default=16384.0, gt=0)
    max_connections: int = Field(default=10_000, gt=0)
    # A request head over max_head_bytes is a 431; a connection whose answers the client does
    # not read is dropped when its write buffer has not drained for send_timeout_s.
    max_head_bytes: int = Field(default=64 * 1024, gt=0)
    send_timeout_s: float = Field(default=10.0, gt=0)

    # The forwarding client (see gateway/upstream/): native on the hot path, httpx where a test
    # needs MockTransport.
    transport: Literal["native", "httpx"] = "native"

    # Shadow copies (gateway/shadow/): at most this many in flight per process, beyond which a
    # copy is dropped and counted; each has this long to answer, with no retry.
    shadow_max_inflight: int = Field(default=64, ge=1)
    shadow_timeout_s: float = Field(default=2.0, gt=0)

    # The prediction log (outcomes/, README "Outcomes"): every answer a client got, and every
    # compared shadow answer, recorded off the request path. prediction_log_url: empty for
    # predictions.sqlite3 in data_dir, a path or sqlite:///path for another SQLite file,
    # postgresql://... for a store several gateways share. A URL given with prediction_log unset
    # turns the log on: an operator who names a store wants it written (the Kubernetes gateway's
    # URL comes from an optional Secret, so the Secret alone turns the log on).
    prediction_log: bool = False
    prediction_log_url: str = ""
    data_dir: Path = Path("data")
    prediction_log_features: bool = False  # also each row's request features (JSON)
    prediction_log_max_age_days: float = Field(default=90.0, ge=0)  # 0: keep forever
    prediction_log_max_rows: int = Field(default=10_000_000, ge=0)  # 0: no cap
    prediction_log_queue: int = Field(default=50_000, ge=1)  # answers waiting, beyond: dropped
    prediction_log_flush_s: float = Field(default=0.2, gt=0)
    # POST /outcomes is off unless a bearer token is set; customer ids join the latest
    # prediction per version within this window before observed_at (outcomes/join.py).
    outcomes_token: SecretStr | None = None
    outcomes_window_days: float = Field(default=30.0, gt=0)
    outcomes_max_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    # GET /quality's default window (prediction times, ending now), and how often the quality
    # gauges on /metrics are recomputed from the store (never per scrape).
    quality_window_days: float = Field(default=30.0, gt=0, le=366)
    quality_metrics_interval_s: float = Field(default=60.0, ge=1)

    # A second listener for the operators' endpoints (gateway/listeners.py): when set, /routing,
    # /stats, /shadow, /ui, /metrics, /docs, /quality and the rest answer only on this port, and
    # the client port keeps the prediction, probe and outcomes paths. 0: one port for all.
    # admin_host empty: the address the client port binds (``serve --host``).
    admin_port: int = Field(default=0, ge=0, le=65535)
    admin_host: str = ""

    access_log: bool = False
    # Where each worker process leaves its counters for the others to sum at scrape
    # (gateway/metrics_share.py). ``serve --workers N`` makes a private one when unset; unset
    # with one worker, /metrics reports this process's counters alone.
    metrics_dir: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _a_log_url_turns_the_log_on(cls, data: object) -> object:
        if (
            isinstance(data, dict)
            and data.get("prediction_log_url")
            and (data.get("prediction_log") in (None, ""))
        ):
            return {**data, "prediction_log": True}
        return data

    @field_validator("metrics_dir", "outcomes_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value  # not Path(""), the working directory


def load_settings() -> GatewaySettings:
    """Settings from the environment; a bad variable stops the process with one line naming it."""
    try:
        return GatewaySettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"GATEWAY_{'_'.join(str(part) for part in error['loc'][:1]).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        raise SystemExit(f"gateway refused to start: {problems}") from None
