# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test test-full lint catalogue weights clean

# The stamp is rebuilt whenever pyproject.toml changes, so `make venv` is idempotent and cheap.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,openvino]'
	touch $(STAMP)

venv: $(STAMP)

# The quickstart on the embedded default (scikit-learn's real handwritten digits, no download):
# train -> fold -> export -> check against the checkpoint -> predict image files.
DEMO := runs/demo
demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/normexport train resnet20 --dataset digits --epochs 4 --batch-size 32 --lr 0.05 --out $(DEMO)
	$(BIN)/normexport fold $(DEMO)/best.pt -o $(DEMO)/folded.pt
	$(BIN)/normexport export $(DEMO)/best.pt --format onnx -o $(DEMO)/resnet20.onnx
	$(BIN)/normexport check $(DEMO)/best.pt $(DEMO)/resnet20.onnx --data digits --samples 300 --batch-sizes 1,32
	$(BIN)/python -c "from normresnet_export.data.digits import write_digit_images; write_digit_images('$(DEMO)/images', 6)"
	$(BIN)/normexport predict $(DEMO)/resnet20.onnx $(DEMO)/images --top-k 3

# Every check, on every family; the registry sweeps leave the deep and 50M+ parameter members
# other than one deep net per family to test-full (tests/helpers.py: registry_params).
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not full"

# Everything make test runs, and the registry sweeps over all of the 400+ layer and 50M+
# parameter members as well (a few minutes more).
test-full: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Refresh the cached parameter/layer counts after adding or changing a model (the tests say when).
catalogue: $(STAMP)
	$(BIN)/python -c "from normresnet_export.models._catalogue import write_catalogue; print('wrote', write_catalogue())"

# Retrain the digits weights shipped in weights/ with the commands recorded in weights/registry.toml,
# measure them on the digits test split, and rewrite their sha256, size and top-1 there (~10 min on 2 cores).
weights: $(STAMP)
	nice -n 10 $(BIN)/python -c "from normresnet_export.weights import rebuild_shipped; rebuild_shipped()"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
