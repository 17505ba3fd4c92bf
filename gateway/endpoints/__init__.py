"""The gateway's own endpoints (everything but the predictions, which go to the proxy).

One module per concern, each a ``serve_*(app, ...)`` that adds its routes and is handed what
they read (as ``serve_docs`` and ``serve_ui`` do); create_app (gateway/app.py) builds the parts
and calls them:

health.py    GET /health (the process is alive), GET /ready (a live route can be served)
v2.py        the Open Inference Protocol's health and metadata: /v2/health/*, GET /v2,
             GET /v2/models/{model}[/versions/{version}][/ready] (infer is the V2 door's)
routing.py   GET /routing: the active config and every replica's health
shadow.py    GET /shadow: the shadow version's comparison report
quality.py   GET /quality: model quality on real outcomes, and its gauges on /metrics
stats.py     GET /stats: the status page's numbers and the rollout controller's decisions
metrics.py   GET /metrics: Prometheus text format
errors.py    the JSON error answers for HTTP errors and unexpected exceptions
"""
