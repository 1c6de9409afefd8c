"""`m2f_teach.predict`: preprocessing, the three post-processings, the API, the CLI, bad input.

Post-processing is checked against independent references on the same logits: HF
transformers' `Mask2FormerImageProcessor.post_process_{instance,semantic,panoptic}_segmentation`
on converted random-init HF models (an instance config, 80 things, and a panoptic config with
stuff classes), and mmdetection's `MaskFormerFusionHead.predict`; preprocessing against mmcv's
`rescale_size` and mmdet's `DetDataPreprocessor`.
"""
import json
import os

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
        keep = (ours["scores"] >= 0.2) & ours["masks"].flatten(1).any(1)
        ref_order = sorted(range(len(ref["segments_info"])), key=lambda i: -ref["segments_info"][i]["score"])
        assert int(keep.sum()) == len(ref_order) > 0
        ref_masks = ref["segmentation"][ref_order].bool()
        assert [ref["segments_info"][i]["label_id"] for i in ref_order] == ours["labels"][keep].tolist()
        assert np.allclose([ref["segments_info"][i]["score"] for i in ref_order], ours["scores"][keep], atol=1e-5)
        assert torch.equal(ref_masks, ours["masks"][keep])
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
        masks = postprocess.resize_mask_pred(mask_pred[b], pad_shape, meta["img_shape"], meta["ori_shape"])
        ours = postprocess.instance_postprocess(cls_pred[b], masks, max_per_image=20, num_things=num_things)
        ins = ref[b]["ins_results"]
        order = ins.scores.argsort(descending=True, stable=True)
        assert torch.equal(ours["labels"], ins.labels[order])
        assert torch.allclose(ours["scores"], ins.scores[order], atol=1e-6)
        assert torch.equal(ours["masks"], ins.masks[order])
        pan = ref[b]["pan_results"].sem_seg[0]                       # class + instance · OFFSET
        ours = postprocess.panoptic_postprocess(cls_pred[b], masks, num_things=num_things)
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
    assert cli(args + ["--task", "panoptic"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "panoptic" in err and "stuff" in err and "--num-things" in err
    assert cli(args + ["--task", "panoptic", "--num-things", "1"]) == 0


@pytest.mark.parametrize("case,expected", [
    ("missing", "no such image file"), ("gray", "mode L"), ("rgba", "mode RGBA"),
    ("corrupt", "cannot read it as an image"), ("tiny", "at least 32"), ("task", "unknown task 'depth'")])
def test_bad_input_is_one_line_naming_it(cli, tmp_path, capsys, case, expected):
    from PIL import Image
    image = shapes_image(0)["image"]
    paths = {"missing": tmp_path / "missing.png", "gray": tmp_path / "gray.png", "rgba": tmp_path / "rgba.png",
             "corrupt": tmp_path / "corrupt.jpg", "tiny": tmp_path / "tiny.png", "task": tmp_path / "ok.png"}
    Image.fromarray(image).convert("L").save(paths["gray"])
    Image.fromarray(image).convert("RGBA").save(paths["rgba"])
    paths["corrupt"].write_bytes(b"\xff\xd8\xff not really a jpeg")
    Image.fromarray(image[:20, :40]).save(paths["tiny"])
    Image.fromarray(image).save(paths["task"])
    args = ["predict", str(paths[case])] + (["--task", "depth"] if case == "task" else [])
    assert cli(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and expected in err, err
    if case != "task":
        assert str(paths[case]) in err
    if case in ("gray", "rgba"):     # --to-rgb accepts them
        assert cli(args + ["--to-rgb"]) == 0


def test_api_rejects_bad_arrays():
    with pytest.raises(ValueError, match=r"shape \(50, 60\), expected \(H, W, 3\)"):
        predict(np.zeros((50, 60), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(4, 50, 60\), expected \(3, H, W\)"):
        predict(torch.zeros(4, 50, 60))
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
