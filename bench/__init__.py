"""The gateway benchmark: gateway vs nginx vs direct, and /predict/batch vs the chapter's code.

python -m bench            (or `make bench`): the full run, about three minutes
python -m bench --smoke    a few seconds, trivial backend only (what the smoke test runs)
"""
