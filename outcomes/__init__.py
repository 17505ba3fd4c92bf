"""Predictions recorded, outcomes joined to them, and model quality judged on them."""
