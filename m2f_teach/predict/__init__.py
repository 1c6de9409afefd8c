"""Use the model outside the notebooks: images of any size in, results for the three tasks out.

    from m2f_teach.predict import predict
    results = predict(["photo.jpg"], task="instance")        # the shipped checkpoint

`preprocess` (mmdet's test pipeline + `DetDataPreprocessor`), `postprocess` (mmdet's
`MaskFormerFusionHead`, HF's `post_process_*`), `api` (`Predictor`, `predict`, `to_json`),
`rle` (COCO RLE), `overlay` (a picture of the results), `cli` (`python -m m2f_teach predict`).
"""
from .api import TASKS, Predictor, predict, to_json
from .preprocess import load_image, preprocess

__all__ = ["TASKS", "Predictor", "predict", "to_json", "load_image", "preprocess"]
