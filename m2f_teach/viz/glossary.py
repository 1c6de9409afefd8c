"""The glossary letters with their meaning and their value at a configuration.

This module is where the glossary lives: the one list of letters every table, code comment and
notebook of the package uses (`MEANINGS` below; notebook 00 prints it at the seed).
"""
from __future__ import annotations

MEANINGS = {
    "B": "batch", "H": "image height", "W": "image width", "C": "hidden channels",
    "S": "tokens over all encoder levels, Σ H_l·W_l",
    "S_q": "query tokens of deformable attention (= S in the encoder)", "nH": "attention heads", "L": "encoder levels",
    "P": "sampling points per head and level", "D": "head dim, C / nH", "Q": "queries",
    "K": "classes + 1 (no-object)", "Hm": "mask-feature height, H/4", "Wm": "mask-feature width, W/4",
    "F_e": "encoder FFN channels", "F_d": "decoder FFN channels", "C_m": "mask-feature channels",
    "C_in": "image channels",
}


def glossary(config) -> list[tuple[str, str, int]]:
    """`[(letter, meaning, value)]` at `config`, in the order of `config.symbols()`."""
    return [(k, MEANINGS.get(k, ""), v) for k, v in config.symbols().items()]


def glossary_text(config, levels: bool = True) -> str:
    """The glossary as aligned plain text (deterministic, for notebook outputs)."""
    rows = glossary(config)
    lines = [f"{k:<5} {v:>6}  {m}" for k, m, v in rows]
    if levels:
        for i, (h, w) in enumerate(config.spatial_shapes):
            lines.append(f"H_{i},W_{i} {h:>3}×{w:<3} level {i} (stride {config.level_strides[i]})")
    return "\n".join(lines)
