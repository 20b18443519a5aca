# Two commands on a fresh clone: `make serve` and `make test`. Each bootstraps .venv itself.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

.PHONY: serve test lint simulate bench
serve: $(STAMP)
	$(BIN)/jumpgate serve

simulate: $(STAMP)
	$(BIN)/jumpgate simulate

test: $(STAMP)
	$(BIN)/ruff check service clients tests
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python -m tests.bench.run
