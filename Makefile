# The one command surface. CI (.ci/run) and the Dockerfile call these same targets.
#
# `make run` needs nothing but Python 3.11+: it makes .venv with the gateway's runtime dependencies only
# (no dev tools), generates the protobuf code and starts the gateway. `make install` / `make test` add the
# development tools to the same .venv. A failed step leaves no stamp behind, so the next attempt redoes it;
# a .venv made by an older Python, or left half-made, is made anew.
PYTHON ?= python3
VENV ?= .venv
RUNTIME_VENV ?= /opt/venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -qq --disable-pip-version-check
RUNTIME_STAMP := $(VENV)/.installed-runtime
INSTALL_STAMP := $(VENV)/.installed
PROTO_SRC := $(shell find protos -name '*.proto')
PROTO_STAMP := gateway/api/.generated
# grpcio-tools for `make proto` when .venv holds the runtime dependencies only (made by `make run`).
CODEGEN := build/codegen
MAKEFLAGS += --no-print-directory

.PHONY: install install-runtime proto run emulator test bench lint lint-proto fmt typecheck helm-check clean \
	check-python venv

# Fails first, naming the fix, unless .venv already runs on 3.11+ or $(PYTHON) is 3.11+.
check-python:
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	|| $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	|| { echo "make: toloka-gateway needs Python 3.11 or newer, and '$(PYTHON)' is" \
	     "$$($(PYTHON) --version 2>&1 || echo 'not installed')." >&2; \
	     echo "  Install Python 3.11+ (Debian/Ubuntu: apt-get install python3.11 python3.11-venv)," \
	     "then run: make $(or $(MAKECMDGOALS),run) PYTHON=python3.11" >&2; exit 1; }

# Keeps a usable .venv: one made by an older Python, or left without pip by an interrupted attempt, is
# removed and made anew; a venv that fails to build is removed, never left half-made.
venv: check-python
	@if ! $(PY) -c 'import sys, pip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then \
	  if [ -e $(VENV) ]; then echo "make: $(VENV) is unusable (older Python or half-made); making it anew"; fi; \
	  rm -rf $(VENV); \
	  echo "make: creating $(VENV) with $$($(PYTHON) --version 2>&1)"; \
	  { $(PYTHON) -m venv $(VENV) && $(PIP) install --upgrade pip; } || { rm -rf $(VENV); exit 1; }; \
	fi

# xds-protos (Envoy's rate-limit service protos) ships an old copy of opentelemetry-proto's modules
# under the same paths, and whichever wheel pip unpacks last wins: without opentelemetry-proto's own,
# the OTLP exporter cannot import. Re-unpacking it after every install makes the outcome not depend on
# pip's order. $(1): the venv's python.
define OTEL_PROTO_OWN_FILES
$(1) -m pip -qq --disable-pip-version-check install --force-reinstall --no-deps --no-cache-dir \
  "opentelemetry-proto==$$($(1) -c 'from importlib.metadata import version; print(version("opentelemetry-proto"))')"
endef

# The package (editable) and its runtime dependencies: what `make run` needs.
$(RUNTIME_STAMP): pyproject.toml | venv
	@echo "make: installing the gateway's runtime dependencies into $(VENV)"
	@$(PIP) install -e .
	@$(call OTEL_PROTO_OWN_FILES,$(PY))
	@touch $@

# Installs the package and its development tools into $(VENV), then generates the protobuf code.
# Every other target depends on the stamp, so `make test` etc. work on a fresh clone.
install: $(INSTALL_STAMP) proto

$(INSTALL_STAMP): pyproject.toml $(RUNTIME_STAMP)
	@echo "make: installing the development tools into $(VENV)"
	@$(PIP) install -e '.[dev]'
	@$(call OTEL_PROTO_OWN_FILES,$(PY))
	@touch $@

# The Dockerfile's build step: the CI install (dev tools + codegen) in $(VENV), then the package itself,
# not editable and without the dev extra, into $(RUNTIME_VENV), the only venv the image ships.
install-runtime: install
	$(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(RUNTIME_VENV)/bin/python -m pip install --quiet --no-cache-dir .
	$(call OTEL_PROTO_OWN_FILES,$(RUNTIME_VENV)/bin/python)

# Generated code lands in gateway/api/ (the path under -I protos is the import path); never edited.
# protoc comes from grpcio-tools: .venv's own with the dev tools, else the release matching .venv's
# grpcio, unpacked into $(CODEGEN) (outside .venv: the runtime venv stays free of build tools).
proto: $(PROTO_STAMP)
$(PROTO_STAMP): $(PROTO_SRC) $(RUNTIME_STAMP)
	@echo "make: generating the protobuf code (gateway/api/)"
	@tools=; if ! $(PY) -c 'import grpc_tools' 2>/dev/null; then tools=$(CODEGEN); \
	  $(PY) -c 'import sys; sys.path.insert(0, "$(CODEGEN)"); import grpc_tools.protoc' 2>/dev/null \
	  || $(PIP) install --no-deps --upgrade --target $(CODEGEN) \
	       "grpcio-tools==$$($(PY) -c 'import grpc; print(*grpc.__version__.split(".")[:2], sep=".")').*"; fi; \
	rm -rf gateway/api && PYTHONPATH=$$tools $(PY) -m grpc_tools.protoc -I protos \
	  --python_out=. --pyi_out=. --grpc_python_out=. $(PROTO_SRC)
	@find gateway/api -type d -exec touch {}/__init__.py \;
	@touch $(PROTO_STAMP)

# Starts the gateway on embedded defaults: the built-in emulator unless TOLOKA_API_KEY is set,
# in-process state unless REDIS_URL is set, and the REST front (Toloka's /api/v1, for toloka-kit) on
# [::]:8081 unless GATEWAY_REST_LISTEN is set (set empty: off). Installs the runtime dependencies only.
run: check-python proto
	@GATEWAY_REST_LISTEN="$${GATEWAY_REST_LISTEN-[::]:8081}" exec $(VENV)/bin/toloka-gateway serve

emulator: check-python proto
	@exec $(VENV)/bin/toloka-gateway emulator --listen 127.0.0.1:8080

test: $(INSTALL_STAMP) proto
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(INSTALL_STAMP) proto
	$(PY) -m bench $(BENCH_ARGS)

lint: $(INSTALL_STAMP) proto
	$(VENV)/bin/ruff check gateway tests bench examples
	$(VENV)/bin/ruff format --check gateway tests bench examples
	$(MAKE) lint-proto

# buf lint (STANDARD, buf.yaml) with the binary from the npm package @bufbuild/buf in tools/node.
lint-proto:
	[ -d tools/node/node_modules ] || npm ci --prefix tools/node --no-audit --no-fund
	tools/node/node_modules/.bin/buf lint

fmt: $(INSTALL_STAMP)
	$(VENV)/bin/ruff format gateway tests bench examples
	$(VENV)/bin/ruff check --fix gateway tests bench examples

typecheck: $(INSTALL_STAMP) proto
	$(VENV)/bin/mypy

helm-check: $(INSTALL_STAMP) proto
	$(PY) -m pytest tests/helm -q

# Everything make (and the tools it runs) made: venvs, generated code, caches, node_modules, builds.
clean:
	rm -rf $(VENV) gateway/api build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache \
	  tools/node/node_modules examples/node/node_modules examples/python/.venv examples/go/build
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
