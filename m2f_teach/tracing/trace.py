"""Tracing: run a forward pass and record every named tensor and every module call.

    from m2f_teach.tracing import trace, trace_shapes
    t = trace(model, images, keep=["*.sampling_locations", "panoptic_head.attn_mask.*"])
    t.names()                                   # named tensors, in call order
    t.shape("panoptic_head.pixel_decoder.encoder_inputs")   # (21504, 2, 256) at the seed
    t.value("panoptic_head.attn_mask.0")        # kept tensors only
    t.table()                                   # the annotated shape table

    t = trace_shapes(M2FConfig.seed())          # the whole seed on `meta`: shapes, no FLOPs

Two kinds of record:
* `tensor`: what the model passes through a `Tap` (`feat_projected`, `reference_points`, ...),
  with its symbolic shape in the glossary letters, checked against the concrete shape;
* `module`: the output shape of every module call, from forward hooks.

Only tensors matched by `keep` keep their values (a copy, detached); every other record holds its
shape alone, so tracing the seed configuration stays small. Tensors the model computes only to be
looked at (the decoder's attention weights, see `Tap.keeps`) are computed only when kept; otherwise
their records take the shape of a `meta` stand-in, so such a trace costs what it did without them. Hooks are removed when the trace ends,
whether the forward pass succeeded or raised.
"""
from __future__ import annotations

import contextlib
import difflib
import fnmatch
import functools
from dataclasses import dataclass, field

import torch
from torch import nn

from ..model.config import M2FConfig
from ..model.tap import Tap
from .shape_rules import ShapeOnlyMode


class SymbolicShapeError(ValueError):
    """A traced tensor's concrete shape disagrees with its symbolic shape."""


@dataclass
class Record:
    """One traced tensor or module call."""

    name: str                      # e.g. "panoptic_head.pixel_decoder.encoder.layers.3.self_attn.sampling_offsets"
    kind: str                      # "tensor" (a Tap) or "module" (a module call)
    order: int                     # position in call order, over both kinds
    shape: tuple[int, ...] | list  # concrete shape; a module returning several tensors gives a list
    dtype: str = ""
    symbolic: str = ""             # glossary letters, e.g. "B S nH L P 2"
    module: str = ""               # the module the tensor was tapped in (or the called module)
    module_type: str = ""
    index: int | None = None       # loop index (level, prediction)
    level: int | None = None       # encoder level of the tensor, when it has one
    sizes: dict = field(default_factory=dict)  # the letter values used to check `symbolic`
    value: torch.Tensor | None = field(default=None, repr=False)

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape if self.shape and isinstance(self.shape[0], int) else ():
            n *= s
        return n


def _tensor_shape(x):
    if isinstance(x, torch.Tensor):
        return tuple(x.shape)
    if isinstance(x, (list, tuple)):
        shapes = [_tensor_shape(v) for v in x]
        return [s for s in shapes if s is not None] or None
    return None


def _first_dtype(x):
    if isinstance(x, torch.Tensor):
        return str(x.dtype).replace("torch.", "")
    if isinstance(x, (list, tuple)):
        for v in x:
            d = _first_dtype(v)
            if d:
                return d
    return ""


def symbol_values(config: M2FConfig | None, batch_size: int | None = None,
                  image_size: tuple[int, int] | None = None) -> tuple[dict, list]:
    """Glossary letters → values, and the (H_l, W_l) of each level, for a given input."""
    if config is None:
        return {}, []
    changes = {}
    if batch_size is not None:
        changes["batch_size"] = batch_size
    if image_size is not None:
        changes["image_size"] = image_size
    try:
        config = config.replace(**changes) if changes else config
    except ValueError:
        pass  # the model's own input check will say what is wrong
    return config.symbols(), list(config.spatial_shapes)


def evaluate_symbolic(symbolic: str, env: dict) -> tuple:
    """`"B*nH Q H_l*W_l"` with the letters' values → a tuple of ints, one per token."""
    dims = []
    for token in symbolic.split():
        expr = token.replace("·", "*")
        try:
            value = eval(expr, {"__builtins__": {}}, env)  # noqa: S307 - our own glossary strings
        except NameError as e:
            raise SymbolicShapeError(f"symbolic shape {symbolic!r}: unknown letter in {token!r} ({e}); "
                                     f"known letters: {', '.join(sorted(env))}") from None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        dims.append(value)
    return tuple(dims)


