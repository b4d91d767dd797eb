# Switchyard: `make run` serves a working gateway, `make test` runs the whole suite.
# Both set everything up themselves (a .venv with the project and its tools).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTO_SRC := $(wildcard protos/switchyard/v1/*.proto)

.PHONY: run test lint proto proto-check install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --progress-bar on pip
	$(BIN)/python -m pip install --progress-bar on -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/switchyard serve

test: $(STAMP) proto-check lint
	$(BIN)/python -m pytest -q tests

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
