"""Every prose cell of every notebook carries its Chinese, and each glossary term has one spelling.

A prose cell is a markdown cell with at least 25 English words outside code spans; it must
carry Chinese, at least 0.8 CJK characters per English word (a faithful translation runs at
about 1.5). Chinese lines in notebooks and in the Chinese table strings must not use a
variant listed in `m2f_teach.glossary_zh.VARIANTS_ZH`.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from m2f_teach import glossary_zh
from m2f_teach.tracing import annotations_zh

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
CJK = re.compile(r"[\u4e00-\u9fff]")
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
CODE_SPAN = re.compile(r"```.*?```|`[^`\n]*`", re.S)
MIN_WORDS = 25
MIN_CJK_PER_WORD = 0.8


def english_words(text: str) -> int:
    return len(WORD.findall(CODE_SPAN.sub("", text)))


def prose_cells_without_chinese(cells: list[dict]) -> list[str]:
    """'cell i: n English words, m CJK characters' for each prose cell short of Chinese."""
    short = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        words, cjk = english_words(text), len(CJK.findall(text))
        if words >= MIN_WORDS and cjk < MIN_CJK_PER_WORD * words:
            short.append(f"cell {i}: {words} English words, {cjk} CJK characters")
    return short


def variant_spellings(text: str) -> list[str]:
    """'term: variant in «line»' for each Chinese line that spells a glossary term another way."""
    found = []
    for line in text.splitlines():
        if not CJK.search(line):
            continue
        for term, patterns in glossary_zh.VARIANTS_ZH.items():
            for pattern in patterns:
                m = re.search(pattern, line)
                if m:
                    found.append(f"{term!r} spelled {m.group(0)!r} (use "
                                 f"{glossary_zh.TERMS_ZH[term]!r}) in: {line.strip()[:80]}")
    return found


def markdown_text(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_prose_cell_of_the_notebook_carries_its_chinese(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    short = prose_cells_without_chinese(cells)
    assert not short, "prose cells without their Chinese:\n" + "\n".join(short)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_spells_each_glossary_term_one_way(path):
    found = variant_spellings(markdown_text(path))
    assert not found, "\n".join(found)


def test_the_chinese_table_strings_spell_each_glossary_term_one_way():
    text = "\n".join([*annotations_zh.STEPS_ZH.values(), *annotations_zh.NOTES_ZH.values()])
    found = variant_spellings(text)
    assert not found, "\n".join(found)


def test_the_checks_catch_an_english_only_cell_and_a_second_spelling():
    english = {"cell_type": "markdown", "source": ["word " * 30]}
    translated = {"cell_type": "markdown", "source": ["word " * 30 + "\n\n**中文：**" + "词" * 30]}
    assert prose_cells_without_chinese([english, translated]) == [
        "cell 0: 30 English words, 0 CJK characters"]
    assert variant_spellings("关掉全遮挡行重置后")
    assert variant_spellings("见本笔记第 3 节") and variant_spellings("见 notebook 09")
    assert not variant_spellings("种子笔记与本笔记本，全部屏蔽时重置")


def test_every_variant_names_a_glossary_term():
    assert set(glossary_zh.VARIANTS_ZH) <= set(glossary_zh.TERMS_ZH)
    assert glossary_zh.zh("notebook") == "笔记本"
    with pytest.raises(KeyError, match="no Chinese term for 'nope'"):
        glossary_zh.zh("nope")


PACKAGE_TEXT = sorted(p for pattern in ("m2f_teach/**/*.py", "m2f_teach/**/*.js", "m2f_teach/**/*.html", "README.md")
                      for p in (Path(__file__).resolve().parents[1]).glob(pattern)
                      if p.name != "glossary_zh.py")


@pytest.mark.parametrize("path", PACKAGE_TEXT, ids=lambda p: p.name)
def test_the_package_slides_and_site_spell_each_glossary_term_one_way(path):
    found = variant_spellings(path.read_text(encoding="utf-8"))
    assert not found, "\n".join(found)
