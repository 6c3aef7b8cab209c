# `make run` and `make test` set everything up on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ASKTA := $(VENV)/bin/askta
# The sandbox runs demos as an unprivileged uid, which must be able to read the
# interpreter: when we are root, keep that environment in a world-readable place.
ifeq ($(shell id -u),0)
SANDBOX_VENV ?= /opt/askta/sandbox-venv
else
SANDBOX_VENV ?= $(CURDIR)/.askta/sandbox-venv
endif
export ASKTA_SANDBOX_PYTHON ?= $(SANDBOX_VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# Where pip finds the pinned torch wheel; empty means pip's own configuration. The
# Dockerfile sets https://download.pytorch.org/whl/cpu (or .../cu128 for a CUDA image).
TORCH_INDEX_URL ?=
TORCH_PIP := $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
# The torch build of the sandbox environment: `cpu` (the pinned CPU wheel), or on a GPU
# worker machine a CUDA build from PyTorch's index, e.g. `make sandbox-env SANDBOX_TORCH=cu128`
# (docs/workers.md). `askta worker --device cuda` refuses to start on a CPU build.
SANDBOX_TORCH ?= cpu
ifeq ($(SANDBOX_TORCH),cpu)
SANDBOX_TORCH_PIP := $(TORCH_PIP) torch==2.13.0
SANDBOX_STAMP := $(SANDBOX_VENV)/.installed
else
SANDBOX_TORCH_PIP := --index-url https://download.pytorch.org/whl/$(SANDBOX_TORCH) torch==2.13.0+$(SANDBOX_TORCH)
SANDBOX_STAMP := $(SANDBOX_VENV)/.installed-$(SANDBOX_TORCH)
endif
# The extras installed into $(VENV): the Dockerfile's server image takes `postgres`
# instead of the test and lint tools.
EXTRAS ?= dev

.PHONY: help install system-deps browser-deps redis-deps container-deps container-check sandbox-env index run test lint check bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

system-deps:  ## Debian packages: bubblewrap (sandbox), python3-venv for the sandbox env
	@if ! command -v bwrap >/dev/null || ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap python3-venv >/dev/null; \
	  else echo "Please install bubblewrap and python3-venv: sudo apt-get install bubblewrap python3-venv"; exit 1; fi; fi

browser-deps:  ## Debian chromium for the browser tests
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Please install chromium: sudo apt-get install chromium"; exit 1; fi; fi

container-deps:  ## Debian docker-compose, which validates compose.yaml without a Docker engine
	@if ! command -v docker-compose >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; \
	  else echo "Please install docker-compose: sudo apt-get install docker-compose"; exit 1; fi; fi

redis-deps:  ## Debian redis-server, for the tests of the Celery executor and shared limits
	@if ! command -v redis-server >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else echo "Please install redis-server: sudo apt-get install redis-server"; exit 1; fi; fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the CPU wheel first: an unpinned torch would pull a multi-GB CUDA build
	$(PY) -m pip install -q $(TORCH_PIP) torch==2.13.0
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

# One stamp per torch build: asking for a CUDA build installs it over the CPU one.
$(SANDBOX_STAMP): | system-deps
	/usr/bin/python3 -m venv $(SANDBOX_VENV)
	$(SANDBOX_VENV)/bin/python -m pip install -q $(SANDBOX_TORCH_PIP)
	$(SANDBOX_VENV)/bin/python -m pip install -q numpy matplotlib
	# matplotlib's font list, built once: every fresh sandbox would otherwise spend ~0.5 s on it
	HOME=$(SANDBOX_VENV)/home MPLBACKEND=Agg $(SANDBOX_VENV)/bin/python -c 'import matplotlib.pyplot'
	chmod -R a+rX $(SANDBOX_VENV)
	rm -f $(SANDBOX_VENV)/.installed $(SANDBOX_VENV)/.installed-*
	touch $@

install: system-deps $(VENV)/.installed sandbox-env  ## create the virtualenvs and install everything

sandbox-env: $(SANDBOX_STAMP)  ## the interpreter demos run with inside bubblewrap (SANDBOX_TORCH=cu128: a CUDA build)

index: install  ## build or refresh the search index of kb/
	$(ASKTA) index

run: install  ## serve the bundled knowledge base on http://$(HOST):$(PORT)
	$(ASKTA) index
	$(ASKTA) serve --host $(HOST) --port $(PORT)

test: install browser-deps redis-deps container-check  ## lint, check the import rules and the container files, check every entry and demo, run the whole test suite
	$(VENV)/bin/ruff check indexer server tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(ASKTA) check --demos
	$(PY) -m pytest -q

lint:  ## ruff, mypy and the import rules (.importlinter)
	$(VENV)/bin/ruff check indexer server tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

container-check: install container-deps  ## hadolint the Dockerfile, validate compose.yaml (no Docker engine needed)
	$(VENV)/bin/hadolint Dockerfile
	POSTGRES_PASSWORD=container-check docker-compose -f compose.yaml config -q

bench: install  ## print the benchmark figures
	$(PY) benchmarks/retrieval.py

clean:
	rm -rf $(VENV) .askta
