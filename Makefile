# StreamFlow model gateway. `make up` runs the local stack, `make test` runs every check.
# Both create the virtualenv and install what they need on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# checkov scans the Kubernetes manifests in make test (tests/containers/test_kubernetes.py). It
# lives in a venv of its own: its many pinned dependencies must not move the project's.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .venv-checkov
CHECKOV_INSTALLED := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
# MLServer with its scikit-learn runtime serves an exported version (streamflow export mlserver)
# as a real V2 server in make test (tests/integration/mlserver.py) and in make bench
# (bench/versus.py): one venv of its own, as checkov's, with the project's scikit-learn and numpy
# so it unpickles what we export. uvloop: MLServer's worker does not start with later releases.
MLSERVER_VERSION := 1.7.1
MLSERVER_VENV := .venv-mlserver
MLSERVER_PINS := mlserver==$(MLSERVER_VERSION) mlserver-sklearn==$(MLSERVER_VERSION) uvloop==0.21.0
MLSERVER_INSTALLED := $(MLSERVER_VENV)/.installed-$(MLSERVER_VERSION)
# The KServe SDK's V2 REST client (kserve.InferenceRESTClient), as ML teams call the gateway with
# it (tests/integration/test_kserve_client.py runs it in a subprocess): a venv of its own, as
# checkov's, since kserve 0.21 requires pandas<3 and python-dateutil<3, below the project's pins.
KSERVE_VERSION := 0.21.0
KSERVE_VENV := .venv-kserve
KSERVE_INSTALLED := $(KSERVE_VENV)/.installed-$(KSERVE_VERSION)
# The bench's compiled-trees reference (onnxruntime, skl2onnx), added to the same venv by make bench.
MLSERVER_BENCH_PINS := onnxruntime==1.32.0 skl2onnx==1.20.0
MLSERVER_BENCH_INSTALLED := $(MLSERVER_VENV)/.installed-bench
# The CRD schemas of Argo Rollouts, as validators (tests/containers/test_rollout_engines.py).
ARGO_MODELS_PACKAGE := @kubernetes-models/argo-rollouts@2.0.0
ARGO_MODELS := .cache/npm/node_modules/@kubernetes-models/argo-rollouts


.PHONY: help install tools checkov kserve mlserver mlserver-bench artifacts up test lint typecheck format bench bench-quality bench-rollout bench-smoke check-containers e2e-containers clean

help:
	@echo "make up      start the local stack: every replica in routing.yaml + gateway on 127.0.0.1:8080"
	@echo "             (make up PORT=8081: the gateway on another port)"
	@echo "make test    lint, type-check and run every test (unit + integration)"
	@echo "make bench   benchmark the gateway against nginx and direct, then the rollout simulator"
	@echo "make bench-quality  the quality report alone: outcomes needed, time over 1M labelled predictions"
	@echo "make bench-rollout  the rollout simulator alone: old and new decision rule, side by side"
	@echo "make lint    ruff check + format check + the import contracts (ARCHITECTURE.md)"
	@echo "make typecheck  mypy --strict over every package (settings in pyproject.toml)"
	@echo "make e2e-containers  build the images and run the compose stack for real (needs a Docker engine)"

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $@

install: $(INSTALLED)

# A tool in a venv of its own, made afresh: $(1) the venv, $(2) its one pinned requirement.
define tool_venv
	rm -rf $(1)
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet --upgrade pip
	$(1)/bin/python -m pip install --quiet '$(2)'
	touch $@
endef

$(CHECKOV_INSTALLED):
	$(call tool_venv,$(CHECKOV_VENV),checkov==$(CHECKOV_VERSION))

checkov: $(CHECKOV_INSTALLED)

$(KSERVE_INSTALLED):
	$(call tool_venv,$(KSERVE_VENV),kserve==$(KSERVE_VERSION))

kserve: $(KSERVE_INSTALLED)

