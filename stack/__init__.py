"""Local stack launcher: runs routing.yaml's replicas and the gateway as local processes.

python -m stack --help
"""
