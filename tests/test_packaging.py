"""pyproject.toml, environment.yml, README and CI agree."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def environment_requirements() -> dict:
    reqs, in_pip = {}, False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("- pip:"):
            in_pip = True
            continue
        if in_pip and stripped.startswith("- "):
            req = stripped[2:].strip()
            reqs[_name(req)] = req
    return reqs


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): r for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = environment_requirements()
    assert sorted(env) == sorted(wanted), "environment.yml and pyproject.toml list different packages"
    for name, req in wanted.items():
        if name == "torch":
            # conda users get the same pinned CPU-friendly release the Makefile installs
            assert env[name] == "torch==2.13.0"
        else:
            assert env[name] == req, f"{name}: pyproject says {req!r}, environment.yml {env[name]!r}"


def test_makefile_pins_torch():
    makefile = (ROOT / "Makefile").read_text()
    assert "TORCH_SPEC ?= torch==2.13.0" in makefile


def test_readme_commands_exist_and_ci_runs_them():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make lab" in readme and "make test" in readme
    assert re.search(r"^lab: setup$", makefile, re.M) and re.search(r"^test: setup$", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_notebooks_store_no_run_times():
    """Stored notebooks differ only where their outputs do: no execution timestamps in the
    cells' metadata (`make notebooks` runs with record_timing off), every cell has an id."""
    import json
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        assert all("id" in cell for cell in cells), path.name
        timed = [i for i, cell in enumerate(cells) if "execution" in cell.get("metadata", {})]
        assert not timed, f"{path.name}: cells {timed} store execution times; rerun with `make notebooks`"
