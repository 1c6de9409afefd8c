"""The training path: point sampling, Hungarian matching, losses and the training loop."""
from .criterion import Mask2FormerCriterion
from .matcher import HungarianMatcher
from .point_sample import get_uncertain_point_coords_with_randomness, point_sample

__all__ = ["Mask2FormerCriterion", "HungarianMatcher", "point_sample",
           "get_uncertain_point_coords_with_randomness"]
