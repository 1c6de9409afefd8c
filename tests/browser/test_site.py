"""The explorer page in headless Chromium: the shipped model runs in the page, with nothing from
the network, and computes what PyTorch computes.

The site (`python -m m2f_teach site`; `$M2F_SITE` or built once per session) is served by
Python's `http.server` on 127.0.0.1; every request to another host is aborted and counted.
Screenshots and the measured load / inference times go to `artifacts/browser/site_*`
(recorded, not asserted: timings depend on the machine's load).
"""
from __future__ import annotations

import functools
import http.server
import json
import threading
import time
from urllib.parse import urlparse

import numpy as np
import pytest
import torch

from .conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, require_browser

pytestmark = pytest.mark.browser
TOL = 1e-3
TIMINGS: dict = {}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".mjs": "text/javascript", ".wasm": "application/wasm", ".onnx": "application/octet-stream"}

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site_url(built_site):
    require_browser()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(built_site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    require_browser()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class Page:
    """A fresh page with every non-loopback request blocked, its console errors and requests."""

    def __init__(self, browser, url, init_script=None):
        self.context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1, locale="en-US")
        self.page = self.context.new_page()
        self.errors, self.blocked, self.requests = [], [], []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route("**/*", self.route)
        if init_script:
            self.page.add_init_script(init_script)
        self.url = url

    def route(self, route):
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith("data:") or host in ("127.0.0.1", "localhost"):
            self.requests.append(route.request.url)
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def open(self):
        start = time.perf_counter()
        self.page.goto(self.url)
        self.page.wait_for_function("window.__m2f && (window.__m2f.runs > 0 || window.__m2f.error)", timeout=120_000)
        assert self.api("error") is None, self.api("error")
        return time.perf_counter() - start

    def api(self, expression):
        return self.page.evaluate(f"() => window.__m2f.{expression}")

    def wait_for_run(self, runs_before):
        self.page.wait_for_function(f"window.__m2f.runs > {runs_before} && !window.__m2f.running", timeout=60_000)

    def close(self):
        self.context.close()


@pytest.fixture
def page(browser, site_url):
    p = Page(browser, site_url)
    yield p
    p.close()
    assert p.errors == [], f"console errors: {p.errors}"
    assert p.blocked == [], f"the page asked for non-loopback addresses: {p.blocked}"


def canvas_png(page, selector):
    return page.page.evaluate(f"() => document.querySelector('{selector}').toDataURL()")


def test_the_page_computes_what_pytorch_computes_on_a_held_out_image(page, built_site, artifacts_dir):
    from m2f_teach.data.shapes import TEST_SEED, draw_sample, normalise_pixels
    from m2f_teach.pretrained import load_pretrained
    from m2f_teach.site import TeachingOutputs

    seconds = page.open()
    page.page.screenshot(path=str(artifacts_dir / "site_open.png"), full_page=True)
    meta = json.loads((built_site / "model" / "meta.json").read_text())
    H, W = meta["image_size"]
    pixels = np.array(page.api("input && Array.from(window.__m2f.input)"), dtype=np.uint8).reshape(H, W, 4)
    expected = draw_sample(0, seed=TEST_SEED, image_size=(H, W))["image"]
    assert np.array_equal(pixels[..., :3], expected)            # the PNG reached the model unchanged
    model = load_pretrained()
    with torch.no_grad():
        want = TeachingOutputs(model)(normalise_pixels(torch.from_numpy(pixels[..., :3].copy()).permute(2, 0, 1).float())[None])
    got = page.page.evaluate("() => Object.fromEntries(Object.entries(window.__m2f.outputs)"
                             ".map(([k, v]) => [k, {dims: v.dims, data: Array.from(v.data, Number)}]))")
    diffs = {}
    for name, reference in zip(TeachingOutputs(model).output_names, want):
        tensor = got[name]
        assert tuple(tensor["dims"]) == tuple(reference.shape), name
        value = torch.tensor(tensor["data"], dtype=torch.float64).view(reference.shape)
        diffs[name] = float((value - reference.double()).abs().max())
    worst = max(diffs, key=diffs.get)
    table = page.api("table")                 # the architecture table: each returned tensor's live shape
    assert table["liveRows"] >= 9 and table["mismatches"] == 0, table
    assert diffs[worst] <= TOL, (worst, diffs[worst])
    transfer = page.page.evaluate("() => performance.getEntriesByType('navigation').concat("
                                  "performance.getEntriesByType('resource')).reduce((s, e) => s + e.encodedBodySize, 0)")
    TIMINGS.update(open_to_first_result_s=round(seconds, 2), first_result_ms=round(page.api("firstResultMs")),
                   marks={k: round(v) for k, v in page.api("marks").items()},
                   first_inference_ms=round(page.api("timings[0]")), transfer_bytes=transfer,
                   max_abs_difference_to_pytorch=diffs[worst], worst_output=worst)
    assert len(page.requests) <= 30 and transfer < 25e6