class Trace:
    """The records of one traced forward pass (see the module docstring)."""

    def __init__(self, records: list[Record], config: M2FConfig | None, outputs=None,
                 device: str = "cpu"):
        self.records = records
        self.config = config
        self.outputs = outputs
        self.device = device
        self._by_name = {r.name: r for r in records if r.kind == "tensor"}
        self._calls = {r.name: r for r in records if r.kind == "module"}

    # ---- looking things up --------------------------------------------------------------------
    @property
    def tensors(self) -> list[Record]:
        return [r for r in self.records if r.kind == "tensor"]

    @property
    def calls(self) -> list[Record]:
        return [r for r in self.records if r.kind == "module"]

    def names(self, kind: str = "tensor", pattern: str | None = None) -> list[str]:
        """Recorded names in call order; `kind` is "tensor", "module" or "all"."""
        if kind not in ("tensor", "module", "all"):
            raise ValueError(f"kind must be 'tensor', 'module' or 'all', got {kind!r}")
        names = [r.name for r in self.records if kind == "all" or r.kind == kind]
        return [n for n in names if pattern is None or fnmatch.fnmatchcase(n, pattern)]

    def record(self, name: str) -> Record:
        if name in self._by_name:
            return self._by_name[name]
        if name in self._calls:
            return self._calls[name]
        close = difflib.get_close_matches(name, list(self._by_name) + list(self._calls), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else "; see Trace.names()"
        raise KeyError(f"no record named {name!r} in this trace{hint}")

    def __contains__(self, name: str) -> bool:
        return name in self._by_name or name in self._calls

    def __getitem__(self, name: str) -> Record:
        return self.record(name)

    def __len__(self) -> int:
        return len(self.records)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.record(name).shape

    def value(self, name: str) -> torch.Tensor:
        rec = self.record(name)
        if rec.value is None:
            raise KeyError(f"{name!r} was traced for its shape only; pass keep=[{name!r}] "
                           f"(or a glob pattern) to trace() to keep its values")
        return rec.value

    def find(self, pattern: str, kind: str = "tensor") -> list[Record]:
        """Records whose name matches a glob pattern, in call order."""
        return [self.record(n) for n in self.names(kind, pattern)]

    # ---- presenting ---------------------------------------------------------------------------
    def table(self, collapse: bool = True, include_modules: bool = False):
        """The annotated shape table (see `m2f_teach.tracing.table`)."""
        from .table import ShapeTable
        return ShapeTable.from_trace(self, collapse=collapse, include_modules=include_modules)

    def _repr_html_(self):
        return self.table().to_html()

    def __repr__(self):
        n_t, n_m = len(self.tensors), len(self.calls)
        kept = sum(r.value is not None for r in self.tensors)
        return f"<Trace on {self.device}: {n_t} tensors ({kept} kept), {n_m} module calls>"


class _Recorder:
    """Holds the hooks of one trace and turns hook calls into `Record`s."""

    def __init__(self, model: nn.Module, keep: list[str], env: dict, levels: list, check: bool,
                 record_modules: bool):
        self.keep, self.env, self.levels, self.check = keep, env, levels, check
        self.records: list[Record] = []
        self.module_calls: dict[str, int] = {}
        self.tensor_calls: dict[str, int] = {}
        self.handles = []
        self.kept_patterns: set[str] = set()
        self.taps: list[Tap] = []
        for qualname, module in model.named_modules():
            if isinstance(module, Tap):
                owner = qualname.rsplit(".", 1)[0] if "." in qualname else ""
                self.handles.append(module.register_forward_hook(
                    functools.partial(self.on_tap, owner), with_kwargs=True))
                module.keeps_values = functools.partial(self.keeps, owner)
                self.taps.append(module)
            elif record_modules:
                self.handles.append(module.register_forward_hook(
                    functools.partial(self.on_module, qualname or type(module).__name__)))

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles.clear()
        for tap in self.taps:
            tap.keeps_values = None
        self.taps.clear()

    def full_name(self, owner, name, index=None):
        name = name if not owner else f"{owner}.{name}"
        return name if index is None else f"{name}.{index}"

    def keeps(self, owner, name, index=None) -> bool:
        """Whether this trace keeps the values of a tap's tensor (a tensor computed only to be
        looked at is skipped when they are not kept, see `Tap.keeps`)."""
        full = self.full_name(owner, name, index)
        return any(fnmatch.fnmatchcase(full, pattern) for pattern in self.keep)

    def on_tap(self, owner, module, args, kwargs, output):
        name = self.full_name(owner, kwargs["name"], kwargs.get("index"))
        # a model run twice in one trace (a wrapper, a nested call): `name#1`, `name#2`, ...
        n = self.tensor_calls.get(name, 0)
        self.tensor_calls[name] = n + 1
        name = name if n == 0 else f"{name}#{n}"
        shape = tuple(output.shape)
        symbolic, level = kwargs["symbolic"], kwargs.get("level")
        env = dict(self.env)
        if level is not None and level < len(self.levels):
            env["H_l"], env["W_l"] = self.levels[level]
        env.update(kwargs.get("sizes") or {})
        if self.check and symbolic:
            expected = evaluate_symbolic(symbolic, env)
            if expected != shape:
                raise SymbolicShapeError(
                    f"{name}: concrete shape {shape} does not match its symbolic shape "
                    f"({symbolic}) = {expected}")
        value = None
        for pattern in self.keep:
            if fnmatch.fnmatchcase(name, pattern):
                self.kept_patterns.add(pattern)
                value = output.detach().clone()
        used = {k: env[k] for tok in symbolic.split() for k in _letters(tok) if k in env}
        self.records.append(Record(name=name, kind="tensor", order=len(self.records), shape=shape,
                                   dtype=str(output.dtype).replace("torch.", ""), symbolic=symbolic,
                                   module=owner, module_type=type(module).__name__,
                                   index=kwargs.get("index"), level=level, sizes=used, value=value))

    def on_module(self, qualname, module, args, output):
        n = self.module_calls.get(qualname, 0)
        self.module_calls[qualname] = n + 1
        name = qualname if n == 0 else f"{qualname}#{n}"
        self.records.append(Record(name=name, kind="module", order=len(self.records),
                                   shape=_tensor_shape(output) or (), dtype=_first_dtype(output),
                                   module=qualname, module_type=type(module).__name__, index=n))


def _letters(token: str) -> list[str]:
    out, cur = [], ""
    for ch in token:
        if ch.isalnum() or ch == "_":
            cur += ch
        else:
            if cur:
                out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def trace(model: nn.Module, *inputs, keep: str | list[str] | tuple = (), check: bool = True,
          record_modules: bool = True, config: M2FConfig | None = None, **kwargs) -> Trace:
    """Run `model(*inputs, **kwargs)` with hooks and return its `Trace`.

    * `keep`: names or glob patterns of tensors whose values to keep (a copy); every pattern
      must match at least one name, else a `ValueError` lists the names that exist.
    * `check`: compare every symbolic shape with the concrete one (`SymbolicShapeError`).
    * `record_modules`: also record the output shape of every module call.
    * `config`: the `M2FConfig` whose letters the symbolic shapes use (default `model.config`).

    Runs under `torch.no_grad()` unless some input requires grad. Hooks are always removed.
    """
    keep = [keep] if isinstance(keep, str) else list(keep)
    for pattern in keep:
        if not isinstance(pattern, str) or not pattern:
            raise TypeError(f"keep must hold non-empty name patterns (str), got {pattern!r}")
    config = config if config is not None else getattr(model, "config", None)
    batch_size = image_size = None
    if inputs and isinstance(inputs[0], torch.Tensor) and inputs[0].dim() == 4:
        batch_size, image_size = inputs[0].shape[0], tuple(inputs[0].shape[-2:])
    env, levels = symbol_values(config, batch_size, image_size)
    recorder = _Recorder(model, keep, env, levels, check, record_modules)
    device = "cpu"
    for x in inputs:
        if isinstance(x, torch.Tensor):
            device = str(x.device)
            break
    needs_grad = any(isinstance(x, torch.Tensor) and x.requires_grad for x in inputs)
    is_meta = device == "meta"
    try:
        grad = contextlib.nullcontext() if needs_grad else torch.no_grad()
        mode = ShapeOnlyMode() if is_meta else contextlib.nullcontext()
        with grad, mode:
            outputs = model(*inputs, **kwargs)
    finally:
        recorder.remove()
    missing = [p for p in keep if p not in recorder.kept_patterns]
    if missing:
        names = [r.name for r in recorder.records if r.kind == "tensor"]
        close = sorted({m for p in missing for m in difflib.get_close_matches(p, names, n=3, cutoff=0.4)})
        raise ValueError(f"keep pattern(s) {missing} matched no traced tensor name"
                         + (f"; close names: {close}" if close else "")
                         + f"; {len(names)} names exist, e.g. {names[:3]} (see Trace.names())")
    effective = config
    if config is not None and batch_size is not None:
        try:
            effective = config.replace(batch_size=batch_size, image_size=image_size)
        except ValueError:
            effective = config
    return Trace(recorder.records, effective, outputs, device)
