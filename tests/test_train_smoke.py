"""A short training run on CPU: the loss falls, a checkpoint is written, runs are reproducible
(also across the number of data-loading processes)."""
import argparse

import torch
from safetensors.torch import load_file

from m2f_teach.training.cli import add_parser
from m2f_teach.training.options import add_arguments
from m2f_teach.training.train import train


def args_for(tmp_path, name, **changes):
    args = add_arguments(argparse.ArgumentParser()).parse_args([])
    values = dict(steps=30, batch_size=2, val_every=1000, val_images=2, test_images=2, log_every=1,
                  device="cpu", workers=0, no_progress=True, out=str(tmp_path / f"{name}.safetensors"))
    values.update(changes)
    for key, value in values.items():
        setattr(args, key, value)
    return args


def test_loss_falls_in_30_steps(tmp_path):
    torch.set_num_threads(2)
    info = train(args_for(tmp_path, "smoke"))
    losses = info["history"]["loss"]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    state = load_file(str(tmp_path / "smoke.safetensors"))
    assert "panoptic_head.cls_embed.weight" in state
    assert (tmp_path / "smoke.json").exists() and (tmp_path / "smoke.png").exists()


def test_same_seed_same_weights(tmp_path):
    # the second run draws its batches in two worker processes: the same batches, the same weights
    torch.set_num_threads(2)
    a = train(args_for(tmp_path, "a", steps=2, test_images=1))
    b = train(args_for(tmp_path, "b", steps=2, test_images=1, workers=2))
    assert a["history"]["loss"] == b["history"]["loss"]
    wa, wb = load_file(str(tmp_path / "a.safetensors")), load_file(str(tmp_path / "b.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_cli_parser_registers_train():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    args = parser.parse_args(["train", "--steps", "5"])
    assert args.steps == 5 and callable(args.func)


def test_max_seconds_stops_early_and_still_saves(tmp_path):
    torch.set_num_threads(2)
    info = train(args_for(tmp_path, "early", steps=30, test_images=1, max_seconds=1e-9))
    assert info["steps_done"] == 1 and info["history"]["val"][-1]["step"] == 1
    assert (tmp_path / "early.safetensors").exists()


def test_init_continues_from_a_checkpoint(tmp_path):
    """`--init` starts from saved weights: one step at lr 0 writes the parameters back unchanged
    (BatchNorm's running statistics move, since training updates them), and the held-out scores
    are the checkpoint's, far above a random start."""
    from m2f_teach.pretrained import _weights_file
    torch.set_num_threads(2)
    shipped = str(_weights_file(".safetensors"))
    info = train(args_for(tmp_path, "cont", steps=1, lr=0.0, test_images=4, init=shipped))
    before, after = load_file(shipped), load_file(str(tmp_path / "cont.safetensors"))
    assert before.keys() == after.keys()
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    assert all(torch.equal(before[k], after[k]) for k in before if not k.endswith(buffers))
    assert info["test"]["miou"] > 0.6


def test_stop_after_keeps_the_schedule_of_steps(tmp_path):
    """`--stop-after 3` of `--steps 6` makes the same first three updates as the full run, not
    those of a 3-step run, whose last update already has the ×0.1 drops."""
    torch.set_num_threads(2)
    common = dict(test_images=1, warmup=1, lr=1e-3)
    stopped = train(args_for(tmp_path, "stopped", steps=6, stop_after=3, **common))
    short = train(args_for(tmp_path, "short", steps=3, **common))
    assert stopped["steps_done"] == 3 and stopped["history"]["val"][-1]["step"] == 3
    assert stopped["history"]["loss"] == short["history"]["loss"]       # same batches, same first updates
    ws, wr = load_file(str(tmp_path / "stopped.safetensors")), load_file(str(tmp_path / "short.safetensors"))
    assert not all(torch.equal(ws[k], wr[k]) for k in ws)               # the third update's lr differs


def test_bad_arguments_are_named(tmp_path):
    import pytest
    with pytest.raises(ValueError, match=r"--stop-after 7: expected 0 \(never\) to --steps 6"):
        train(args_for(tmp_path, "bad", steps=6, stop_after=7))
    with pytest.raises(ValueError, match="--batch-size 0"):
        train(args_for(tmp_path, "bad", batch_size=0))
    with pytest.raises(FileNotFoundError, match="--init nowhere.safetensors"):
        train(args_for(tmp_path, "bad", init="nowhere.safetensors"))
