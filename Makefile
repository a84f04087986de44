# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test lint catalogue clean

# The stamp is rebuilt whenever pyproject.toml changes, so `make venv` is idempotent and cheap.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/normexport models

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Refresh the cached parameter/layer counts after adding or changing a model (the tests say when).
catalogue: $(STAMP)
	$(BIN)/python -c "from normresnet_export.models._catalogue import write_catalogue; print('wrote', write_catalogue())"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
