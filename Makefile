# `make demo` and `make test` work on a fresh clone with only python3 installed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hcctme-installed
DEMO_OUT ?= hcctme_demo_out
PYTEST_WORKERS ?= 2

.PHONY: demo test test-fast lint docs bench bench-report venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml .ci/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c .ci/constraints.txt -e ".[dev,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hcctme demo --out $(DEMO_OUT)

test: $(STAMP)
	$(VENV)/bin/ruff check hcctme tests benchmarks tutorials
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile -q --nbmake tests tutorials

lint: $(STAMP)
	$(VENV)/bin/ruff check hcctme tests benchmarks tutorials

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not notebook"

# the API reference site (offline; warnings are errors): docs/_build/html/index.html
docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -b html -d docs/_build/doctrees docs docs/_build/html

bench: $(STAMP)
	$(PY) benchmarks/score_bench.py --sizes 10000 50000

# report size and opening time in headless Chromium (demo output when present, and 200 simulated patients)
bench-report: $(STAMP)
	$(PY) benchmarks/report_bench.py $(if $(wildcard $(DEMO_OUT)/hcctme.h5ad),--h5ad $(DEMO_OUT)/hcctme.h5ad) --patients 200

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache docs/_build docs/generated
