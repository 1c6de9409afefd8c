"""The model's code reads like the seed: every line that changes a shape says the shape it makes.

STYLE.md: "Every line that changes a shape ends with its shape: `# (S, B, C)`". This test reads
the files of `m2f_teach/model/` (backbones included) and of `m2f_teach/kernels/`, and fails on a
shape-changing call whose statement carries no shape comment in the glossary's letters.
"""
import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

import m2f_teach.kernels
import m2f_teach.model

MODEL_DIR = Path(m2f_teach.model.__file__).parent
KERNELS_DIR = Path(m2f_teach.kernels.__file__).parent
SHAPE_CHANGING = {"view", "reshape", "permute", "flatten", "transpose", "einsum", "repeat", "split",
                  "cat", "stack", "unsqueeze", "unbind"}
# a shape comment: "# (B, S_q, nH, L, P, 2)", "# L × (B, C, H_l, W_l)", "# (Q, B, C) -> (B, Q, C)"
SHAPE_COMMENT = re.compile(r"#.*\((?:[A-Za-z_0-9·*/+−\- ]+, )*[A-Za-z_0-9·*/+−\- ]+,?\)")


def shape_changing_statements(source: str):
    """`(first line, last line, op)` of every statement that calls a shape-changing op."""
    tree = ast.parse(source)
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.For,
                                                                 ast.If, ast.With, ast.While, ast.Try)):
            for call in ast.walk(node):
                if isinstance(call, ast.Call):
                    func = call.func
                    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                    if name in SHAPE_CHANGING:
                        found[(node.lineno, node.end_lineno)] = name
    return sorted((a, b, op) for (a, b), op in found.items())


def comments_by_line(source: str) -> dict[int, str]:
    return {tok.start[0]: tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type == tokenize.COMMENT}


def missing_shape_comments(path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    comments = comments_by_line(source)
    lines = source.splitlines()
    missing = []
    for first, last, op in shape_changing_statements(source):
        if not any(SHAPE_COMMENT.search(comments.get(n, "")) for n in range(first, last + 1)):
            missing.append(f"{path.name}:{first}: {op}: {lines[first - 1].strip()}")
    return missing


MODEL_FILES = sorted(p for p in MODEL_DIR.rglob("*.py") if p.name != "__init__.py")
KERNEL_FILES = sorted(p for p in KERNELS_DIR.glob("*.py"))


@pytest.mark.parametrize("path", MODEL_FILES + KERNEL_FILES,
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shape_changing_line_in_the_model_states_its_shape(path):
    assert missing_shape_comments(path) == []


def test_the_style_check_finds_a_line_without_a_shape(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("x = y.view(B, S, nH, D)\nz = y.view(B, S, nH, D)  # (B, S, nH, D)\n"
                   "w = torch.cat(\n    [a, b], dim=0)  # (2·S, B, C)\n", encoding="utf-8")
    assert missing_shape_comments(bad) == ["bad.py:1: view: x = y.view(B, S, nH, D)"]


def imported_rooms(path: Path, package_dir: Path) -> set[str]:
    """The m2f_teach rooms (`model`, `kernels`, `tracing`, ...) a file imports from, relative or absolute."""
    package = ["m2f_teach", *path.parent.relative_to(package_dir).parts]
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                names = [base + (node.module.split(".") if node.module else [a.name]) for a in node.names]
            else:
                names = [node.module.split(".")]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".") for a in node.names]
        else:
            continue
        rooms |= {name[1] if len(name) > 1 else "" for name in names if name[0] == "m2f_teach"}
    return rooms


def test_the_model_imports_none_of_the_tools():
    """The model room imports only itself and the kernels room; the kernels import nothing of ours."""
    package_dir = MODEL_DIR.parent
    for path in MODEL_FILES:
        assert imported_rooms(path, package_dir) <= {"model", "kernels"}, path.name
    for path in KERNEL_FILES:
        assert imported_rooms(path, package_dir) <= {"kernels"}, path.name


def test_the_room_check_sees_an_import_of_a_tool(tmp_path):
    model = tmp_path / "m2f_teach" / "model" / "backbones"
    model.mkdir(parents=True)
    (model / "bad.py").write_text("from ...tracing import trace\nfrom ..tap import Tap\n", encoding="utf-8")
    assert imported_rooms(model / "bad.py", tmp_path / "m2f_teach") == {"tracing", "model"}
