"""The study flags of `train` (class loss weight, no-object weight, objects per training image,
points per mask, learning rate per module): off by default, each doing what it says."""
import argparse
import json

import pytest
import torch
import torch.nn.functional as F

from m2f_teach.data.shapes import ShapesDataset
from m2f_teach.model import M2FConfig, Mask2Former
from m2f_teach.training.criterion import Mask2FormerCriterion
from m2f_teach.training.train import (STUDY, add_arguments, make_optimizer, parse_lr_mult, resolve_recipe,
                                      train)


def parse(*flags):
    return resolve_recipe(add_arguments(argparse.ArgumentParser()).parse_args(list(flags)))


def test_study_flags_default_to_mask2formers_values():
    for args in (parse(), parse("--recipe", "shipped-30min")):
        assert (args.cls_weight, args.no_object_weight, tuple(args.train_objects)) == (2.0, 0.1, (1, 4))
        assert args.mask_points is None and not args.lr_mult
    lecture = parse("--recipe", "lecture")            # the lecture recipe changes two of them, on purpose
    assert (lecture.cls_weight, lecture.no_object_weight, tuple(lecture.train_objects)) == (7.0, 0.1, (2, 6))
    assert lecture.mask_points is None and not lecture.lr_mult
    criterion = Mask2FormerCriterion(5, 196)
    assert criterion.cls_weight == STUDY["cls_weight"] == criterion.matcher.cls_weight
    assert criterion.class_weight[-1].item() == pytest.approx(STUDY["no_object_weight"])
    mine = parse("--cls-weight", "5", "--train-objects", "2", "6", "--lr-mult", "backbone=0.5")
    assert (mine.cls_weight, mine.train_objects, mine.lr_mult) == (5.0, [2, 6], ["backbone=0.5"])


def test_train_objects_sets_how_many_objects_a_training_image_tries():
    def counts(**kw):
        data = ShapesDataset(40, seed=3, **kw)
        return [len(data[i]["labels"]) for i in range(len(data))]
    assert counts(min_objects=1, max_objects=1) == [1] * 40
    plain, crowded = counts(), counts(min_objects=4, max_objects=4)
    assert min(plain) == 1 and max(crowded) == 4 and sum(crowded) > sum(plain)
    assert sum(c >= 3 for c in crowded) > 30          # an object that finds no place is left out, rarely
    with pytest.raises(ValueError, match="objects per image 3 to 2"):
        ShapesDataset(4, min_objects=3, max_objects=2)


