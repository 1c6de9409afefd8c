"""Hungarian matching: which query answers for which ground-truth object (mmdet's HungarianAssigner).

For one image, every query q is compared with every ground-truth object g and the costs fill a
`(Q, N_gt)` matrix:

    cost[q, g] = 2 · ClassificationCost + 5 · CrossEntropyLossCost + 5 · DiceCost

* ClassificationCost: −softmax(cls_pred[q])[label_g], the probability the query gives g's class.
* CrossEntropyLossCost: the mean binary cross-entropy of the query's mask logits against g's
  mask, on `P_s` points.
* DiceCost: 1 − (2·Σ σ(m_q)·t_g + 1) / (Σ σ(m_q) + Σ t_g + 1) on the same points.

The points: one set of `P_s` uniform random points per image (`torch.rand`), read from every
predicted mask and every ground-truth mask of that image with `point_sample`. `scipy`'s
`linear_sum_assignment` then picks N_gt (query, object) pairs, one query per object, with the
least total cost; the Q − N_gt other queries are matched to nothing ("no object").

Batched: `batch_cost` computes the costs of all B images at once, as one `(Q, N_all)` matrix
whose column g holds object g against the Q queries of its own image (`N_all = Σ N_gt`); image
b's matrix is its block of columns. The criterion stacks these for all ten predictions and
moves them to the CPU in one transfer; `assign` then solves each image's block there.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from ..model.tap import Tap
from .point_sampling import point_sample


def classification_cost(cls_pred: torch.Tensor, gt_labels: torch.Tensor) -> torch.Tensor:
    """`cls_pred (..., Q, K)` logits, `gt_labels (..., N_gt)` → `(..., Q, N_gt)`: −p(label_g) for query q."""
    cls_score = cls_pred.softmax(-1)                                           # (..., Q, K)
    index = gt_labels.unsqueeze(-2).expand(*cls_score.shape[:-1], gt_labels.shape[-1])  # (..., Q, N_gt)
    return -cls_score.gather(-1, index)                                        # (..., Q, N_gt)


def mask_bce_cost(mask_point_logits: torch.Tensor, gt_point_masks: torch.Tensor) -> torch.Tensor:
    """`(..., Q, P_s)` logits, `(..., N_gt, P_s)` 0/1 → `(..., Q, N_gt)` mean BCE over the points."""
    num_points = mask_point_logits.shape[-1]
    pos = F.binary_cross_entropy_with_logits(mask_point_logits, torch.ones_like(mask_point_logits),
                                             reduction="none")                 # (..., Q, P_s) cost if target 1
    neg = F.binary_cross_entropy_with_logits(mask_point_logits, torch.zeros_like(mask_point_logits),
                                             reduction="none")                 # (..., Q, P_s) cost if target 0
    cost = torch.einsum("...qp,...gp->...qg", pos, gt_point_masks) \
        + torch.einsum("...qp,...gp->...qg", neg, 1 - gt_point_masks)          # (..., Q, N_gt)
    return cost / num_points


def dice_cost(mask_point_logits: torch.Tensor, gt_point_masks: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """`(..., Q, P_s)` logits, `(..., N_gt, P_s)` 0/1 → `(..., Q, N_gt)`: 1 − naive Dice of σ(logits), eps 1."""
    mask_point_probs = mask_point_logits.sigmoid()                             # (..., Q, P_s)
    numerator = 2 * torch.einsum("...qp,...gp->...qg", mask_point_probs, gt_point_masks)  # (..., Q, N_gt)
    denominator = mask_point_probs.sum(-1)[..., :, None] + gt_point_masks.sum(-1)[..., None, :]  # (..., Q, N_gt)
    return 1 - (numerator + eps) / (denominator + eps)


class HungarianMatcher(nn.Module):
    """One image's predictions and objects → `(query_index, gt_index)`, each `(N_gt,)` int64.

    * `cls_pred (Q, K)`, `mask_pred (Q, Hm, Wm)`: one prediction for one image (logits).
    * `gt_labels (N_gt,)`, `gt_masks (N_gt, H, W)`: that image's objects.
    * `num_points`: `P_s`, the points the mask costs are computed on.

    `batch_cost` and `assign` are the same in two halves for a whole batch: the costs on the
    device, the assignment per image on the CPU.
    """

    def __init__(self, num_points: int, cls_weight: float = 2.0, mask_weight: float = 5.0,
                 dice_weight: float = 5.0):
        super().__init__()
        self.num_points = num_points
        self.cls_weight, self.mask_weight, self.dice_weight = cls_weight, mask_weight, dice_weight
        self.tap = Tap()

    @torch.no_grad()
    def batch_cost(self, cls_pred, mask_pred, gt_labels, gt_masks, gt_image, index=None) -> torch.Tensor:
        """All images of one prediction → `(Q, N_all)`; column g: object g against its image's queries.

        * `cls_pred (B, Q, K)`, `mask_pred (B, Q, Hm, Wm)`: one prediction for the batch (logits).
        * `gt_labels (N_all,)`, `gt_masks (N_all, H, W)`: every image's objects, image after image.
        * `gt_image (N_all,)`: the image each object belongs to.
        """
        tap = self.tap
        B, Q = mask_pred.shape[:2]
        N_all, P_s = gt_labels.shape[0], self.num_points
        sizes = dict(N_all=N_all, P_s=P_s)
        # the same P_s random points for every query and every object of one image
        point_coords = torch.rand(B, P_s, 2, device=mask_pred.device)                 # (B, P_s, 2) one set an image
        point_coords = tap(point_coords, "match_point_coords", "B P_s 2", index=index, sizes=sizes)
        mask_point_logits = point_sample(mask_pred, point_coords)                     # (B, Q, P_s): Q maps per image
        gt_point_masks = point_sample(gt_masks.unsqueeze(1).float(),
                                      point_coords[gt_image]).squeeze(1)              # (N_all, P_s)
        mask_point_logits = tap(mask_point_logits, "match_mask_points", "B Q P_s", index=index, sizes=sizes)
        gt_point_masks = tap(gt_point_masks, "match_gt_points", "N_all P_s", index=index, sizes=sizes)

        # each object against the queries of its own image: a batch of N_all (Q, 1) matrices
        cls_cost = classification_cost(cls_pred[gt_image], gt_labels[:, None])       # (N_all, Q, 1)
        own_logits = mask_point_logits[gt_image]                                      # (N_all, Q, P_s) its image's queries
        mask_cost = mask_bce_cost(own_logits, gt_point_masks[:, None])                # (N_all, Q, 1)
        dice = dice_cost(own_logits, gt_point_masks[:, None])                         # (N_all, Q, 1)
        cost = self.cls_weight * cls_cost + self.mask_weight * mask_cost + self.dice_weight * dice
        cost = cost.squeeze(2).T                                                      # (Q, N_all) rows: queries
        return tap(cost, "batch_cost_matrix", "Q N_all", index=index, sizes=sizes)

    @torch.no_grad()
    def cost_matrix(self, cls_pred, mask_pred, gt_labels, gt_masks, index=None) -> torch.Tensor:
        """The `(Q, N_gt)` matrix the assignment minimises (arguments as `forward`)."""
        gt_image = gt_labels.new_zeros(gt_labels.shape[0])                            # (N_gt,) all image 0
        return self.batch_cost(cls_pred[None], mask_pred[None], gt_labels, gt_masks, gt_image, index)

    def assign(self, cost: torch.Tensor, index=None) -> tuple[np.ndarray, np.ndarray]:
        """One image's `cost (Q, N_gt)` on the CPU → `query_index, gt_index`, each `(N_gt,)` numpy."""
        sizes = dict(N_gt=cost.shape[1])
        cost = self.tap(cost, "cost_matrix", "Q N_gt", index=index, sizes=sizes)
        if not torch.isfinite(cost).all():     # scipy would only say "invalid numeric entries"
            raise FloatingPointError(f"Hungarian matching: the cost matrix {tuple(cost.shape)} holds NaN or "
                                     f"infinite values: cls_pred or mask_pred is not finite (a diverged model?)")
        query_index, gt_index = linear_sum_assignment(cost.float().numpy())         # (N_gt,), (N_gt,)
        self.tap(torch.from_numpy(query_index), "query_index", "N_gt", index=index, sizes=sizes)
        return query_index, gt_index

    @torch.no_grad()
    def forward(self, cls_pred, mask_pred, gt_labels, gt_masks, index=None):
        if gt_labels.numel() == 0:
            empty = torch.zeros(0, dtype=torch.long, device=cls_pred.device)
            return empty, empty.clone()
        cost = self.cost_matrix(cls_pred, mask_pred, gt_labels, gt_masks, index)    # (Q, N_gt)
        query_index, gt_index = self.assign(cost.cpu(), index)                       # (N_gt,), (N_gt,)
        query_index = torch.as_tensor(query_index, dtype=torch.long, device=cls_pred.device)
        gt_index = torch.as_tensor(gt_index, dtype=torch.long, device=cls_pred.device)
        return query_index, gt_index
