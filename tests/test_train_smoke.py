"""A short training run on CPU: the loss falls, a checkpoint is written, runs are reproducible
(also across the number of data-loading processes)."""
import argparse

import torch
from safetensors.torch import load_file

from m2f_teach.training.train import add_arguments, add_parser, train


def args_for(tmp_path, name, **changes):
    args = add_arguments(argparse.ArgumentParser()).parse_args([])
    values = dict(steps=30, batch_size=2, val_every=1000, val_images=2, test_images=2, log_every=1,
                  device="cpu", workers=0, no_progress=True, out=str(tmp_path / f"{name}.safetensors"))
    values.update(changes)
    for key, value in values.items():
        setattr(args, key, value)
    return args


def test_loss_falls(tmp_path):
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
