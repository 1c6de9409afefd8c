"""Build the explorer: a static folder that runs the shipped checkpoint in the student's browser.

    build_site("site/")          # or: python -m m2f_teach site -o site/   (make site)

What goes in the folder (about 21 MB; nothing is fetched from elsewhere at run time):

| file | what |
|---|---|
| `index.html`, `app.js`, `draw.js`, `views.js`, `i18n.js`, `style.css` | the page (plain ES modules, no build step) |
| `model/m2f_teach.onnx` | `TeachingOutputs(load_pretrained())` for one 128×128 image: predictions and the tapped tensors |
| `model/meta.json` | sizes, class names, output names and shapes, the checkpoint's held-out scores |
| `model/table.json`, `model/architecture.svg` | the shape table (English and Chinese) and the diagram at this configuration |
| `examples/*.png`, `examples/background.png` | held-out images (`TEST_SEED`) and the drawing canvas's background |
| `ort/` | onnxruntime-web's wasm build, vendored from `web/node_modules` (`npm ci`, pinned by `web/package-lock.json`) |

The folder is written beside its destination and moved into place at the end, so a failed build
leaves no half-written site; an existing destination is replaced only if an earlier build wrote it.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
ORT_PACKAGE = "onnxruntime-web"
# the only onnxruntime-web files the page loads: the wasm-only ES module, its loader and binary
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
STATIC_FILES = ("index.html", "app.js", "draw.js", "views.js", "i18n.js", "style.css")
MARKER = ".m2f-teach-site"                 # written into every built folder: safe to replace
NUM_EXAMPLES = 6
BACKGROUND_SEED = 7


def vendor_onnxruntime(destination: Path, web_dir: Path = WEB_DIR, log=print) -> str:
    """`npm ci` in `web_dir` (unless its node_modules already hold the locked version), then copy
    `ORT_FILES` and the licence into `destination`; returns the version."""
    package_json = web_dir / "package.json"
    if not package_json.is_file():
        raise FileNotFoundError(f"{package_json} is missing: the site is built from a clone of the "
                                f"repository (web/package.json pins {ORT_PACKAGE})")
    wanted = json.loads(package_json.read_text())["dependencies"][ORT_PACKAGE]
    installed_json = web_dir / "node_modules" / ORT_PACKAGE / "package.json"
    installed = json.loads(installed_json.read_text())["version"] if installed_json.is_file() else None
    if installed != wanted:
        npm = shutil.which("npm")
        if npm is None:
            raise FileNotFoundError(f"npm not found: the site vendors {ORT_PACKAGE} {wanted} from the npm "
                                    f"registry; install Node.js 20+ with npm (Debian: apt-get install -y npm)")
        log(f"npm ci in {web_dir} ({ORT_PACKAGE} {wanted})")
        done = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=web_dir,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise OSError(f"npm ci in {web_dir} failed (exit {done.returncode}): "
                          f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    dist = web_dir / "node_modules" / ORT_PACKAGE / "dist"
    destination.mkdir(parents=True, exist_ok=True)
    for name in ORT_FILES:
        if not (dist / name).is_file():
            raise FileNotFoundError(f"{dist / name} is missing from {ORT_PACKAGE} {wanted}")
        shutil.copyfile(dist / name, destination / name)
    licence = web_dir / "node_modules" / ORT_PACKAGE / "LICENSE"
    if licence.is_file():
        shutil.copyfile(licence, destination / "LICENSE")
    return wanted


def write_png(path: Path, image: np.ndarray):
    """`(H, W, 3)` uint8 → a PNG with no gamma or colour profile (the browser reads the bytes as is)."""
    from PIL import Image
    Image.fromarray(image, "RGB").save(path, format="PNG", optimize=True)


def write_examples(destination: Path, image_size) -> list[dict]:
    """Held-out images (`TEST_SEED`, indices 0..NUM_EXAMPLES−1) and the drawing background."""
    from ..data.shapes import CLASS_NAMES, TEST_SEED, draw_sample, textured_background
    destination.mkdir(parents=True, exist_ok=True)
    examples = []
    for index in range(NUM_EXAMPLES):
        sample = draw_sample(index, seed=TEST_SEED, image_size=image_size)
        name = f"test_{index}.png"
        write_png(destination / name, sample["image"])
        examples.append(dict(file=f"examples/{name}", seed=TEST_SEED, index=index,
                             labels=[CLASS_NAMES[i] for i in sample["labels"]]))
    background = textured_background(np.random.default_rng(BACKGROUND_SEED), image_size)
    write_png(destination / "background.png", np.clip(background * 255, 0, 255).round().astype(np.uint8))
    return examples


def write_architecture(destination: Path, config) -> None:
    """The shape table (both languages) and the diagram, at the page's configuration."""
    from ..tracing import trace_shapes
    from ..viz.diagram import save_diagram
    shapes = trace_shapes(config)
    table = shapes.table().select(columns=["step", "name", "symbolic", "shape", "note"],
                                  short_names=True, lang="both")
    (destination / "table.json").write_text(table.to_json())
    save_diagram(shapes, destination / "architecture.svg")


