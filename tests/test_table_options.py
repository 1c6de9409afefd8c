"""Shape-table options for slides and students: columns, steps, name globs, short names,
Chinese, standalone HTML; and output paths that cannot be written."""
import json
import re
import subprocess
import sys

import pytest

from m2f_teach.__main__ import main
from m2f_teach.tracing import annotations, annotations_zh
from m2f_teach.tracing.table import shortest_unique_names


def run_cli(capsys, *argv):
    main(list(argv))
    return capsys.readouterr().out


def markdown_rows(md: str) -> list[list[str]]:
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def test_columns_choose_and_order(seed_trace):
    table = seed_trace.table().select(columns=["shape", "name"])
    rows = markdown_rows(table.to_markdown())
    assert rows[0] == ["shape", "name"]
    assert rows[1] == ["(2, 3, 1024, 1024)", "`images`"]
    assert len(rows) - 1 == len(seed_trace.table())
    with pytest.raises(ValueError, match="'size' is not one"):
        seed_trace.table().select(columns=["step", "size"])


def test_steps_keep_a_seed_step_and_its_substeps(seed_trace):
    table = seed_trace.table()
    encoder_attention = table.select(steps=["3.4"])
    assert {r.step for r in encoder_attention.rows} == {"3.4 deformable attention"}
    assert all(".self_attn." in r.name for r in encoder_attention.rows)
    pixel = table.select(steps=["2"])
    assert {r.step.split()[0] for r in pixel.rows} == {"2.1", "2.2"}
    head = table.select(steps=["dec 3.3"])
    assert head.rows and {r.step for r in head.rows} == {"dec 3.3 forward_head"}
    assert table.select(steps=["dec3.3"]).rows == head.rows
    # "3" is the encoder chapter's 3.x, not the decoder's "dec 3.x"
    assert not any(r.step.startswith("dec") for r in table.select(steps=["3"]).rows)
    with pytest.raises(ValueError, match="step '4.2' is not in this table; its steps are 1, 2.1"):
        table.select(steps=["4.2"])


def test_only_keeps_rows_whose_names_match(seed_trace):
    layer = seed_trace.table().select(only=["*.encoder.layers.*"])
    assert layer.rows and all(".encoder.layers." in n for r in layer.rows for n in r.names)
    expected = {r.name for r in seed_trace.table().rows if ".encoder.layers." in r.name}
    assert {r.name for r in layer.rows} == expected
    assert [r.name for r in seed_trace.table().select(only=["memor"]).rows] == [
        "panoptic_head.pixel_decoder.memory"] + [f"panoptic_head.pixel_decoder.multi_scale_memories.{i}"
                                                 for i in range(3)]
    both = seed_trace.table().select(steps=["3.4"], only=["*sampling*"])
    assert [r.name.rsplit(".", 1)[1] for r in both.rows] == ["sampling_offsets", "sampling_locations"]
    with pytest.raises(ValueError, match="no row's name matches 'nothing'"):
        seed_trace.table().select(only=["nothing"])


def test_short_names_are_unique_tails():
    names = ["backbone.feats.{0–3}", "panoptic_head.pixel_decoder.memory",
             "panoptic_head.attn_mask.{0–9}", "panoptic_head.transformer_decoder.layers.{0,3,6}.attn_mask",
             "a.pos_embed.0", "b.pos_embed.0", "backbone.feats.4"]
    assert shortest_unique_names(names) == {
        "backbone.feats.{0–3}": "feats.{0–3}",
        "panoptic_head.pixel_decoder.memory": "memory",
        "panoptic_head.attn_mask.{0–9}": "panoptic_head.attn_mask.{0–9}",
        "panoptic_head.transformer_decoder.layers.{0,3,6}.attn_mask": "layers.{0,3,6}.attn_mask",
        "a.pos_embed.0": "a.pos_embed.0", "b.pos_embed.0": "b.pos_embed.0",
        "backbone.feats.4": "feats.4"}


def test_short_names_in_the_seed_table_stay_unique(seed_trace):
    table = seed_trace.table().select(short_names=True)
    shown = [table.shown_name(r) for r in table.rows]
    assert len(set(shown)) == len(shown)
    assert "memory" in shown and "encoder_inputs" in shown
    assert sum(map(len, shown)) < sum(len(r.name) for r in table.rows) // 2
    assert max(map(len, shown)) < max(len(r.name) for r in table.rows)
    # each short name is the end of its full name
    assert all(r.name.endswith(table.shown_name(r)) for r in table.rows)


def test_every_annotation_has_chinese():
    """Each glob of annotations.ANNOTATIONS has a Chinese note and each step label a Chinese
    label (new rows: add them to annotations_zh.py)."""
    missing_notes = [glob for glob, _, _ in annotations.ANNOTATIONS if glob not in annotations_zh.NOTES_ZH]
    missing_steps = sorted({step for _, step, _ in annotations.ANNOTATIONS} - annotations_zh.STEPS_ZH.keys())
    assert not missing_notes, f"annotations_zh.NOTES_ZH lacks {missing_notes}"
    assert not missing_steps, f"annotations_zh.STEPS_ZH lacks {missing_steps}"
    stale = sorted(annotations_zh.NOTES_ZH.keys() - {glob for glob, _, _ in annotations.ANNOTATIONS})
    assert not stale, f"annotations_zh.NOTES_ZH has globs no annotation uses: {stale}"


