"""Matching against brute force, and every cost and loss against values computed by hand."""
import itertools
import math

import pytest
from scipy.optimize import linear_sum_assignment
import torch

from m2f_teach.training.criterion import (Mask2FormerCriterion, cross_entropy_loss, dice_loss,
                                          mask_bce_loss, num_points_for, total_loss)
from m2f_teach.training.matcher import HungarianMatcher, classification_cost, dice_cost, mask_bce_cost
from m2f_teach.training.point_sampling import get_uncertain_point_coords_with_randomness, point_sample


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_point_sample_reads_pixel_centres_and_interpolates():
    image = torch.arange(12.0).view(1, 1, 3, 4)                       # (1, 1, 3, 4)
    # pixel (row 1, col 2) has its centre at x = (2 + 0.5) / 4, y = (1 + 0.5) / 3
    points = torch.tensor([[[2.5 / 4, 1.5 / 3], [2.0 / 4, 1.5 / 3]]])  # (1, 2, 2) as (x, y)
    out = point_sample(image, points)                                  # (1, 1, 2)
    assert out.shape == (1, 1, 2)
    assert torch.allclose(out[0, 0], torch.tensor([6.0, 5.5]))        # 5.5: halfway between cols 1 and 2


def test_uncertain_points_are_the_most_uncertain_of_the_oversampled():
    torch.manual_seed(0)
    # logits = 10·(x − 0.5): the uncertain points (|logit| small) lie near x = 0.5
    x = torch.linspace(0, 1, 64)
    logits = (10 * (x - 0.5)).view(1, 1, 1, 64).expand(3, 1, 64, 64)  # (N, 1, Hm, Wm)
    points = get_uncertain_point_coords_with_randomness(logits, 40, 3.0, 0.75)
    assert points.shape == (3, 40, 2)
    assert ((points >= 0) & (points <= 1)).all()
    uncertain, random = points[:, :30, 0], points[:, 30:, 0]           # 0.75 · 40 = 30 importance points
    assert (uncertain - 0.5).abs().mean() < 0.1 < (random - 0.5).abs().mean()


def test_cost_functions_by_hand():
    cls_pred = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]])       # (Q=2, K=3)
    gt_labels = torch.tensor([1, 0])
    probs = cls_pred.softmax(-1)
    expected = -torch.stack([probs[:, 1], probs[:, 0]], 1)             # (Q, N_gt)
    assert torch.allclose(classification_cost(cls_pred, gt_labels), expected)

    logits = torch.tensor([[2.0, -1.0], [0.5, 0.0]])                   # (Q=2, P_s=2)
    gt = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])           # (N_gt=3, P_s=2)
    bce, dice = torch.zeros(2, 3), torch.zeros(2, 3)
    for q in range(2):
        for g in range(3):
            terms = [-(t * math.log(sigmoid(l)) + (1 - t) * math.log(1 - sigmoid(l)))
                     for l, t in zip(logits[q].tolist(), gt[g].tolist())]
            bce[q, g] = sum(terms) / 2
            p = [sigmoid(l) for l in logits[q].tolist()]
            inter = sum(pi * t for pi, t in zip(p, gt[g].tolist()))
            dice[q, g] = 1 - (2 * inter + 1) / (sum(p) + sum(gt[g].tolist()) + 1)
    assert torch.allclose(mask_bce_cost(logits, gt), bce, atol=1e-6)
    assert torch.allclose(dice_cost(logits, gt), dice, atol=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_matching_is_optimal_against_brute_force(seed):
    torch.manual_seed(seed)
    Q, K, N_gt = 6, 4, 3
    cls_pred = torch.randn(Q, K)
    mask_pred = torch.randn(Q, 8, 8) * 3                               # (Q, Hm, Wm)
    gt_labels = torch.randint(0, K - 1, (N_gt,))
    gt_masks = torch.rand(N_gt, 32, 32) > 0.5                          # (N_gt, H, W)
    matcher = HungarianMatcher(num_points=50)
    torch.manual_seed(100 + seed)
    query_index, gt_index = matcher(cls_pred, mask_pred, gt_labels, gt_masks)
    torch.manual_seed(100 + seed)                                      # the same random points again
    cost = matcher.cost_matrix(cls_pred, mask_pred, gt_labels, gt_masks)  # (Q, N_gt)
    assert cost.shape == (Q, N_gt)
    best = min(sum(cost[q, g] for g, q in enumerate(queries))
               for queries in itertools.permutations(range(Q), N_gt))
    found = cost[query_index, gt_index].sum()
    assert torch.isclose(found, torch.as_tensor(best))
    assert sorted(gt_index.tolist()) == list(range(N_gt))
    assert len(set(query_index.tolist())) == N_gt


def test_matcher_with_no_objects():
    q, g = HungarianMatcher(10)(torch.randn(5, 3), torch.randn(5, 4, 4),
                                torch.zeros(0, dtype=torch.long), torch.zeros(0, 16, 16, dtype=torch.bool))
    assert q.numel() == 0 and g.numel() == 0


def test_class_loss_weighs_no_object_by_a_tenth():
    cls_pred = torch.tensor([[[2.0, 0.0, 1.0], [0.0, 1.0, 0.5]]])     # (B=1, Q=2, K=3)
    labels = torch.tensor([[0, 2]])                                    # query 1 is no-object (K − 1 = 2)
    weight = torch.tensor([1.0, 1.0, 0.1])
    ce0 = -math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(1)))
    ce1 = -math.log(math.exp(0.5) / (1 + math.exp(1) + math.exp(0.5)))
    expected = (1.0 * ce0 + 0.1 * ce1) / (1.0 + 0.1)
    assert math.isclose(cross_entropy_loss(cls_pred, labels, weight).item(), expected, rel_tol=1e-6)