def write_meta(path: Path, model, output_names, session_outputs, examples, ort_version) -> None:
    from ..data.shapes import CLASS_NAMES, IMAGE_MEAN, IMAGE_STD
    from ..pretrained import checkpoint_info
    from .teaching_outputs import traced_name
    config = model.config
    spatial = [list(s) for s in config.spatial_shapes]
    starts = np.cumsum([0] + [h * w for h, w in spatial])[:-1].tolist()
    info = checkpoint_info()
    meta = dict(
        model="model/m2f_teach.onnx", onnxruntime_web=ort_version,
        image_size=list(config.image_size), mask_size=list(config.mask_size),
        spatial_shapes=spatial, level_start_index=starts, level_strides=list(config.level_strides),
        num_heads=config.num_heads, num_levels=config.num_levels, num_points=config.num_points,
        num_queries=config.num_queries, num_classes=config.num_classes,
        num_encoder_layers=config.num_encoder_layers, num_decoder_layers=config.num_decoder_layers,
        class_names=list(CLASS_NAMES), image_mean=list(IMAGE_MEAN), image_std=list(IMAGE_STD),
        outputs=[dict(name=n, traced=traced_name(n), shape=list(s), dtype=d)
                 for n, (s, d) in zip(output_names, session_outputs)],
        examples=examples, checkpoint=dict(metrics=info.get("metrics"), command=info.get("command")),
    )
    path.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")


def build_site(output, web_dir: Path = WEB_DIR, check: bool = True, log=print) -> dict:
    """Write the explorer to the folder `output`; returns a summary (sizes, the check's difference)."""
    import onnxruntime

    from ..pretrained import load_pretrained
    from .teaching_outputs import check_teaching_onnx, export_teaching_onnx

    output = Path(output)
    if output.exists() and (not output.is_dir() or (any(output.iterdir()) and not (output / MARKER).exists())):
        raise FileExistsError(f"-o {output}: exists and was not written by `m2f_teach site`; "
                              f"choose a new folder or remove it")
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    work.chmod(0o755)                      # mkdtemp's 0700 would hide the folder from a web server
    try:
        ort_version = vendor_onnxruntime(work / "ort", web_dir, log)
        log("exporting the shipped checkpoint with its taps (ONNX)")
        model = load_pretrained()
        (work / "model").mkdir()
        onnx_path = work / "model" / "m2f_teach.onnx"
        names = export_teaching_onnx(model, onnx_path)
        session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        shapes = [(o.shape, o.type.replace("tensor(", "").rstrip(")")) for o in session.get_outputs()]
        examples = write_examples(work / "examples", model.config.image_size)
        max_diff = None
        if check:
            import torch

            from ..data.shapes import TEST_SEED, draw_sample, normalise_pixels
            pixels = draw_sample(0, seed=TEST_SEED, image_size=model.config.image_size)["image"]  # (H, W, 3)
            images = normalise_pixels(torch.from_numpy(pixels).permute(2, 0, 1).float())[None]  # (1, 3, H, W)
            max_diff = max(check_teaching_onnx(onnx_path, model, images).values())
            if max_diff > 1e-4:
                raise ValueError(f"the exported model differs from PyTorch by {max_diff:.1e} (> 1e-4)")
        log("the shape table and the architecture diagram")
        write_architecture(work / "model", model.config.replace(batch_size=1))
        write_meta(work / "model" / "meta.json", model, names, shapes, examples, ort_version)
        static = resources.files("m2f_teach.site").joinpath("static")
        for name in STATIC_FILES:
            (work / name).write_bytes(static.joinpath(name).read_bytes())
        (work / MARKER).write_text("built by python -m m2f_teach site; safe to delete\n")
        if output.exists():
            shutil.rmtree(output)
        work.rename(output)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    files = [p for p in output.rglob("*") if p.is_file()]
    return dict(files=len(files), bytes=sum(p.stat().st_size for p in files), max_diff=max_diff,
                onnx_bytes=(output / "model" / "m2f_teach.onnx").stat().st_size)
