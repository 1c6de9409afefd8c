"""Annotated shape tables and the command line."""
import csv
import io
import json
import subprocess
import sys

import pytest

from m2f_teach import M2FConfig
from m2f_teach.__main__ import main
from m2f_teach.tracing import trace_shapes


def run_cli(capsys, *argv):
    main(list(argv))
    return capsys.readouterr().out


def test_markdown_table_has_the_seed_rows(seed_trace):
    md = seed_trace.table().to_markdown()
    assert md.startswith("**Mask2Former shapes at B=2, H×W=1024×1024, C=256, nH=8, L=3, P=4, Q=100, K=81, S=21504**")
    assert ("| 3.4 deformable attention | `panoptic_head.pixel_decoder.encoder.layers.{0–5}.self_attn.sampling_offsets ×6`"
            " | B S_q nH L P 2 | (2, 21504, 8, 3, 4, 2) |") in md
    assert "S = 32·32 + 64·64 + 128·128 = 21504" in md
    assert "nH·L·P·2 = 8·3·4·2" in md
    assert "L·P = 3·4 = 12" in md
    assert "values [0, 1024, 5120]" in md
    assert "K = 80 classes + 1 = 81" in md
    assert "`panoptic_head.transformer_decoder.layers.{0,3,6}.attn_mask ×3`" in md


def test_uncollapsed_has_one_row_per_tensor(seed_trace):
    table = seed_trace.table(collapse=False)
    assert len(table) == len(seed_trace.tensors) == 204  # 159 + 9 layers × (3 cross-attention + 2 self-attention)
    assert len(seed_trace.table()) < 80          # 72 rows: repeated layers collapse


def test_json_table_has_one_object_per_traced_tensor(seed_trace):
    rows = json.loads(seed_trace.table(collapse=False).to_json())
    assert len(rows) == 204  # 159 + 9 layers × (3 cross-attention + 2 self-attention)
    first = rows[0]
    assert {"name", "shape", "symbolic", "step", "note"} <= first.keys()
    by_name = {r["name"]: r for r in rows}
    assert by_name["panoptic_head.pixel_decoder.reference_points"]["shape"] == [2, 21504, 3, 2]
    assert by_name["panoptic_head.pixel_decoder.reference_points"]["step"] == "2.2 reference points"


def test_table_is_the_same_text_on_every_run():
    a = trace_shapes(M2FConfig.seed()).table().to_markdown()
    b = trace_shapes(M2FConfig.seed()).table().to_markdown()
    assert a == b


def test_table_command_writes_each_format(capsys, tmp_path):
    out = run_cli(capsys, "table", "--preset", "small", "--format", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:4] == ["step", "name", "symbolic", "shape"]
    assert len(rows) == 1 + 204
    out = run_cli(capsys, "table", "--image-size", "512", "768", "--batch-size", "1", "--format", "json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["panoptic_head.pixel_decoder.encoder_inputs"]["shape"] == [16 * 24 + 32 * 48 + 64 * 96, 1, 256]
    target = tmp_path / "t.tex"
    run_cli(capsys, "table", "--num-queries", "200", "--format", "latex", "--output", str(target))
    tex = target.read_text()
    assert r"\begin{tabular}" in tex and "(2, 200, 81)" in tex
    html = run_cli(capsys, "table", "--format", "html", "--num-points", "8")
    assert html.startswith("<table") and "(2, 21504, 8, 3, 8, 2)" in html


def test_table_command_exits_2_on_a_bad_value(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["table", "--image-size", "1000", "1024"])
    assert exc.value.code == 2
    assert "1000×1024" in capsys.readouterr().err


def test_summary_command_counts_the_seed_parameters(capsys):
    out = run_cli(capsys, "summary", "--depth", "1")
    assert "Total params: 44,023,377" in out
    assert "Tap" not in out


def test_python_dash_m_runs_the_table_command():
    """`python -m m2f_teach table` works as a process (what the README shows)."""
    result = subprocess.run([sys.executable, "-m", "m2f_teach", "table", "--preset", "small"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "sampling_locations" in result.stdout


def test_lab_without_browser_prints_how_to_open_the_notebooks(capsys, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(SystemExit) as exc:
        main(["lab"])
    assert exc.value.code == 0
    captured = capsys.readouterr()
    assert "jupyter lab --no-browser" in captured.out and "-m m2f_teach table" in captured.out


def test_lab_table_prints_the_seed_table(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["lab", "--table"])
    assert exc.value.code == 0
    assert "panoptic_head.pixel_decoder.encoder_inputs" in capsys.readouterr().out
