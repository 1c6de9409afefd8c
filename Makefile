# m2f-teach: set-up, the notebooks, the tests.
#   make lab    set up (once) and open the notebooks in JupyterLab (no browser: the seed's table)
#   make test   set up (once) and run every test: package, notebooks (strict nbval), browser
PYTHON ?= python3
VENV ?= .venv
# the CPU build of torch; a bare "torch" on Linux pulls a multi-GB CUDA build
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
NBVAL := --nbval --nbval-sanitize-with notebooks/nbval_sanitize.cfg

.PHONY: setup lab test test-fast notebooks benchmarks table clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

lab: setup
	$(BIN)/python -m m2f_teach lab

table: setup
	$(BIN)/python -m m2f_teach table

test: setup
	$(BIN)/python -m pytest -q tests $(NBVAL) notebooks

test-fast: setup
	$(BIN)/python -m pytest -q tests -m "not slow and not browser"

notebooks: setup
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace notebooks/*.ipynb

benchmarks: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
