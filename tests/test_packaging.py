"""pyproject.toml, environment.yml, README and CI agree."""
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def environment_requirements(name: str = "environment.yml") -> dict:
    reqs, in_pip = {}, False
    for line in (ROOT / name).read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("- pip:"):
            in_pip = True
            continue
        if in_pip and stripped.startswith("- "):
            req = stripped[2:].strip()
            reqs[_name(req)] = req
    return reqs


@pytest.mark.parametrize("name, extra", [("environment.yml", "dev"), ("environment-lab.yml", "lab")])
def test_conda_environments_hold_the_pyproject_dependencies(name, extra):
    """environment.yml holds the dependencies and the dev extra; environment-lab.yml (students)
    the dependencies and the lab extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): r for r in project["dependencies"] + project["optional-dependencies"][extra]}
    env = environment_requirements(name)
    assert sorted(env) == sorted(wanted), f"{name} and pyproject.toml ({extra}) list different packages"
    for name, req in wanted.items():
        if name == "torch":
            # conda users get the same pinned CPU-friendly release the Makefile installs
            assert env[name] == "torch==2.13.0"
        else:
            assert env[name] == req, f"{name}: pyproject says {req!r}, environment.yml {env[name]!r}"


def test_makefile_pins_the_torch_version():
    makefile = (ROOT / "Makefile").read_text()
    assert "TORCH_SPEC ?= torch==2.13.0" in makefile


def test_dev_extra_holds_the_lab_extra():
    """`make test` after `make lab` upgrades the venv; `make lab` after `make test` has nothing to add."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras["lab"]) <= set(extras["dev"])
    assert not {_name(r) for r in extras["lab"]} & {"pytest", "nbval", "mmdet", "playwright"}


def test_notebooks_import_only_what_the_lab_extra_installs():
    """Run All in `make lab`'s environment needs every package a notebook imports (make test-lab runs them)."""
    import json
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["lab"]}
    module_of = {"jupyterlab": "jupyterlab", "ipywidgets": "ipywidgets", "onnxruntime": "onnxruntime"}
    importable = {module_of.get(name, name.replace("-", "_")) for name in installed} | {"m2f_teach", "IPython"}
    stdlib = set(__import__("sys").stdlib_module_names)
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            for line in "".join(cell["source"]).splitlines():
                match = re.match(r"\s*(?:from|import)\s+([A-Za-z_][\w]*)", line)
                if match and match.group(1) not in stdlib:
                    assert match.group(1) in importable, f"{path.name} imports {match.group(1)}, not in the lab extra"




def test_makefile_lab_installs_lab_and_test_installs_dev():
    makefile = (ROOT / "Makefile").read_text()

    def recipe(target):
        match = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", makefile, re.M)
        assert match, f"no rule for {target}"
        return match.group(0)

    assert re.search(r"^lab: setup-lab$", makefile, re.M) and re.search(r"^test: setup site$", makefile, re.M)
    # the browser tests open what `make site` wrote; the site's build needs the lab extra (onnx, onnxruntime)
    assert "M2F_SITE=$(CURDIR)/site" in recipe("test") and re.search(r"^site: setup-lab$", makefile, re.M)
    # make test also walks the students' path: make lab's own rule into another folder, then every notebook
    assert "$(MAKE) --no-print-directory test-lab" in recipe("test")
    lab_run = recipe("test-lab")
    assert "VENV=$(LAB_VENV) setup-lab &&" in lab_run and "tests/run_notebooks.py notebooks/*.ipynb" in lab_run
    assert re.search(r"^setup-lab: \$\(LAB_STAMP\)$", makefile, re.M)
    assert re.search(r"^setup: \$\(DEV_STAMP\)$", makefile, re.M)
    assert '-e ".[lab]"' in recipe("$(LAB_STAMP)") and "[dev]" not in recipe("$(LAB_STAMP)")
    assert "--no-compile" in recipe("$(LAB_STAMP)")     # students' set-up: no bytecode for all of torch
    dev = recipe("$(DEV_STAMP)")
    assert '-e ".[dev]"' in dev and "touch $@ $(LAB_STAMP)" in dev
    # one stamp file per extra, so that one set-up does not stand in for the other
    assert "LAB_STAMP := $(VENV)/.installed-lab" in makefile and "DEV_STAMP := $(VENV)/.installed-dev" in makefile


def test_readme_commands_exist_and_ci_runs_them():
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    # the slides' compile test needs pdflatex in CI (tests/test_table_latex.py fails without it there)
    assert "texlive-latex-recommended" in ci and "texlive-latex-extra" in ci and "command -v pdflatex" in ci
    # `make site` vendors onnxruntime-web with npm (m2f_teach/site/build.py fails without it)
    assert "command -v npm" in ci and "install -y -qq npm" in ci


def test_notebooks_store_no_run_times():
    """Stored notebooks differ only where their outputs do: no execution timestamps in the
    cells' metadata (`make notebooks` runs with record_timing off), every cell has an id."""
    import json
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        assert all("id" in cell for cell in cells), path.name
        timed = [i for i, cell in enumerate(cells) if "execution" in cell.get("metadata", {})]
        assert not timed, f"{path.name}: cells {timed} store execution times; rerun with `make notebooks`"


def test_project_speaks_of_itself_only():
    """Docs, notebooks and shipped results name the hardware a run used, not how it was obtained."""
    import subprocess
    words = re.compile(r"\b(" + "|".join(["le" + "nt", "le" + "ase", "le" + "ases"]) + r")\b", re.I)
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    found = []
    for name in files:
        path = ROOT / name
        if path.suffix in {".png", ".safetensors", ".pdf"} or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="ignore").splitlines(), 1):
            if words.search(line):
                found.append(f"{name}:{number}")
    assert not found, f"words about how the hardware was obtained: {found[:10]}"


def test_ci_script_parses():
    """`.ci/run` is read by bash before anything runs: a quoting slip fails the whole CI at once."""
    import subprocess
    result = subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
