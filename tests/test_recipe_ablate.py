"""The lecture recipe, train's model flags, `ablate`, the live plot and the shipped results."""
import argparse
import json
import subprocess
import sys

import pytest
import torch

from m2f_teach import M2FConfig
from m2f_teach.convert.checkpoint import load_checkpoint
from m2f_teach.training import ablate
from m2f_teach.training.options import BASE, RECIPES, add_arguments, resolve_recipe, training_config
from m2f_teach.training.train import lr_factor, train


def parse(*flags):
    return resolve_recipe(add_arguments(argparse.ArgumentParser()).parse_args(list(flags)))


def test_recipe_fills_unset_flags_and_given_flags_win():
    plain, lecture = parse(), parse("--recipe", "lecture")
    assert plain.steps == BASE["steps"] and plain.image_size is None
    assert lecture.steps == RECIPES["lecture"]["steps"] and tuple(lecture.image_size) == (128, 128)
    assert lecture.steps != plain.steps
    mine = parse("--recipe", "lecture", "--steps", "7", "--lr", "3e-4")
    assert (mine.steps, mine.lr, mine.batch_size) == (7, 3e-4, RECIPES["lecture"]["batch_size"])


def test_lecture_recipe_keeps_the_mechanisms_the_notebooks_teach():
    config = training_config(parse("--recipe", "lecture"))
    seed = M2FConfig.seed()
    for field in ("num_levels", "num_heads", "num_points"):
        assert getattr(config, field) == getattr(seed, field), field
    # a deformable encoder, a masked-attention decoder cycling over the levels, the reset: all on
    assert config.deformable_encoder and config.masked_attention and config.reset_all_blocked
    assert (config.num_encoder_layers, config.num_decoder_layers, config.num_queries) == (3, 6, 10)
    assert config.num_decoder_layers % config.num_levels == 0        # every level read twice
    # only the layer and query counts differ from the shipped checkpoint's model
    assert config == M2FConfig.shapes(num_encoder_layers=3, num_decoder_layers=6, num_queries=10)
    assert training_config(parse("--recipe", "shipped-30min")) == M2FConfig.shapes()


def test_model_flags_build_the_ablations():
    config = training_config(parse("--deformable-encoder", "false", "--masked-attention", "off",
                                   "--num-points", "1", "--num-queries", "10", "--image-size", "64", "96"))
    assert (config.deformable_encoder, config.masked_attention, config.num_points) == (False, False, 1)
    assert (config.num_queries, config.image_size) == (10, (64, 96))
    assert training_config(parse()) == M2FConfig.shapes()
    with pytest.raises(ValueError, match="multiples of 32"):
        training_config(parse("--image-size", "100", "96"))


