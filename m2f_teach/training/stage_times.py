"""Where a training step's time goes: the model's four stages, the losses, backward and AdamW.

    times = step_stage_times(model, criterion, optimizer, images, targets)
    # {"backbone": s, "pixel decoder": s, ..., "AdamW": s}

Wall-clock seconds of one step taken stage by stage (the same calls as `train`'s step, in
order, with the clock read between them; on a GPU each stage ends with a synchronise). The
backward runs once for the whole graph, so it is one entry.
"""
from __future__ import annotations

import time

import torch

from .criterion import total_loss

STAGES = ("backbone", "pixel decoder (encoder + FPN)", "transformer decoder (10 predictions)",
          "matching + losses", "backward (all stages)", "clip + AdamW")


def step_stage_times(model, criterion, optimizer, images, targets, clip: float = 1.0) -> dict[str, float]:
    """One training step of `model` on `images` `(B, 3, H, W)` and `targets`, timed by stage."""
    device = images.device

    def now():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    marks = [now()]
    feats = model.extract_feat(images)                                           # 4 × (B, C_i, H/s_i, W/s_i)
    marks.append(now())
    mask_features, memories = model.panoptic_head.pixel_decoder(feats)
    marks.append(now())
    cls_pred_list, mask_pred_list = model.panoptic_head.forward(mask_features, memories)
    marks.append(now())
    loss = total_loss(criterion(cls_pred_list, mask_pred_list, targets))
    marks.append(now())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    marks.append(now())
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    marks.append(now())
    return {stage: marks[i + 1] - marks[i] for i, stage in enumerate(STAGES)}
