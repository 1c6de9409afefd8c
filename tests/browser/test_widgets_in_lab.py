"""Every interactive view of the notebooks, in JupyterLab in headless Chromium, as a student uses it.

For each notebook that has widgets (found automatically: its code uses ipywidgets, `interact`,
or a `m2f_teach.viz` function that returns an Explorer, or its stored outputs hold a widget):
open it in JupyterLab, wait for an idle kernel, Run All (the Run menu), save the temporary copy
and fail on any cell error. Then, for every widget view in the outputs, move each control the
way a student does (slider: click the handle and press an arrow key, then drag it, then End;
dropdown: arrow keys, else choose the option; checkbox / buttons: click) and check that the
picture it drives changes: screenshots of the view with its controls greyed out, before and
after, compared pixel for pixel. The "picture" is everything in the view that is not a
control: figures (img / canvas / svg) and captions / printed text.

Fails on: a cell error; a widget that does not render; a control that does not move or whose
picture does not change; flicker (the picture disappears, or the view shrinks below 90 % of its
height, in any animation frame of the redraw); a redraw slower than SLOW_REDRAW_S; a view wider
than the notebook; a slider or dropdown squeezed narrower than MIN_CONTROL_PX; JavaScript errors
(console errors, uncaught page errors, or errors JupyterLab shows in an output).
Warns (report.json and the terminal summary): pictures stretched or squeezed by the browser,
views taller than the notebook area of a 1366×768 screen, control labels cut off.

Artefacts in artifacts/browser/<notebook>/ (git-ignored): NN-view.png (view NN after Run All),
NN-<control>-before.png / -after.png (what the control drives), page.png (the window at the
end), report.json (timings, every move, layout measurements, console).
"""
from __future__ import annotations

import inspect
import io
import json
import re
import time
from pathlib import Path

import pytest

from .conftest import NOTEBOOKS, REPORTS, VIEWPORT

pytestmark = pytest.mark.browser

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# A top-level output of a cell that holds a rendered widget (JupyterLab gives widget outputs no
# data-mime-type; the widget's root carries the class jupyter-widgets).
OUTPUT_SELECTOR = ".jp-Cell-outputArea > .jp-OutputArea-child > .jp-OutputArea-output:has(> .jupyter-widgets)"
RUN_ALL_TIMEOUT_S = 240            # the kernel runs the whole notebook (2 shared CPU cores in CI)
REDRAW_TIMEOUT_S = 20              # one move → new picture, generous for a loaded CI machine
SLOW_REDRAW_S = 5.0                # a redraw slower than this fails: students drag sliders
MIN_CONTROL_PX = {"slider": 100, "dropdown": 60}   # narrower, a control is hard to use
SETTLE_S = 0.5                     # the picture must stay the same this long to count as drawn

# Console errors that are not the notebooks' or their widgets' fault, as (regular expression
# matched against "type: text  [url]", reason). Empty: JupyterLab 4.6 + ipywidgets 8.1 log no
# error in these runs. Add an entry only with the precise reason it is harmless.
HARMLESS_CONSOLE: list[tuple[str, str]] = []


# ---- discovery -----------------------------------------------------------------------------------

def _widget_factories() -> list[str]:
    """Names of the `m2f_teach.viz` functions that return an interactive view (an Explorer)."""
    try:
        import m2f_teach.viz as viz
    except Exception:                                                  # pragma: no cover
        return []
    names = []
    for name, obj in vars(viz).items():
        if inspect.isfunction(obj) and "Explorer" in str(inspect.signature(obj).return_annotation):
            names.append(name)
    return names


WIDGET_SOURCE = re.compile(r"\bipywidgets\b|\binteract(ive)?\s*\(|@interact\b|"
                           + "|".join(rf"\b{re.escape(n)}\s*\(" for n in _widget_factories() or ["_explorer"])
                           + r"|\w+_(explorer|browser)\s*\(")


