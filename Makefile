# lakeport — every entry point. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
TOOLS_BIN   ?= $(CURDIR)/.tools/bin
CHECKOV_VENV ?= .venv-checkov
export PATH := $(TOOLS_BIN):$(CURDIR)/$(VENV)/bin:$(PATH)

PYTEST_ARGS ?=

.PHONY: help install test lint schema validate

help: ## list the targets
	@grep -hE '^[a-z][a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml constraints.txt requirements-dev.in
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q uv==0.13.9
	# --compile-bytecode: every process (a run worker, a code server, dbt, each test's
	# subprocesses) imports Dagster and dbt-core, about 2,600 modules; without .pyc files
	# that is ~2 s of compiling per process wherever PYTHONDONTWRITEBYTECODE is set (as in
	# CI's sandbox), and the image compiles them too (UV_COMPILE_BYTECODE).
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -c constraints.txt -r requirements-dev.in -e .
	touch $@

$(CHECKOV_VENV)/.installed: constraints-checkov.txt
	# checkov lives in its own venv: it would downgrade boto3 in ours.
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q uv==0.13.9
	$(CHECKOV_VENV)/bin/uv pip install -q --compile-bytecode --python $(CHECKOV_VENV)/bin/python -r constraints-checkov.txt
	touch $@

install: $(VENV)/.installed $(CHECKOV_VENV)/.installed ## create .venv with the pinned set, fetch helm/kubectl and the Iceberg REST server, install Debian packages if missing, build the local cluster's binaries (cached)
	python3 scripts/fetch-kube-tools.py $(TOOLS_BIN)
	bash scripts/install-system-deps.sh
	bash scripts/fetch-iceberg-rest.sh $(CURDIR)/.tools/iceberg
	bash scripts/local-cluster.sh build

test: install ## install everything; the suite without a cluster, then the e2e tests on the local cluster (started and removed; root)
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)
	bash scripts/e2e-local.sh run $(PY) -m pytest -m e2e tests/e2e $(PYTEST_ARGS)

lint: install ## ruff, yamllint, shellcheck, hadolint, gofmt
	$(VENV)/bin/ruff check src tests scripts bench
	$(VENV)/bin/yamllint -s platform-config kind .yamllint.yaml
	$(VENV)/bin/shellcheck scripts/*.sh .ci/run
	$(VENV)/bin/hadolint images/lakeport/Dockerfile images/base/Containerfile cluster/cmd/pause/Containerfile
	test -z "$$(gofmt -l cluster)" || { gofmt -l cluster; exit 1; }

validate: install ## validate every platform-config/*/platform.yaml
	$(VENV)/bin/lakeport validate platform-config/*/platform.yaml

schema: install ## regenerate charts/lakeport/values.schema.json and values.yaml from the platform model
	$(VENV)/bin/lakeport schema --output charts/lakeport/values.schema.json --values-output charts/lakeport/values.yaml

# --- benchmarks: each prints a table and writes bench/results/<name>.json (kept in git) ---
.PHONY: bench

# Pod memory limits (MiB) of the memory benchmark: `make bench BENCH_MEMORY_SIZES=512,1024,2048,4096`
# adds the larger pods (hours, and up to ~50 GiB of spill at 4096).
BENCH_MEMORY_SIZES ?= 512
bench: install ## run the five benchmarks at full size (~30 min on an idle 2-core machine; root, for cgroups)
	$(PY) -m bench.memory_discipline --sizes $(BENCH_MEMORY_SIZES)
	$(PY) -m bench.codelocation_load
	$(PY) -m bench.orchestration_overhead
	$(PY) -m bench.single_mart_run
	$(PY) -m bench.table_history

# --- one machine: the whole platform without Kubernetes ---
.PHONY: dev
DEV_ARGS ?=

dev: install ## run the platform here (UI http://127.0.0.1:3000); DEV_ARGS="--webserver-port 3001 ..." to override
	$(VENV)/bin/lakeport dev platform-config/local/platform.yaml $(DEV_ARGS)

# --- kind: the platform on a local cluster (needs docker, kind, kubectl; helm from make install) ---
# scripts/kind.sh does the work; every target checks its tools first and can be re-run.
.PHONY: kind-up images deploy e2e down

kind-up: ## kind cluster `lakeport` (ports 80/443) + ingress-nginx; keeps an existing one
	@bash scripts/kind.sh up

images: ## build lakeport:dev and lakeport-base:dev, the base teams' images build FROM (docker, else podman; PYTHON_IMAGE=... base, =local on a registry-less machine) and kind load lakeport:dev
	@bash scripts/kind.sh images

deploy: ## helm upgrade --install lakeport onto kind with platform-config/kind/platform.yaml
	@bash scripts/kind.sh deploy

e2e: ## kind-up, images, deploy, then pytest -m e2e tests/e2e (PYTEST_ARGS=... to narrow)
	@bash scripts/kind.sh check docker kind kubectl
	@$(MAKE) --no-print-directory install
	@bash scripts/kind.sh e2e $(PYTEST_ARGS)

down: ## delete the kind cluster `lakeport`
	@bash scripts/kind.sh down

# --- the local cluster: a real single-node Kubernetes on this machine, no Docker (root) ---
# scripts/local-cluster.sh runs the cluster, scripts/e2e-local.sh the platform on it.
.PHONY: e2e-local local-up local-down

e2e-local: install ## local cluster + image + platform, pytest -m e2e tests/e2e on it, then tear it all down (~10 min warm)
	bash scripts/e2e-local.sh run $(PY) -m pytest -m e2e tests/e2e $(PYTEST_ARGS)

local-up: install ## local cluster + image + platform, left running (KUBECONFIG: `scripts/e2e-local.sh env`)
	bash scripts/e2e-local.sh up

local-down: ## uninstall, stop the host services and the local cluster
	bash scripts/e2e-local.sh down
