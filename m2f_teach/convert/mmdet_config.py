"""Reading an mmdetection config without running it.

An mmdet config is a Python file, and mmengine's `Config.fromfile` executes it: a config
downloaded with a checkpoint could run anything. m2f-teach reads configs as *data* instead:

* the text is parsed with `ast` and only literals are evaluated: numbers, strings, `True`,
  `None`, lists, tuples, dicts, `dict(key=value, ...)`, names assigned earlier in the same
  file, and `+ - * / //` on those (a list repeated at most 100 000 times). A call of any
  other function, an attribute, an import or `{{_base_.x}}` is not run; it becomes an
  `Unresolved` marker, and is an error only where the converter needs that value;
* `_base_ = [...]` files are read the same way, relative to the config, and merged as mmengine
  merges them (dicts key by key, `_delete_=True` replaces);
* a checkpoint that mmengine wrote carries its resolved config as text in `meta['cfg']`: that
  text is read the same way, so `--config` is often unnecessary.

`trust=True` (`--trust-config`) runs `Config.fromfile` instead, for configs this reader
cannot follow; it warns, since it executes the file.
"""
from __future__ import annotations

import ast
import operator
import os
import warnings
from pathlib import Path

from .strict import ConversionError

MAX_REPEAT = 100_000
MAX_BASE_DEPTH = 8


class Unresolved(str):
    """A value the literal reader did not evaluate (a call, an attribute, `{{_base_.x}}`)."""

    def __repr__(self):
        return f"<unresolved {str(self)}>"


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv}


class _LiteralReader:
    def __init__(self, source: str, names: dict):
        self.source, self.names = source, names

    def value(self, node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self.value(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):           # {**other}
                return Unresolved(ast.unparse(node))
            return {self.value(k): self.value(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" \
                and not node.args and all(k.arg is not None for k in node.keywords):
            return {k.arg: self.value(k.value) for k in node.keywords}
        if isinstance(node, ast.Name):
            if node.id in self.names:
                return self.names[node.id]
            return Unresolved(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.value(node.operand)
            if isinstance(operand, (int, float)) and not isinstance(operand, bool):
                return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self.value(node.left), self.value(node.right)
            if not isinstance(left, Unresolved) and not isinstance(right, Unresolved):
                return self._binary(node, left, right)
        return Unresolved(ast.unparse(node))

    def _binary(self, node, left, right):
        number = (int, float)
        if isinstance(node.op, ast.Mult) and isinstance(left, (list, tuple, str)) and isinstance(right, int):
            left, right = right, left
        if isinstance(node.op, ast.Mult) and isinstance(left, int) and isinstance(right, (list, tuple, str)):
            if not 0 <= left * max(1, len(right)) <= MAX_REPEAT:
                raise ConversionError(f"{self.source}: line {node.lineno}: a repetition of {left} is "
                                      f"larger than this reader accepts ({MAX_REPEAT})")
            return right * left
        ok = (isinstance(left, number) and isinstance(right, number)) or (
            isinstance(node.op, ast.Add) and type(left) is type(right) and isinstance(left, (str, list, tuple))
            and len(left) + len(right) <= MAX_REPEAT)
        if not ok:
            return Unresolved(ast.unparse(node))
        try:
            return _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ConversionError(f"{self.source}: line {node.lineno}: division by zero") from None


def parse_config_text(text: str, source: str = "config") -> dict:
    """The top-level assignments of an mmdet config's text, literals only (nothing executed)."""
    try:
        tree = ast.parse(text, filename=source)
    except SyntaxError as err:
        raise ConversionError(f"{source}: line {err.lineno}: not valid Python syntax ({err.msg})") from None
    names: dict = {}
    reader = _LiteralReader(source, names)
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and all(isinstance(t, ast.Name) for t in statement.targets):
            value = reader.value(statement.value)
            for target in statement.targets:
                names[target.id] = value
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name) and statement.value:
            names[statement.target.id] = reader.value(statement.value)
        # imports, function definitions, if-blocks...: read as nothing, never run
    return names


def merge(child: dict, base: dict) -> dict:
    """mmengine's merge: `child` into a copy of `base`, dicts key by key; `_delete_=True` replaces."""
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and value.get("_delete_"):
            out[key] = {k: v for k, v in value.items() if k != "_delete_"}
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(value, out[key])
        else:
            out[key] = value
    return out


def read_config_file(path: str | os.PathLike, depth: int = 0) -> dict:
    """A `.py` config file and its `_base_` files, read as literals and merged."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    if path.suffix != ".py":
        raise ConversionError(f"--config {path}: expected an mmdet config (.py)")
    if depth > MAX_BASE_DEPTH:
        raise ConversionError(f"--config {path}: _base_ files nest deeper than {MAX_BASE_DEPTH}")
    names = parse_config_text(path.read_text(encoding="utf-8"), str(path))
    bases = names.pop("_base_", [])
    bases = [bases] if isinstance(bases, str) else bases
    merged: dict = {}
    for base in bases:
        if not isinstance(base, str) or isinstance(base, Unresolved):
            raise ConversionError(f"--config {path}: _base_ entry {base!r} is not a file name")
        base_path = path.parent / base
        if not base_path.is_file():
            raise FileNotFoundError(f"--config {path}: its _base_ file {base_path} does not exist (keep the "
                                    f"config beside its _base_ files, as in mmdetection's configs folder)")
        merged = merge(read_config_file(base_path, depth + 1), merged)
    return merge(names, merged)


def read_config_trusted(path) -> dict:
    """`mmengine.Config.fromfile`: EXECUTES the file; only for `--trust-config`."""
    warnings.warn(f"--trust-config: executing {path} as Python (mmengine Config.fromfile)", stacklevel=2)
    try:
        from mmengine.config import Config
    except ImportError:
        raise ConversionError("--trust-config needs mmengine (pip install mmengine)") from None
    return Config.fromfile(str(path)).to_dict()


def model_section(config, source: str) -> dict:
    """`config['model']` (or `config` itself when it is the model section) as a plain dict."""
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    if not isinstance(config, dict):
        raise ConversionError(f"{source}: expected an mmdet config, got {type(config).__name__}")
    model = config.get("model", config)
    if not isinstance(model, dict) or not isinstance(model.get("panoptic_head"), dict):
        raise ConversionError(f"{source}: not an mmdet Mask2Former config (no model.panoptic_head)")
    return model


def load_mmdet_config(config, *, trust: bool = False, source: str | None = None) -> dict:
    """The `model` section of an mmdet config given as a `.py` path, a dict or an mmengine `Config`."""
    if isinstance(config, (str, os.PathLike)):
        source = source or f"--config {config}"
        names = read_config_trusted(config) if trust else read_config_file(config)
        return model_section(names, source)
    return model_section(config, source or "mmdet config")


def load_meta_cfg(text: str, source: str) -> dict | None:
    """The `model` section of the `meta['cfg']` text mmengine stores in a checkpoint, if any."""
    names = parse_config_text(text, f"{source} meta['cfg']")
    try:
        return model_section(names, f"{source} meta['cfg']")
    except ConversionError:
        return None
