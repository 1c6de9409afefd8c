"""Every file a command writes gets the mode a plain `open()` gives it (0666 less the umask):
0644 under umask 022, so a table, diagram or checkpoint copied to a course web server is
readable by all. The files are written whole through `m2f_teach.files.atomic_write`, whose
temporary file (`mkstemp`) starts at 0600."""
import os

import pytest


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def modes(paths) -> dict:
    return {p.name: oct(p.stat().st_mode & 0o777) for p in paths}


@pytest.mark.parametrize("command,names", [
    (["table", "--preset", "small", "--format", "html", "--standalone", "-o", "{dir}/t.html"], ["t.html"]),
    (["summary", "--preset", "small", "--depth", "1", "-o", "{dir}/s.txt"], ["s.txt"]),
    (["diagram", "--preset", "small", "-o", "{dir}/arch.svg"], ["arch.svg"]),
])
def test_table_summary_and_diagram_files_are_readable_by_all_under_umask_022(cli, tmp_path, umask_022,
                                                                              command, names):
    assert cli([c.format(dir=tmp_path) for c in command]) == 0
    assert modes(tmp_path / n for n in names) == {n: "0o644" for n in names}


def test_train_writes_its_checkpoint_json_plot_and_state_readable_by_all_under_umask_022(cli, tmp_path,
                                                                                         umask_022):
    out = tmp_path / "run.safetensors"
    assert cli(["train", "--steps", "2", "--stop-after", "1", "--batch-size", "1", "--image-size", "64", "64",
                "--val-images", "1", "--test-images", "1", "--device", "cpu", "--workers", "0",
                "--no-progress", "--out", str(out)]) == 0
    written = [out, out.with_suffix(".json"), out.with_suffix(".png"), out.with_suffix(".state.pt")]
    assert modes(written) == {p.name: "0o644" for p in written}


def test_convert_and_predict_write_files_readable_by_all_under_umask_022(cli, tmp_path, umask_022):
    pytest.importorskip("transformers")
    import numpy as np
    from PIL import Image

    from m2f_teach.convert.hf_reference import hf_resnet_config, random_hf_model
    hf = random_hf_model(hf_resnet_config(num_labels=3), seed=0)
    hf.save_pretrained(tmp_path / "hf")
    weights = tmp_path / "w.safetensors"
    assert cli(["convert", "--from", "hf", str(tmp_path / "hf"), "-o", str(weights)]) == 0
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(tmp_path / "photo.png")
    assert cli(["predict", str(tmp_path / "photo.png"), "--weights", str(weights), "--resize", "64", "64",
                "-o", str(tmp_path / "overlay.png"), "--json", str(tmp_path / "r.json")]) == 0
    written = [weights, tmp_path / "overlay.png", tmp_path / "r.json"]
    assert modes(written) == {p.name: "0o644" for p in written}


def test_atomic_write_leaves_the_old_file_whole_when_the_writer_fails(tmp_path):
    from m2f_teach.files import atomic_write
    target = tmp_path / "a.json"
    target.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
