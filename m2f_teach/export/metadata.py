"""What an exported file needs beside its graph to reproduce `predict`: classes, preprocessing, size.

    metadata = describe(predictor, image_size=(128, 128))
    write_onnx_metadata("m2f.onnx", metadata)           # ONNX `metadata_props["m2f_teach"]`, json
    read_onnx_metadata("m2f.onnx")                      # → the same dict
    torch.export.save(program, "m2f.pt2", extra_files={METADATA_FILE: json.dumps(metadata)})

The dict: `class_names` (K − 1), `num_things` (classes 0..N−1 are things; null: unknown),
`image_mean` / `image_std` (RGB, on 0..255), `scale` (long, short edge an image is fitted into
keeping its ratio; null: no resize), `input_size` (H, W the file takes), `padding` (the rule in
words: bottom/right zeros after normalisation, up to `input_size`), `min_probability` (the
semantic default), `outputs` (names and shapes in the glossary's letters).
"""
from __future__ import annotations

import json

METADATA_KEY = "m2f_teach"                 # ONNX metadata_props key
METADATA_FILE = "m2f_teach.json"           # .pt2 extra file
PADDING = ("resize keeping the ratio to fit `scale` (bilinear), normalise (x − mean) / std, "
           "pad bottom and right with 0 to `input_size`")


def describe(predictor, image_size) -> dict:
    """The metadata of an export of `predictor.model` at `image_size (H, W)`."""
    from ..data import IMAGE_MEAN, IMAGE_STD
    config = predictor.model.config
    H, W = image_size
    return {"class_names": list(predictor.class_names), "num_things": predictor.num_things,
            "image_mean": list(IMAGE_MEAN), "image_std": list(IMAGE_STD),
            "scale": list(predictor.scale) if predictor.scale is not None else None,
            "input_size": [H, W], "padding": PADDING, "min_probability": predictor.min_probability,
            "outputs": {"cls_pred": ["B", config.num_queries, config.num_classes + 1],
                        "mask_pred": ["B", config.num_queries, H // 4, W // 4]}}


def set_output_shapes(model_proto, metadata: dict) -> None:
    """Declare each output's shape (`batch` dynamic, the rest fixed) in an ONNX `ModelProto`:
    the TorchScript exporter names them after internal nodes (`Addcls_pred_dim_1`)."""
    for output in model_proto.graph.output:
        dims = output.type.tensor_type.shape.dim
        want = metadata["outputs"][output.name]
        del dims[:]
        for size in want:
            dim = dims.add()
            if isinstance(size, str):
                dim.dim_param = "batch"
            else:
                dim.dim_value = size


def write_onnx_metadata(path, metadata: dict) -> None:
    """Add `metadata` and the declared output shapes to the ONNX file at `path` (rewritten whole)."""
    import onnx
    model_proto = onnx.load(str(path))
    set_output_shapes(model_proto, metadata)
    del model_proto.metadata_props[:]
    entry = model_proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    onnx.save(model_proto, str(path))


def read_onnx_metadata(path) -> dict:
    """The metadata written by `write_onnx_metadata`, read with onnxruntime (no onnx needed)."""
    import onnxruntime
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return metadata_of(session, path)


def metadata_of(session, path) -> dict:
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise ValueError(f"{path}: no {METADATA_KEY} metadata (not written by `python -m m2f_teach "
                         f"export`, or by an older version); export it again")
    return json.loads(props[METADATA_KEY])


def read_pt2_metadata(path) -> dict:
    """The metadata saved inside a `.pt2` by `python -m m2f_teach export --format pt2`."""
    import torch
    extra = {METADATA_FILE: ""}
    torch.export.load(str(path), extra_files=extra)
    if not extra[METADATA_FILE]:
        raise ValueError(f"{path}: no {METADATA_FILE} inside (not written by `python -m m2f_teach export`)")
    return json.loads(extra[METADATA_FILE])
