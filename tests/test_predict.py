"""`m2f_teach.predict`: preprocessing, the three post-processings, the API, the CLI, bad input.

Post-processing is checked against independent references on the same logits: HF
transformers' `Mask2FormerImageProcessor.post_process_{instance,semantic,panoptic}_segmentation`
on converted random-init HF models (an instance config, 80 things, and a panoptic config with
stuff classes), and mmdetection's `MaskFormerFusionHead.predict`; preprocessing against mmcv's
`rescale_size` and mmdet's `DetDataPreprocessor`.
"""
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from m2f_teach.data import TEST_SEED, draw_sample
from m2f_teach.predict import Predictor, postprocess, predict, preprocess, rle, to_json
from m2f_teach.predict.preprocess import COCO_TEST_SCALE, rescale_size

HF_SIZE = (384, 384)   # HF's post-processing resizes mask logits to 384×384 for every model


def hf_outputs(num_labels, seed, size=(96, 128)):
    """A random-init HF model's outputs on a random image, after checking that our converted
    model predicts the same. Random init gives near-uniform class probabilities and mask
    logits near 0 that look alike across queries: the class logits are replaced by random
    per-query logits, and the mask logits scaled ×10 plus a random blob pattern per query,
    the same for HF and for us."""
    pytest.importorskip("transformers")
    from m2f_teach.convert import from_hf
    from m2f_teach.convert.hf_reference import hf_resnet_config, random_hf_model
    hf = random_hf_model(hf_resnet_config(num_labels=num_labels), seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        images = torch.randn(2, 3, *size, generator=g)
        out = hf(pixel_values=images)
        cls_list, mask_list = from_hf(hf, image_size=size)(images)
    assert (cls_list[-1] - out.class_queries_logits).abs().max() < 1e-4
    assert (mask_list[-1] - out.masks_queries_logits).abs().max() < 1e-4
    out.class_queries_logits = 5 * torch.randn(out.class_queries_logits.shape, generator=g)
    B, Q, Hm, Wm = out.masks_queries_logits.shape
    blobs = F.interpolate(torch.randn(B, Q, Hm // 8, Wm // 8, generator=g), size=(Hm, Wm), mode="bilinear")
    out.masks_queries_logits = 10 * out.masks_queries_logits + 4 * blobs - 4
    return out


@pytest.fixture(scope="module")
def instance_outputs():
    return hf_outputs(num_labels=80, seed=0)


@pytest.fixture(scope="module")
def panoptic_outputs():
    return hf_outputs(num_labels=12, seed=1)


def import_mmdet():
    """mmdet with mmcv-lite's compiled ops stubbed (they are not in mmcv-lite)."""
    import importlib.util
    import types
    if importlib.util.find_spec("mmdet") == 0 or importlib.util.find_spec("mmcv") == 0:
        pytest.skip("mmdet is not importable: pip install mmcv-lite==2.1.0 mmengine mmdet==3.3.0")
    import mmcv.utils.ext_loader as ext_loader
    ext_loader.load_ext = lambda name, funcs: types.SimpleNamespace(**{f: None for f in funcs})




@pytest.fixture(scope="module")
def processor():
    from transformers import Mask2FormerImageProcessor
    return Mask2FormerImageProcessor()


def at_hf_size(out, b):
    return out.class_queries_logits[b], F.interpolate(out.masks_queries_logits, size=HF_SIZE,
                                                      mode="bilinear", align_corners=False)[b]


def test_instance_postprocess_matches_hf(instance_outputs, processor):
    hf = processor.post_process_instance_segmentation(instance_outputs, threshold=0.2, return_binary_maps=True)
    compared = 0
    for b, ref in enumerate(hf):
        ours = postprocess.instance_postprocess(*at_hf_size(instance_outputs, b))
        keep = (ours["scores"] >= 0.2) & torch.stack(ours["masks"]).flatten(1).any(1)
        ref_order = sorted(range(len(ref["segments_info"])), key=lambda i: -ref["segments_info"][i]["score"])
        assert int(keep.sum()) == len(ref_order) > 0
        ref_masks = ref["segmentation"][ref_order].bool()
        assert [ref["segments_info"][i]["label_id"] for i in ref_order] == ours["labels"][keep].tolist()
        assert np.allclose([ref["segments_info"][i]["score"] for i in ref_order], ours["scores"][keep], atol=1e-5)
        assert torch.equal(ref_masks, torch.stack(ours["masks"])[keep])
        compared += len(ref_order)
    assert compared >= 4


def test_semantic_postprocess_matches_hf(panoptic_outputs, processor):
    hf = processor.post_process_semantic_segmentation(panoptic_outputs)
    for b, ref in enumerate(hf):
        ours = postprocess.semantic_postprocess(*at_hf_size(panoptic_outputs, b))["segmentation"]
        assert ours.shape == ref.shape == HF_SIZE
        assert torch.equal(ours, ref)
        assert len(ref.unique()) >= 3


def test_panoptic_postprocess_matches_hf(panoptic_outputs, processor):
    """All 12 classes things (HF: nothing in `label_ids_to_fuse`); HF does not filter
    low-score pixels, so neither do we here. Stuff merging is checked against mmdet below."""
    hf = processor.post_process_panoptic_segmentation(
        panoptic_outputs, threshold=0.8, overlap_mask_area_threshold=0.8, label_ids_to_fuse=set())
    segments = 0
    for b, ref in enumerate(hf):
        ours = postprocess.panoptic_postprocess(*at_hf_size(panoptic_outputs, b), num_things=12,
                                                filter_low_score=False)
        assert torch.equal(ours["segmentation"], ref["segmentation"])
        assert [(s["id"], s["label"], not s["is_thing"]) for s in ours["segments"]] == \
               [(s["id"], s["label_id"], s["was_fused"]) for s in ref["segments_info"]]
        assert np.allclose([s["score"] for s in ours["segments"]],
                           [s["score"] for s in ref["segments_info"]], atol=1e-5)
        segments += len(ref["segments_info"])
    assert segments >= 3


def test_panoptic_stuff_merges_and_ids_stay_unique(panoptic_outputs):
    """Classes 8..11 are stuff: each stuff class is one segment, every id names one segment."""
    for b in range(2):
        ours = postprocess.panoptic_postprocess(*at_hf_size(panoptic_outputs, b), num_things=8)
        by_id = {}
        for s in ours["segments"]:
            by_id.setdefault(s["id"], set()).add((s["label"], s["query"] if s["is_thing"] else "stuff"))
        assert all(len(v) == 1 for v in by_id.values())
        assert sorted(by_id) == list(range(1, len(by_id) + 1))
        assert set(ours["segmentation"].unique().tolist()) <= {0, *by_id}
    merged = [s for s in ours["segments"] if not s["is_thing"]]
    assert len(merged) > len({s["id"] for s in merged}) >= 1       # this image merges a stuff class


def test_postprocess_matches_mmdet_fusion_head(panoptic_outputs):
    """mmdet's `MaskFormerFusionHead.predict(rescale=True)` with the Mask2Former panoptic
    test_cfg (filter_low_score) on a padded batch: its instance and panoptic results equal
    `resize_mask_pred` + our post-processing."""
    import_mmdet()
    from mmengine.config import ConfigDict
    from mmdet.models.seg_heads.panoptic_fusion_heads import MaskFormerFusionHead
    from mmdet.structures import DetDataSample
    from mmdet.evaluation.functional import INSTANCE_OFFSET
    num_things, num_stuff = 8, 4
    head = MaskFormerFusionHead(num_things, num_stuff, test_cfg=ConfigDict(
        panoptic_on=True, semantic_on=False, instance_on=True, max_per_image=20, iou_thr=0.8,
        filter_low_score=True))
    cls_pred, mask_pred = panoptic_outputs.class_queries_logits, panoptic_outputs.masks_queries_logits
    pad_shape = (96, 128)
    metas = [dict(img_shape=(90, 121), ori_shape=(135, 180)), dict(img_shape=(96, 100), ori_shape=(70, 73))]
    samples = [DetDataSample(metainfo=m) for m in metas]
    padded = F.interpolate(mask_pred, size=pad_shape, mode="bilinear", align_corners=False)
    with torch.no_grad():
        ref = head.predict(cls_pred, padded, samples, rescale=True)
    for b, meta in enumerate(metas):
        # all Q masks resized first (mmdet's order), and one query at a time (what predict does)
        resized = postprocess.resize_mask_pred(mask_pred[b], pad_shape, meta["img_shape"], meta["ori_shape"])
        lazy = postprocess.MaskLogits(mask_pred[b], pad_shape, meta["img_shape"], meta["ori_shape"])
        ins = ref[b]["ins_results"]
        order = ins.scores.argsort(descending=True, stable=True)
        for masks in (resized, lazy):
            ours = postprocess.instance_postprocess(cls_pred[b], masks, max_per_image=20, num_things=num_things)
            assert torch.equal(ours["labels"], ins.labels[order])
            assert torch.allclose(ours["scores"], ins.scores[order], atol=1e-6)
            assert torch.equal(torch.stack(ours["masks"]), ins.masks[order])
            assert torch.equal(ours["boxes"], ins.bboxes[order].long())       # mmdet's mask2bbox
        pan = ref[b]["pan_results"].sem_seg[0]                       # class + instance · OFFSET
        ours = postprocess.panoptic_postprocess(cls_pred[b], lazy, num_things=num_things)
        assert torch.equal(ours["segmentation"],
                           postprocess.panoptic_postprocess(cls_pred[b], resized, num_things=num_things)["segmentation"])
        label = torch.full_like(pan, num_things + num_stuff)
        for s in ours["segments"]:
            label[ours["segmentation"] == s["id"]] = s["label"]
        assert torch.equal(label, pan % INSTANCE_OFFSET)
        # the same partition into segments: each of our segments is one mmdet segment
        for s in {s["id"]: s for s in ours["segments"]}.values():
            assert len(pan[ours["segmentation"] == s["id"]].unique()) == 1
        assert len(ours["segmentation"].unique()) == len(pan.unique())
        assert len(ours["segments"]) >= 1


def test_panoptic_measures_own_area_before_the_score_like_mmdet():
    """The one rule where HF differs: a query's own area counts `sigmoid ≥ 0.5`, not
    `score · sigmoid ≥ 0.5`. Query 0 (score ≈ 0.9) owns 90 of its 100 pixels ≥ 0.5;
    scaled by its score only its 90 surest pixels pass, and HF would keep it (90/90 > 0.8)."""
    cls_pred = torch.tensor([[4.0, -9.0, 1.8], [-9.0, 9.0, -9.0]])          # K = 3: 2 classes + no-object
    mask = torch.full((2, 10, 20), -9.0)
    mask[0, :, :10] = torch.linspace(0.01, 3.0, 100).view(10, 10)            # 100 px ≥ 0.5 (logit > 0)
    mask[1, :1, :10] = 9.0                                                   # query 1 takes 10 of them
    out = postprocess.panoptic_postprocess(cls_pred, mask, object_mask_threshold=0.5, filter_low_score=False)
    assert [s["label"] for s in out["segments"]] == [0, 1]                   # 90/100 > 0.8: kept
    mask[1, :3, :10] = 9.0                                                   # query 1 takes 30: 70/100
    out = postprocess.panoptic_postprocess(cls_pred, mask, object_mask_threshold=0.5, filter_low_score=False)
    assert [s["label"] for s in out["segments"]] == [1]


def test_rescale_size_and_normalisation_match_mmcv_and_mmdet():
    import_mmdet()
    import mmcv.image as mmcv_image
    for size in [(480, 640), (800, 1333), (1000, 200), (33, 35), (2000, 3000)]:
        h, w = size
        assert rescale_size(size, COCO_TEST_SCALE) == mmcv_image.rescale_size((w, h), COCO_TEST_SCALE)[::-1]
    from mmdet.models.data_preprocessors import DetDataPreprocessor
    from m2f_teach.data import IMAGE_MEAN, IMAGE_STD
    pre = DetDataPreprocessor(mean=IMAGE_MEAN, std=IMAGE_STD, bgr_to_rgb=False, pad_size_divisor=32)
    image = torch.randint(0, 256, (3, 70, 100), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ref = pre({"inputs": [image]}, training=False)["inputs"][0]              # (3, 96, 128)
    ours, metas = preprocess([image], scale=None)
    assert metas[0].pad_shape == (96, 128) and metas[0].img_shape == metas[0].ori_shape == (70, 100)
    assert torch.allclose(ours[0], ref, atol=1e-5)


def shapes_image(index, size=(128, 128)):
    return draw_sample(index, TEST_SEED, size)


def test_shipped_checkpoint_finds_the_shapes():
    """Instance results on held-out shapes images name the objects that are there."""
    samples = [shapes_image(i) for i in range(3)]
    results = predict([s["image"] for s in samples], task="instance")
    for sample, result in zip(samples, results):
        assert result["size"] == (128, 128)
        found = sorted(i["label"] for i in result["instances"] if i["score"] > 0.7)
        assert found == sorted(sample["labels"].tolist()), (found, sample["labels"])


def test_result_of_an_image_does_not_depend_on_its_batch():
    """Mixed sizes and input types in one call give each image the result it gets alone."""
    wide = shapes_image(5, (100, 150))
    square = shapes_image(6)
    predictor = Predictor.from_weights()
    together = predictor([wide["image"], torch.from_numpy(square["image"]).permute(2, 0, 1), square["image"]],
                         task="semantic")
    alone = [predictor(wide["image"], task="semantic")[0], predictor(square["image"], task="semantic")[0]]
    assert together[0]["size"] == (100, 150) and together[1]["size"] == (128, 128)
    assert torch.equal(together[0]["segmentation"], alone[0]["segmentation"])
    assert torch.equal(together[1]["segmentation"], alone[1]["segmentation"])
    assert torch.equal(together[2]["segmentation"], alone[1]["segmentation"])


def test_panoptic_and_semantic_on_the_shipped_checkpoint():
    sample = shapes_image(1)
    pan = predict(sample["image"], task="panoptic")[0]
    assert sorted(s["label"] for s in pan["segments"]) == sorted(sample["labels"].tolist())
    assert all(s["is_thing"] for s in pan["segments"])
    for s, gt in zip(sorted(pan["segments"], key=lambda s: s["label"]),
                     sorted(zip(sample["labels"].tolist(), sample["masks"]), key=lambda x: x[0])):
        mine = (pan["segmentation"] == s["id"]).numpy()
        iou = (mine & gt[1]).sum() / (mine | gt[1]).sum()
        assert iou > 0.8
    sem = predict(sample["image"], task="semantic")[0]
    assert sem["segmentation"].shape == (128, 128)
    assert set(sample["labels"].tolist()) <= {c["label"] for c in sem["classes"]}


def test_rle_matches_the_coco_format():
    rng = np.random.default_rng(0)
    masks = [rng.random((13, 17)) < 0.3, np.zeros((5, 4), bool), np.ones((6, 3), bool)]
    m = np.zeros((40, 30), bool)
    m[5:30, 2:25] = True
    masks.append(m)
    for mask in masks:
        encoded = rle.encode(mask)
        assert encoded["size"] == list(mask.shape)
        assert np.array_equal(rle.decode(encoded), mask)
    assert rle.encode(np.array([[0, 1], [1, 1]]))["counts"] == "13"   # runs 1, 3 column by column
    try:
        from pycocotools import mask as coco_mask
    except ImportError:
        return
    for mask in masks:
        ref = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert rle.encode(mask)["counts"] == ref["counts"].decode()
        assert np.array_equal(coco_mask.decode(rle.encode(mask)), mask)


def write_png(path, array):
    from PIL import Image
    Image.fromarray(array).save(path)
    return str(path)


def test_cli_writes_overlay_and_json(cli, tmp_path, capsys):
    sample = shapes_image(0)
    image = write_png(tmp_path / "shapes.png", sample["image"])
    for task in ("instance", "semantic", "panoptic"):
        overlay, out = tmp_path / f"{task}.png", tmp_path / f"{task}.json"
        assert cli(["predict", image, "--task", task, "-o", str(overlay), "--json", str(out)]) == 0
        results = json.loads(out.read_text())
        assert results[0]["height"] == 128 and results[0]["task"] == task
        key = {"instance": "instances", "semantic": "classes", "panoptic": "segments"}[task]
        assert results[0][key], results
        assert rle.decode(results[0][key][0]["mask"]).any()
        from PIL import Image
        assert Image.open(overlay).size == (128, 128)
    assert "ring" in capsys.readouterr().out


def test_cli_on_converted_hf_weights_uses_stored_names(cli, tmp_path, capsys):
    """A converted random-init HF model with COCO names: the names come from the checkpoint;
    80 COCO names are things, so panoptic runs; with placeholder names it refuses panoptic."""
    pytest.importorskip("transformers")
    from m2f_teach.convert import from_hf, save_checkpoint
    from m2f_teach.convert.hf import labels_from_hf
    from m2f_teach.convert.hf_reference import hf_resnet_config, random_hf_model
    hf = random_hf_model(hf_resnet_config(num_labels=3), seed=0)
    hf.config.id2label = {0: "cat", 1: "grass", 2: "sky"}
    labels = labels_from_hf(hf.config)
    assert labels == {"class_names": ["cat", "grass", "sky"], "num_things": None}
    weights = save_checkpoint(from_hf(hf, image_size=(64, 64)), tmp_path / "w.safetensors", **labels)
    image = write_png(tmp_path / "photo.png", shapes_image(2, (70, 90))["image"])
    args = ["predict", image, "--weights", str(weights), "--resize", "128", "96", "--score-threshold", "0"]
    assert cli(args + ["--json", str(tmp_path / "r.json")]) == 0
    names = {i["name"] for i in json.loads((tmp_path / "r.json").read_text())[0]["instances"]}
    assert names and names <= {"cat", "grass", "sky"}
    capsys.readouterr()                          # (transformers' note on the ResNet backbone)
    assert cli(args + ["--task", "panoptic"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "panoptic" in err and "stuff" in err and "--num-things" in err
    assert cli(args + ["--task", "panoptic", "--num-things", "1"]) == 0


@pytest.mark.parametrize("case,expected", [
    ("missing", "no such image file"), ("corrupt", "cannot read it as an image"), ("tiny", "at least 32"),
    ("task", "--task depth: unknown task")])
def test_bad_input_is_one_line_naming_it(cli, tmp_path, capsys, case, expected):
    from PIL import Image
    image = shapes_image(0)["image"]
    paths = {"missing": tmp_path / "missing.png", "corrupt": tmp_path / "corrupt.jpg",
             "tiny": tmp_path / "tiny.png", "task": tmp_path / "ok.png"}
    paths["corrupt"].write_bytes(b"\xff\xd8\xff not really a jpeg")
    Image.fromarray(image[:20, :40]).save(paths["tiny"])
    Image.fromarray(image).save(paths["task"])
    args = ["predict", str(paths[case])] + (["--task", "depth"] if case == "task" else [])
    assert cli(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and expected in err, err
    if case != "task":
        assert str(paths[case]) in err


@pytest.mark.parametrize("flags,named", [
    (["--score-threshold", "2"], "--score-threshold 2.0: expected a number from 0 to 1"),
    (["--score-threshold", "-1"], "--score-threshold -1.0"),
    (["--score-threshold", "nan"], "--score-threshold nan"),
    (["--object-mask-threshold", "nan"], "--object-mask-threshold nan"),
    (["--overlap-threshold", "1.5"], "--overlap-threshold 1.5"),
    (["--min-probability", "-0.1"], "--min-probability -0.1"),
    (["--resize", "0", "0"], "--resize 0 0: expected two sizes of at least 32"),
    (["--max-input-pixels", "-1"], "--max-input-pixels -1"),
    (["--num-things", "-2"], "--num-things -2"),
    (["--background", "pink"], "--background pink: expected black or white"),
    (["--device", "tpu:x"], "device 'tpu:x'"),
    (["--no-resize", "--max-input-pixels", "1000"], "above the limit of 0.0 Mpixels"),
    (["-o", "over.gif"], "expected a .png or .jpg"),
    (["--json", "missing/r.json"], "the folder missing does not exist")])
def test_every_flag_is_checked_and_named(cli, tmp_path, capsys, monkeypatch, flags, named):
    monkeypatch.chdir(tmp_path)
    write_png(tmp_path / "ok.png", shapes_image(0)["image"])
    assert cli(["predict", "ok.png", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and named in err, err


def test_nothing_is_written_unless_the_whole_run_can_succeed(cli, tmp_path, capsys, monkeypatch):
    """`-o missing/over.png --json r.json`: refused before the model runs, `r.json` not written
    (old: the model ran, r.json was written, then -o failed)."""
    monkeypatch.chdir(tmp_path)
    write_png(tmp_path / "ok.png", shapes_image(0)["image"])
    assert cli(["predict", "ok.png", "-o", "missing/over.png", "--json", "r.json"]) == 2
    assert "--overlay missing/over.png: the folder missing does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.png"]
    assert cli(["predict", "ok.png", "--json", "ok.png"]) == 2          # would overwrite its input
    assert "is one of the input images" in capsys.readouterr().err


def test_cuda_without_cuda_is_one_clear_line(cli, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="CUDA is not available on this machine"):
        predict(shapes_image(0)["image"], device="cuda")
    write_png(tmp_path / "ok.png", shapes_image(0)["image"])
    assert cli(["predict", str(tmp_path / "ok.png"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "device 'cuda': CUDA is not available" in err


def test_predict_takes_device_and_its_options_are_in_the_signature():
    import inspect
    params = inspect.signature(predict).parameters
    for name in ("weights", "device", "task", "score_threshold", "object_mask_threshold",
                 "overlap_threshold", "min_probability", "background"):
        assert name in params and name in predict.__doc__
    assert not any(p.kind == p.VAR_KEYWORD for p in params.values())
    assert "every call" in predict.__doc__
    sample = shapes_image(0)
    assert predict(sample["image"], device="cpu")[0]["instances"]
    with pytest.raises(TypeError, match=r"score_threshold '0.5': expected a number from 0 to 1, got str"):
        predict(sample["image"], score_threshold="0.5")


def test_predictor_keeps_its_model_across_calls(monkeypatch):
    import m2f_teach.pretrained as pretrained
    loads = []
    real = pretrained.load_pretrained
    monkeypatch.setattr(pretrained, "load_pretrained", lambda *a: loads.append(1) or real(*a))
    predictor = Predictor.from_weights()
    model = predictor.model
    for _ in range(3):
        predictor(shapes_image(0)["image"])
    assert predictor.model is model and len(loads) == 1
    predict(shapes_image(0)["image"])                           # predict() loads on each call
    assert len(loads) == 2


def test_instances_carry_boxes_in_results_and_json():
    """Each box is its mask's extent, x1 and y1 one past the last pixel (as mmdet's
    `mask2bbox`; checked against mmdet in `test_postprocess_matches_mmdet_fusion_head`)."""
    sample = shapes_image(3, (100, 150))
    result = predict(sample["image"])[0]
    assert result["instances"]
    for instance, item in zip(result["instances"], to_json([result])[0]["instances"]):
        ys, xs = np.nonzero(instance["mask"].numpy())
        assert instance["box"] == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert item["box"] == list(instance["box"])


def test_broken_weights_are_an_error_not_an_empty_result():
    predictor = Predictor.from_weights()
    with torch.no_grad():
        next(predictor.model.parameters()).fill_(float("nan"))
    with pytest.raises(ValueError, match="image 0: the model's outputs contain NaN"):
        predictor(shapes_image(0)["image"])


def test_api_rejects_bad_arrays():
    with pytest.raises(ValueError, match=r"shape \(50, 60, 2\), expected \(H, W, 3\)"):
        predict(np.zeros((50, 60, 2), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(5, 50, 60\), expected \(3, H, W\)"):
        predict(torch.zeros(5, 50, 60))
    with pytest.raises(TypeError, match="is not an image"):
        predict([3.5])


def test_labels_from_hf_know_coco_things_and_stuff(tmp_path):
    """COCO's 80 instance names are all things; COCO panoptic's 133 put 80 things first;
    transformers' placeholder names (LABEL_0, ...) are not kept; names round-trip a checkpoint."""
    import types
    from m2f_teach import M2FConfig, Mask2Former
    from m2f_teach.convert import save_checkpoint
    from m2f_teach.convert.checkpoint import read_labels
    from m2f_teach.convert.hf import labels_from_hf

    def hf_config(names):
        return types.SimpleNamespace(num_labels=len(names), id2label=dict(enumerate(names)))
    coco = ["person"] + [f"thing {i}" for i in range(78)] + ["toothbrush"]
    assert labels_from_hf(hf_config(coco))["num_things"] == 80
    assert labels_from_hf(hf_config(coco + [f"stuff {i}" for i in range(53)]))["num_things"] == 80
    assert labels_from_hf(hf_config([f"LABEL_{i}" for i in range(5)])) == {"class_names": None, "num_things": None}
    model = Mask2Former(M2FConfig.small(num_classes=3, image_size=(64, 64)))
    path = save_checkpoint(model, tmp_path / "m.safetensors", class_names=["a", "b", "c"], num_things=2)
    assert read_labels(path) == {"class_names": ["a", "b", "c"], "num_things": 2}
    with pytest.raises(ValueError, match="2 class names for a model with 3 classes"):
        save_checkpoint(model, tmp_path / "bad.safetensors", class_names=["a", "b"])


def test_postprocessing_resizes_only_the_queries_it_keeps(panoptic_outputs):
    """Memory follows what is kept: instance resizes only pairs whose class probability
    reaches the threshold (their score = probability × a mask score ≤ 1 could not pass
    otherwise), panoptic only the confident queries, each one alone; the results are those of
    resizing all Q masks first."""
    cls_pred, mask_pred = panoptic_outputs.class_queries_logits[0], panoptic_outputs.masks_queries_logits[0]
    sizes = ((96, 128), (90, 121), (300, 400))
    resized = postprocess.resize_mask_pred(mask_pred, *sizes)

    class Counting(postprocess.MaskLogits):
        asked: list = []

        def __getitem__(self, idx):
            self.asked.append(list(idx))
            return super().__getitem__(idx)
    lazy = Counting(mask_pred, *sizes)
    probability = cls_pred.softmax(-1)[:, :-1]
    ours = postprocess.instance_postprocess(cls_pred, lazy, score_threshold=0.5)
    assert all(len(i) == 1 for i in Counting.asked)                                  # one at a time
    assert sorted(q for [q] in Counting.asked) == sorted((probability >= 0.5).nonzero()[:, 0].tolist()) != []
    full = postprocess.instance_postprocess(cls_pred, resized)                       # all Q, mmdet's way
    keep = (full["scores"] >= 0.5) & torch.stack(full["masks"]).flatten(1).any(1)
    assert torch.equal(ours["labels"], full["labels"][keep])
    assert torch.equal(torch.stack(ours["masks"]), torch.stack(full["masks"])[keep])
    Counting.asked.clear()
    pan = postprocess.panoptic_postprocess(cls_pred, lazy, num_things=8)
    confident = (cls_pred.softmax(-1).max(-1).values > 0.8) & (cls_pred.argmax(-1) != cls_pred.shape[1] - 1)
    assert {q for [q] in Counting.asked} == set(confident.nonzero().flatten().tolist())
    assert torch.equal(pan["segmentation"], postprocess.panoptic_postprocess(cls_pred, resized, num_things=8)["segmentation"])


def test_semantic_in_bands_equals_the_full_resolution_rule(panoptic_outputs, monkeypatch):
    """Bands of rows (a few rows each here) against all Q masks resized by `F.interpolate`
    then one einsum: the same classes (the band resize differs only by float rounding)."""
    cls_pred, mask_pred = panoptic_outputs.class_queries_logits[1], panoptic_outputs.masks_queries_logits[1]
    sizes = ((96, 128), (90, 121), (301, 403))
    resized = postprocess.resize_mask_pred(mask_pred, *sizes)
    lazy = postprocess.MaskLogits(mask_pred, *sizes)
    assert torch.allclose(lazy.rows(0, 301), resized, atol=1e-4)
    reference = torch.einsum("qc,qhw->chw", cls_pred.softmax(-1)[:, :-1], resized.sigmoid()).argmax(0)
    monkeypatch.setattr(postprocess, "BAND_BYTES", 4 * 403 * 120 * 7)            # 7 rows a band
    banded = postprocess.semantic_postprocess(cls_pred, lazy)
    assert (banded["segmentation"] == reference).float().mean() > 0.9999
    assert len(reference.unique()) >= 3
    floor = postprocess.semantic_postprocess(cls_pred, lazy, min_probability=0.6)
    assert torch.equal(floor["segmentation"] == -1, banded["probability"] < 0.6)


def test_semantic_leaves_the_shapes_background_unlabelled_by_default():
    """The shipped checkpoint has no background class: with `min_probability` 0 (every pixel a
    class, HF's and mmdet's rule) most background goes to some shape; the default 0.5 leaves
    it at −1 and keeps the objects."""
    sample = shapes_image(1)
    background = torch.from_numpy(~sample["masks"].any(0))
    default = predict(sample["image"], task="semantic")[0]["segmentation"]
    everything = predict(sample["image"], task="semantic", min_probability=0)[0]["segmentation"]
    assert (everything[background] >= 0).float().mean() == 1
    assert (default[background] == -1).float().mean() > 0.9
    for label, mask in zip(sample["labels"].tolist(), sample["masks"]):
        assert (default[torch.from_numpy(mask)] == label).float().mean() > 0.8


def test_overlay_label_sits_on_the_largest_component_and_scales():
    from m2f_teach.predict.cli import overlay_paths
    from m2f_teach.predict.overlay import font_size, label_position
    mask = np.zeros((200, 300), bool)
    mask[120:180, 200:280] = True                # the object
    mask[2:4, 2:4] = True                        # stray pixels far away (pulled the old label to (2, 2))
    x, y = label_position(mask)
    assert 200 <= x < 280 and 120 <= y < 180
    ring = np.zeros((100, 100), bool)
    yy, xx = np.mgrid[:100, :100]
    ring[((yy - 50) ** 2 + (xx - 50) ** 2 < 40 ** 2) & ((yy - 50) ** 2 + (xx - 50) ** 2 > 25 ** 2)] = True
    assert ring[label_position(ring)[::-1]]      # on the ring, not in its hole
    assert font_size(128, 128) == 10 and font_size(3000, 4000) > 80
    assert overlay_paths("out/over.png", ["a/cat.jpg", "b/dog.png", "c/cat.png"]) == [
        Path("out/over_cat.png"), Path("out/over_dog.png"), Path("out/over_cat_2.png")]
    assert overlay_paths("over.png", ["a/cat.jpg"]) == [Path("over.png")]
