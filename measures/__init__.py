"""Pure arithmetic over the product's shared counts, for every reader of them.

Quantiles from histogram buckets, PSI, and what a version's request counters mean (its
requests, errors and the parts of them): the gateway's status page, its shadow report and the
rollout controller's judge compute these the same way because they call the same functions.
Imports only the vocabulary; no I/O.
"""
