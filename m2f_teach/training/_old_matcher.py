"""Hungarian matching: which query answers for which ground-truth object (mmdet's HungarianAssigner).

For one image, every query q is compared with every ground-truth object g and the costs fill a
`(Q, N_gt)` matrix:

    cost[q, g] = 2 · ClassificationCost + 5 · CrossEntropyLossCost + 5 · DiceCost

* ClassificationCost: −softmax(cls_pred[q])[label_g], the probability the query gives g's class.
* CrossEntropyLossCost: the mean binary cross-entropy of the query's mask logits against g's
  mask, on `P_s` points.
* DiceCost: 1 − (2·Σ σ(m_q)·t_g + 1) / (Σ σ(m_q) + Σ t_g + 1) on the same points.

The points: one set of `P_s` uniform random points per image (`torch.rand`), read from every
predicted mask and every ground-truth mask with `point_sample`. `scipy`'s
`linear_sum_assignment` then picks N_gt (query, object) pairs, one query per object, with the
least total cost; the Q − N_gt other queries are matched to nothing ("no object").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from ..tap import Tap
from .point_sample import point_sample


def classification_cost(cls_pred: torch.Tensor, gt_labels: torch.Tensor) -> torch.Tensor:
    """`cls_pred (Q, K)` logits, `gt_labels (N_gt,)` → `(Q, N_gt)`: −p(label_g) for query q."""
    cls_score = cls_pred.softmax(-1)                                           # (Q, K)
    return -cls_score[:, gt_labels]                                            # (Q, N_gt)


def mask_bce_cost(mask_point_logits: torch.Tensor, gt_point_masks: torch.Tensor) -> torch.Tensor:
    """`(Q, P_s)` logits, `(N_gt, P_s)` 0/1 → `(Q, N_gt)` mean BCE over the points."""
    num_points = mask_point_logits.shape[1]
    pos = F.binary_cross_entropy_with_logits(mask_point_logits, torch.ones_like(mask_point_logits),
                                             reduction="none")                 # (Q, P_s) cost if target 1
    neg = F.binary_cross_entropy_with_logits(mask_point_logits, torch.zeros_like(mask_point_logits),
                                             reduction="none")                 # (Q, P_s) cost if target 0
    cost = torch.einsum("qp,gp->qg", pos, gt_point_masks) \
        + torch.einsum("qp,gp->qg", neg, 1 - gt_point_masks)                   # (Q, N_gt)
    return cost / num_points


def dice_cost(mask_point_logits: torch.Tensor, gt_point_masks: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """`(Q, P_s)` logits, `(N_gt, P_s)` 0/1 → `(Q, N_gt)`: 1 − naive Dice of σ(logits), eps 1."""
    mask_point_probs = mask_point_logits.sigmoid()                             # (Q, P_s)
    numerator = 2 * torch.einsum("qp,gp->qg", mask_point_probs, gt_point_masks)  # (Q, N_gt)
    denominator = mask_point_probs.sum(-1)[:, None] + gt_point_masks.sum(-1)[None, :]  # (Q, N_gt)
    return 1 - (numerator + eps) / (denominator + eps)


class HungarianMatcher(nn.Module):
    """One image's predictions and objects → `(query_index, gt_index)`, each `(N_gt,)` int64.

    * `cls_pred (Q, K)`, `mask_pred (Q, Hm, Wm)`: one prediction for one image (logits).
    * `gt_labels (N_gt,)`, `gt_masks (N_gt, H, W)`: that image's objects.
    * `num_points`: `P_s`, the points the mask costs are computed on.
    """

    def __init__(self, num_points: int, cls_weight: float = 2.0, mask_weight: float = 5.0,
                 dice_weight: float = 5.0):
        super().__init__()
        self.num_points = num_points
        self.cls_weight, self.mask_weight, self.dice_weight = cls_weight, mask_weight, dice_weight
        self.tap = Tap()

    @torch.no_grad()
    def cost_matrix(self, cls_pred, mask_pred, gt_labels, gt_masks, index=None) -> torch.Tensor:
        """The `(Q, N_gt)` matrix the assignment minimises (arguments as `forward`)."""
        tap = self.tap
        Q, N_gt, P_s = mask_pred.shape[0], gt_labels.shape[0], self.num_points
        sizes = dict(N_gt=N_gt, P_s=P_s)
        # the same P_s random points for every query and every object of this image
        point_coords = torch.rand(1, P_s, 2, device=mask_pred.device)                 # (1, P_s, 2)
        point_coords = tap(point_coords, "match_point_coords", "1 P_s 2", index=index, sizes=sizes)
        mask_point_logits = point_sample(mask_pred.unsqueeze(1),
                                         point_coords.repeat(Q, 1, 1)).squeeze(1)     # (Q, P_s)
        gt_point_masks = point_sample(gt_masks.unsqueeze(1).float(),
                                      point_coords.repeat(N_gt, 1, 1)).squeeze(1)     # (N_gt, P_s)
        mask_point_logits = tap(mask_point_logits, "match_mask_points", "Q P_s", index=index, sizes=sizes)
        gt_point_masks = tap(gt_point_masks, "match_gt_points", "N_gt P_s", index=index, sizes=sizes)

        cls_cost = tap(classification_cost(cls_pred, gt_labels), "cls_cost", "Q N_gt",
                       index=index, sizes=sizes)                                     # (Q, N_gt)
        mask_cost = tap(mask_bce_cost(mask_point_logits, gt_point_masks), "mask_cost", "Q N_gt",
                        index=index, sizes=sizes)                                    # (Q, N_gt)
        dice = tap(dice_cost(mask_point_logits, gt_point_masks), "dice_cost", "Q N_gt",
                   index=index, sizes=sizes)                                         # (Q, N_gt)
        cost = self.cls_weight * cls_cost + self.mask_weight * mask_cost + self.dice_weight * dice
        return tap(cost, "cost_matrix", "Q N_gt", index=index, sizes=sizes)          # (Q, N_gt)

    @torch.no_grad()
    def forward(self, cls_pred, mask_pred, gt_labels, gt_masks, index=None):
        if gt_labels.numel() == 0:
            empty = torch.zeros(0, dtype=torch.long, device=cls_pred.device)
            return empty, empty.clone()
        cost = self.cost_matrix(cls_pred, mask_pred, gt_labels, gt_masks, index)    # (Q, N_gt)
        query_index, gt_index = linear_sum_assignment(cost.float().cpu().numpy())   # (N_gt,), (N_gt,)
        query_index = torch.as_tensor(query_index, dtype=torch.long, device=cls_pred.device)
        gt_index = torch.as_tensor(gt_index, dtype=torch.long, device=cls_pred.device)
        sizes = dict(N_gt=len(gt_labels))
        query_index = self.tap(query_index, "query_index", "N_gt", index=index, sizes=sizes)
        return query_index, gt_index
