"""Fixtures for the browser tests: a throwaway JupyterLab server and a headless Chromium.

The server runs on 127.0.0.1 with a random token, its own settings / workspaces / runtime /
config / data folders, and serves a temporary copy of `notebooks/` (the committed notebooks are
never touched: running them in the browser and saving is done on the copy). The browser is
Debian's Chromium (`/usr/bin/chromium`, or `$M2F_CHROMIUM`) driven by Python Playwright, with
a fresh profile; Playwright's own browser download is never used.

Where Chromium or Playwright is missing the tests are skipped with the reason and the install
commands, except in CI (`CI` set), where a missing browser is a failure.

Environment knobs (all optional):
    M2F_BROWSER_NOTEBOOKS  a folder of notebooks to test instead of `notebooks/` (development)
    M2F_CHROMIUM           the Chromium binary (default /usr/bin/chromium)
    M2F_BROWSER_ARTIFACTS  where screenshots go (default artifacts/browser/)
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = Path(os.environ.get("M2F_BROWSER_NOTEBOOKS", REPO / "notebooks")).resolve()
ARTIFACTS = Path(os.environ.get("M2F_BROWSER_ARTIFACTS", REPO / "artifacts" / "browser")).resolve()
CHROMIUM = os.environ.get("M2F_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1366, "height": 768}        # the commonest laptop screen
SERVER_START_TIMEOUT_S = 120
REPORTS: list[dict] = []                          # one per notebook tested, for the summary
INSTALL_HINT = ("install them with: apt-get install -y chromium  (Debian; binary /usr/bin/chromium) "
                "and .venv/bin/pip install playwright  (never `playwright install`: the tests use "
                "the system Chromium)")


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: JupyterLab + headless Chromium (needs chromium and playwright)")


def missing_browser_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("Python package `playwright` is not installed")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"no Chromium at {CHROMIUM}")
    if not missing:
        return None
    return "; ".join(missing) + "; " + INSTALL_HINT


def require_browser():
    reason = missing_browser_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """A running `jupyter lab` subprocess and how to talk to it."""

    def __init__(self, process, port: int, token: str, root: Path, log: Path):
        self.process, self.port, self.token, self.root, self.log = process, port, token, root, log
        self.base = f"http://127.0.0.1:{port}"

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={self.token}"

    def api(self, path: str, method: str = "GET", body=None, timeout: float = 10):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base}/api/{path.lstrip('/')}", data=data, method=method,
                                         headers={"Authorization": f"token {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode()
        return json.loads(text) if text else None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def shutdown_sessions(self):
        """Stop every kernel (between notebooks: frees the CPU and memory a kernel holds)."""
        try:
            for session in self.api("sessions"):
                self.api(f"sessions/{session['id']}", method="DELETE")
        except (urllib.error.URLError, OSError):
            pass


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory) -> Path:
    """A temporary copy of the notebooks folder; the rest of the repository is linked beside it,
    so a notebook's relative paths (`../m2f_teach/...`) resolve as in the clone."""
    require_browser()
    work = tmp_path_factory.mktemp("lab") / "repo"
    work.mkdir()
    for entry in REPO.iterdir():
        if entry.name in (NOTEBOOKS.name, ".git", ".venv", "artifacts", ".pytest_cache"):
            continue
        (work / entry.name).symlink_to(entry)
    root = work / NOTEBOOKS.name
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return root


@pytest.fixture(scope="session")
def lab_server(lab_root, tmp_path_factory):
    """JupyterLab on 127.0.0.1:<free port> with a random token and throwaway state folders."""
    state = tmp_path_factory.mktemp("lab-state")
    env = dict(os.environ)
    for name in ("settings", "workspaces", "runtime", "config", "data", "ipython"):
        (state / name).mkdir()
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(state / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(state / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(state / "runtime"),
        JUPYTER_CONFIG_DIR=str(state / "config"),
        JUPYTER_DATA_DIR=str(state / "data"),          # no user kernelspecs / extensions leak in
        IPYTHONDIR=str(state / "ipython"),             # no user startup files
        PYTHONUNBUFFERED="1",
    )
    # No "receive official Jupyter news?" toast over the notebook.
    notification = state / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # CI exports MPLBACKEND=Agg; a student's kernel has matplotlib's inline backend, which is
    # what ipykernel picks when MPLBACKEND is unset. Test what students see.
    env.pop("MPLBACKEND", None)
    env.pop("JUPYTER_TOKEN", None)
    token = secrets.token_hex(24)
    port = _free_port()
    log = state / "jupyter-lab.log"
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={lab_root}",
           "--ServerApp.allow_remote_access=False",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")                     # CI runs as root
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, cwd=lab_root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = LabServer(process, port, token, lab_root, log)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"jupyter lab exited with {process.returncode}:\n{server.log_tail()}", pytrace=False)
        try:
            server.api("status", timeout=2)
            break
        except (urllib.error.URLError, OSError, ValueError):
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"jupyter lab did not answer within {SERVER_START_TIMEOUT_S} s:\n"
                            f"{server.log_tail()}", pytrace=False)
            time.sleep(0.5)
    yield server
    server.shutdown_sessions()
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(log, ARTIFACTS / "jupyter-lab.log")       # the server's side, for CI failures


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory):
    """Headless Debian Chromium with a fresh profile, driven by Playwright."""
    require_browser()
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            user_data_dir=str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport=VIEWPORT, device_scale_factor=1, locale="en-US", timezone_id="UTC",
        )
        context.set_default_timeout(60_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def pytest_terminal_summary(terminalreporter):
    """Per notebook: how long JupyterLab took, the slowest redraw, and the layout warnings."""
    if not REPORTS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("browser: widgets in JupyterLab")
    for r in REPORTS:
        redraws = [m["redraw_s"] for v in r["views"] for c in v["controls"] for m in c.get("moves", [])
                   if m.get("redraw_s") is not None]
        controls = sum(len(v["controls"]) for v in r["views"])
        write(f"{r['notebook']}: open {r.get('open_s', '?')} s, run all {r.get('run_all_s', '?')} s, "
              f"{len(r['views'])} view(s) / {controls} control(s) in {r.get('widgets_s', '?')} s, "
              f"slowest redraw {max(redraws) if redraws else '?'} s, total {r.get('total_s', '?')} s")
        for warning in r["warnings"]:
            write(f"    layout: {warning}")
    write(f"screenshots and report.json: {ARTIFACTS}")
