"""Held-out scores: mask IoU and class accuracy of matched instances, and all-blocked rows.

As mmdet's instance inference, each query's class is its most likely *object* class (softmax
over K, no-object left out) and its mask is the last prediction's logits resized bilinearly to
H×W, > 0. For each image, queries and ground-truth objects are matched one-to-one by the
Hungarian algorithm on mask IoU.

* `miou`: mean over ground-truth objects of the IoU with its matched query.
* `class_acc`: fraction of ground-truth objects whose matched query has the right class.
* `detected`: fraction whose matched query also ranks an object above no-object and has
  IoU ≥ 0.5 (a stricter score: the object would be reported without a score threshold).
* `all_blocked_fraction`: fraction of attention-mask rows (query × head × decoder layer) in
  which every pixel is blocked, so the layer falls back to attending everywhere;
  `all_blocked_matched`: the same over the queries matched to objects only.
* `all_blocked_per_layer`, `all_blocked_matched_per_layer`: the same two, one value per decoder
  layer (N_dec each; layer i reads the mask of prediction i).

`sampling_near_edges` asks where the encoder's deformable attention looks: of the attention
weight that queries inside an object give to sampling points inside the image, the fraction on
points near an object's edge, per encoder layer.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from ..data.shapes import collate


def mask_iou(pred_masks: torch.Tensor, gt_masks: torch.Tensor) -> torch.Tensor:
    """`(N_det, H, W)` and `(N_gt, H, W)` bool → `(N_det, N_gt)` IoU."""
    pred = pred_masks.flatten(1).float()                                       # (N_det, H·W)
    gt = gt_masks.flatten(1).float()                                           # (N_gt, H·W)
    intersection = pred @ gt.T                                                 # (N_det, N_gt)
    union = pred.sum(1)[:, None] + gt.sum(1)[None, :] - intersection
    return intersection / union.clamp(min=1)


def match_instances(cls_pred, mask_pred, gt_labels, gt_masks):
    """One image, last prediction: `cls_pred (Q, K)`, `mask_pred (Q, Hm, Wm)`, objects
    `gt_labels (N_gt,)`, `gt_masks (N_gt, H, W)` → per object: matched query `(N_gt,)`,
    IoU `(N_gt,)`, right class `(N_gt,)` bool, detected `(N_gt,)` bool."""
    num_classes = cls_pred.shape[-1] - 1
    pred_labels = cls_pred[:, :num_classes].argmax(-1)                         # (Q,) best object class
    is_object = cls_pred.argmax(-1) != num_classes                             # (Q,)
    masks = F.interpolate(mask_pred[None], gt_masks.shape[-2:], mode="bilinear",
                          align_corners=False)[0] > 0                          # (Q, H, W)
    iou = mask_iou(masks, gt_masks).cpu()                                      # (Q, N_gt)
    query_index, gt_index = linear_sum_assignment(-iou.numpy())               # (N_gt,), (N_gt,)
    order = torch.as_tensor(gt_index).argsort()
    query_index = torch.as_tensor(query_index)[order]                          # (N_gt,) per object
    ious = iou[query_index, torch.arange(len(gt_labels))]                      # (N_gt,)
    correct = pred_labels.cpu()[query_index] == gt_labels.cpu()
    detected = is_object.cpu()[query_index] & (ious >= 0.5)
    return query_index, ious, correct, detected


def record_all_blocked(model):
    """A forward hook on the head's `all_blocked` taps; returns `(records, handle)`: records
    fills with one `(B·nH, Q)` bool tensor per decoder layer."""
    records = []

    def hook(module, args, kwargs, output):
        if kwargs.get("name") == "all_blocked":
            records.append(output.detach().cpu())

    handle = model.panoptic_head.tap.register_forward_hook(hook, with_kwargs=True)
    return records, handle


@torch.no_grad()
def evaluate(model, dataset, batch_size: int = 8, device="cpu") -> dict:
    """Scores of `model` on `dataset` (items as `ShapesDataset`): see the module docstring."""
    was_training = model.training
    model.eval()
    num_heads = model.config.num_heads
    ious, correct, detected, blocked_all, blocked_matched = [], [], [], [], []
    records, handle = record_all_blocked(model)
    try:
        for start in range(0, len(dataset), batch_size):
            images, targets = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            records.clear()
            cls_pred_list, mask_pred_list = model(images.to(device))
            B = images.shape[0]
            blocked = torch.stack(records).view(len(records), B, num_heads, -1)    # (N_dec, B, nH, Q) all-blocked rows
            blocked_all.append(blocked.flatten(1))                                 # (N_dec, B·nH·Q)
            for b, target in enumerate(targets):
                if len(target["labels"]) == 0:
                    continue
                query_index, iou, ok, found = match_instances(
                    cls_pred_list[-1][b], mask_pred_list[-1][b],
                    target["labels"].to(device), target["masks"].to(device))
                ious.append(iou)
                correct.append(ok)
                detected.append(found)
                blocked_matched.append(blocked[:, b][:, :, query_index].flatten(1))  # (N_dec, nH·N_gt)
    finally:
        handle.remove()
        model.train(was_training)
    ious, correct, detected = torch.cat(ious), torch.cat(correct), torch.cat(detected)
    blocked_all = torch.cat(blocked_all, 1).float()                           # (N_dec, rows)
    blocked_matched = torch.cat(blocked_matched, 1).float()                   # (N_dec, matched rows)
    return dict(miou=float(ious.mean()), class_acc=float(correct.float().mean()),
                detected=float(detected.float().mean()), num_instances=int(len(ious)),
                all_blocked_fraction=float(blocked_all.mean()),
                all_blocked_matched=float(blocked_matched.mean()),
                all_blocked_per_layer=blocked_all.mean(1).tolist(),
                all_blocked_matched_per_layer=blocked_matched.mean(1).tolist())


def format_metrics(metrics: dict) -> str:
    return (f"mIoU {metrics['miou']:.3f}, class acc {metrics['class_acc']:.3f}, detected "
            f"{metrics['detected']:.3f} on {metrics['num_instances']} objects; all-blocked rows "
            f"{metrics['all_blocked_fraction']:.3f} (matched queries {metrics['all_blocked_matched']:.3f})")


def iou_ceiling(dataset, mask_size) -> float:
    """The best mIoU a mask at `mask_size` can give: each object's mask area-averaged down to
    `mask_size`, resized back like a prediction and thresholded at 0.5."""
    ious = []
    for i in range(len(dataset)):
        masks = dataset[i]["masks"].float()[None]                              # (1, N_gt, H, W)
        small = F.adaptive_avg_pool2d(masks, mask_size)                        # (1, N_gt, Hm, Wm)
        back = F.interpolate(small, masks.shape[-2:], mode="bilinear", align_corners=False) > 0.5
        ious.append(mask_iou(back[0], masks[0] > 0.5).diagonal())
    return float(torch.cat(ious).mean())


def edge_distance(masks: torch.Tensor):
    """`(N_gt, H, W)` bool visible masks → `(H, W)` float distance in pixels from each pixel to the
    nearest edge pixel (one with a 4-neighbour that shows another object or the background, so an
    edge is two pixels wide: one on each side), and `(H, W)` bool: the pixel shows an object."""
    from scipy.ndimage import distance_transform_edt

    H, W = masks.shape[-2:]
    ids = torch.zeros(H, W, dtype=torch.long)                                   # 0 = background
    for k, mask in enumerate(masks.cpu()):
        ids[mask] = k + 1
    edge = torch.zeros(H, W, dtype=torch.bool)
    across = ids[:, 1:] != ids[:, :-1]                                          # (H, W − 1)
    edge[:, :-1] |= across
    edge[:, 1:] |= across
    down = ids[1:, :] != ids[:-1, :]                                            # (H − 1, W)
    edge[:-1, :] |= down
    edge[1:, :] |= down
    distance = torch.from_numpy(distance_transform_edt((~edge).numpy())).float()  # (H, W) pixels to the nearest edge
    return distance, ids > 0


@torch.no_grad()
def sampling_near_edges(model, dataset, within: float = 4.0) -> list[float]:
    """Per encoder layer, over `dataset` (items as `ShapesDataset`, one image at a time): of the
    attention weight that queries whose reference point lies inside an object give to sampling
    points inside the image, the fraction on points at most `within` pixels from an object edge.

    Points outside the image read zeros (grid_sample's padding) and are left out. A point is
    looked up at the image pixel that contains it.
    """
    from ..tracing.trace import trace

    pd = "panoptic_head.pixel_decoder."
    layers = range(model.config.num_encoder_layers)
    keep = [pd + "reference_points"] + [pd + f"encoder.layers.{l}.self_attn.{n}" for l in layers
                                        for n in ("sampling_locations", "attention_weights")]
    near, total = torch.zeros(len(layers)), torch.zeros(len(layers))
    was_training = model.training
    model.eval()
    try:
        for i in range(len(dataset)):
            item = dataset[i]
            H, W = item["image"].shape[-2:]
            t = trace(model, item["image"][None], keep=keep)
            distance, inside = edge_distance(item["masks"])                      # (H, W), (H, W)
            reference = t.value(pd + "reference_points")[0, :, 0]               # (S, 2) as (x, y) in [0, 1]
            rx = (reference[:, 0] * W).long().clamp(0, W - 1)
            ry = (reference[:, 1] * H).long().clamp(0, H - 1)
            queries = inside[ry, rx]                                             # (S,) query on an object
            for l in layers:
                attn = pd + f"encoder.layers.{l}.self_attn."
                locations = t.value(attn + "sampling_locations")[0][queries]     # (S_in, nH, L, P, 2)
                weights = t.value(attn + "attention_weights")[0][queries]        # (S_in, nH, L·P)
                in_image = ((locations >= 0) & (locations < 1)).all(-1).flatten(2)  # (S_in, nH, L·P) inside [0, 1)²
                x = (locations[..., 0] * W).long().clamp(0, W - 1).flatten(2)   # (S_in, nH, L·P)
                y = (locations[..., 1] * H).long().clamp(0, H - 1).flatten(2)
                weights = weights * in_image
                near[l] += (weights * (distance[y, x] <= within)).sum()
                total[l] += weights.sum()
    finally:
        model.train(was_training)
    return (near / total.clamp(min=1e-12)).tolist()
