"""Data for training and teaching: a synthetic instance-segmentation set drawn on the fly."""
from .shapes import (CLASS_NAMES, IMAGE_MEAN, IMAGE_STD, TEST_SEED, TRAIN_SEED, VAL_SEED,
                     ShapesDataset, collate, denormalise, draw_sample, normalise_pixels)

__all__ = ["CLASS_NAMES", "IMAGE_MEAN", "IMAGE_STD", "TRAIN_SEED", "VAL_SEED", "TEST_SEED",
           "ShapesDataset", "collate", "denormalise", "draw_sample", "normalise_pixels"]
