"""The losses of Mask2Former (mmdet's `Mask2FormerHead.loss`), over all ten predictions.

For each prediction i (before the first decoder layer and after each of the nine):

1. Match: per image, `HungarianMatcher` pairs N_gt queries with the N_gt objects. The costs of
   all images and all ten predictions are computed batched on the device and moved to the CPU
   in one transfer; the assignments are solved there, image by image, before any loss.
2. Targets: `labels (B, Q)`, the matched object's class for a matched query and the no-object
   class K − 1 for every other; the matched queries' masks and their objects' masks.
3. `loss_cls`, weight 2: cross-entropy over `(B·Q, K)` with class weights 1 for each class and
   0.1 for no-object, averaged by the sum of the weights of the targets.
4. Points: for each matched mask, `P_s` points, 3/4 of them where it is least certain
   (`get_uncertain_point_coords_with_randomness`, oversample ratio 3, importance ratio 0.75).
5. `loss_mask`, weight 5: binary cross-entropy on those points, summed and divided by
   N_pos · P_s (N_pos = objects in the batch).
6. `loss_dice`, weight 5: 1 − naive Dice (eps 1) per mask, summed and divided by N_pos.

Ablation `point_loss=False` (off by default): MaskFormer's full-mask loss, the form that point
sampling replaced (mmdetection issue #8600: 18 GB → 6 GB of GPU memory). Steps 4-6 use every
pixel: each matched mask logit map `(Hm, Wm)` is upsampled bilinearly (align_corners=False) to
the target's `(H, W)`, the BCE is summed and divided by N_pos · H · W (a mean over pixels, as the
point form's is over points) and the dice is per mask as above. The matching keeps its
point-sampled cost (`HungarianMatcher`), as in Mask2Former.

Deep supervision: the total is the sum of the three losses over all ten predictions; mmdet
names them `d0.loss_cls`, ..., `d8.loss_dice` and the last `loss_cls`, `loss_mask`, `loss_dice`.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..model.tap import Tap
from .matcher import HungarianMatcher
from .point_sampling import get_uncertain_point_coords_with_randomness, point_sample


def num_points_for(image_size) -> int:
    """mmdet's 12544 points (112²) at 1024×1024, scaled by the image area: 196 at 128×128."""
    H, W = image_size
    return max(1, round(12544 * H * W / 1024**2))


def cross_entropy_loss(cls_pred: torch.Tensor, labels: torch.Tensor, class_weight: torch.Tensor) -> torch.Tensor:
    """`cls_pred (B, Q, K)`, `labels (B, Q)`, `class_weight (K,)` → weighted mean CE (scalar)."""
    cls_pred = cls_pred.flatten(0, 1)                                          # (B·Q, K)
    labels = labels.flatten()                                                  # (B·Q,)
    loss = F.cross_entropy(cls_pred, labels, weight=class_weight, reduction="sum")
    return loss / class_weight[labels].sum()


def dice_loss(mask_point_logits: torch.Tensor, point_targets: torch.Tensor, avg_factor: float,
              eps: float = 1.0) -> torch.Tensor:
    """`(N_pos, P_s)` logits and 0/1 targets → Σ_masks (1 − naive Dice) / avg_factor."""
    probs = mask_point_logits.sigmoid()                                        # (N_pos, P_s)
    numerator = 2 * (probs * point_targets).sum(1)                             # (N_pos,)
    denominator = probs.sum(1) + point_targets.sum(1)                          # (N_pos,)
    return (1 - (numerator + eps) / (denominator + eps)).sum() / avg_factor


def mask_bce_loss(mask_point_logits: torch.Tensor, point_targets: torch.Tensor, avg_factor: float) -> torch.Tensor:
    """`(N_pos, P_s)` logits and 0/1 targets → Σ BCE / avg_factor (avg_factor = N_pos · P_s)."""
    loss = F.binary_cross_entropy_with_logits(mask_point_logits, point_targets, reduction="sum")
    return loss / avg_factor


def full_mask_logits_and_targets(mask_pred: torch.Tensor, mask_targets: torch.Tensor):
    """MaskFormer's full-mask form: `mask_pred (N_pos, Hm, Wm)` logits upsampled bilinearly
    (align_corners=False) to the size of `mask_targets (N_pos, H, W)`; both flattened to
    `(N_pos, H·W)`, the targets as 0/1 floats, ready for `dice_loss` and `mask_bce_loss`."""
    H, W = mask_targets.shape[-2:]
    # (N_pos, Hm, Wm) -> (N_pos, 1, Hm, Wm) -> (N_pos, 1, H, W) -> (N_pos, H·W)
    mask_preds = F.interpolate(mask_pred.unsqueeze(1), size=(H, W), mode="bilinear",
                               align_corners=False)                             # (N_pos, 1, H, W)
    mask_preds = mask_preds.flatten(1)                                          # (N_pos, H·W)
    targets = mask_targets.flatten(1).to(mask_preds.dtype)                      # (N_pos, H·W)
    return mask_preds, targets