# Remade when the project's install changes: its scikit-learn and numpy are MLServer's too.
$(MLSERVER_INSTALLED): $(INSTALLED)
	test -x $(MLSERVER_VENV)/bin/python || $(PYTHON) -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MLSERVER_VENV)/bin/python -m pip install --quiet $(MLSERVER_PINS) $$($(BIN)/python -c \
	  'import numpy, sklearn; print(f"scikit-learn=={sklearn.__version__} numpy=={numpy.__version__}")')
	touch $@

mlserver: $(MLSERVER_INSTALLED)

$(MLSERVER_BENCH_INSTALLED): $(MLSERVER_INSTALLED)
	$(MLSERVER_VENV)/bin/python -m pip install --quiet $(MLSERVER_BENCH_PINS) $$($(BIN)/python -c \
	  'import numpy, sklearn; print(f"scikit-learn=={sklearn.__version__} numpy=={numpy.__version__}")')
	touch $@

mlserver-bench: $(MLSERVER_BENCH_INSTALLED)

# promtool checks the /metrics format in the tests, chromium runs the status page's browser
# tests (Playwright drives it; no browser download), PostgreSQL's server runs the prediction
# store's tests (tests/outcomes/postgres_server.py starts its own); all installed from Debian
# when we can; npm fetches the Argo Rollouts CRD models that validate deploy/rollout-engines/.
tools:
	@command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing promtool (Debian package prometheus)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends prometheus >/dev/null; \
	  else echo "promtool not found and cannot be installed here: its test will be skipped"; fi; }
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing postgresql (Debian package) for the prediction store's tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends postgresql >/dev/null; \
	  else echo "PostgreSQL not found and cannot be installed here: its store tests will be skipped"; fi; }
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium (Debian package) for the status page's browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends chromium >/dev/null; \
	  else echo "/usr/bin/chromium not found and cannot be installed here: the browser tests will be skipped"; fi; }
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing npm (Debian package) for the Argo Rollouts CRD schema"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends nodejs npm >/dev/null; \
	  else echo "npm not found and cannot be installed here"; fi; }
	@test -d $(ARGO_MODELS) || { \
	  if command -v npm >/dev/null; then \
	    echo "installing Argo Rollouts' CRD models (npm) to validate deploy/rollout-engines/"; \
	    npm install --silent --no-audit --no-fund --prefix .cache/npm $(ARGO_MODELS_PACKAGE); \
	  else echo "npm not found: the Argo Rollouts example is checked without its CRD schema"; fi; }

artifacts: $(INSTALLED)
	$(BIN)/python -m model_server.train --if-missing

# `make up PORT=8081` puts the gateway on another port when 8080 is taken. Only a PORT given on
# the make command line counts: a PORT some other tool exported must not move the gateway.
up: artifacts
	STACK_VIA_MAKE=1 $(BIN)/python -m stack $(if $(filter command line,$(origin PORT)),--port $(PORT))

# The import rules of ARCHITECTURE.md are contracts in pyproject.toml; lint-imports checks them.
lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(INSTALLED)
	$(BIN)/mypy

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint typecheck tools checkov kserve mlserver artifacts
	$(BIN)/python -m pytest

bench: artifacts mlserver-bench
	$(BIN)/python -m bench
	$(BIN)/python -m bench.quality
	$(BIN)/python -m rollout.simulate

# The quality report alone: outcomes needed paired against unpaired, and the report's time over
# a million labelled predictions (arithmetic alone, and end to end from a SQLite store).
bench-quality: artifacts
	$(BIN)/python -m bench.quality

# The rollout section of the bench alone: the controller's decision rule, old and new, on
# simulated rollouts (no processes, a few minutes).
bench-rollout: $(INSTALLED)
	$(BIN)/python -m rollout.simulate

bench-smoke: artifacts
	$(BIN)/python -m bench --smoke

check-containers: $(INSTALLED) checkov
	$(BIN)/python -m pytest tests/containers

e2e-containers: $(INSTALLED)
	bash deploy/e2e-containers.sh

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(KSERVE_VENV) $(MLSERVER_VENV) artifacts data .cache .pytest_cache .ruff_cache .hypothesis