def test_mask_losses_by_hand():
    logits = torch.tensor([[0.0, 2.0, -1.0], [1.0, 1.0, 1.0]])        # (N_pos=2, P_s=3)
    targets = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    bce = sum(-(t * math.log(sigmoid(l)) + (1 - t) * math.log(1 - sigmoid(l)))
              for l, t in zip(logits.flatten().tolist(), targets.flatten().tolist()))
    assert math.isclose(mask_bce_loss(logits, targets, 2 * 3).item(), bce / 6, rel_tol=1e-6)
    dice = 0.0
    for row, t in zip(logits.tolist(), targets.tolist()):
        p = [sigmoid(v) for v in row]
        dice += 1 - (2 * sum(a * b for a, b in zip(p, t)) + 1) / (sum(p) + sum(t) + 1)
    assert math.isclose(dice_loss(logits, targets, 2).item(), dice / 2, rel_tol=1e-6)


def test_criterion_on_constant_masks_by_hand(monkeypatch):
    """Masks whose logits are constant and objects covering the whole image make every point
    read the same value, so the loss does not depend on where the points fall. (Points within
    half a pixel of the border would read the zero padding of `grid_sample`, as in mmcv, so
    the loss points are kept inside for this check.)"""
    import m2f_teach.training.criterion as criterion_module

    def interior_points(mask_pred, num_points, *args):
        return 0.25 + 0.5 * torch.rand(mask_pred.shape[0], num_points, 2)
    monkeypatch.setattr(criterion_module, "get_uncertain_point_coords_with_randomness", interior_points)
    torch.manual_seed(0)
    B, Q, K, P_s, c = 2, 3, 3, 20, 0.7
    cls_pred = torch.zeros(B, Q, K)
    cls_pred[:, 0, 1] = 4.0                                            # query 0 says class 1
    mask_pred = torch.full((B, Q, 8, 8), c)
    targets = [dict(labels=torch.tensor([1]), masks=torch.ones(1, 32, 32, dtype=torch.bool)),
               dict(labels=torch.tensor([1]), masks=torch.ones(1, 32, 32, dtype=torch.bool))]
    criterion = Mask2FormerCriterion(num_classes=K - 1, num_points=P_s)
    losses = criterion([cls_pred] * 10, [mask_pred] * 10, targets)
    assert len(losses) == 30 and "d0.loss_cls" in losses and "loss_dice" in losses
    # matching: query 0 is the cheapest for the class-1 object in both images
    ce_matched = -math.log(math.exp(4) / (math.exp(4) + 2))            # target 1
    ce_other = -math.log(1 / 3)                                        # target no-object (2)
    expected_cls = 2.0 * (2 * 1.0 * ce_matched + 4 * 0.1 * ce_other) / (2 * 1.0 + 4 * 0.1)
    expected_mask = 5.0 * -math.log(sigmoid(c))                        # every point has target 1
    s = sigmoid(c)
    expected_dice = 5.0 * (1 - (2 * s * P_s + 1) / (s * P_s + P_s + 1))
    for prefix in ["", "d0.", "d8."]:
        assert math.isclose(losses[prefix + "loss_cls"].item(), expected_cls, rel_tol=1e-5)
        assert math.isclose(losses[prefix + "loss_mask"].item(), expected_mask, rel_tol=1e-5)
        assert math.isclose(losses[prefix + "loss_dice"].item(), expected_dice, rel_tol=1e-5)
    assert math.isclose(total_loss(losses).item(), 10 * (expected_cls + expected_mask + expected_dice),
                        rel_tol=1e-5)