class Mask2FormerCriterion(nn.Module):
    """`(cls_pred_list, mask_pred_list, targets)` → dict of 3 losses × 10 predictions.

    * `cls_pred_list`: 10 × `(B, Q, K)` logits; `mask_pred_list`: 10 × `(B, Q, Hm, Wm)` logits.
    * `targets`: B dicts with `labels (N_gt,)` int64 and `masks (N_gt, H, W)` bool.
    * `num_points`: P_s, for matching and for the mask losses (`num_points_for(image_size)`).
    * `cls_weight`, `no_object_weight`: the class loss weight (2) and the weight of the no-object
      class in its cross-entropy (0.1); `cost_cls_weight`: the class weight of the matching cost
      (None: `cls_weight`, as in Mask2Former).
    * `point_loss`: True (Mask2Former) computes the mask losses on P_s sampled points; False (an
      ablation) on every pixel of the masks upsampled to the image size (MaskFormer); the
      matching samples points either way.
    """

    def __init__(self, num_classes: int, num_points: int, oversample_ratio: float = 3.0,
                 importance_sample_ratio: float = 0.75, no_object_weight: float = 0.1,
                 cls_weight: float = 2.0, mask_weight: float = 5.0, dice_weight: float = 5.0,
                 point_loss: bool = True, cost_cls_weight: float | None = None):
        super().__init__()
        if not isinstance(point_loss, bool):
            raise ValueError(f"point_loss must be True or False, got {point_loss!r}")
        self.point_loss = point_loss
        self.num_classes = num_classes                                         # K − 1; label K − 1 = no object
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.cls_weight, self.mask_weight, self.dice_weight = cls_weight, mask_weight, dice_weight
        self.register_buffer("class_weight", torch.tensor([1.0] * num_classes + [no_object_weight]))  # (K,)
        # the matching cost weighs the class as the loss does, unless `cost_cls_weight` is given
        # (a study of the class loss weight keeps the matching as it was)
        self.matcher = HungarianMatcher(num_points, cls_weight if cost_cls_weight is None else cost_cls_weight,
                                        mask_weight, dice_weight)
        self.tap = Tap()

    def match(self, cls_pred_list, mask_pred_list, targets):
        """Match every image for every prediction, with one device → CPU transfer in all.

        Returns one tuple per prediction: `labels (B, Q)`, `batch_index`, `query_index` (N_pos,)
        and `mask_targets (N_pos, H, W)`: the matched queries and their objects' masks, image
        after image (N_pos = N_all, every object is matched).
        """
        B, Q = cls_pred_list[0].shape[:2]
        device = cls_pred_list[0].device
        counts = [t["labels"].shape[0] for t in targets]                            # N_gt per image
        gt_labels = torch.cat([t["labels"] for t in targets])                       # (N_all,)
        gt_masks = torch.cat([t["masks"] for t in targets])                         # (N_all, H, W)
        gt_image = torch.repeat_interleave(torch.arange(B), torch.tensor(counts)).to(device)  # (N_all,) image of each mask
        if gt_labels.shape[0] == 0:                                                 # no object at all
            costs = torch.zeros(len(cls_pred_list), Q, 0)
        else:
            costs = torch.stack([self.matcher.batch_cost(cls_pred.detach(), mask_pred.detach(), gt_labels,
                                                         gt_masks, gt_image, index=i)
                                 for i, (cls_pred, mask_pred) in enumerate(zip(cls_pred_list, mask_pred_list))])
            costs = costs.float().cpu()                                             # (10, Q, N_all): the one sync
            check_finite(costs, cls_pred_list, mask_pred_list)
        starts = np.cumsum([0] + counts)                                            # image b: columns starts[b]..starts[b+1]
        results = []
        for i, cost in enumerate(costs):
            batch_index, query_index, gt_index = [], [], []
            for b in range(B):
                if counts[b] == 0:
                    continue
                q, g = self.matcher.assign(cost[:, starts[b]:starts[b + 1]], index=b)  # (N_gt,), (N_gt,)
                batch_index.append(np.full_like(q, b))
                query_index.append(q)
                gt_index.append(g + starts[b])                                      # index into N_all
            indices = torch.as_tensor(np.stack([np.concatenate(batch_index), np.concatenate(query_index),
                                                np.concatenate(gt_index)]) if batch_index
                                      else np.zeros((3, 0)), dtype=torch.long).to(device)  # (3, N_pos) image, query, gt
            batch_index, query_index, gt_index = indices
            labels = cls_pred_list[i].new_full((B, Q), self.num_classes, dtype=torch.long)  # (B, Q) all no-object
            labels[batch_index, query_index] = gt_labels[gt_index]
            labels = self.tap(labels, "labels", "B Q", index=i)
            results.append((labels, batch_index, query_index, gt_masks[gt_index]))   # ..., (N_pos, H, W)
        return results

    def get_targets(self, cls_pred, mask_pred, targets, index=None):
        """`match` for one prediction: `labels (B, Q)`, `batch_index`, `query_index` (N_pos,) and
        `mask_targets (N_pos, H, W)`."""
        return self.match([cls_pred], [mask_pred], targets)[0]

    def loss_single(self, cls_pred, mask_pred, matched, index=None):
        """One prediction: `cls_pred (B, Q, K)`, `mask_pred (B, Q, Hm, Wm)` and its `match` → 3 scalar losses."""
        tap = self.tap
        labels, batch_index, query_index, mask_targets = matched
        loss_cls = self.cls_weight * cross_entropy_loss(cls_pred, labels, self.class_weight)

        N_pos = mask_targets.shape[0]
        num_total_masks = max(N_pos, 1)
        if N_pos == 0:  # no object in the batch: keep the graph, add nothing
            zero = mask_pred.sum() * 0
            return loss_cls, zero, zero
        sizes = dict(N_pos=N_pos, P_s=self.num_points)
        mask_pred = mask_pred[batch_index, query_index]                             # (N_pos, Hm, Wm)
        mask_pred = tap(mask_pred, "matched_mask_pred", "N_pos Hm Wm", index=index, sizes=sizes)
        if not self.point_loss:   # ablation: MaskFormer's full-mask loss on all H·W pixels
            mask_preds, mask_targets = full_mask_logits_and_targets(mask_pred, mask_targets)  # (N_pos, H·W) ×2
            num_pixels = mask_targets.shape[1]
            loss_dice = self.dice_weight * dice_loss(mask_preds, mask_targets, num_total_masks)
            loss_mask = self.mask_weight * mask_bce_loss(mask_preds, mask_targets,
                                                         num_total_masks * num_pixels)
            return loss_cls, loss_mask, loss_dice
        with torch.no_grad():
            point_coords = get_uncertain_point_coords_with_randomness(
                mask_pred.unsqueeze(1), self.num_points, self.oversample_ratio,
                self.importance_sample_ratio)                                       # (N_pos, P_s, 2) x, y in [0, 1]
            point_coords = tap(point_coords, "point_coords", "N_pos P_s 2", index=index, sizes=sizes)
            mask_point_targets = point_sample(mask_targets.unsqueeze(1).float(),
                                              point_coords).squeeze(1)              # (N_pos, P_s)
        mask_point_preds = point_sample(mask_pred.unsqueeze(1), point_coords).squeeze(1)  # (N_pos, P_s)
        mask_point_preds = tap(mask_point_preds, "mask_point_preds", "N_pos P_s", index=index, sizes=sizes)
        mask_point_targets = tap(mask_point_targets, "mask_point_targets", "N_pos P_s", index=index, sizes=sizes)

        loss_dice = self.dice_weight * dice_loss(mask_point_preds, mask_point_targets, num_total_masks)
        loss_mask = self.mask_weight * mask_bce_loss(mask_point_preds, mask_point_targets,
                                                     num_total_masks * self.num_points)
        return loss_cls, loss_mask, loss_dice

    def forward(self, cls_pred_list, mask_pred_list, targets) -> dict[str, torch.Tensor]:
        losses = {}
        num_predictions = len(cls_pred_list)
        matched = self.match(cls_pred_list, mask_pred_list, targets)               # all matching first
        for i, (cls_pred, mask_pred) in enumerate(zip(cls_pred_list, mask_pred_list)):
            loss_cls, loss_mask, loss_dice = self.loss_single(cls_pred, mask_pred, matched[i], index=i)
            prefix = "" if i == num_predictions - 1 else f"d{i}."
            losses[prefix + "loss_cls"] = loss_cls
            losses[prefix + "loss_mask"] = loss_mask
            losses[prefix + "loss_dice"] = loss_dice
        return losses


def check_finite(costs, cls_pred_list, mask_pred_list):
    """Before any matching: a NaN or infinite cost names the first prediction that is not finite
    (`FloatingPointError`; a diverged run), instead of scipy's "invalid numeric entries"."""
    finite = torch.isfinite(costs).flatten(1).all(1)                             # (10,)
    if bool(finite.all()):
        return
    i = int((~finite).nonzero()[0])
    bad = [name for name, pred in (("cls_pred", cls_pred_list[i]), ("mask_pred", mask_pred_list[i]))
           if not bool(torch.isfinite(pred).all())]
    what = " and ".join(bad) + (" hold" if len(bad) > 1 else " holds") if bad else "its matching costs hold"
    raise FloatingPointError(f"prediction {i} of {len(costs)} is not finite: {what} NaN or infinite values "
                             f"(a diverged model), nothing to match")


def total_loss(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    """The sum that is back-propagated: every loss of every prediction."""
    return sum(losses.values())
