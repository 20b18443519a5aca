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

# A fast first run, measured on a 2-core machine (CPU seconds): the venv is made without pip (0.3 s instead of
# 5 s of unpacking Python 3.11's bundled pip 23.2 into it); the interpreter's own pip (`pip --python`) puts the
# current pip in it (1.5 s), which installs the project in 11 s where pip 23.2 takes 21 s (most of it matching
# wheel tags of the thousands of botocore/boto3 files on the index). `--no-compile` leaves bytecode to the first
# import of each module, which writes it once. Where `$(PY) -m pip` cannot do that, ensurepip gives the venv
# its bundled pip.
$(RUNTIME): pyproject.toml
	@echo "installing the gateway's runtime dependencies into $(VENV) (first run only)"
	$(PY) -m venv --without-pip $(VENV)
	@$(PY) -m pip --python $(BIN)/python install --quiet --no-compile pip 2>/dev/null || \
	  $(BIN)/python -m ensurepip --default-pip >/dev/null
	$(BIN)/pip install --quiet --no-compile -e .
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
	$(BIN)/mypy
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