def test_criterion_gradients_and_an_image_without_objects():
    torch.manual_seed(0)
    cls_pred = torch.randn(2, 4, 3, requires_grad=True)
    mask_pred = torch.randn(2, 4, 8, 8, requires_grad=True)
    targets = [dict(labels=torch.tensor([0, 1]), masks=torch.rand(2, 32, 32) > 0.5),
               dict(labels=torch.zeros(0, dtype=torch.long), masks=torch.zeros(0, 32, 32, dtype=torch.bool))]
    criterion = Mask2FormerCriterion(num_classes=2, num_points=30)
    total_loss(criterion([cls_pred], [mask_pred], targets)).backward()
    assert cls_pred.grad.abs().sum() > 0
    assert mask_pred.grad[0].abs().sum() > 0
    assert mask_pred.grad[1].abs().sum() == 0                          # no object, no mask loss


def test_num_points_scales_mmdet_12544_by_area():
    assert num_points_for((1024, 1024)) == 12544
    assert num_points_for((128, 128)) == 196


def test_criterion_shapes_appear_in_a_trace():
    from m2f_teach.model.config import M2FConfig
    from m2f_teach.tracing import trace
    torch.manual_seed(0)
    config = M2FConfig.small(num_classes=2, num_queries=5)
    B, Q, K = 2, 5, 3
    cls_preds = [torch.randn(B, Q, K)] * 2
    mask_preds = [torch.randn(B, Q, 32, 32)] * 2
    targets = [dict(labels=torch.tensor([0, 1, 1]), masks=torch.rand(3, 128, 128) > 0.5),
               dict(labels=torch.tensor([1]), masks=torch.rand(1, 128, 128) > 0.5)]
    t = trace(Mask2FormerCriterion(2, 196), cls_preds, mask_preds, targets, config=config)
    assert t.shape("matcher.cost_matrix.0") == (Q, 3)                 # image 0: Q × N_gt
    assert t.shape("matcher.cost_matrix.1") == (Q, 1)
    assert t.shape("point_coords.1") == (4, 196, 2)                    # prediction 1: N_pos × P_s × 2
    assert "N_pos P_s 2" in str(t.table())


def test_batched_costs_equal_the_per_image_costs():
    """`batch_cost` on B images draws `(B, P_s, 2)` points, on CPU the same stream as B
    draws of `(1, P_s, 2)`; image b's block of columns is then the per-image matrix, and the
    criterion's one-transfer matching gives the per-image matcher's pairs."""
    torch.manual_seed(0)
    B, Q, K = 3, 6, 4
    cls_pred = torch.randn(B, Q, K)
    mask_pred = torch.randn(B, Q, 8, 8) * 3                            # (B, Q, Hm, Wm)
    counts = [2, 0, 3]
    targets = [dict(labels=torch.randint(0, K - 1, (n,)), masks=torch.rand(n, 32, 32) > 0.5) for n in counts]
    matcher = HungarianMatcher(num_points=40)
    gt_labels = torch.cat([t["labels"] for t in targets])              # (N_all,)
    gt_masks = torch.cat([t["masks"] for t in targets])                # (N_all, H, W)
    gt_image = torch.tensor([0, 0, 2, 2, 2])
    torch.manual_seed(1)
    batched = matcher.batch_cost(cls_pred, mask_pred, gt_labels, gt_masks, gt_image)  # (Q, N_all)
    assert batched.shape == (Q, 5)
    torch.manual_seed(1)
    per_image = [matcher.cost_matrix(cls_pred[b], mask_pred[b], targets[b]["labels"], targets[b]["masks"])
                 for b in range(B)]                                    # image 1 draws its points too
    assert torch.allclose(batched[:, :2], per_image[0], atol=1e-6)
    assert torch.allclose(batched[:, 2:], per_image[2], atol=1e-6)

    criterion = Mask2FormerCriterion(num_classes=K - 1, num_points=40)
    torch.manual_seed(1)
    labels, batch_index, query_index, mask_targets = criterion.get_targets(cls_pred, mask_pred, targets)
    assert batch_index.tolist() == [0, 0, 2, 2, 2]
    for b, start in [(0, 0), (2, 2)]:
        q, g = linear_sum_assignment(per_image[b].numpy())
        assert query_index[batch_index == b].tolist() == q.tolist()
        assert torch.equal(mask_targets[start:start + counts[b]], targets[b]["masks"][g])
        assert labels[b, q].tolist() == targets[b]["labels"][g].tolist()
    assert (labels[1] == K - 1).all()                                  # image without objects: all no-object


def test_training_exports_the_point_sampling_functions_not_their_module():
    import importlib
    import m2f_teach.training.criterion  # noqa: F401  (imports the point_sampling module first)
    training = importlib.import_module("m2f_teach.training")
    assert callable(training.point_sample) and callable(training.get_uncertain_point_coords_with_randomness)
    assert training.Mask2FormerCriterion.__name__ == "Mask2FormerCriterion"
