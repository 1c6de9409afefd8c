"""The synthetic shapes set: deterministic, consistent masks and labels, any size."""
import numpy as np
import pytest
import torch

from m2f_teach.data import CLASS_NAMES, ShapesDataset, collate, denormalise, draw_sample, normalise_pixels


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


def test_normalised_pixels_round_trip_to_the_image():
    image = draw_sample(0)["image"]
    x = normalise_pixels(torch.from_numpy(image).permute(2, 0, 1).float())
    assert abs(float(x.mean())) < 2
    assert np.array_equal(denormalise(x), image)


def full_grid_shape_mask(label, centre, radius, angle, image_size):
    """`shape_mask` as first written: every pixel of the image tested (the reference)."""
    H, W = image_size
    y, x = np.mgrid[0:H, 0:W] + 0.5
    dy, dx = y - centre[0], x - centre[1]
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    r2 = u**2 + v**2
    name = CLASS_NAMES[label]
    if name == "circle":
        return r2 <= radius**2
    if name == "square":
        half = radius / np.sqrt(2)
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if name == "triangle":
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            a = 2 * np.pi * k / 3
            inside &= np.cos(a) * u + np.sin(a) * v <= radius / 2
        return inside
    if name == "ring":
        return (r2 <= radius**2) & (r2 >= (0.55 * radius) ** 2)
    arm = 0.3 * radius
    return ((np.abs(u) <= radius) & (np.abs(v) <= arm)) | ((np.abs(v) <= radius) & (np.abs(u) <= arm))


def test_shape_mask_window_equals_the_full_grid():
    """`shape_mask` computes only a window around the centre: pixel for pixel the same as
    testing the whole image, for every class, near and across the borders too."""
    from m2f_teach.data.shapes import shape_mask
    rng = np.random.default_rng(0)
    size = (48, 80)
    for _ in range(400):
        label = int(rng.integers(len(CLASS_NAMES)))
        radius = rng.uniform(2, 30)
        centre = (rng.uniform(-10, size[0] + 10), rng.uniform(-10, size[1] + 10))
        angle = rng.uniform(0, 2 * np.pi)
        expected = full_grid_shape_mask(label, centre, radius, angle, size)
        assert np.array_equal(shape_mask(label, centre, radius, angle, size), expected), (label, centre, radius)
    # the cross's arm corners lie beyond the outer radius (1.044 r): the window must reach them
    corners = full_grid_shape_mask(CLASS_NAMES.index("cross"), (40, 40), 30.0, np.pi / 4, (80, 80))
    assert np.array_equal(shape_mask(CLASS_NAMES.index("cross"), (40, 40), 30.0, np.pi / 4, (80, 80)), corners)


# sha256 over image, masks and labels (bytes and shapes) of samples 0..N-1: the data the shipped
# checkpoint and every notebook's outputs were made from must never change
PINNED = [((0, (128, 128), 40, 4), "99804eb9590dc99df6a963b050bd421785a040dfe0908c5469bb91db522e88dd"),
          ((20_000, (96, 160), 20, 4), "cab84012beac0b6126b98e244d704cea844a032f42c10b7b864997f92a97615a"),
          ((7, (64, 64), 20, 8), "83f3dd78f90ce757cffa4ecc723e6074f0ed718b3ba8d633b160d288e375040c")]


@pytest.mark.parametrize("args, expected", PINNED)
def test_samples_are_pinned_by_their_hashes(args, expected):
    import hashlib
    seed, size, n, max_objects = args
    digest = hashlib.sha256()
    for index in range(n):
        sample = draw_sample(index, seed, size, max_objects)
        for key in ("image", "masks", "labels"):
            digest.update(sample[key].tobytes())
            digest.update(str(sample[key].shape).encode())
    assert digest.hexdigest() == expected
