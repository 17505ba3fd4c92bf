"""The progressive rollout controller: a process of its own that takes a candidate version live
(after an optional shadow bake, by canary steps or one blue/green flip), judges it against
stable from metrics, and promotes it or rolls it back by editing routing.yaml, as an operator
would. Reached through ``streamflow rollout``."""
