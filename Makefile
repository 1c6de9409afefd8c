# m2f-teach: set-up, the notebooks, the tests.
#   make lab    students: set up (once) with the `lab` extra (JupyterLab, transformers, onnx) and
#               open the notebooks (no browser here: how to reach JupyterLab from elsewhere)
#   make lecture  train the lecture recipe (about 30 minutes on 2 CPU cores)
#   make site   the explorer page: the shipped model in the browser, a static folder site/
#               (needs npm once, to vendor onnxruntime-web; see the README to publish it)
#   make test   development: set up (once) with the `dev` extra (test tools, mmdetection, playwright),
#               build site/ and run every test: the students' path (test-lab), then package,
#               notebooks, browser (the notebooks' widgets and the explorer page)
#   make test-lab  the students' path: the environment `make lab` builds (in .venv-lab/, nothing
#               else), and every notebook run top to bottom in it, failing on any error
# Each extra has its own stamp: `make test` after `make lab` adds the dev extra to the venv.
PYTHON ?= python3
VENV ?= .venv
# the CPU build of torch; a bare "torch" on Linux pulls a multi-GB CUDA build
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
NBVAL := --nbval --nbval-sanitize-with notebooks/nbval_sanitize.cfg
LAB_STAMP := $(VENV)/.installed-lab
DEV_STAMP := $(VENV)/.installed-dev
LAB_VENV ?= .venv-lab

.PHONY: setup setup-lab lab test test-lab test-fast site notebooks benchmarks table weights lecture ablations clean

setup: $(DEV_STAMP)

setup-lab: $(LAB_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch pinned in the same pip run as the package, so the resolver never picks another build.
# --no-compile: no bytecode for every installed file (a third of the set-up time, 0.24 GB);
# Python compiles each module the first time it is imported, and keeps it.
$(LAB_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --no-compile "$(TORCH_SPEC)" -e ".[lab]"
	touch $@

# the dev extra holds everything the lab extra does (tests/test_packaging.py checks it)
$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" -e ".[dev]"
	touch $@ $(LAB_STAMP)

lab: setup-lab
	$(BIN)/python -m m2f_teach lab

table: setup-lab
	$(BIN)/python -m m2f_teach table

# the browser tests (tests/browser/test_site.py) open the folder `make site` just wrote
test: setup site
	$(MAKE) --no-print-directory test-lab
	M2F_SITE=$(CURDIR)/site $(BIN)/python -m pytest -q tests $(NBVAL) notebooks

# the explorer: torch, onnx and onnxruntime (all in the lab extra), and npm for onnxruntime-web
site: setup-lab
	$(BIN)/python -m m2f_teach site -o site

# the students' path, exactly as `make lab` sets it up (the same rule, another folder), then Run All
test-lab:
	@start=$$(date +%s); $(MAKE) --no-print-directory VENV=$(LAB_VENV) setup-lab && \
	echo "lab set-up: $$(( $$(date +%s) - start )) s, $$(du -sm $(LAB_VENV) | cut -f1) MiB in $(LAB_VENV)/"
	$(LAB_VENV)/bin/python tests/run_notebooks.py notebooks/*.ipynb

test-fast: setup
	$(BIN)/python -m pytest -q tests -m "not slow and not browser"

notebooks: setup-lab
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.record_timing=False notebooks/*.ipynb

benchmarks: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

# the shipped checkpoint's four training stages (28 min on an H100, about 14 h on 2 CPU cores);
# the result is artifacts/shapes_small.safetensors (+ .json, .png): copy them over
# m2f_teach/weights/ to ship them. The README and the checkpoint's json list the same commands.
weights: setup-lab
	$(BIN)/python -m m2f_teach train --steps 2376 --stop-after 2264 --out artifacts/stage1.safetensors
	$(BIN)/python -m m2f_teach train --init artifacts/stage1.safetensors --seed 1 --steps 1500 --lr 5e-4 --val-every 500 --out artifacts/stage2.safetensors
	$(BIN)/python -m m2f_teach train --init artifacts/stage2.safetensors --seed 2 --batch-size 64 --steps 2620 --stop-after 2468 --lr 5e-4 --val-every 655 --out artifacts/stage3.safetensors
	$(BIN)/python -m m2f_teach train --init artifacts/stage3.safetensors --seed 3 --batch-size 64 --steps 2300 --stop-after 1806 --lr 2e-4 --val-every 575 --out artifacts/shapes_small.safetensors

lecture: setup-lab
	$(BIN)/python -m m2f_teach train --recipe lecture --out artifacts/lecture.safetensors

ablations: setup-lab
	$(BIN)/python -m m2f_teach ablate --out-dir artifacts/ablations

clean:
	rm -rf $(VENV) $(LAB_VENV) *.egg-info .pytest_cache site web/node_modules
