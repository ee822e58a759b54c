# Phalanx — every target does its own setup on a fresh machine.
#   make demo    run Phalanx on a local sandbox cluster
#   make test    run the tests (unit and integration, on a real control plane)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
SANDBOX := $(VENV)/bin/phalanx-sandbox
KUBECTL := .tools/bin/kubectl --kubeconfig .sandbox/kubeconfig
PYTEST_ARGS ?=

.PHONY: setup venv kube-binaries tools test unit lint typecheck layers check crds chart-files sandbox demo down bench clean

setup: venv kube-binaries tools

venv: $(STAMP)
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	@touch $@

kube-binaries:
	@./hack/build-kubernetes.sh

tools: venv
	@PIP=$(PIP) ./hack/fetch-tools.sh
	@./hack/fetch-prometheus.sh

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

unit: venv
	$(PY) -m pytest -m 'not cluster' $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check operator tests benchmarks
	$(VENV)/bin/ruff format --check operator tests benchmarks

typecheck: venv
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy tests benchmarks

layers: venv
	$(VENV)/bin/lint-imports

check: lint typecheck layers

crds: venv
	$(PY) -m phalanx.crd --out crds --out charts/phalanx/crds

# The chart renders the alerts and the dashboard from copies of deploy/ (Helm reads no file outside it).
chart-files:
	cp deploy/prometheus/phalanx-rules.yaml deploy/grafana/phalanx-dashboard.json charts/phalanx/files/

sandbox: setup
	$(SANDBOX) up --operator
	@echo "explore:  $(KUBECTL) get rstore,pods -A   |   stop with: make down"

demo: setup
	$(PY) -m phalanx_sandbox.demo

down:
	@test -x $(SANDBOX) && $(SANDBOX) down || true

bench: setup
	$(PY) -m pytest benchmarks -s $(PYTEST_ARGS)

clean: down
	rm -rf .sandbox .tools .pytest_cache .mypy_cache .ruff_cache
