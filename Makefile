# Two entry points (see README): `make up` deploys, `make test` proves it offline.
# Everything installs itself into .venv (and checkov into its own .venv-checkov, because it
# pins an older boto3 than moto needs).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CHECKOV_VENV := .venv-checkov
STACK ?= demo

.PHONY: help venv test bench plan render preflight leaks up preview destroy outputs clean lock

help:
	@echo "make up       deploy stack STACK=$(STACK) (needs the Pulumi CLI and AWS credentials)"
	@echo "make plan     offline: where every replica lands, GPU memory use and \$$/hour"
	@echo "make test     the whole offline test suite"
	@echo "make bench    placement planner and rightsize benchmarks"
	@echo "make destroy  delete everything the stack created, then list what AWS still holds (leaks)"
	@echo "make preflight  AWS account ready for STACK=$(STACK)? credentials, types/GPUs, zones, vCPU quotas, EKS version"
	@echo "make leaks      after destroy: what the cluster left in the account, with delete commands"
	@echo "make lock       regenerate the hash-locked requirements*.lock from the ranges in requirements*.txt"

# Dependencies come from hash-locked files (every package pinned, every file's sha256 checked);
# `make lock` regenerates them from the ranges in requirements*.txt.
$(VENV)/.installed: requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	# The `hami-eks` command, from this checkout (edits take effect without reinstalling).
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.lock
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet --require-hashes -r requirements-checkov.lock
	touch $@

venv: $(VENV)/.installed

# Lint and type-check first (seconds), then the suite.
test: $(VENV)/.installed $(CHECKOV_VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	CHECKOV_BIN=$(CURDIR)/$(CHECKOV_VENV)/bin/checkov $(PY) -m pytest -q tests

bench: $(VENV)/.installed
	$(PY) bench/bench_placement.py
	$(PY) bench/bench_rightsize.py

plan: $(VENV)/.installed
	@$(VENV)/bin/hami-eks plan --stack $(STACK)

render: $(VENV)/.installed
	@$(VENV)/bin/hami-eks render --stack $(STACK)

preflight leaks: $(VENV)/.installed
	@$(VENV)/bin/hami-eks $@ --stack $(STACK)

# --- with AWS credentials and the Pulumi CLI -------------------------------------------------
# scripts/stack.sh refuses a stack without its Pulumi.<stack>.yaml before calling Pulumi, shows
# the plan and $/hour and asks before `up` and `destroy` (YES=1 or CI skips the question).
# make itself exits 2 whenever a step fails; the step's own exit code is printed above that.
up preview outputs destroy: $(VENV)/.installed
	@bash scripts/stack.sh $@ $(STACK)

# The locks, from the ranges: run after changing any requirements*.txt (tests/test_locks.py
# fails while a lock disagrees with its ranges). pip-tools lives in a virtualenv of its own.
LOCK_VENV := .venv-lock
lock:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet "pip-tools>=7.4,<8"
	for name in requirements requirements-dev requirements-checkov; do \
	  $(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	    --no-emit-find-links --output-file=$$name.lock $$name.txt || exit 1; \
	done

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(LOCK_VENV) .pytest_cache .benchmarks
