"""`python -m m2f_teach lab` on a machine without a browser: the printed command works as printed."""
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def printed_hint(env=None) -> str:
    result = subprocess.run([sys.executable, "-m", "m2f_teach", "lab"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "CI": "true", **(env or {})})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_instructions_come_first_and_the_table_is_one_command_away():
    """What to do is the first line a student reads; the seed's table is not printed before it."""
    hint = printed_hint()
    assert hint.startswith("No web browser here."), hint[:200]
    assert "panoptic_head.pixel_decoder.encoder_inputs" not in hint
    [table_command] = re.findall(r"^  (\S*python\S* -m m2f_teach table)\b", hint, re.M)
    words = table_command.split()
    result = subprocess.run([sys.executable, *words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "panoptic_head.pixel_decoder.encoder_inputs" in result.stdout      # the seed's table
    assert "00_overview.ipynb" in hint


def test_hint_names_this_environments_jupyter_and_root():
    hint = printed_hint()
    [command] = re.findall(r"^  (\S*jupyter lab .*)$", hint, re.M)
    words = command.split()
    jupyter = Path(words[0]) if Path(words[0]).is_absolute() else ROOT / words[0]
    assert jupyter == Path(sys.executable).parent / "jupyter" and os.access(jupyter, os.X_OK)
    assert ("--allow-root" in words) == (os.geteuid() == 0)
    assert words[-1] == "notebooks/" and "--no-browser" in words
    assert "ssh -N -L 8888:127.0.0.1:8888" in hint and "lab?token=" in hint


def test_printed_command_serves_jupyterlab(tmp_path):
    """Run the printed command (on a free port) and wait for the token URL it promises."""
    [command] = re.findall(r"^  (\S*jupyter lab .*)$", printed_hint(), re.M)
    words = command.split()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    words[words.index("--port") + 1] = str(port)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
           "JUPYTER_TOKEN": secrets.token_hex(8)}
    server = subprocess.Popen(words, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, seen = time.time() + 120, ""
        while time.time() < deadline:
            line = server.stdout.readline()
            if not line and server.poll() is not None:
                break
            seen += line
            if re.search(rf"http://127\.0\.0\.1:{port}/lab\?token=", seen):
                break
        else:
            pytest.fail(f"no token URL within 120 s:\n{seen[-2000:]}")
        assert re.search(rf"http://127\.0\.0\.1:{port}/lab\?token=", seen), seen[-2000:]
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