def test_the_drawing_tools_draw_the_data_sets_shapes_pixel_for_pixel(page):
    from m2f_teach.data.shapes import CLASS_NAMES, shape_mask
    page.open()
    cases = [(label, (40.3, 70.8), 17.5, 0.7) for label in range(len(CLASS_NAMES))] + [(4, (3.0, 120.0), 25.0, 2.0)]
    for label, (cy, cx), radius, angle in cases:
        got = page.page.evaluate(
            "async ([name, cx, cy, r, a]) => (await import('./draw.js')).shapePixels(name, cx, cy, r, a, 128, 128)",
            [CLASS_NAMES[label], cx, cy, radius, angle])
        want = np.flatnonzero(shape_mask(label, (cy, cx), radius, angle, (128, 128)))
        assert np.array_equal(np.array(got), want), CLASS_NAMES[label]


def drag(page, start, end):
    box = page.page.locator("#preview").bounding_box()
    mouse = page.page.mouse
    mouse.move(box["x"] + start[0], box["y"] + start[1])
    mouse.down()
    mouse.move(box["x"] + (start[0] + end[0]) / 2, box["y"] + (start[1] + end[1]) / 2)
    mouse.move(box["x"] + end[0], box["y"] + end[1])
    mouse.up()


def test_drawing_a_shape_changes_the_predictions(page, artifacts_dir):
    page.open()
    runs = page.api("runs")
    page.page.click("#tool-clear")
    page.wait_for_run(runs)
    assert page.api("predictions.length") == 0                  # an empty background: nothing found
    for tool, start, end in (("square", (150, 160), (230, 160)), ("ring", (360, 350), (360, 430))):
        runs = page.api("runs")
        page.page.click(f"#tool-{tool}")
        drag(page, start, end)
        page.wait_for_run(runs)
        TIMINGS.setdefault("edit_to_result_ms", []).append(round(page.api("editToResultMs")))
        TIMINGS.setdefault("inference_ms", []).append(round(page.api("lastMs")))
    labels = sorted(p["label"] for p in page.api("predictions"))
    page.page.screenshot(path=str(artifacts_dir / "site_drawn.png"), full_page=True)
    assert labels == ["ring", "square"]
    runs = page.api("runs")
    page.page.click("#tool-eraser")                             # rub the ring out: one prediction left
    for y in range(256, 448, 8):
        drag(page, (280, y), (440, y))
    page.page.wait_for_function(f"window.__m2f.runs > {runs} && !window.__m2f.running")
    page.page.wait_for_timeout(200)
    page.page.wait_for_function("!window.__m2f.running")
    assert [p["label"] for p in page.api("predictions")] == ["square"]


