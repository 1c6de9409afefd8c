"""One Chinese term for each English term the notebooks, tables and slides teach with.

`TERMS_ZH` maps the English term to the one Chinese spelling used everywhere; `VARIANTS_ZH`
lists, per English term, the spellings that have crept in before (regular expressions) and
must not come back. `tests/test_bilingual.py` reads both and fails on a notebook or a Chinese
table string that uses a variant.

    zh("notebook")            # "笔记本"
    zh("all-blocked reset")   # "全部屏蔽时重置"

"The seed note" is a different term from "notebook": 种子笔记 is the seed, 笔记本 a notebook.
"""
from __future__ import annotations

TERMS_ZH: dict[str, str] = {
    "notebook": "笔记本",
    "seed note": "种子笔记",
    "all-blocked reset": "全部屏蔽时重置",
    "sampling point": "采样点",
    "reference point": "参考点",
    "attention weight": "注意力权重",
    "deformable attention": "可变形注意力",
    "masked attention": "掩码注意力",
    "query": "查询",
    "level": "层级",
    "head": "注意力头",
    "gradient": "梯度",
    "differentiable": "可微",
    "off the map": "超出特征图",
    "meta device": "meta 设备",
    "tap": "探针 (tap)",
    "mask features": "掩码特征",
    "pixel decoder": "像素解码器",
    "detected": "检测到",
}

# Regular expressions, matched on lines that contain Chinese (a CJK character).
VARIANTS_ZH: dict[str, list[str]] = {
    # 笔记 alone means a notebook here; 种子笔记 (the seed note) and 笔记本 are right.
    "notebook": [r"(?<!种子)笔记(?!本)", r"[\u4e00-\u9fff]\s*notebook"],
    "all-blocked reset": [r"全遮挡行重置", r"全遮挡重置", r"全屏蔽行重置"],
    "sampling point": [r"取样点"],
    "reference point": [r"基准点"],
    "masked attention": [r"遮挡注意力", r"屏蔽注意力"],
    "mask features": [r"掩膜特征"],
    "pixel decoder": [r"像素编码器"],
    "detected": [r"检出"],
}


def zh(term: str) -> str:
    """The Chinese spelling of an English glossary term; a clear error for an unknown one."""
    try:
        return TERMS_ZH[term]
    except KeyError:
        raise KeyError(f"no Chinese term for {term!r}; known terms: {sorted(TERMS_ZH)}") from None
