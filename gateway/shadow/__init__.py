"""Shadow traffic: mirror a share of predictions to a candidate version and compare the answers.

compare.py   what one pair of answers says (pure: rows, Δp, tiers, top reasons, PSI)
tally.py     one pair's counts (primary version, shadow version), mergeable across workers
ledger.py    this process's tallies: the report's (since the section changed) and the metrics'
report.py    the GET /shadow document built from a tally
plan.py      the shadow section as the request path reads it: which requests are copied
mirror.py    the bounded background copies themselves
metrics.py   the Prometheus series (counters and histograms, summable across gateways)
"""
