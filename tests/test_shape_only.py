"""ShapeOnlyMode answers meta ops from their inputs' shapes: every answer must be the shape and
dtype torch's own meta kernel gives (the reference), and a shape-only trace must not import the
compiler (`torch._dynamo`) or sympy, which cost a fresh process about 2 s."""
import subprocess
import sys

import pytest
import torch

from m2f_teach import M2FConfig
from m2f_teach.tracing import shape_only
from m2f_teach.tracing.shape_rules import SHAPE_RULES, ShapeOnlyMode, broadcast_shape

aten = torch.ops.aten


def meta(*shape, dtype=torch.float32):
    return torch.empty(shape, dtype=dtype, device="meta")


def _signature(out):
    if isinstance(out, torch.Tensor):
        return (tuple(out.shape), out.dtype, out.device.type)
    return tuple(_signature(o) for o in out)


def _answer(func, args, kwargs):
    """The rule's answer, or None where the rule leaves the op to torch."""
    out = SHAPE_RULES[func](*args, **kwargs)
    return None if out is NotImplemented else _signature(out)


CASES = [
    (aten.arange.default, (5,), {"device": "meta"}),
    (aten.arange.default, (5,), {"dtype": torch.float32, "device": "meta"}),
    (aten.arange.start, (2, 7.5), {"device": "meta"}),
    (aten.arange.start_step, (0, 10, 3), {"device": "meta", "dtype": torch.int32}),
    (aten.arange.start_step, (1.0, 0.0, -0.25), {"device": "meta"}),
    (aten.cumsum.default, (meta(3, 4, dtype=torch.int32), 0), {}),
    (aten.cumsum.default, (meta(3, 4), 1), {}),
    (aten.cumsum.default, (meta(3, 4, dtype=torch.bool), 1), {"dtype": torch.int16}),
    (aten.all.dim, (meta(3, 4, dtype=torch.bool), -1), {}),
    (aten.all.dim, (meta(3, 4), 0, True), {}),
    (aten.prod.dim_int, (meta(3, 2, dtype=torch.int32), 1), {}),
    (aten.prod.dim_int, (meta(3, 2), 0, True), {}),
    (aten.stack.default, ([meta(2, 3), meta(2, 3)], -1), {}),
    (aten.stack.default, ([meta(2, 3)] * 3,), {}),
    (aten.cat.default, ([meta(2, 3), meta(2, 5)], 1), {}),
    (aten.cat.default, ([meta(2, 3), meta(4, 3)],), {}),
    (aten.repeat.default, (meta(3, 4), [2, 1, 3]), {}),
    (aten.mm.default, (meta(5, 3), meta(3, 7)), {}),
    (aten.bmm.default, (meta(2, 5, 3), meta(2, 3, 7)), {}),
    (aten.convolution.default, (meta(2, 3, 17, 20), meta(8, 3, 3, 5), None, [2, 1], [1, 2], [1, 2], False, [0, 0], 1), {}),
    (aten.convolution.default, (meta(2, 4, 9, 9), meta(4, 1, 3, 3), meta(4), [1, 1], [1, 1], [1, 1], False, [0, 0], 4), {}),
    (aten.max_pool2d_with_indices.default, (meta(2, 3, 15, 16), [3, 3], [2, 2], [1, 1]), {}),
    (aten.max_pool2d_with_indices.default, (meta(1, 2, 8, 9), [2, 2]), {}),
    (aten._embedding_bag_forward_only.default,
     (meta(50, 6), meta(12, dtype=torch.int64), meta(4, dtype=torch.int64), False, 0, False, meta(12)), {}),
    (aten._embedding_bag_forward_only.default,
     (meta(50, 6), meta(12, dtype=torch.int32), meta(3, dtype=torch.int32), False, 0, False, meta(12)), {}),
    (aten.masked_fill.Scalar, (meta(2, 3, 4), meta(3, 1, dtype=torch.bool), 0.0), {}),
    (aten.rsub.Scalar, (meta(2, 3, dtype=torch.int64), 1.5), {}),
    (aten.mul.Scalar, (meta(2, 3, dtype=torch.int32), 2), {}),
    (aten.pow.Scalar, (10000, meta(7)), {}),
    (aten.pow.Scalar, (2, meta(7, dtype=torch.int64)), {}),
    (aten.sin.default, (meta(3, 2),), {}),
    (aten.abs.default, (meta(3, dtype=torch.int64),), {}),
    (aten.floor.default, (meta(3, 2),), {}),
    (aten.bitwise_not.default, (meta(3, dtype=torch.bool),), {}),
    (aten.sigmoid.default, (meta(2, 2, dtype=torch.float64),), {}),
    (aten.zeros_like.default, (meta(2, 5),), {"dtype": torch.bool}),
    (aten._softmax.default, (meta(2, 5), -1, False), {}),
    (aten._safe_softmax.default, (meta(2, 5), -1), {}),
    (aten.add.Tensor, (meta(2, 1, 4), meta(3, 1)), {}),
    (aten.div.Tensor, (meta(2, 3, dtype=torch.int64), meta(3, dtype=torch.int64)), {}),
    (aten.lt.Scalar, (meta(4, 1), 0.5), {}),
]


