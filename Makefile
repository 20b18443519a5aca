# Two commands on a fresh clone: `make serve` and `make test`. Each bootstraps .venv itself.
# `make serve` installs what serving needs ([project.dependencies]) and nothing else, so a first run answers in
# seconds; `make test` adds the test extras to the same venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-installed
STAMP := $(VENV)/.installed
# The gateway's port for `make serve` (`make serve PORT=9000`) and the simulator's for `make simulate`.
PORT ?= 8080
SIM_PORT ?= 8081

# Fast first run, measured on a 2-core machine: the venv is made without its own pip and filled by the pip of
# the interpreter that makes it (`pip --python`, pip >= 22.3), which saves the ~5 s CPU of unpacking pip into
# it; pip itself is then installed into the venv alongside the project (the venv keeps its own `.venv/bin/pip`);
# `--no-compile` leaves bytecode to the first import of each module, which writes it once (~5 s CPU less).
# Without a `$(PY) -m pip` that can, ensurepip gives the venv its own pip to do it. No `pip install --upgrade pip` either.
$(RUNTIME): pyproject.toml
	@echo "installing the gateway's runtime dependencies into $(VENV) (first run only)"
	$(PY) -m venv --without-pip $(VENV)
	@if $(PY) -m pip --python $(BIN)/python --version >/dev/null 2>&1; then \
	  $(PY) -m pip --python $(BIN)/python install --quiet --no-compile -e . pip; \
	else \
	  $(BIN)/python -m ensurepip --default-pip >/dev/null && $(BIN)/pip install --quiet --no-compile -e .; \
	fi
	touch $@

$(STAMP): $(RUNTIME)
	$(BIN)/pip install --quiet --no-compile -e '.[test]'
	touch $@

.PHONY: serve test lint simulate bench
serve: $(RUNTIME)
	$(BIN)/jumpgate serve --port $(PORT)

simulate: $(RUNTIME)
	$(BIN)/jumpgate simulate --port $(SIM_PORT)

# Debian packages the tests run for real: prometheus (promtool and the server, tests/deploy and
# tests/e2e/test_prometheus.py) and redis-server (limits shared by replicas, tests/e2e/test_tenancy.py).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

test: $(STAMP)
	command -v prometheus >/dev/null && command -v redis-server >/dev/null || \
	  ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends prometheus redis-server)
	$(BIN)/ruff check service clients tests
	$(BIN)/python -m pytest -q -p no:cacheprovider

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

# ARGS=--quick for a 30-second run; see `python -m tests.bench.run --help`.
bench: $(VENV)/.bench-installed
	$(BIN)/python -m tests.bench.run $(ARGS)

# Opt-in, not part of `make test`: build the image with podman (no Docker engine needed) and smoke-test it:
# a local python:3.11-slim made with debootstrap if missing, `podman build --isolation=chroot`, then the demo
# in a container (runc, host network) answering /healthz and one chat completion. Root or sudo; see README.
.PHONY: image-smoke
image-smoke:
	command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null && \
	  command -v curl >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends \
	  podman runc debootstrap containernetworking-plugins curl ca-certificates)
	$(SUDO) deploy/image/build-base.sh
	$(SUDO) deploy/image/smoke.sh
