"""What a picture means with the weights in use: `weights_note(weights, topic)`.

Notebooks load their model with `m2f_teach.pretrained.load_model()`, which says whether the
weights are the shipped checkpoint's or random. The random model has the checkpoint's exact
configuration, so every shape, table and view is the same either way; only what the pictures
mean changes, and `weights_note` says so plainly.
"""
from __future__ import annotations

RANDOM_NOTES = {
    "deformable": "Random weights: every sampling_offsets weight starts at zero, so every query "
                  "samples the same initial ring around its reference point, and every attention "
                  "weight is 1/(L·P). The geometry is right; what the points look at means nothing yet.",
    "decoder": "Random weights: the mask logits are noise, so which pixels a query may attend to "
               "means nothing yet (the mechanics are right). Rows that come out all blocked are reset "
               "to attend everywhere; the counts below say how many.",
    "predictions": "Random weights: the class scores are close to uniform and the masks are noise, so "
                   "the instances below mean nothing; they show how logits become masks.",
}


def weights_note(weights: str, topic: str) -> None:
    """Print what random weights mean for a view (nothing when the weights are trained)."""
    if weights == "random":
        print(RANDOM_NOTES[topic])
    else:
        print("Trained weights: the picture below shows what the checkpoint learned.")
