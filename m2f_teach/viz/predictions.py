"""Predictions (seed 3.1's `return cls_pred_list, mask_pred_list`): ten of them, and instances.

Deep supervision: one prediction before the first decoder layer and one after each of the
nine, every one trained with the same loss; at inference only the last is used. To turn the
last into instances, mmdet's `MaskFormerFusionHead.instance_postprocess`:

    scores  = softmax(cls_pred)[..., :-1]          # drop the no-object class: (Q, K-1)
    top k over the Q·(K-1) (query, class) pairs     # a query may give several instances
    binary  = mask_pred (resized to the image) > 0 # sigmoid > 0.5
    score   = class score × mean sigmoid inside the binary mask

    instances = instance_predictions(trace, index=-1)
    plot_instances(trace, instances)
    plot_deep_supervision(trace, query=0)
    prediction_explorer(trace)
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ._common import as_numpy, kept, num_predictions
from .cross_attention import colour_bar
from .explorer import Explorer, int_slider, new_figure, static
from .images import image_of

HEAD = "panoptic_head."
COLOURS = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212]]) / 255


def class_names_for(trace) -> list[str]:
    """The shapes' class names when the config has their number of classes, else `class k`."""
    K1 = trace.config.num_classes
    try:
        from ..data.shapes import CLASS_NAMES
        if len(CLASS_NAMES) == K1:
            return list(CLASS_NAMES)
    except ImportError:
        pass
    return [f"class {k}" for k in range(K1)]


def instance_predictions(trace, index: int = -1, batch: int = 0, max_instances: int = 10) -> list[dict]:
    """Top-scoring instances of prediction `index`: dicts with query, label, score, mask `(H, W)` bool."""
    index = index % num_predictions(trace)
    cls_pred = kept(trace, f"{HEAD}cls_pred.{index}")[batch]                     # (Q, K)
    mask_pred = kept(trace, f"{HEAD}mask_pred.{index}")[batch]                   # (Q, Hm, Wm)
    Q, K = cls_pred.shape
    H, W = trace.config.image_size
    mask_pred = F.interpolate(mask_pred[None], (H, W), mode="bilinear", align_corners=False)[0]  # (Q, H, W)
    scores = cls_pred.softmax(-1)[:, :-1]                                         # (Q, K-1)
    top_scores, top = scores.flatten().topk(min(max_instances, scores.numel()))
    queries, labels = top // (K - 1), top % (K - 1)
    masks = mask_pred[queries]                                                    # (k, H, W)
    binary = masks > 0
    mask_scores = (masks.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    final = top_scores * mask_scores
    order = final.argsort(descending=True)
    return [dict(query=int(queries[i]), label=int(labels[i]), class_score=float(top_scores[i]),
                 score=float(final[i]), mask=as_numpy(binary[i]).astype(bool)) for i in order]


def paint_instances(image, instances, score_threshold: float):
    """`(H, W, 3)` float picture with each instance above the threshold in its colour; and the shown."""
    canvas = image.astype(float) / 255
    shown = [d for d in instances if d["score"] >= score_threshold]
    for k, d in enumerate(shown):
        colour = COLOURS[k % len(COLOURS)]
        canvas = np.where(d["mask"][..., None], 0.45 * canvas + 0.55 * colour, canvas)
    return canvas, shown


def build_instances(trace, batch: int = 0):
    """`build(figure) -> update(instances, score_threshold, index)`."""
    image = image_of(trace, batch)
    names = class_names_for(trace)
    H, W = trace.config.image_size
    if image is None:
        image = np.full((H, W, 3), 128, dtype=np.uint8)
    n = num_predictions(trace)

    def build(figure):
        figure.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.92)
        ax = figure.subplots()
        picture = ax.imshow(image, extent=(0, W, H, 0), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        title = ax.set_title("", fontsize=9)
        labels = []

        def update(instances, score_threshold=0.3, index=-1):
            canvas, shown = paint_instances(image, instances, score_threshold)
            picture.set_data(canvas)
            while labels:
                labels.pop().remove()
            for k, d in enumerate(shown):
                ys, xs = np.nonzero(d["mask"])
                if len(xs):
                    labels.append(ax.text(xs.mean(), ys.mean(), f"{names[d['label']]} {d['score']:.2f}",
                                          fontsize=7, ha="center", va="center", color="black",
                                          bbox=dict(facecolor=COLOURS[k % len(COLOURS)], alpha=0.8, pad=1,
                                                    linewidth=0)))
            title.set_text(f"prediction {index % n} of {n}: {len(shown)} instances with score ≥ "
                           f"{score_threshold:.2f}")
            update.artists = [picture, title] + labels
        update.artists = [picture, title]
        return update
    return build


def plot_instances(trace, instances=None, score_threshold: float = 0.3, batch: int = 0,
                   index: int = -1, figure=None):
    """The picture with every instance above `score_threshold` painted in its own colour."""
    if instances is None:
        instances = instance_predictions(trace, index, batch)
    return static(build_instances(trace, batch), figure, (4.6, 4.6), instances=instances,
                  score_threshold=score_threshold, index=index)


def plot_deep_supervision(trace, query: int = 0, batch: int = 0, figure=None):
    """The same query's mask probability in each of the predictions, with its top class."""
    n = num_predictions(trace)
    names = class_names_for(trace) + ["no-object"]
    rows = 2 if n > 5 else 1                                          # ten predictions: two rows of five
    cols = -(-n // rows)
    figure = figure if figure is not None else new_figure((2.0 * cols + 0.9, 2.4 * rows + 0.4))
    axes = np.atleast_1d(figure.subplots(rows, cols)).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    axes = axes[:n]
    for i, ax in enumerate(axes):
        prob = kept(trace, f"{HEAD}mask_pred.{i}")[batch, query].sigmoid()      # (Hm, Wm)
        cls = kept(trace, f"{HEAD}cls_pred.{i}")[batch, query].softmax(-1)      # (K,)
        shown = ax.imshow(as_numpy(prob), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        k = int(cls.argmax())
        ax.set_title(f"pred {i}\n{names[k]} {float(cls[k]):.2f}", fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle(f"query {query}: sigmoid(mask_pred.i) and its top class, i = 0 (before layer 0) "
                    f"… {n - 1} (after the last layer)", fontsize=11)
    figure.tight_layout(rect=(0, 0, 1 - 0.7 / figure.get_figwidth(), 1))
    colour_bar(figure, shown, list(axes), "sigmoid", sigmoid=True)
    return figure


def prediction_explorer(trace, batch: int = 0) -> Explorer:
    """Widget: which of the predictions, and the score threshold; draws the instances."""
    n = num_predictions(trace)
    cache = {}
    build_view = build_instances(trace, batch)

    def build(figure):
        update_view = build_view(figure)

        def update(index, threshold):
            if index not in cache:                     # postprocess each prediction once
                cache[index] = instance_predictions(trace, index, batch)
            update_view(cache[index], threshold / 100, index)
            update.artists = update_view.artists
        update.artists = []
        return update

    controls = {"index": int_slider("prediction", n - 1, 0, n - 1),
                "threshold": int_slider("score ≥ %", 30, 0, 100, step=5)}
    return Explorer(build, controls, figsize=(4.6, 4.6), title="predictions")
