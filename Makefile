# Two entry points (see README): `make up` deploys, `make test` proves it offline.
# Everything installs itself into .venv (and checkov into its own .venv-checkov, because it
# pins an older boto3 than moto needs).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CHECKOV_VENV := .venv-checkov
STACK ?= demo
# Without `pulumi login`, state goes to a local file backend inside the project.
PULUMI_LOCAL_BACKEND := file://$(CURDIR)/.pulumi-state

.PHONY: help venv test bench plan render up preview destroy outputs clean

help:
	@echo "make up       deploy stack STACK=$(STACK) (needs the Pulumi CLI and AWS credentials)"
	@echo "make plan     offline: where every replica lands, GPU memory use and \$$/hour"
	@echo "make test     the whole offline test suite"
	@echo "make bench    placement planner benchmark"
	@echo "make destroy  delete everything the stack created"

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet -r requirements-checkov.txt
	touch $@

venv: $(VENV)/.installed

# Lint and type-check first (seconds), then the suite.
test: $(VENV)/.installed $(CHECKOV_VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	CHECKOV_BIN=$(CURDIR)/$(CHECKOV_VENV)/bin/checkov $(PY) -m pytest -q tests

bench: $(VENV)/.installed
	$(PY) bench/bench_placement.py

plan: $(VENV)/.installed
	$(PY) -m hamieks plan --stack $(STACK)

render: $(VENV)/.installed
	$(PY) -m hamieks render --stack $(STACK)

# --- with AWS credentials and the Pulumi CLI -------------------------------------------------
define pulumi_env
	command -v pulumi >/dev/null || { echo "Pulumi CLI not found: https://www.pulumi.com/docs/install/"; exit 1; }; \
	if ! pulumi whoami >/dev/null 2>&1; then mkdir -p .pulumi-state; export PULUMI_BACKEND_URL=$(PULUMI_LOCAL_BACKEND); \
	  export PULUMI_CONFIG_PASSPHRASE="$${PULUMI_CONFIG_PASSPHRASE-}"; fi; \
	pulumi stack select $(STACK) 2>/dev/null || pulumi stack init $(STACK);
endef

# The program runs the placement preflight itself, before it creates anything.
up: $(VENV)/.installed
	@$(pulumi_env) pulumi up --yes --stack $(STACK)

preview: $(VENV)/.installed
	@$(pulumi_env) pulumi preview --stack $(STACK)

outputs:
	@$(pulumi_env) pulumi stack output --stack $(STACK)

destroy:
	@$(pulumi_env) pulumi destroy --yes --stack $(STACK)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .benchmarks
