"""One pinned version of the StreamFlow churn model behind FastAPI."""