@pytest.mark.parametrize("func, args, kwargs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule_matches_torchs_meta_kernel(func, args, kwargs):
    answer = _answer(func, args, kwargs)
    assert answer is not None, "the rule should answer this case"
    assert answer == _signature(func(*args, **kwargs))


def test_rules_leave_what_they_do_not_know_to_torch():
    assert _answer(aten.sin.default, (meta(3, dtype=torch.int64),), {}) is None
    assert _answer(aten.all.dim, (meta(3, dtype=torch.uint8), 0), {}) is None
    assert _answer(aten.arange.default, (5,), {"device": "cpu"}) is None
    assert _answer(aten.max_pool2d_with_indices.default, (meta(1, 2, 8, 9), [2, 2], [2, 2], [0, 0], [1, 1], True), {}) is None
    assert _answer(aten.stack.default, ([meta(2, 3), meta(2, 3, dtype=torch.float64)],), {}) is None
    with ShapeOnlyMode():                      # and the mode then runs torch's own kernel
        assert torch.arange(4, dtype=torch.int64).sin().dtype == torch.float32


def test_in_place_initialisers_return_their_tensor():
    x = meta(3, 4)
    for func, args in ((aten.normal_.default, (x, 0.0, 1.0)), (aten.uniform_.default, (x, -1.0, 1.0)),
                       (aten.zero_.default, (x,)), (aten.fill_.Scalar, (x, 2.0)),
                       (aten.masked_fill_.Scalar, (x, meta(4, dtype=torch.bool), 0.0))):
        assert SHAPE_RULES[func](*args) is x


def test_broadcast_shape_is_numpys():
    assert broadcast_shape((2, 1, 4), (3, 1), ()) == (2, 3, 4) == torch.broadcast_shapes((2, 1, 4), (3, 1), ())
    with pytest.raises(RuntimeError, match="do not broadcast"):
        broadcast_shape((2, 3), (4,))


def test_every_rule_answers_as_torch_does_in_the_seed_trace(monkeypatch):
    """Every call a rule answered while building and tracing the seed, checked against torch."""
    seen = {}
    original = ShapeOnlyMode.__torch_dispatch__

    def recording(self, func, types, args=(), kwargs=None):
        if func in SHAPE_RULES and func not in seen:
            seen[func] = (args, dict(kwargs or {}))
        return original(self, func, types, args, kwargs)

    monkeypatch.setattr(ShapeOnlyMode, "__torch_dispatch__", recording)
    monkeypatch.setattr(shape_only, "_META_MODELS", {})
    shape_only.trace_shapes(M2FConfig.seed())
    assert len(seen) >= 25
    for func, (args, kwargs) in seen.items():
        answer = _answer(func, args, kwargs)
        if answer is not None and not func.name().endswith("_"):     # in-place ones: above
            assert answer == _signature(func(*args, **kwargs)), func


def test_a_fresh_trace_imports_no_compiler():
    code = ("import sys\nfrom m2f_teach import M2FConfig\nfrom m2f_teach.tracing import trace_shapes\n"
            "trace_shapes(M2FConfig.seed())\n"
            "print([m for m in ('torch._dynamo', 'sympy') if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
