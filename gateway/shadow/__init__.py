"""Shadow traffic: mirror a share of predictions to a candidate version and compare the answers.

compare.py   what one pair of answers says (pure: rows, Δp, tiers, top reasons, PSI)
tally.py     counts since the shadow section last changed, mergeable across worker processes
report.py    the GET /shadow document built from a tally
mirror.py    which requests are copied, and the bounded background copies themselves
metrics.py   the Prometheus series (counters and histograms, summable across gateways)
"""