def test_cosine_schedule_warms_up_then_falls_to_zero():
    steps, warmup = 100, 10
    assert lr_factor(0, steps, warmup, "cosine") == pytest.approx(0.1)
    assert lr_factor(warmup, steps, warmup, "cosine") == pytest.approx(1.0)
    assert lr_factor(55, steps, warmup, "cosine") == pytest.approx(0.5)
    assert lr_factor(steps, steps, warmup, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(95, steps, warmup) == pytest.approx(0.01)       # the step schedule as before


def test_trained_checkpoint_loads_in_one_line(tmp_path):
    torch.set_num_threads(2)
    args = parse("--steps", "1", "--batch-size", "2", "--image-size", "64", "64", "--num-queries", "8",
                 "--val-images", "1", "--test-images", "1", "--workers", "0", "--device", "cpu",
                 "--no-progress", "--out", str(tmp_path / "mine.safetensors"))
    seen = []
    info = train(args, on_log=lambda history: seen.append(len(history["step"])))
    model = load_checkpoint(tmp_path / "mine.safetensors")
    assert model.config == M2FConfig.shapes(image_size=(64, 64), num_queries=8)
    assert info["config"]["num_queries"] == 8 and seen           # the callback saw the run
    stored = json.loads((tmp_path / "mine.json").read_text())
    assert stored["command"].startswith("python -m m2f_teach train")


def test_ablate_trains_collects_and_records_a_nan(tmp_path, monkeypatch, cli):
    out = tmp_path / "abl"
    status = cli(["ablate", "--variants", "faithful", "points_1", "--seeds", "0", "1", "--steps", "1",
                  "--workers", "0", "--val-images", "1", "--test-images", "1", "--device", "cpu",
                  "--no-progress", "--out-dir", str(out)])
    assert status == 0
    assert sorted(p.name for p in out.glob("*.json")) == ["ablations.json", "faithful.json", "faithful.seed1.json",
                                                          "points_1.json", "points_1.seed1.json"]
    results = json.loads((out / "ablations.json").read_text())
    assert list(results["runs"]) == ["faithful", "points_1"] and results["seeds"] == [0, 1]
    points = results["runs"]["points_1"]
    assert points["flags"] == ["--num-points", "1"] and [s["seed"] for s in points["seeds"]] == [0, 1]
    seed1 = json.loads((out / "points_1.seed1.json").read_text())
    assert seed1["args"]["seed"] == 1 and points["seeds"][1]["test"] == seed1["test"]
    scores = torch.tensor([s["test"]["class_acc"] for s in points["seeds"]])
    assert (points["class_acc_mean"], points["class_acc_std"]) == pytest.approx(
        (scores.mean().item(), scores.std().item()), abs=1e-4)
    assert results["format"] == ablate.FORMAT and results["recipe"] == json.loads(json.dumps(RECIPES["lecture"]))

    def nan_train(args, on_log=None):
        on_log(dict(step=[0], loss=[1.0], val=[]))
        raise FloatingPointError("loss is nan at step 1")
    monkeypatch.setattr("m2f_teach.training.train.train", nan_train)
    assert cli(["ablate", "--variants", "no_reset", "--seeds", "0", "--steps", "1", "--out-dir", str(out)]) == 0
    results = json.loads((out / "ablations.json").read_text())
    assert results["runs"]["no_reset"]["diverged"] == "loss is nan at step 1"
    assert list(results["runs"]) == ["faithful", "no_reset", "points_1"]   # VARIANTS order


def test_ablate_collect_on_an_empty_folder_is_one_line(tmp_path, capsys, cli):
    assert cli(["ablate", "--collect", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out-dir") and "no finished variant" in err and "Traceback" not in err


def test_clear_differences_are_the_ones_beyond_two_standard_deviations():
    def run(*scores):
        mean, std = ablate.mean_and_std(list(scores))
        return dict(seeds=[dict(seed=i) for i in range(len(scores))], class_acc_mean=mean, class_acc_std=std)
    results = dict(runs=dict(faithful=run(0.90, 0.92, 0.94), far=run(0.70, 0.72, 0.74),
                             near=run(0.85, 0.90, 0.95), one=run(0.5)))
    assert ablate.mean_and_std([0.90, 0.92, 0.94]) == (0.92, 0.02)
    assert ablate.clear_differences(results) == {"far": -0.2}   # near: 0.02 < 2 × 0.05; one: a single seed


def test_ablate_seeds_must_differ(tmp_path, capsys, cli):
    assert cli(["ablate", "--seeds", "0", "0", "--out-dir", str(tmp_path)]) == 2
    assert "--seeds 0 0: expected different integers ≥ 0" in capsys.readouterr().err


def test_shipped_results_match_the_code():
    from m2f_teach.results import ablation_runs, lecture_run
    results = ablation_runs()
    # measured with the earlier lecture recipe, one seed per variant (format 1): its flags still run it
    assert results["format"] == "m2f-teach-ablations/1"
    recipe = {k: v for k, v in RECIPES["shipped-30min"].items() if k != "workers"}   # ablate set its own
    assert results["recipe"] == json.loads(json.dumps(recipe))
    for name, run in results["runs"].items():
        assert run["steps_done"] == RECIPES["shipped-30min"]["steps"] and "diverged" not in run
        parse("--recipe", "shipped-30min", *run["flags"])
    lecture = lecture_run()
    assert lecture["args"]["recipe"] == "lecture" and lecture["steps_done"] == RECIPES["lecture"]["steps"]
    assert lecture["device"] == "cpu" and lecture["train_seconds"] <= 30 * 60


def test_lecture_search_holds_what_notebook_09_reads():
    from m2f_teach.data.shapes import CLASS_NAMES
    from m2f_teach.results import lecture_run, lecture_search
    search, lecture = lecture_search(), lecture_run()
    assert set(search["runs"]) == {"steps_2000", "size_160", "h100_5min"}
    for run in search["runs"].values():
        assert run["command"].startswith("python -m m2f_teach train ")
        assert run["val"][-1]["step"] == run["steps_done"] and set(run["test"]) >= {"miou", "class_acc", "detected"}
    assert search["runs"]["steps_2000"]["steps_done"] == 2000 and search["runs"]["size_160"]["image_size"] == [160, 160]
    for run in search["runs"].values():                  # the earlier recipe's flags still run them
        assert run["command"].startswith("python -m m2f_teach train ") and "--recipe lecture" not in run["command"]
    earlier = search["shipped_30min_run"]
    assert earlier["command"].startswith("python -m m2f_teach train --recipe shipped-30min")
    assert earlier["device"] == "cpu" and earlier["train_seconds"] <= 30 * 60
    for confusion, scored in ((search["lecture_confusion"], lecture), (search["shipped_30min_confusion"], earlier)):
        counts = confusion["counts"]
        assert confusion["classes"] == list(CLASS_NAMES) and len(counts) == len(CLASS_NAMES)
        # the confusion is over the same held-out objects as the run's test score
        assert sum(map(sum, counts)) == scored["test"]["num_instances"]
        assert round(sum(counts[i][i] for i in range(len(counts))) / sum(map(sum, counts)), 4) == scored["test"]["class_acc"]


def test_live_plot_redraws_every_nth_log_and_after_validation(monkeypatch):
    from m2f_teach.viz.training import LivePlot
    live, draws = LivePlot(every=3), []
    monkeypatch.setattr(live, "draw", lambda: (draws.append(live.calls), setattr(live, "vals_drawn",
                                                                                  len(live.history["val"]))))
    history = dict(step=[], loss=[], val=[])
    for k in range(1, 8):
        history["step"].append(k)
        if k == 5:
            history["val"].append(dict(step=5, miou=0.5, class_acc=0.5))
        live(history)
    assert draws == [3, 5, 6]


def test_train_imports_no_widgets():
    code = ("import sys, m2f_teach.training.train, m2f_teach.viz.training; "
            "print('ipywidgets' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_diagram_refuses_the_fpn_only_ablation_in_one_line(tmp_path, capsys, cli):
    out = tmp_path / "arch.svg"
    assert cli(["diagram", "--preset", "shapes", "--deformable-encoder", "false", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --deformable-encoder false") and "table" in err and not out.exists()


def test_saved_files_follow_the_umask(tmp_path):
    import os
    from m2f_teach.files import atomic_write
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.json", lambda tmp: open(tmp, "w").write("{}"))
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644


def test_viz_reaches_names_and_submodules_lazily():
    code = ("import sys, m2f_teach.viz as viz; assert 'm2f_teach.viz.predictions' not in sys.modules; "
            "f = viz.predictions.class_names_for; g = viz.plot_history; "
            "print(callable(f), callable(g), hasattr(viz, 'no_such_thing'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "True", "False"]
