"""From the last prediction to results: Mask2Former's three tasks for one image.

Inputs are the last decoder prediction of one image, `cls_pred (Q, K)` (class logits, K − 1 =
no-object) and its mask logits: either `mask_pred (Q, h, w)` already at the size the results
should have, or `MaskLogits(mask_pred (Q, Hm, Wm), pad_shape, img_shape, ori_shape)`, which
resizes as mmdetection does (`resize_mask_pred`) one query at a time, when it is needed. The
rules are mmdetection's `MaskFormerFusionHead` and HF's `Mask2FormerImageProcessor.post_process_*`:

* instance: scores `softmax(cls)[:, :K−1]`, the top `max_per_image` of the Q·(K−1)
  (query, class) pairs; a pair's mask is its query's `mask_pred > 0`, its score the class
  probability × the mean sigmoid inside the mask (the "mask score"). Only thing classes.
* semantic: `Σ_q softmax(cls)[q, c] · sigmoid(mask)[q]` per class c, argmax per pixel; with
  `min_probability > 0`, a pixel whose best sum is below it gets −1 (no class).
* panoptic: keep queries whose best class is not no-object and whose probability exceeds
  `object_mask_threshold`; each pixel goes to the kept query with the largest
  `score · sigmoid(mask)`; a query whose pixels are at most `overlap_threshold` of its own
  mask (`sigmoid ≥ 0.5`) is dropped; with `filter_low_score` (mmdet's Mask2Former config) a
  segment keeps only its pixels where its own mask is ≥ 0.5; stuff classes merge into one
  segment per class.

Where HF's panoptic post-processing differs from mmdetection and the original Mask2Former, we
follow mmdetection: HF measures a query's own mask area after multiplying it by its score;
after merging a stuff class into an earlier segment, HF can give the next segment an id that
is already taken (transformers 5.x `compute_segments`). Segment ids here are 1, 2, ... in
query order, one per thing and one per stuff class.

Memory follows what is kept, not Q × the photo: the (query, class) pairs and queries are chosen
and thresholded on `cls_pred` first (a pair's score is its class probability × a mask score
≤ 1, so a pair whose class probability is below `score_threshold` can never pass), then each
survivor's mask is resized to the image alone (instance, panoptic: `F.interpolate`, the same
numbers as resizing all Q masks first; `tests/test_predict.py` checks both against HF and
mmdetection). Semantic needs every query at every pixel: it runs in bands of rows, each band's
rows resized by the same bilinear rule (`interpolate_rows`, equal up to float rounding).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_mask_pred(mask_pred: torch.Tensor, pad_shape, img_shape, ori_shape) -> torch.Tensor:
    """mmdet's `Mask2Former.predict` + `MaskFormerFusionHead.predict(rescale=True)`:
    `(Q, Hm, Wm)` logits → the padded input size → crop the padding → the original size."""
    mask_pred = F.interpolate(mask_pred[None], size=tuple(pad_shape), mode="bilinear",
                              align_corners=False)[0]                       # (Q, H_pad, W_pad)
    h, w = img_shape
    mask_pred = mask_pred[:, :h, :w]                                         # (Q, h, w)
    if tuple(ori_shape) != (h, w):
        mask_pred = F.interpolate(mask_pred[None], size=tuple(ori_shape), mode="bilinear",
                                  align_corners=False)[0]                   # (Q, H_ori, W_ori)
    return mask_pred


class MaskLogits:
    """One image's mask logits, resized to the image (`resize_mask_pred`) a few queries at a time.

    `MaskLogits(mask_pred)` with a `(Q, h, w)` tensor already at the result size; with the
    sizes, `mask_pred (Q, Hm, Wm)` as the model gives it. `self[idx]` → `(len(idx), h, w)`
    float32 logits of those queries; `len(self)` = Q; `self.shape` = `(h, w)`."""

    def __init__(self, mask_pred: torch.Tensor, pad_shape=None, img_shape=None, ori_shape=None):
        self.mask_pred = mask_pred
        self.sizes = None if pad_shape is None else (tuple(pad_shape), tuple(img_shape), tuple(ori_shape))
        self.shape = tuple(mask_pred.shape[-2:]) if pad_shape is None else tuple(ori_shape)

    def __len__(self) -> int:
        return self.mask_pred.shape[0]

    def __getitem__(self, idx) -> torch.Tensor:
        selected = self.mask_pred[idx].float()
        if self.sizes is None:
            return selected
        return resize_mask_pred(selected, *self.sizes)                       # (n, h, w)


    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows `start..stop−1` of every query's resized logits, `(Q, stop − start, w)`, by the
        same bilinear rule computed for those rows only (`interpolate_rows`)."""
        if self.sizes is None:
            return self.mask_pred[:, start:stop].float()
        pad_shape, (h, w), ori_shape = self.sizes
        mask_pred = self.mask_pred.float()                                   # (Q, Hm, Wm)
        if ori_shape == (h, w):
            return interpolate_rows(mask_pred, mask_pred.shape[1], pad_shape, start, stop)[..., :w]
        y0, y1, _, _ = linear_weights(h, ori_shape[0], start, stop)
        first, last = int(y0.min()), int(y1.max()) + 1                       # rows of the cropped image
        cropped = interpolate_rows(mask_pred, mask_pred.shape[1], pad_shape, first, last)[..., :w]
        return interpolate_rows(cropped, h, ori_shape, start, stop, first_row=first)   # (Q, n, W_ori)


