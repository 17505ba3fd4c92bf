"""The model server's endpoints, one module per concern; create_app (model_server/app.py)
builds the parts and calls each ``serve_*(app, ...)``:

status.py     GET /health, GET /ready (503 until the model is loaded), GET /metadata
predict.py    POST /predict and /predict/batch: the endpoints the fast path calls too
v2.py         the Open Inference Protocol: /v2/health/*, GET /v2, /v2/models/{name}[...]
              metadata, readiness and infer (answers built by model_server/v2_model.py)
metrics.py    GET /metrics: Prometheus text format
errors.py     the 422 with non-finite inputs spelt out, and the 500 for unexpected errors
"""