def test_class_weights_scale_the_class_loss_and_keep_the_matching():
    torch.manual_seed(0)
    B, Q, K, H = 2, 6, 6, 32
    cls_pred = [torch.randn(B, Q, K)]
    mask_pred = [torch.randn(B, Q, H // 4, H // 4)]
    targets = [dict(labels=torch.tensor([0, 3]), masks=torch.rand(2, H, H) > 0.5),
               dict(labels=torch.tensor([4]), masks=torch.rand(1, H, H) > 0.5)]
    plain = Mask2FormerCriterion(K - 1, 16)
    mine = Mask2FormerCriterion(K - 1, 16, cls_weight=5.0, no_object_weight=0.5, cost_cls_weight=2.0)
    torch.manual_seed(1)                               # the matching cost samples random points
    matched = plain.match(cls_pred, mask_pred, targets)[0]
    torch.manual_seed(1)
    assert all(torch.equal(a, b) for a, b in zip(matched, mine.match(cls_pred, mask_pred, targets)[0]))
    labels = matched[0].flatten()                                              # (B·Q,)
    weight = torch.tensor([1.0] * (K - 1) + [0.5])
    by_hand = 5.0 * F.cross_entropy(cls_pred[0].flatten(0, 1), labels, weight=weight)  # weighted mean
    assert mine.loss_single(cls_pred[0], mask_pred[0], matched)[0].item() == pytest.approx(by_hand.item(), rel=1e-6)


def test_lr_mult_gives_the_prefix_its_own_learning_rate():
    model = Mask2Former(M2FConfig.shapes(image_size=(64, 64)))
    plain = make_optimizer(model, 1e-3, 0.05, "cpu")
    mine = make_optimizer(model, 1e-3, 0.05, "cpu", parse_lr_mult(["panoptic_head.cls_embed=5"]))
    assert [len(g["params"]) for g in plain.param_groups] == [sum(len(g["params"]) for g in mine.param_groups
                                                                  if g["weight_decay"] == wd) for wd in (0.05, 0.0)]
    head = {id(p) for p in model.panoptic_head.cls_embed.parameters()}
    for group in mine.param_groups:
        ids = {id(p) for p in group["params"]}
        assert group["lr"] == pytest.approx(5e-3 if ids <= head else 1e-3) and (ids <= head or not ids & head)
    assert sum(g["lr"] == pytest.approx(5e-3) for g in mine.param_groups) == 1   # weight and bias both decay
    with pytest.raises(ValueError, match="--lr-mult nothing: no parameter name starts with it"):
        make_optimizer(model, 1e-3, 0.05, "cpu", (("nothing", 2.0),))
    for bad in ("backbone", "backbone=0", "=2", "backbone=x"):
        with pytest.raises(ValueError, match=f"--lr-mult {bad}: expected PREFIX=F"):
            parse_lr_mult([bad])


def test_study_flags_reach_the_run_and_bad_values_are_named(tmp_path):
    torch.set_num_threads(2)
    flags = ["--steps", "1", "--batch-size", "2", "--image-size", "64", "64", "--num-queries", "8",
             "--val-images", "1", "--test-images", "1", "--workers", "0", "--device", "cpu", "--no-progress"]
    args = add_arguments(argparse.ArgumentParser()).parse_args(
        flags + ["--cls-weight", "5", "--no-object-weight", "0.5", "--train-objects", "2", "6",
                 "--mask-points", "64", "--lr-mult", "backbone=0.5", "--out", str(tmp_path / "s.safetensors")])
    train(args)
    stored = json.loads((tmp_path / "s.json").read_text())["args"]
    assert (stored["cls_weight"], stored["no_object_weight"], stored["train_objects"]) == (5.0, 0.5, [2, 6])
    assert (stored["mask_points"], stored["lr_mult"]) == (64, [["backbone", 0.5]])
    for extra, message in ((["--train-objects", "3", "2"], r"--train-objects 3 2: expected 1 ≤ MIN ≤ MAX"),
                           (["--cls-weight", "0"], "--cls-weight 0.0: expected a finite number > 0"),
                           (["--no-object-weight", "nan"], "--no-object-weight nan: expected"),
                           (["--mask-points", "0"], "--mask-points 0: expected a positive integer")):
        bad = add_arguments(argparse.ArgumentParser()).parse_args(flags + extra + ["--out", str(tmp_path / "b.safetensors")])
        with pytest.raises(ValueError, match=message):
            train(bad)


def test_shipped_study_holds_what_it_claims():
    from m2f_teach.data.shapes import CLASS_NAMES
    from m2f_teach.results import lecture_study
    study = lecture_study()
    assert study["format"] == "m2f-teach-lecture-study/1" and len(study["runs"]) >= 50
    for name, run in study["runs"].items():
        parsed = parse(*run["flags"].split())
        assert parsed.recipe == "shipped-30min" and parsed.steps == run["steps"], name
        # a run the machine's time limit stopped is repeated by --stop-after (same schedule)
        assert run["steps_done"] == (parsed.stop_after or parsed.steps), name
        assert run["val"][-1]["step"] == run["steps_done"] and 0 < run["test"]["class_acc"] <= 1, name
        for key, value in run["changes"].items():        # the flags say what the changes say
            assert json.loads(json.dumps(getattr(parsed, key))) == value or key == "lr_mult", (name, key)
    for names, group in study["seed_groups"].items():
        scores = torch.tensor([study["runs"][n]["test"]["class_acc"] for n in names.split(" + ")])
        assert group["n"] == len(scores) >= 2
        assert (group["class_acc_mean"], group["class_acc_std"]) == pytest.approx(
            (scores.mean().item(), scores.std().item()), abs=1e-4)
    check = study["ablation_check"]["variants"]
    for name, variant in check.items():                  # the seeds' validation scores at one step
        at = [next(v for v in seed if v["step"] == variant["step"]) for seed in variant["seeds"].values()]
        assert len(at) == 3 and variant["flags"].startswith("--recipe lecture"), name
        for key in ("class_acc", "miou"):
            scores = torch.tensor([v[key] for v in at])
            assert (variant[f"{key}_mean"], variant[f"{key}_std"]) == pytest.approx(
                (scores.mean().item(), scores.std().item()), abs=1e-4), (name, key)
    confusion = study["confusion"]
    assert confusion["classes"] == list(CLASS_NAMES)
    for counts in (c["counts"] for c in confusion["runs"].values()):
        assert sum(map(sum, counts)) == 248                  # the held-out objects of seed 20000
