"""COCO run-length encoding of binary masks, written out so no extra package is needed.

    rle = encode(mask)            # {"size": [h, w], "counts": "<string>"}
    mask = decode(rle)            # (h, w) bool
    # the same dict works with pycocotools: pycocotools.mask.decode(rle) (counts as bytes or str)

COCO RLE reads the mask column by column (Fortran order), counts alternating runs of 0 and 1
starting with 0, and packs the counts into a string: each count after the second is stored as
its difference to the count two before, in 5-bit groups, a continuation bit 0x20, + 48 (ASCII).
This is `rleToString`/`rleFrString` of the COCO API (`maskApi.c`).
"""
from __future__ import annotations

import numpy as np


def run_lengths(mask) -> list[int]:
    """Alternating runs of 0 and 1 in column-major order, starting with a (possibly empty) 0-run."""
    flat = np.asarray(mask, dtype=bool).flatten(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0] + runs
    return runs


def counts_to_string(counts: list[int]) -> str:
    chars = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            chars.append(chr(c + 48))
    return "".join(chars)


def string_to_counts(s: str) -> list[int]:
    counts, p = [], 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def encode(mask) -> dict:
    """`(h, w)` binary mask → COCO compressed RLE `{"size": [h, w], "counts": str}`."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be (h, w), got shape {mask.shape}")
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts_to_string(run_lengths(mask))}


def decode(rle: dict) -> np.ndarray:
    """COCO compressed RLE → `(h, w)` bool."""
    h, w = rle["size"]
    counts = rle["counts"]
    counts = string_to_counts(counts.decode() if isinstance(counts, bytes) else counts)
    if sum(counts) != h * w or any(n < 0 for n in counts):   # else the mask is padded or cut silently
        raise ValueError(f"RLE size {[h, w]} holds {h * w} pixels but its counts add up to {sum(counts)}"
                         + (" and include negative runs" if any(n < 0 for n in counts) else ""))
    values = np.zeros(h * w, dtype=bool)
    position, value = 0, False
    for n in counts:
        values[position:position + n] = value
        position, value = position + n, not value
    return values.reshape((h, w), order="F")