def linear_weights(in_size: int, out_size: int, start: int, stop: int):
    """PyTorch's bilinear rule (`align_corners=False`) for output indices `start..stop−1`:
    source `(i + 0.5) · in/out − 0.5` clamped at 0, its two neighbours and their weights."""
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    source = (scale * (torch.arange(start, stop, dtype=torch.float32) + 0.5) - 0.5).clamp(min=0)
    i0 = source.floor().long().clamp(max=in_size - 1)
    w1 = (source - i0).clamp(0, 1)
    return i0, torch.where(i0 < in_size - 1, i0 + 1, i0), 1 - w1, w1


def interpolate_rows(x: torch.Tensor, in_height: int, size, start: int, stop: int,
                     first_row: int = 0) -> torch.Tensor:
    """Rows `start..stop−1` of `F.interpolate(image, size, mode="bilinear")` for an image
    `in_height` rows tall of which `x (Q, n, W_in)` holds rows `first_row..`: `(Q, stop − start, W)`.
    Equal to `F.interpolate` up to float rounding of the weights (`test_predict.py` pins it)."""
    H, W = size
    y0, y1, a0, a1 = linear_weights(in_height, H, start, stop)
    x0, x1, b0, b1 = linear_weights(x.shape[-1], W, 0, W)
    top, bottom = x[:, y0 - first_row], x[:, y1 - first_row]                # (Q, n, W_in) each
    top = top[..., x0] * b0 + top[..., x1] * b1                              # (Q, n, W)
    bottom = bottom[..., x0] * b0 + bottom[..., x1] * b1                     # (Q, n, W)
    return top * a0[:, None] + bottom * a1[:, None]                          # (Q, n, W)


def as_mask_logits(mask_pred) -> MaskLogits:
    return mask_pred if isinstance(mask_pred, MaskLogits) else MaskLogits(mask_pred)