def _notebook_has_widgets(path: Path) -> bool:
    notebook = json.loads(path.read_text())
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", []))
        if WIDGET_SOURCE.search(source):
            return True
        for output in cell.get("outputs", []):
            if WIDGET_MIME in output.get("data", {}):
                return True
    return False


def widget_notebooks() -> list[Path]:
    return sorted(p for p in NOTEBOOKS.glob("0*.ipynb") if _notebook_has_widgets(p))


NOTEBOOK_PARAMS = [pytest.param(p.name, id=p.stem) for p in widget_notebooks()]


def test_some_notebooks_have_widgets():
    """Discovery itself: a broken pattern must not silently test nothing."""
    notebooks = sorted(NOTEBOOKS.glob("0*.ipynb"))
    if not notebooks:
        pytest.skip(f"no notebooks/0*.ipynb in {NOTEBOOKS} yet")
    assert NOTEBOOK_PARAMS, f"none of {[p.name for p in notebooks]} looks like it has widgets"


# ---- JupyterLab helpers --------------------------------------------------------------------------

def _wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.25):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def _kernel_idle(page) -> bool:
    return page.evaluate("""() => {
        const el = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
        return el !== null && el.getAttribute('data-status') === 'idle';
    }""")


def _session_idle(server, notebook: str) -> bool:
    """The server has a kernel for this notebook, and it is idle."""
    try:
        sessions = server.api("sessions")
    except OSError:
        return False
    return any(s.get("path", "").endswith(notebook) and s.get("kernel") and
               s["kernel"].get("execution_state") == "idle" for s in sessions)


