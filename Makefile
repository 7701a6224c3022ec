# explainaug: `make demo` runs the demo on shipped data, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install lint test test-fast demo bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(VENV)/bin/python pyproject.toml
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(TEST_STAMP)

install: $(STAMP)

# Style gate (CI runs it through make test): formatting and lint rules from pyproject.toml.
lint: $(TEST_STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q

# The inner loop: everything but the end-to-end tests marked slow.
test-fast: $(TEST_STAMP)
	$(PY) -m pytest -q -m "not slow"

demo: $(STAMP)
	$(VENV)/bin/explainaug demo

# Speed against the peer libraries (GPU when there is one); tables go into BENCHMARKS.md by hand.
bench: $(TEST_STAMP)
	$(PY) -m pip install --quiet -e ".[test,bench]"
	for script in explainers augment train_step evaluate; do $(PY) benchmarks/$$script.py || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
