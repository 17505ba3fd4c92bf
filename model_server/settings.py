"""Process settings of one model-server replica (env: MODEL_VERSION, MODEL_PATH, MODEL_NAME)."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ModelSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODEL_", frozen=True)

    # The model's name on the Open Inference Protocol (/v2/models/{name}); MODEL_NAME.
    name: str = "churn"
    version: str = "v2.3.1"
    path: Path = Path("artifacts/v2.3.1/model.joblib")
    # Threads that run predict + SHAP; keeps CPU work off the event loop.
    workers: int = 4
    # A read-only numba cache (baked into the image) copied into NUMBA_CACHE_DIR at start.
    numba_cache_seed: Path | None = None

    @field_validator("numba_cache_seed", mode="before")
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        # MODEL_NUMBA_CACHE_SEED= turns seeding off; as a Path, "" would be the working directory.
        return None if value == "" else value
