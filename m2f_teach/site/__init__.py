"""The explorer page: the shipped checkpoint running in the browser, nothing to install.

    python -m m2f_teach site -o site/        # build the static folder (make site)
    python -m http.server -d site 8000       # any static file server; open http://127.0.0.1:8000/

`teaching_outputs.py` exports the model with its tapped tensors (sampling points, attention
weights, attention masks, every prediction) to ONNX; `build.py` writes the folder; `static/`
holds the page.
"""
from .build import build_site
from .teaching_outputs import TeachingOutputs, check_teaching_onnx, export_teaching_onnx, output_names

__all__ = ["TeachingOutputs", "build_site", "check_teaching_onnx", "export_teaching_onnx", "output_names"]
