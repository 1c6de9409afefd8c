"""From the last prediction to results: Mask2Former's three tasks for one image.

Inputs are the last decoder prediction of one image, `cls_pred (Q, K)` (class logits, K − 1 =
no-object) and `mask_pred (Q, h, w)` (mask logits, already at the size the results should
have: `resize_mask_pred` does it as mmdetection does). The rules are mmdetection's
`MaskFormerFusionHead` and HF's `Mask2FormerImageProcessor.post_process_*`:

* instance: scores `softmax(cls)[:, :K−1]`, the top `max_per_image` of the Q·(K−1)
  (query, class) pairs; a pair's mask is its query's `mask_pred > 0`, its score the class
  probability × the mean sigmoid inside the mask (the "mask score"). Only thing classes.
* semantic: `Σ_q softmax(cls)[q, c] · sigmoid(mask)[q]` per class c, argmax per pixel.
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


def instance_postprocess(cls_pred: torch.Tensor, mask_pred: torch.Tensor,
                         max_per_image: int | None = None, num_things: int | None = None) -> dict:
    """`labels (N,)`, `scores (N,)`, `masks (N, h, w)` bool, `queries (N,)`, best score first.

    `max_per_image` defaults to Q (mmdet's 100 at Q = 100, HF's num_queries);
    `num_things=None` treats every class as a thing."""
    Q, K = cls_pred.shape
    num_classes = K - 1
    scores = F.softmax(cls_pred.float(), dim=-1)[:, :-1]                     # (Q, K−1)
    labels = torch.arange(num_classes).unsqueeze(0).repeat(Q, 1).flatten(0, 1)  # (Q·(K−1),)
    k = Q if max_per_image is None else min(max_per_image, Q * num_classes)
    scores_per_image, top_indices = scores.flatten(0, 1).topk(k, sorted=True)   # (k,)
    labels_per_image = labels[top_indices]
    query_indices = torch.div(top_indices, num_classes, rounding_mode="floor")
    if num_things is not None:
        is_thing = labels_per_image < num_things
        scores_per_image, labels_per_image = scores_per_image[is_thing], labels_per_image[is_thing]
        query_indices = query_indices[is_thing]
    masks = mask_pred[query_indices].float()                                 # (k, h, w)
    binary = (masks > 0).float()
    # the mask score: mean sigmoid inside the predicted mask
    mask_scores = (masks.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    det_scores = scores_per_image * mask_scores
    order = det_scores.argsort(descending=True, stable=True)
    return {"labels": labels_per_image[order], "scores": det_scores[order],
            "masks": binary[order].bool(), "queries": query_indices[order]}


def semantic_postprocess(cls_pred: torch.Tensor, mask_pred: torch.Tensor) -> dict:
    """`segmentation (h, w)` class ids and `scores (K−1, h, w)`."""
    cls_score = F.softmax(cls_pred.float(), dim=-1)[:, :-1]                  # (Q, K−1)
    mask_prob = mask_pred.float().sigmoid()                                  # (Q, h, w)
    seg_scores = torch.einsum("qc,qhw->chw", cls_score, mask_prob)           # (K−1, h, w)
    return {"segmentation": seg_scores.argmax(0), "scores": seg_scores}


def panoptic_postprocess(cls_pred: torch.Tensor, mask_pred: torch.Tensor,
                         object_mask_threshold: float = 0.8, overlap_threshold: float = 0.8,
                         num_things: int | None = None, filter_low_score: bool = True) -> dict:
    """`segmentation (h, w)` int32 segment ids (0 = no segment) and `segments`: a list of
    `{"id", "label", "score", "is_thing", "query"}`, ids 1, 2, ... in query order.

    Defaults are mmdet's Mask2Former test_cfg (`object_mask_thr=0.8`, `iou_thr=0.8`,
    `filter_low_score=True`: a segment keeps only pixels where its own mask is ≥ 0.5, so
    pixels no query claims stay 0). HF's are `threshold=0.5` and no filtering.
    `num_things=None` treats every class as a thing (no stuff: nothing merges)."""
    Q, K = cls_pred.shape
    num_classes = K - 1
    scores, labels = F.softmax(cls_pred.float(), dim=-1).max(-1)             # (Q,), (Q,)
    mask_prob = mask_pred.float().sigmoid()                                  # (Q, h, w)
    keep = labels.ne(num_classes) & (scores > object_mask_threshold)
    queries = keep.nonzero().flatten()
    cur_scores, cur_classes, cur_masks = scores[keep], labels[keep], mask_prob[keep]
    h, w = mask_prob.shape[-2:]
    segmentation = torch.zeros((h, w), dtype=torch.int32)
    segments: list[dict] = []
    if cur_masks.shape[0] == 0:
        return {"segmentation": segmentation, "segments": segments}
    cur_mask_ids = (cur_scores.view(-1, 1, 1) * cur_masks).argmax(0)         # (h, w)
    stuff_segment: dict[int, int] = {}
    for k in range(cur_classes.shape[0]):
        label = int(cur_classes[k])
        is_thing = num_things is None or label < num_things
        mask = cur_mask_ids == k
        mask_area = int(mask.sum())
        original_area = int((cur_masks[k] >= 0.5).sum())
        if filter_low_score:
            mask = mask & (cur_masks[k] >= 0.5)
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
                         "is_thing": is_thing, "query": int(queries[k])})
    return {"segmentation": segmentation, "segments": segments}