def mask_boxes(masks) -> torch.Tensor:
    """`N` masks `(h, w)` bool → `(N, 4)` int boxes `(x0, y0, x1, y1)`, x1 and y1 one past the last
    pixel (mmdet's `mask2bbox`, detectron2's `BitMasks.get_bounding_boxes`); empty masks → 0s."""
    boxes = torch.zeros((len(masks), 4), dtype=torch.int64)
    for i, mask in enumerate(masks):
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        if len(rows):
            boxes[i] = torch.stack([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
    return boxes


def instance_postprocess(cls_pred: torch.Tensor, mask_pred, max_per_image: int | None = None,
                         num_things: int | None = None, score_threshold: float | None = None) -> dict:
    """`labels (N,)`, `scores (N,)`, `masks` (a list of N `(h, w)` bool tensors, never stacked:
    memory of the kept masks only), `boxes (N, 4)`, `queries (N,)`, best score first.

    `max_per_image` defaults to Q (mmdet's 100 at Q = 100, HF's num_queries);
    `num_things=None` treats every class as a thing. `score_threshold=None` returns all
    `max_per_image` pairs (as mmdet); a number keeps pairs scoring at least it with a non-empty
    mask, and resizes only the masks of pairs whose class probability reaches it."""
    Q, K = cls_pred.shape
    num_classes = K - 1
    mask_pred = as_mask_logits(mask_pred)
    scores = F.softmax(cls_pred.float(), dim=-1)[:, :-1]                     # (Q, K−1)
    labels = torch.arange(num_classes).unsqueeze(0).repeat(Q, 1).flatten(0, 1)  # (Q·(K−1),)
    k = Q if max_per_image is None else min(max_per_image, Q * num_classes)
    scores_per_image, top_indices = scores.flatten(0, 1).topk(k, sorted=True)   # (k,)
    labels_per_image = labels[top_indices]
    query_indices = torch.div(top_indices, num_classes, rounding_mode="floor")
    keep = torch.ones(k, dtype=torch.bool)
    if num_things is not None:
        keep &= labels_per_image < num_things
    if score_threshold is not None:                # the mask score is ≤ 1: these can never pass
        keep &= scores_per_image >= score_threshold
    scores_per_image, labels_per_image = scores_per_image[keep], labels_per_image[keep]
    query_indices = query_indices[keep]
    masks: list[torch.Tensor] = []
    det_scores = torch.zeros(len(query_indices))
    for i, q in enumerate(query_indices.tolist()):      # one query at a time: memory of one mask
        logits = mask_pred[[q]][0]                                           # (h, w)
        binary = (logits > 0).float()
        # the mask score: mean sigmoid inside the predicted mask
        mask_score = (logits.sigmoid() * binary).sum() / (binary.sum() + 1e-6)
        det_scores[i] = scores_per_image[i] * mask_score
        keep_mask = score_threshold is None or (bool(det_scores[i] >= score_threshold) and bool(binary.any()))
        masks.append(binary.bool() if keep_mask else None)
    found = torch.tensor([m is not None for m in masks], dtype=torch.bool)
    det_scores, labels_per_image, query_indices = det_scores[found], labels_per_image[found], query_indices[found]
    masks = [m for m in masks if m is not None]
    order = det_scores.argsort(descending=True, stable=True)
    masks = [masks[i] for i in order.tolist()]
    return {"labels": labels_per_image[order], "scores": det_scores[order], "masks": masks,
            "boxes": mask_boxes(masks), "queries": query_indices[order]}


BAND_BYTES = 2**25     # semantic: about this many bytes of (Q + K − 1) planes per band of rows


def semantic_postprocess(cls_pred: torch.Tensor, mask_pred, min_probability: float = 0.0) -> dict:
    """`segmentation (h, w)` class ids (int64; −1 where the best class's sum is below
    `min_probability`) and `probability (h, w)`, that best sum.

    Computed in bands of rows (`MaskLogits.rows`), all queries and classes at once in each
    band: memory follows `BAND_BYTES`, not (Q + K) × the photo. An image that fits in one band
    (at Q = 100, about 80 000 pixels) is one `einsum`, as HF computes it."""
    cls_score = F.softmax(cls_pred.float(), dim=-1)[:, :-1]                  # (Q, K−1)
    mask_pred = as_mask_logits(mask_pred)
    Q, num_classes = cls_score.shape
    h, w = mask_pred.shape
    band = max(1, BAND_BYTES // (4 * w * (Q + num_classes)))
    probability = torch.empty((h, w))
    segmentation = torch.empty((h, w), dtype=torch.int64)
    for start in range(0, h, band):
        stop = min(start + band, h)
        mask_prob = mask_pred.rows(start, stop).sigmoid()                    # (Q, n, w)
        # Σ_q softmax(cls)[q, c] · sigmoid(mask)[q]
        seg_scores = torch.einsum("qc,qhw->chw", cls_score, mask_prob)       # (K−1, n, w)
        probability[start:stop] = seg_scores.max(0).values
        segmentation[start:stop] = seg_scores.argmax(0)
    if min_probability > 0:
        segmentation[probability < min_probability] = -1
    return {"segmentation": segmentation, "probability": probability}


def panoptic_postprocess(cls_pred: torch.Tensor, mask_pred, object_mask_threshold: float = 0.8,
                         overlap_threshold: float = 0.8, num_things: int | None = None,
                         filter_low_score: bool = True) -> dict:
    """`segmentation (h, w)` int32 segment ids (0 = no segment) and `segments`: a list of
    `{"id", "label", "score", "is_thing", "query"}`, ids 1, 2, ... in query order.

    Defaults are mmdet's Mask2Former test_cfg (`object_mask_thr=0.8`, `iou_thr=0.8`,
    `filter_low_score=True`: a segment keeps only pixels where its own mask is ≥ 0.5, so
    pixels no query claims stay 0). HF's are `threshold=0.5` and no filtering.
    `num_things=None` treats every class as a thing (no stuff: nothing merges).
    The kept queries' masks are resized one at a time (twice each), never all at once."""
    Q, K = cls_pred.shape
    num_classes = K - 1
    mask_pred = as_mask_logits(mask_pred)
    scores, labels = F.softmax(cls_pred.float(), dim=-1).max(-1)             # (Q,), (Q,)
    keep = labels.ne(num_classes) & (scores > object_mask_threshold)
    queries = keep.nonzero().flatten()
    cur_scores, cur_classes = scores[keep], labels[keep]
    h, w = mask_pred.shape
    segmentation = torch.zeros((h, w), dtype=torch.int32)
    segments: list[dict] = []
    if len(queries) == 0:
        return {"segmentation": segmentation, "segments": segments}
    # (cur_scores · cur_masks).argmax(0), one query at a time: strict > keeps the first maximum
    best = torch.full((h, w), -1.0)
    cur_mask_ids = torch.zeros((h, w), dtype=torch.int64)                    # (h, w)
    for k, q in enumerate(queries.tolist()):
        value = cur_scores[k] * mask_pred[[q]][0].sigmoid()
        better = value > best
        best = torch.where(better, value, best)
        cur_mask_ids[better] = k
    del best
    stuff_segment: dict[int, int] = {}
    for k, q in enumerate(queries.tolist()):
        label = int(cur_classes[k])
        is_thing = num_things is None or label < num_things
        own = mask_pred[[q]][0].sigmoid() >= 0.5                             # (h, w)
        mask = cur_mask_ids == k
        mask_area = int(mask.sum())
        original_area = int(own.sum())
        if filter_low_score:
            mask = mask & own
        if mask_area == 0 or original_area == 0 or not mask_area / original_area > overlap_threshold:
            continue
        if not mask.any():           # every pixel it won was below 0.5 of its own mask
            continue
        if not is_thing and label in stuff_segment:
            segment_id = stuff_segment[label]
        else:
            segment_id = len({s["id"] for s in segments}) + 1
            if not is_thing:
                stuff_segment[label] = segment_id
        segmentation[mask] = segment_id
        segments.append({"id": segment_id, "label": label, "score": float(cur_scores[k]),
                         "is_thing": is_thing, "query": q})
    return {"segmentation": segmentation, "segments": segments}
