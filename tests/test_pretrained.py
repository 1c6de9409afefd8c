"""The shipped checkpoint: it loads, and its held-out scores are what the README reports.

Issue 5's targets are mask mIoU ≥ 0.8 and class accuracy ≥ 0.9 of matched instances and a
near-zero fraction of all-blocked attention rows. The shipped checkpoint (1300 steps, the
README's command) meets the first; the other two are marked `xfail(strict=True)`, so this file
fails as soon as a better checkpoint meets them and the marks must go.
"""
import pytest
import torch

from m2f_teach.data import ShapesDataset
from m2f_teach.evaluate import evaluate
from m2f_teach.model import Mask2Former
from m2f_teach.pretrained import TEST_SEED, checkpoint_info, class_names, load_pretrained, shapes_config

HELD_OUT = 24  # images of the test seed, never seen in training (seed 0) or validation


@pytest.fixture(scope="module")
def trained_metrics():
    torch.manual_seed(0)
    return evaluate(load_pretrained(), ShapesDataset(HELD_OUT, seed=TEST_SEED))


@pytest.fixture(scope="module")
def random_metrics():
    torch.manual_seed(0)
    return evaluate(Mask2Former(shapes_config()), ShapesDataset(HELD_OUT, seed=TEST_SEED))


def test_checkpoint_loads_in_eval_mode_and_is_small():
    model = load_pretrained()
    assert not model.training
    assert model.config == shapes_config()
    info = checkpoint_info()
    assert info["config"]["num_classes"] == len(class_names()) == 5
    from importlib import resources
    size = resources.files("m2f_teach").joinpath("weights", "shapes_small.safetensors").stat().st_size
    assert size < 15 * 2**20


def test_structure_is_the_seeds():
    config = shapes_config()
    assert (config.num_levels, config.num_heads, config.num_points) == (3, 8, 4)
    assert (config.num_encoder_layers, config.num_decoder_layers) == (6, 9)


def test_mask_miou_of_matched_instances(trained_metrics, random_metrics):
    assert trained_metrics["miou"] >= 0.8
    assert random_metrics["miou"] < 0.3


def test_better_than_chance_at_classes(trained_metrics, random_metrics):
    assert trained_metrics["class_acc"] >= 0.4 > random_metrics["class_acc"] + 0.1


@pytest.mark.xfail(strict=True, reason="shipped checkpoint reaches about 0.5 class accuracy, not 0.9")
def test_class_accuracy_target(trained_metrics):
    assert trained_metrics["class_acc"] >= 0.9


@pytest.mark.xfail(strict=True, reason="queries matched to no object keep empty masks: ~0.4 of rows "
                                       "stay all-blocked, ~0.18 for the matched queries")
def test_all_blocked_rows_near_zero(trained_metrics):
    assert trained_metrics["all_blocked_fraction"] <= 0.05


def test_matched_queries_attend_inside_their_masks(trained_metrics):
    # a matched query's attention mask is rarely empty: it attends to its object
    assert trained_metrics["all_blocked_matched"] < 0.3


def test_reported_scores_match_a_fresh_evaluation(trained_metrics):
    reported = checkpoint_info()["test"]
    assert reported["seed"] == TEST_SEED
    assert abs(reported["miou"] - trained_metrics["miou"]) < 0.08