def test_clicking_a_pixel_and_choosing_a_query_update_their_views(page, built_site, artifacts_dir):
    meta = json.loads((built_site / "model" / "meta.json").read_text())
    page.open()
    page.page.click("#tool-inspect")
    before = [canvas_png(page, f"#level-{l}") for l in range(3)]
    box = page.page.locator("#preview").bounding_box()
    page.page.mouse.click(box["x"] + 100, box["y"] + 420)        # image pixel (25, 105)
    l = 2                                                         # the default level: 16×16, stride 8
    h, w = meta["spatial_shapes"][l]
    assert page.api("points.token") == meta["level_start_index"][l] + (105 // 8) * w + 25 // 8
    after = [canvas_png(page, f"#level-{l}") for l in range(3)]
    assert all(a != b for a, b in zip(after, before))
    shown = page.api("points.levels")
    assert sum(level["points"] for level in shown) == meta["num_heads"] * meta["num_levels"] * meta["num_points"]
    assert sum(level["weight"] for level in shown) == pytest.approx(1, abs=1e-4)   # each head's weights sum to 1
    page.page.select_option("#head", "3")
    assert sum(level["points"] for level in page.api("points.levels")) == meta["num_levels"] * meta["num_points"]
    page.page.select_option("#layer", "5")
    assert canvas_png(page, "#level-2") != after[2]
    page.page.screenshot(path=str(artifacts_dir / "site_points.png"), full_page=True)

    first = page.api("query.query")
    other = next(q for q in range(meta["num_queries"]) if q != first)
    masks = [canvas_png(page, f"#mask-{j}") for j in range(meta["num_decoder_layers"] + 1)]
    page.page.select_option("#query", str(other))
    assert page.api("query.query") == other
    assert [canvas_png(page, f"#mask-{j}") for j in range(meta["num_decoder_layers"] + 1)] != masks
    assert len(page.api("query.resets")) == meta["num_decoder_layers"]
    page.page.click("#predictions li")                            # a prediction in the list picks its query
    assert page.api("query.query") == page.api("predictions[0].query")
    page.page.locator("#queries").screenshot(path=str(artifacts_dir / "site_queries.png"))


def test_the_language_switch_changes_every_label(page, artifacts_dir):
    page.open()
    text = lambda selector: page.page.locator(selector).first.inner_text()  # noqa: E731
    english = [text(s) for s in ("h1", "#tool-circle", "#predictions li b", "#decoder .rowhead:nth-child(12)", "#table th")]
    page.page.click("#lang")
    chinese = [text(s) for s in ("h1", "#tool-circle", "#predictions li b", "#decoder .rowhead:nth-child(12)", "#table th")]
    assert english[:3] == ["Mask2Former explorer", "circle", "ring"]
    assert chinese[:3] == ["Mask2Former 探索器", "圆形", "圆环"]
    assert all(e != c for e, c in zip(english, chinese)), (english, chinese)
    assert page.page.evaluate("document.documentElement.lang") == "zh-CN"
    page.page.screenshot(path=str(artifacts_dir / "site_zh.png"))
    page.page.click("#lang")
    assert text("h1") == "Mask2Former explorer"


def test_without_webassembly_the_page_says_so(browser, site_url, artifacts_dir):
    p = Page(browser, site_url, init_script="delete window.WebAssembly;")
    try:
        p.page.goto(site_url)
        p.page.wait_for_selector("#fatal:not([hidden])")
        assert "WebAssembly" in p.page.inner_text("#fatal")
        p.page.screenshot(path=str(artifacts_dir / "site_no_wasm.png"))
        assert p.errors == [] and p.blocked == []
    finally:
        p.close()


def test_record_the_timings(artifacts_dir):
    """Writes what the tests above measured (no assertion on time: it depends on the load)."""
    if not TIMINGS:
        pytest.skip("the page was not opened")
    (artifacts_dir / "site_timings.json").write_text(json.dumps(TIMINGS, indent=1) + "\n")
    print(json.dumps(TIMINGS))