def _accept_kernel_dialog(page, report) -> bool:
    """JupyterLab may ask which kernel to start (when the kernel specs arrive after the notebook
    opens); a student clicks Select, which keeps the notebook's own kernel. Returns False so
    the wait goes on until the kernel is idle."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count() and "Select Kernel" in dialog.first.inner_text():
        dialog.first.get_by_role("button", name="Select", exact=True).click()
        report["kernel_dialog"] = "JupyterLab asked for a kernel; clicked Select"
    return False


def _prompts(page) -> list[str]:
    return page.evaluate("""() => [...document.querySelectorAll(
        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-CodeCell .jp-InputArea-prompt')]
        .map(p => p.textContent.trim())""")


def _run_all(page):
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()


def _save(page):
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")


def _errors_in(notebook: dict) -> list[str]:
    found = []
    for index, cell in enumerate(notebook["cells"]):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                trace = "\n".join(output.get("traceback", []))
                trace = re.sub(r"\x1b\[[0-9;]*m", "", trace)
                found.append(f"cell {index}: {output.get('ename')}: {output.get('evalue')}\n{trace[-3000:]}")
    return found


# ---- one view: its parts, its picture ------------------------------------------------------------

# What a view is made of, in coordinates relative to the view: its controls, and what they
# drive ("displays": figures, i.e. img / canvas / svg outside the controls, and captions or
# printed text). `state` changes whenever a display does; it is polled to see a redraw land.
CONTROL_SELECTOR = (".widget-hslider, .widget-vslider, .widget-dropdown, .widget-checkbox, "
                    ".widget-toggle-buttons, .widget-radio, .widget-select, .widget-text, "
                    ".widget-button, .widget-play, .widget-colorpicker, .widget-datepicker")
PARTS_JS = """(view) => {
    const CONTROL = %s;
    const v = view.getBoundingClientRect();
    const rect = e => { const r = e.getBoundingClientRect(); return [r.x - v.x, r.y - v.y, r.width, r.height]; };
    const shown = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
    const free = e => e.closest(CONTROL) === null;
    const figures = [...view.querySelectorAll('img, canvas, svg')].filter(e => free(e) && shown(e) &&
        e.getBoundingClientRect().width > 20 && !(e.tagName === 'svg' && e.parentElement.closest('svg')));
    const texts = [...view.querySelectorAll('.widget-html-content, .widget-label-basic, ' +
        '.widget-output .jp-RenderedText, .widget-output .jp-RenderedHTMLCommon')]
        .filter(e => free(e) && shown(e));
    return {
        size: [v.width, v.height],
        controls: [...view.querySelectorAll(CONTROL)].filter(shown).map(rect),
        displays: figures.concat(texts).map(rect),
        state: JSON.stringify([figures.map(e => [e.tagName, e.currentSrc || e.src || '', e.naturalWidth || 0]),
                               texts.map(e => e.textContent)]),
        loaded: figures.every(e => e.tagName !== 'IMG' || (e.complete && e.naturalWidth > 0)),
        figures: figures.length,
    };
}""" % json.dumps(CONTROL_SELECTOR)

# Layout as the student sees it: is the view wider than the notebook, are labels cut off, are
# the pictures shown at their own size (bigger: blurry; smaller: tiny text).
LAYOUT_JS = """(view) => {
    const area = view.closest('.jp-Cell') || view;
    const imgs = [...view.querySelectorAll('img')].filter(e => e.getBoundingClientRect().width > 20);
    const labels = [...view.querySelectorAll('.widget-label')].filter(l => l.offsetParent);
    return {
        view_width: Math.round(view.getBoundingClientRect().width),
        view_height: Math.round(view.getBoundingClientRect().height),
        cell_width: Math.round(area.getBoundingClientRect().width),
        overflow_x: view.scrollWidth > view.clientWidth + 1,
        images: imgs.map(e => ({natural: [e.naturalWidth, e.naturalHeight],
            shown: [Math.round(e.getBoundingClientRect().width), Math.round(e.getBoundingClientRect().height)]})),
        truncated_labels: labels.filter(l => l.scrollWidth > l.clientWidth + 1).map(l => l.textContent),
        // how much room each control has to be used: a slider's track, a dropdown's box
        control_widths: [...view.querySelectorAll('.widget-hslider, .widget-dropdown')].filter(c => c.offsetParent)
            .map(c => { const part = c.querySelector('.noUi-target, select');
                        const label = c.querySelector('.widget-label');
                        return [label ? label.textContent : '', c.classList.contains('widget-dropdown') ? 'dropdown' : 'slider',
                                part ? Math.round(part.getBoundingClientRect().width) : 0]; }),
    };
}"""

# Flicker: sampled every animation frame while a redraw happens (what the screen shows).
MONITOR_START_JS = """(view) => {
    const figs = () => [...view.querySelectorAll('img, canvas, svg')].filter(e => e.getBoundingClientRect().height > 20).length;
    const m = {run: true, frames: 0, h0: view.getBoundingClientRect().height, minH: Infinity, figs0: figs(), minFigs: Infinity};
    const tick = () => {
        if (!m.run) return;
        m.frames += 1;
        m.minH = Math.min(m.minH, view.getBoundingClientRect().height);
        m.minFigs = Math.min(m.minFigs, figs());
        requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    window.__m2fMonitor = m;
}"""
MONITOR_STOP_JS = """() => { const m = window.__m2fMonitor; m.run = false;
    return {frames: m.frames, h0: Math.round(m.h0), minH: Math.round(m.minH), figs0: m.figs0, minFigs: m.minFigs}; }"""


def _picture(view):
    """The view's screenshot with its controls greyed out, cropped to what they drive: a moved
    slider changes its own pixels, so only the rest may count as "the picture changed"."""
    from PIL import Image, ImageDraw

    view.scroll_into_view_if_needed()
    parts = view.evaluate(PARTS_JS)
    image = Image.open(io.BytesIO(view.screenshot(animations="disabled", caret="hide"))).convert("RGB")
    draw = ImageDraw.Draw(image)
    for x, y, w, h in parts["controls"]:
        draw.rectangle([x, y, x + w, y + h], fill=(160, 160, 160))
    if parts["displays"]:
        left = max(0, min(x for x, y, w, h in parts["displays"]))
        top = max(0, min(y for x, y, w, h in parts["displays"]))
        right = min(image.width, max(x + w for x, y, w, h in parts["displays"]))
        bottom = min(image.height, max(y + h for x, y, w, h in parts["displays"]))
        if right - left > 10 and bottom - top > 10:
            image = image.crop((int(left), int(top), int(round(right)), int(round(bottom))))
    return image


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _settle(view, before: dict, timeout_s: float, start: float):
    """Wait until the displays differ from `before`, are loaded, have as many figures, and stay
    the same for SETTLE_S. Returns seconds from `start` (the move) to that final state, or None
    when nothing changed."""
    last, since = None, None
    while time.monotonic() - start < timeout_s:
        parts = view.evaluate(PARTS_JS)
        done = parts["state"] != before["state"] and parts["loaded"] and parts["figures"] >= before["figures"]
        if not done:
            last, since = None, None
        elif parts["state"] != last:
            last, since = parts["state"], time.monotonic()
        elif time.monotonic() - since >= SETTLE_S:
            return since - start
        time.sleep(0.05)
    return None if last is None else since - start


# ---- one control ---------------------------------------------------------------------------------

CONTROL_KINDS = [
    ("slider", ".widget-hslider, .widget-vslider"),
    ("dropdown", ".widget-dropdown"),
    ("checkbox", ".widget-checkbox"),
    ("toggle-buttons", ".widget-toggle-buttons"),
    ("radio", ".widget-radio"),
    ("select", ".widget-select"),
    ("text", ".widget-text"),
]


def _controls(view) -> list[dict]:
    """The view's controls, top to bottom, left to right."""
    found = []
    for kind, selector in CONTROL_KINDS:
        boxes = view.locator(selector)
        for i in range(boxes.count()):
            box = boxes.nth(i)
            if not box.is_visible():
                continue
            label = box.locator(".widget-label").first
            name = label.inner_text().strip() if label.count() else ""
            if kind == "checkbox" and not name:
                name = box.inner_text().strip()
            where = box.bounding_box()
            found.append(dict(kind=kind, name=name or f"{kind}{i}", box=box, y=where["y"], x=where["x"]))
    found.sort(key=lambda c: (round(c["y"] / 10), c["x"]))
    return found


def _value(control) -> str:
    box, kind = control["box"], control["kind"]
    if kind == "slider":
        readout = box.locator(".widget-readout")
        if readout.count():
            return readout.first.inner_text().strip()
        return box.locator(".noUi-handle").first.get_attribute("aria-valuenow") or ""
    if kind in ("dropdown", "select"):
        return box.locator("select").first.evaluate("s => s.value")
    if kind == "checkbox":
        return str(box.locator("input").first.is_checked())
    if kind == "toggle-buttons":
        active = box.locator(".mod-active")
        return active.first.inner_text() if active.count() else ""
    if kind == "radio":
        checked = box.locator("input:checked")
        return checked.first.evaluate("e => e.value") if checked.count() else ""
    if kind == "text":
        return box.locator("input").first.input_value()
    return ""


def _changed(control, before: str, timeout_s: float = 1.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _value(control) != before:
            return True
        time.sleep(0.05)
    return False


def _move(page, control, attempt: int) -> str:
    """Change the control as a student does; `attempt` > 0 makes a bigger move. Returns what was done."""
    box, kind = control["box"], control["kind"]
    if kind == "slider":
        handle = box.locator(".noUi-handle").first
        now = float(handle.get_attribute("aria-valuenow") or 0)
        high = float(handle.get_attribute("aria-valuemax") or now)
        if attempt == 1:                                                # mouse: drag the handle
            track = box.locator(".noUi-target").first.bounding_box()
            grip = handle.bounding_box()
            x, y = grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2
            to = track["x"] + track["width"] * (0.7 if now < high else 0.1)
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(to, y, steps=6)
            page.mouse.up()
            return f"drag the handle to {100 * (to - track['x']) / track['width']:.0f}% of the track"
        handle.click()                                                  # focus it, as a student does
        key = ("ArrowRight" if now < high else "ArrowLeft") if attempt == 0 else ("End" if now < high else "Home")
        page.keyboard.press(key)
        return f"click the handle, {key}"
    if kind in ("dropdown", "select"):
        select = box.locator("select").first
        options = select.evaluate("s => [...s.options].map(o => o.value)")
        index = select.evaluate("s => s.selectedIndex")
        step = 1 if attempt == 0 else 2 if attempt == 1 else len(options) - 1
        target = (index + step) % len(options)
        before = _value(control)
        select.focus()
        key = "ArrowDown" if target > index else "ArrowUp"
        for _ in range(abs(target - index)):
            page.keyboard.press(key)
        if _changed(control, before, 0.5):
            return f"focus, {key}×{abs(target - index)}"
        # JupyterLab's command mode may take the arrow keys; the popup of a <select> is not
        # part of the page, so pick the option the way Playwright picks from any <select>
        # (it fires the same input and change events as a click in the popup).
        select.select_option(options[target])
        return f"choose option {target} ({options[target]})"
    if kind == "checkbox":
        box.locator("input").first.click()
        return "click"
    if kind == "toggle-buttons":
        buttons = box.locator("button:not(.mod-active)")
        buttons.nth(min(attempt, buttons.count() - 1)).click()
        return "click another button"
    if kind == "radio":
        radios = box.locator("input:not(:checked)")
        radios.nth(min(attempt, radios.count() - 1)).click()
        return "click another option"
    if kind == "text":
        field = box.locator("input").first
        value = field.input_value()
        try:
            new = str(float(value) + 1 + attempt) if "." in value else str(int(value) + 1 + attempt)
        except ValueError:
            new = value + "x"
        field.click(click_count=3)
        page.keyboard.type(new)
        page.keyboard.press("Enter")
        return f"type {new}, Enter"
    raise AssertionError(f"do not know how to move a {kind}")


def _exercise(page, view, control, out: Path, stem: str) -> tuple[dict, list[str]]:
    """Move one control until its picture changes (up to three ever bigger moves); screenshots."""
    where = f"{control['kind']} {control['name']!r}"
    before_parts = view.evaluate(PARTS_JS)
    before = _picture(view)
    value_before = _value(control)
    record = {"name": control["name"], "kind": control["kind"], "value_before": value_before, "moves": []}
    after = None
    for attempt in range(3):
        view.evaluate(MONITOR_START_JS)
        start = time.monotonic()
        move = _move(page, control, attempt)
        moved = _changed(control, value_before if attempt == 0 else record["moves"][-1]["value"])
        redraw_s = _settle(view, before_parts, REDRAW_TIMEOUT_S if attempt == 0 else 8, start) if moved else None
        monitor = page.evaluate(MONITOR_STOP_JS)
        step = {"move": move, "value": _value(control), "redraw_s": None if redraw_s is None else round(redraw_s, 2),
                "monitor": monitor}
        record["moves"].append(step)
        if redraw_s is None:
            continue
        after = _picture(view)
        if after.tobytes() != before.tobytes():
            break
        before_parts = view.evaluate(PARTS_JS)            # same pixels (new caption elsewhere): move on
        after = None
    (out / f"{stem}-before.png").write_bytes(_png(before))
    if after is not None:
        (out / f"{stem}-after.png").write_bytes(_png(after))
    problems = []
    final = record["moves"][-1]
    if final["value"] == value_before:
        problems.append(f"{where}: the control did not move on: {[m['move'] for m in record['moves']]}")
    elif after is None:
        problems.append(f"{where}: moved {value_before} → {final['value']}, but the picture did not change")
    else:
        m = final["monitor"]
        if m["minFigs"] < m["figs0"] or m["minH"] < 0.9 * m["h0"]:
            problems.append(f"{where}: flicker: while redrawing, the view went from {m['h0']}px to "
                            f"{m['minH']}px high and from {m['figs0']} to {m['minFigs']} pictures")
        if final["redraw_s"] > SLOW_REDRAW_S:
            problems.append(f"{where}: slow redraw: {final['redraw_s']} s after the move")
    record["changed"] = after is not None
    return record, problems


def _notebook_height(page) -> int:
    return page.evaluate("""() => Math.round(document.querySelector(
        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer').getBoundingClientRect().height)""")


def _layout_warnings(layout: dict) -> list[str]:
    warnings = []
    for image in layout["images"]:
        (nw, nh), (sw, sh) = image["natural"], image["shown"]
        if nw and sw > 1.05 * nw:
            warnings.append(f"picture {nw}×{nh} px is stretched to {sw}×{sh} (blurry)")
        elif nw and sw < 0.8 * nw:
            warnings.append(f"picture {nw}×{nh} px is squeezed to {sw}×{sh} (small text)")
    if layout["view_height"] > layout["notebook_height"]:
        warnings.append(f"the view is {layout['view_height']} px high, the notebook area of a "
                        f"{VIEWPORT['width']}×{VIEWPORT['height']} screen {layout['notebook_height']} px: "
                        f"controls and picture do not fit on the screen together")
    if layout["truncated_labels"]:
        warnings.append(f"control labels cut off: {layout['truncated_labels']}")
    return warnings


# ---- the test ------------------------------------------------------------------------------------

@pytest.mark.parametrize("notebook", NOTEBOOK_PARAMS or
                         [pytest.param(None, marks=pytest.mark.skip(reason="no notebook with widgets yet"))])
def test_widgets_change_their_pictures(notebook, lab_server, browser_context, artifacts_dir):
    out = artifacts_dir / Path(notebook).stem
    if out.exists():
        for old in list(out.glob("*.png")) + list(out.glob("*.json")):
            old.unlink()
    out.mkdir(parents=True, exist_ok=True)
    report = {"notebook": notebook, "views": [], "problems": [], "warnings": []}
    REPORTS.append(report)
    problems, console = report["problems"], []
    page = browser_context.new_page()
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}  [{m.location.get('url', '')}]")
            if m.type in ("error", "assert") else None)
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    t0 = time.monotonic()
    try:
        page.goto(lab_server.url(f"lab/tree/{notebook}?reset"), wait_until="domcontentloaded")
        page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(state="visible", timeout=120_000)
        _wait_for(lambda: _accept_kernel_dialog(page, report) or _session_idle(lab_server, notebook)
                  and _kernel_idle(page), 120, "an idle kernel")
        report["open_s"] = round(time.monotonic() - t0, 1)

        t1 = time.monotonic()
        _run_all(page)
        _wait_for(lambda: any("*" in p for p in _prompts(page)) or _kernel_idle(page) and
                  all(re.fullmatch(r"\[\d+\]:", p) for p in _prompts(page)), 30, "Run All to start")
        _wait_for(lambda: _kernel_idle(page) and not any("*" in p for p in _prompts(page)),
                  RUN_ALL_TIMEOUT_S, "Run All to finish", interval_s=0.5)
        report["run_all_s"] = round(time.monotonic() - t1, 1)

        # Save the copy and read what ran: an error in a cell fails here, with its traceback.
        copy = lab_server.root / notebook
        mtime = copy.stat().st_mtime
        _save(page)
        _wait_for(lambda: copy.stat().st_mtime != mtime, 30, "the notebook to be saved")
        saved = _wait_for(lambda: _try_json(copy), 10, "a readable saved notebook")
        errors = _errors_in(saved)
        assert not errors, "cells raised in JupyterLab:\n" + "\n\n".join(errors)
        unexecuted = [i for i, c in enumerate(saved["cells"]) if c["cell_type"] == "code"
                      and "".join(c["source"]).strip() and c.get("execution_count") is None]
        assert not unexecuted, f"code cells not run by Run All: {unexecuted}"
        expected = sum(WIDGET_MIME in o.get("data", {}) for c in saved["cells"] for o in c.get("outputs", []))
        assert expected, "the notebook uses widgets but none was displayed after Run All"

        # Every widget view rendered: none left "Loading widget...", none "Error displaying widget".
        views = page.locator(OUTPUT_SELECTOR)
        _wait_for(lambda: views.count() >= expected, 60, f"{expected} widget views to render")
        report["views_expected"] = expected
        t2 = time.monotonic()
        for i in range(views.count()):
            view = views.nth(i)
            view.scroll_into_view_if_needed()
            _wait_for(lambda: "Loading widget" not in view.inner_text() and view.evaluate(PARTS_JS)["loaded"],
                      60, f"widget view {i} and its pictures to load")
            text = view.inner_text()
            assert "Error displaying widget" not in text, \
                f"widget view {i} failed to render: {text[:500]}"
            layout = view.evaluate(LAYOUT_JS)
            layout["notebook_height"] = _notebook_height(page)
            if layout["view_height"] > layout["notebook_height"]:
                # Taller than the notebook's part of a laptop screen: the student cannot see the
                # controls and the picture at once (a warning below). Screenshots of an element
                # larger than the window come out clipped, so grow the window meanwhile.
                page.set_viewport_size({"width": VIEWPORT["width"],
                                        "height": VIEWPORT["height"] + layout["view_height"]
                                        - layout["notebook_height"] + 40})
                view.scroll_into_view_if_needed()
            view.screenshot(path=str(out / f"{i:02d}-view.png"), animations="disabled", caret="hide")
            entry = {"view": i, "layout": layout, "controls": []}
            report["views"].append(entry)
            report["warnings"] += [f"view {i}: {w}" for w in _layout_warnings(layout)]
            if layout["overflow_x"]:
                problems.append(f"view {i}: wider than the notebook (a horizontal scrollbar)")
            squeezed = [f"{kind} {name!r} is {width} px wide" for name, kind, width in layout["control_widths"]
                        if width < MIN_CONTROL_PX[kind]]
            if squeezed:
                problems.append(f"view {i}: controls squeezed too narrow to use: {', '.join(squeezed)}")

            controls = _controls(view)
            if not controls:
                entry["note"] = "no control: a display-only widget"
                page.set_viewport_size(VIEWPORT)
                continue
            assert view.evaluate(PARTS_JS)["displays"], \
                f"view {i} has controls {[c['name'] for c in controls]} but shows nothing they could drive"
            for control in controls:
                if control["box"].locator(":disabled").count():
                    entry["controls"].append({"name": control["name"], "skipped": "disabled"})
                    continue
                record, found = _exercise(page, view, control, out, f"{i:02d}-{_safe(control['name'])}")
                entry["controls"].append(record)
                problems += [f"view {i}, {p}" for p in found]
            page.set_viewport_size(VIEWPORT)
        report["widgets_s"] = round(time.monotonic() - t2, 1)
        # Errors JupyterLab caught itself and shows in an output instead of the console.
        shown = page.evaluate("""() => [...document.querySelectorAll(
            '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-child > :not(.jp-OutputArea-prompt)')]
            .map(e => e.textContent.trim()).filter(t => /^(Javascript Error:|Error displaying widget)/.test(t))""")
        console += [f"shown in an output: {t[:300]}" for t in shown]
    finally:
        report["total_s"] = round(time.monotonic() - t0, 1)
        report["console"] = console
        try:
            page.screenshot(path=str(out / "page.png"))
        except Exception:                                              # a dead page: keep the report
            pass
        (out / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str))
        page.close()
        lab_server.shutdown_sessions()

    bad_console = [m for m in console if not any(re.search(p, m) for p, _ in HARMLESS_CONSOLE)]
    assert not bad_console, "JavaScript errors (console, page errors, errors shown in outputs):\n" + "\n".join(bad_console)
    assert not problems, "\n".join(problems) + f"\n(screenshots and report: {out})"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "control"

def _try_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
