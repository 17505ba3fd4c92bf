# StreamFlow model gateway. `make up` runs the local stack, `make test` runs every check.
# Both create the virtualenv and install what they need on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: help install artifacts up test lint format bench clean

help:
	@echo "make up      start the local stack: every replica in routing.yaml + gateway on 127.0.0.1:8080"
	@echo "make test    lint and run every test (unit + integration)"
	@echo "make bench   benchmark the gateway against nginx and direct"
	@echo "make lint    ruff check + format check"

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $@

install: $(INSTALLED)

artifacts: $(INSTALLED)
	$(BIN)/python -m model_server.train --if-missing

up: artifacts
	$(BIN)/python -m stack

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint artifacts
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) artifacts .pytest_cache .ruff_cache .hypothesis
