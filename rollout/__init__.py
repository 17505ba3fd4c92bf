"""The progressive rollout controller: a process of its own that steps a candidate version's
canary weight up, judges it against stable from metrics, and promotes it or rolls it back by
editing routing.yaml, as an operator would. Reached through ``streamflow rollout``."""
