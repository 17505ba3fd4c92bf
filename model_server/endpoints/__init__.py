"""The model server's endpoints, one module per concern; create_app (model_server/app.py)
builds the parts and calls each ``serve_*(app, ...)``:

status.py     GET /health, GET /ready (503 until the model is loaded), GET /metadata
predict.py    POST /predict and /predict/batch: the endpoints the fast path calls too
metrics.py    GET /metrics: Prometheus text format
errors.py     the 422 with non-finite inputs spelt out, and the 500 for unexpected errors
"""
