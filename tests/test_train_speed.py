"""The training step's speed options compute what the plain step computes."""
import argparse

import pytest
import torch

from m2f_teach.model import M2FConfig, Mask2Former
from m2f_teach.training.options import add_arguments
from m2f_teach.training.train import make_optimizer, param_groups, training_forward


def test_fused_adamw_makes_the_same_update_as_plain_adamw():
    torch.manual_seed(0)
    model = Mask2Former(M2FConfig.shapes())
    plain = Mask2Former(M2FConfig.shapes())
    plain.load_state_dict(model.state_dict())
    fused = make_optimizer(model, 1e-3, 0.05, "cpu")
    reference = torch.optim.AdamW(param_groups(plain, 0.05), lr=1e-3, eps=1e-8, foreach=False)
    assert fused.defaults["fused"]
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        for p, q in zip(model.parameters(), plain.parameters()):
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        fused.step()
        reference.step()
    moved = [not torch.equal(p, q) for p, q in zip(model.parameters(), Mask2Former(M2FConfig.shapes()).parameters())]
    assert all(moved)                                    # every parameter was updated
    for p, q in zip(model.parameters(), plain.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_compile_mode_is_checked_and_off_by_default():
    parser = add_arguments(argparse.ArgumentParser())
    assert parser.parse_args([]).compile is None
    assert parser.parse_args(["--compile"]).compile == "default"
    assert parser.parse_args(["--compile", "reduce-overhead"]).compile == "reduce-overhead"
    with pytest.raises(SystemExit):
        parser.parse_args(["--compile", "fastest"])
    model = torch.nn.Linear(2, 2)
    assert training_forward(model, None) is model
