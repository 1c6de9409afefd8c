"""The synthetic shapes set: deterministic, consistent masks and labels, any size."""
import numpy as np
import pytest
import torch

from m2f_teach.data import CLASS_NAMES, ShapesDataset, collate, denormalize, draw_sample, normalize


def test_same_index_and_seed_give_the_same_sample():
    a, b = draw_sample(5, seed=3), draw_sample(5, seed=3)
    assert np.array_equal(a["image"], b["image"])
    assert np.array_equal(a["masks"], b["masks"])
    assert np.array_equal(a["labels"], b["labels"])


def test_other_seed_or_index_gives_another_sample():
    assert not np.array_equal(draw_sample(5, seed=3)["image"], draw_sample(5, seed=4)["image"])
    assert not np.array_equal(draw_sample(5, seed=3)["image"], draw_sample(6, seed=3)["image"])


@pytest.mark.parametrize("size", [(128, 128), (64, 96), (256, 160)])
def test_sample_shapes_and_mask_consistency(size):
    for index in range(10):
        sample = draw_sample(index, seed=1, image_size=size, max_objects=4)
        image, masks, labels = sample["image"], sample["masks"], sample["labels"]
        N_gt = len(labels)
        assert image.shape == (*size, 3) and image.dtype == np.uint8
        assert masks.shape == (N_gt, *size) and masks.dtype == bool
        assert labels.dtype == np.int64 and 1 <= N_gt <= 4
        assert ((0 <= labels) & (labels < len(CLASS_NAMES))).all()
        # visible masks never overlap and none is empty
        assert masks.sum(0).max() <= 1
        assert masks.reshape(N_gt, -1).sum(1).min() > 0


def test_objects_are_drawn_where_their_masks_are():
    sample = draw_sample(2, seed=0)
    image, masks = sample["image"].astype(float), sample["masks"]
    for mask in masks:
        inside = image[mask].mean(0)                     # each object has one fill colour + noise
        assert np.abs(image[mask] - inside).mean() < 12


def test_all_classes_appear_and_object_counts_vary():
    labels = np.concatenate([draw_sample(i, seed=0)["labels"] for i in range(100)])
    counts = {len(draw_sample(i, seed=0)["labels"]) for i in range(100)}
    assert set(labels.tolist()) == set(range(len(CLASS_NAMES)))
    assert counts == {1, 2, 3, 4}


def test_dataset_items_and_collate():
    data = ShapesDataset(3, seed=0, image_size=(64, 64))
    assert len(data) == 3
    item = data[1]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    assert item["masks"].dtype == torch.bool and item["labels"].dtype == torch.int64
    images, targets = collate([data[i] for i in range(3)])
    assert images.shape == (3, 3, 64, 64) and len(targets) == 3
    assert torch.equal(targets[1]["masks"], item["masks"])
    with pytest.raises(IndexError):
        data[3]


def test_normalize_round_trips():
    image = draw_sample(0)["image"]
    x = normalize(image)
    assert abs(float(x.mean())) < 2
    assert np.array_equal(denormalize(x), image)
