# m2f-teach: set-up, the notebooks, the tests.
#   make lab    set up (once) and open the notebooks in JupyterLab (no browser: the seed's table)
#   make test   set up (once) and run every test: package, notebooks (strict nbval), browser
PYTHON ?= python3
VENV ?= .venv
# the CPU build of torch; a bare "torch" on Linux pulls a multi-GB CUDA build
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
NBVAL := --nbval --nbval-sanitize-with notebooks/nbval_sanitize.cfg

.PHONY: setup lab test test-fast notebooks benchmarks table weights clean

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
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.record_timing=False notebooks/*.ipynb

benchmarks: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

# the shipped checkpoint's four training stages (28 min on an H100, about 14 h on 2 CPU cores);
# the result is artifacts/shapes_small.safetensors (+ .json, .png): copy them over
# m2f_teach/weights/ to ship them. The README and the checkpoint's json list the same commands.
weights: setup
	$(BIN)/python -m m2f_teach train --steps 2376 --stop-after 2264 --out artifacts/stage1.safetensors
	$(BIN)/python -m m2f_teach train --init artifacts/stage1.safetensors --seed 1 --steps 1500 --lr 5e-4 --val-every 500 --out artifacts/stage2.safetensors
	$(BIN)/python -m m2f_teach train --init artifacts/stage2.safetensors --seed 2 --batch-size 64 --steps 2620 --stop-after 2468 --lr 5e-4 --val-every 655 --out artifacts/stage3.safetensors
	$(BIN)/python -m m2f_teach train --init artifacts/stage3.safetensors --seed 3 --batch-size 64 --steps 2300 --stop-after 1806 --lr 2e-4 --val-every 575 --out artifacts/shapes_small.safetensors

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
