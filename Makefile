# The one command surface. CI (.ci/run) and the Dockerfile call these same targets.
PYTHON ?= python3
VENV ?= .venv
RUNTIME_VENV ?= /opt/venv
PY := $(VENV)/bin/python
INSTALL_STAMP := $(VENV)/.installed
PROTO_SRC := $(shell find protos -name '*.proto')
PROTO_STAMP := gateway/api/.generated

.PHONY: install install-runtime proto run emulator test bench lint lint-proto fmt typecheck helm-check clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Installs the package and its development tools into $(VENV), then generates the protobuf code.
# Every other target depends on the stamp, so `make run` / `make test` work on a fresh clone.
install: $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(INSTALL_STAMP)
	$(MAKE) proto

$(INSTALL_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(INSTALL_STAMP)

# The Dockerfile's build step: the CI install (dev tools + codegen) in $(VENV), then the package itself,
# not editable and without the dev extra, into $(RUNTIME_VENV), the only venv the image ships.
install-runtime: install
	$(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(RUNTIME_VENV)/bin/python -m pip install --quiet --no-cache-dir .

# Generated code lands in gateway/api/ (the path under -I protos is the import path); never edited.
proto: $(PROTO_STAMP)
$(PROTO_STAMP): $(PROTO_SRC) $(INSTALL_STAMP)
	rm -rf gateway/api
	$(PY) -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTO_SRC)
	find gateway/api -type d -exec touch {}/__init__.py \;
	touch $(PROTO_STAMP)

# Starts the gateway on embedded defaults: the built-in emulator unless TOLOKA_API_KEY is set,
# in-process state unless REDIS_URL is set.
run: proto
	$(VENV)/bin/toloka-gateway serve

emulator: proto
	$(VENV)/bin/toloka-gateway emulator --listen 127.0.0.1:8080

test: proto
	$(PY) -m pytest $(PYTEST_ARGS)

bench: proto
	$(PY) -m bench $(BENCH_ARGS)

lint: proto
	$(VENV)/bin/ruff check gateway tests bench
	$(VENV)/bin/ruff format --check gateway tests bench
	$(MAKE) lint-proto

# buf lint (STANDARD, buf.yaml) with the binary from the npm package @bufbuild/buf in tools/node.
lint-proto:
	[ -d tools/node/node_modules ] || npm ci --prefix tools/node --no-audit --no-fund
	tools/node/node_modules/.bin/buf lint

fmt:
	$(VENV)/bin/ruff format gateway tests bench
	$(VENV)/bin/ruff check --fix gateway tests bench

typecheck: proto
	$(VENV)/bin/mypy

helm-check: proto
	$(PY) -m pytest tests/helm -q

clean:
	rm -rf gateway/api build dist *.egg-info