def test_chinese_falls_back_to_english_for_untranslated_rows(monkeypatch, seed_trace):
    monkeypatch.delitem(annotations_zh.NOTES_ZH, "*.memory")
    monkeypatch.delitem(annotations_zh.STEPS_ZH, "3.3 encoder")
    table = seed_trace.table().select(lang="zh", only=["*.pixel_decoder.memory"])
    [row] = markdown_rows(table.to_markdown())[1:]
    assert row[0] == "3.3 encoder" and row[-1] == "encoder output, same shape as encoder_inputs"


def test_lang_zh_and_both(seed_trace):
    zh = seed_trace.table().select(lang="zh", steps=["3.4"]).to_markdown()
    assert zh.startswith("**Mask2Former 各张量形状：B=2, H×W=1024×1024")
    assert "| 步骤 | 名称 | 符号形状 | 形状 | 数字从何而来 | 说明 |" in zh
    assert "| 3.4 可变形注意力 |" in zh and "每个头在 L·P 个采样点上做 softmax" in zh
    both = seed_trace.table().select(lang="both", steps=["3.4"]).to_markdown()
    assert "| 3.4 deformable attention / 可变形注意力 |" in both
    assert "softmax over the L·P points of each head / 每个头在 L·P 个采样点上做 softmax" in both
    rows = json.loads(seed_trace.table().select(lang="both", steps=["1"]).to_json())
    assert rows[0]["step"] == "1 backbone" and rows[0]["step_zh"] == "1 主干网络（backbone）"


def test_html_standalone_is_a_page(seed_trace):
    fragment = seed_trace.table().to_html()
    assert fragment.startswith("<table") and "<html" not in fragment
    page = seed_trace.table().select(lang="zh").to_html(standalone=True)
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"zh-Hans\">")
    assert '<meta charset="utf-8">' in page and "position: sticky" in page
    assert page.rstrip().endswith("</html>") and page.count("<table") == 1


def test_table_options_combine_in_one_command(capsys):
    out = run_cli(capsys, "table", "--preset", "small", "--columns", "step,name,shape",
                  "--steps", "3.4", "--short-names", "--lang", "both")
    rows = markdown_rows(out)
    assert rows[0] == ["step / 步骤", "name / 名称", "shape / 形状"]
    assert rows[1] == ["3.4 deformable attention / 可变形注意力", "`value ×6`", "(2, 336, 8, 8)"]   # small: D = 64/8
    assert rows[2] == ["3.4 deformable attention / 可变形注意力", "`sampling_offsets ×6`", "(2, 336, 8, 3, 4, 2)"]
    out = run_cli(capsys, "table", "--preset", "small", "--only", "*.encoder.layers.*",
                  "--format", "csv", "--columns", "name,count")
    assert out.splitlines()[0] == "name,×" and "panoptic_head.pixel_decoder.encoder.layers.0.output,1" in out


def test_cli_rejects_what_a_format_cannot_do(capsys):
    for argv, message in ((["--format", "md", "--slides"], "--slides makes LaTeX beamer frames"),
                          (["--format", "json", "--standalone"], "--standalone makes a complete"),
                          (["--columns", "step,step"], "expected distinct names")):
        with pytest.raises(SystemExit) as exc:
            main(["table", "--preset", "small", *argv])
        assert exc.value.code == 2
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["table"], ["summary"], ["diagram"]])
def test_output_into_a_missing_folder_or_onto_a_folder_is_one_line(tmp_path, argv):
    """One line naming the path, exit status 2, no traceback, nothing written."""
    name = "a.svg" if argv == ["diagram"] else "a.md"
    for target, why in ((tmp_path / "missing" / name, "does not exist"), (tmp_path, "is a folder")):
        result = subprocess.run([sys.executable, "-m", "m2f_teach", *argv, "--preset", "small", "-o", str(target)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --output ") and why in lines[0], result.stderr
        assert str(target) in lines[0] and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_help_does_not_promise_instant(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "table" in text and "diagram" in text and "instant" not in text
    with pytest.raises(SystemExit):
        main(["table", "--help"])
    text = capsys.readouterr().out
    for flag in ("--columns", "--steps", "--only", "--short-names", "--lang", "--slides", "--standalone"):
        assert flag in text
    assert "instant" not in text


def test_table_command_imports_no_compiler_plots_or_scipy():
    """Cold start: `table` imports torch and the model, not torch._dynamo (the meta trace used
    to), sympy, scipy, matplotlib or transformers."""
    code = ("import runpy, sys\nsys.argv = ['m2f_teach', 'table', '--preset', 'small']\n"
            "runpy.run_module('m2f_teach', run_name='__main__')\n"
            "heavy = ['torch._dynamo', 'sympy', 'scipy', 'matplotlib', 'transformers']\n"
            "print([m for m in heavy if m in sys.modules], file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "[]"
    assert re.search(r"sampling_offsets", result.stdout)
