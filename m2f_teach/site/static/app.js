// The explorer: the shipped Mask2Former runs here, in onnxruntime-web's WebAssembly build.
// The model (model/m2f_teach.onnx) returns the last prediction and what the notebooks teach:
// every encoder layer's sampling locations and attention weights, every decoder layer's
// attention mask and every prediction (see m2f_teach/site/teaching_outputs.py).
// window.__m2f exposes the numbers and the timings, for the browser tests.

import { getLang, setLang, t } from "./i18n.js";
import { SHAPES, erase, makeRandom, paintShape, shapePixels } from "./draw.js";
import * as V from "./views.js";

const MODEL = "model/m2f_teach.onnx";      // what `python -m m2f_teach site` writes (meta.json names it too)
const SCORE_THRESHOLD = 0.5;
const DEFAULT_RADIUS = 18;
const ERASER_RADIUS = 6;

const $ = (id) => document.getElementById(id);
const api = (window.__m2f = { ready: false, runs: 0, running: false, error: null, lastMs: null,
                              firstResultMs: null, timings: [], marks: {}, outputs: null, predictions: [] });
const state = {
  meta: null, session: null, ort: null, pixels: null, background: null, H: 128, W: 128,
  tool: "circle", drag: null, pixel: { x: 64, y: 64 }, queryLevel: 2, layer: 0, head: "all",
  query: null, queryChosen: false, results: [], pending: false, random: makeRandom(2024),
  example: 0,
};

function showFatal(message) {
  const box = $("fatal");
  box.textContent = message;
  box.hidden = false;
  $("status").textContent = "";
}

function status(key, values) {
  const el = $("status");
  el.dataset.i18n = "";
  el.textContent = t(key, values);
  state.statusKey = [key, values];
}

async function main() {
  const asked = new URLSearchParams(location.search).get("lang");
  setLang(asked || ((navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en"));
  $("lang").addEventListener("click", () => { setLang(getLang() === "en" ? "zh" : "en"); renderText(); });
  if (typeof WebAssembly !== "object" || typeof WebAssembly.instantiate !== "function") {
    showFatal(t("no_wasm"));
    api.error = "no WebAssembly";
    return;
  }
  try {
    // everything the first result needs starts at once: the runtime, the model, the sizes, the image
    const json = (url) => fetch(url).then((r) => { if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`); return r.json(); });
    const modelBytes = fetch(MODEL).then((r) => {
      if (!r.ok) throw new Error(`${MODEL}: HTTP ${r.status}`);
      return r.arrayBuffer();
    });
    const runtime = import("./ort/ort.wasm.min.mjs");
    const background = loadPixels("examples/background.png");
    const meta = await json("model/meta.json");
    state.meta = meta;
    [state.H, state.W] = meta.image_size;
    const firstImage = loadPixels(meta.examples[0].file);
    const ort = await runtime;
    api.marks.ort_imported = performance.now();
    ort.env.wasm.wasmPaths = new URL("ort/", location.href).href;
    ort.env.wasm.numThreads = 1;          // threads need cross-origin isolation, which a plain static host lacks
    ort.env.wasm.proxy = false;
    state.ort = ort;
    const bytes = await modelBytes;
    api.marks.model_fetched = performance.now();
    // the file was simplified at build time (onnxruntime's basic optimisations): nothing left to do here
    state.session = await ort.InferenceSession.create(new Uint8Array(bytes),
      { executionProviders: ["wasm"], graphOptimizationLevel: "disabled" });
    api.marks.session_created = performance.now();
    state.background = await background;
    $("runtime").textContent = t("runtime", { v: meta.onnxruntime_web });
    buildControls();
    await selectExample(0, await firstImage);
    api.ready = true;
  } catch (error) {
    console.warn(error);
    api.error = String(error && error.message || error);
    showFatal(t("load_error", { msg: api.error }));
  }
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`could not load ${src}`));
    img.src = src;
  });
}

async function loadPixels(src) {
  const img = await loadImage(src);
  const canvas = new OffscreenCanvas(img.naturalWidth, img.naturalHeight);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  return ctx.getImageData(0, 0, canvas.width, canvas.height).data;
}

async function selectExample(index, pixels = null) {
  const example = state.meta.examples[index];
  state.pixels = new Uint8ClampedArray(pixels || await loadPixels(example.file));
  state.example = index;
  state.queryChosen = false;
  markExample(index);
  changed();
}

function markExample(index) {
  for (const img of document.querySelectorAll("#examples img")) img.classList.toggle("active", Number(img.dataset.index) === index);
}

// ---- the model --------------------------------------------------------------------------------
// Something in the image changed: redraw it and run the model (at most one run waits).
function changed() {
  state.changedAt = performance.now();
  paintImage();
  if (api.running) { state.pending = true; return Promise.resolve(); }
  return runModel();
}

async function runModel() {
  const { meta, H, W, pixels } = state;
  api.running = true;
  const since = state.changedAt;
  const input = new Float32Array(3 * H * W);
  for (let c = 0; c < 3; c++) {
    const mean = meta.image_mean[c], std = meta.image_std[c];
    for (let i = 0; i < H * W; i++) input[c * H * W + i] = (pixels[4 * i + c] - mean) / std;
  }
  const feeds = { images: new state.ort.Tensor("float32", input, [1, 3, H, W]) };
  const start = performance.now();
  let results;
  try {
    results = await state.session.run(feeds);
  } catch (error) {
    api.running = false;
    api.error = String(error && error.message || error);
    showFatal(t("load_error", { msg: api.error }));
    return;
  }
  const ms = performance.now() - start;
  const outputs = {};
  for (const [name, tensor] of Object.entries(results)) outputs[name] = { dims: tensor.dims, data: tensor.data };
  api.outputs = outputs;
  api.input = pixels.slice();
  api.lastMs = ms;
  api.timings.push(ms);
  api.runs += 1;
  if (api.firstResultMs === null) api.firstResultMs = performance.now();
  state.lastMs = ms;
  renderResults();
  api.editToResultMs = performance.now() - since;   // from the edit to the redrawn views
  api.running = false;
  if (state.pending) {
    state.pending = false;
    return runModel();
  }
}

// ---- the drawing canvas ------------------------------------------------------------------------
function paintImage() {
  const ctx = $("image").getContext("2d");
  ctx.putImageData(new ImageData(new Uint8ClampedArray(state.pixels), state.W, state.H), 0, 0);
}

function toolIcon(name) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 16;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(16, 16);
  for (const i of shapePixels(name, 8, 8, 7.5, name === "triangle" ? -Math.PI / 2 : 0, 16, 16)) {
    img.data[4 * i] = 40; img.data[4 * i + 1] = 40; img.data[4 * i + 2] = 40; img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

function buildControls() {
  const { meta } = state;
  const tools = $("tools");
  const add = (id, key, icon, onClick) => {
    const b = document.createElement("button");
    b.type = "button"; b.id = `tool-${id}`; b.dataset.tool = id;
    if (icon) b.append(icon);
    const label = document.createElement("span");
    label.dataset.i18n = key; label.textContent = t(key);
    b.append(label);
    b.addEventListener("click", onClick || (() => setTool(id)));
    tools.append(b);
  };
  for (const name of SHAPES) add(name, name, toolIcon(name));
  add("inspect", "tool_inspect", null);
  add("eraser", "tool_eraser", null);
  add("clear", "clear", null, () => { state.pixels = new Uint8ClampedArray(state.background); state.queryChosen = false; markExample(-1); changed(); });
  setTool("circle");

  meta.examples.forEach((example, index) => {
    const img = document.createElement("img");
    img.src = example.file; img.dataset.index = index; img.id = `example-${index}`;
    img.title = example.labels.join(", ");
    img.addEventListener("click", () => selectExample(index));
    $("examples").append(img);
  });

  const fill = (select, items) => {
    select.innerHTML = "";
    for (const [value, text] of items) {
      const o = document.createElement("option");
      o.value = value; o.textContent = text; select.append(o);
    }
  };
  fill($("layer"), Array.from({ length: meta.num_encoder_layers }, (_, i) => [i, String(i)]));
  fill($("head"), [["all", t("all_heads")], ...Array.from({ length: meta.num_heads }, (_, h) => [h, String(h)])]);
  fill($("query-level"), meta.spatial_shapes.map(([h, w], l) => [l, `${l} (${h}×${w})`]));
  fill($("query"), Array.from({ length: meta.num_queries }, (_, q) => [q, String(q)]));
  $("query-level").value = String(state.queryLevel);
  $("layer").addEventListener("change", (e) => { state.layer = Number(e.target.value); renderPoints(); });
  $("head").addEventListener("change", (e) => { state.head = e.target.value === "all" ? "all" : Number(e.target.value); renderPoints(); });
  $("query-level").addEventListener("change", (e) => { state.queryLevel = Number(e.target.value); renderPoints(); });
  $("query").addEventListener("change", (e) => selectQuery(Number(e.target.value)));
  $("only-live").addEventListener("change", renderTable);

  const legend = $("head-legend");
  V.HEAD_COLOURS.slice(0, meta.num_heads).forEach((colour, h) => {
    const s = document.createElement("span");
    s.innerHTML = `<i class="swatch" style="background:${colour}"></i><b data-i18n="head">${t("head")}</b> ${h}`;
    legend.append(s);
  });

  const levels = $("levels");
  meta.spatial_shapes.forEach(([h, w], l) => {
    const box = document.createElement("div");
    box.className = "level";
    box.innerHTML = `<div class="name" id="level-name-${l}"></div><canvas id="level-${l}" width="448" height="448"></canvas>
      <div class="stats" id="level-stats-${l}"></div>`;
    levels.append(box);
    box.querySelector("canvas").addEventListener("click", (e) => {
      const rect = e.target.getBoundingClientRect(), pad = (14 / 448) * rect.width, inner = rect.width - 2 * pad;
      const fx = (e.clientX - rect.left - pad) / inner, fy = (e.clientY - rect.top - pad) / inner;
      if (fx < 0 || fx >= 1 || fy < 0 || fy >= 1) return;
      const stride = meta.level_strides[l];
      state.queryLevel = l;
      $("query-level").value = String(l);
      state.pixel = { x: Math.floor(fx * w) * stride + stride / 2, y: Math.floor(fy * h) * stride + stride / 2 };
      drawPreview();
      renderPoints();
    });
  });

  const preview = $("preview");
  preview.addEventListener("pointerdown", onPointerDown);
  preview.addEventListener("pointermove", onPointerMove);
  preview.addEventListener("pointerup", onPointerUp);
  preview.addEventListener("pointerleave", () => { if (state.drag && state.tool === "eraser") state.drag = null; });
  renderTable();
  renderText();
}

function setTool(name) {
  state.tool = name;
  for (const b of document.querySelectorAll("#tools button")) b.classList.toggle("active", b.dataset.tool === name);
}

function imagePoint(e) {
  const rect = $("preview").getBoundingClientRect();
  return { x: ((e.clientX - rect.left) / rect.width) * state.W, y: ((e.clientY - rect.top) / rect.height) * state.H };
}

function onPointerDown(e) {
  const p = imagePoint(e);
  $("preview").setPointerCapture(e.pointerId);
  if (state.tool === "inspect") {
    state.pixel = { x: Math.min(state.W - 1, Math.floor(p.x)) + 0.5, y: Math.min(state.H - 1, Math.floor(p.y)) + 0.5 };
    drawPreview();
    renderPoints();
    return;
  }
  if (state.tool === "eraser") {
    state.drag = { start: p };
    markExample(-1);
    erase(state.pixels, state.background, state.W, state.H, p.x, p.y, ERASER_RADIUS);
    changed();
    return;
  }
  const colour = [state.random(), state.random(), state.random()];
  state.drag = { start: p, radius: DEFAULT_RADIUS, angle: 0, colour, moved: false };
  drawPreview();
}

function onPointerMove(e) {
  if (!state.drag) return;
  const p = imagePoint(e);
  if (state.tool === "eraser") {                     // every pixel along the stroke, not only the events'
    const last = state.drag.last || state.drag.start, steps = Math.ceil(Math.hypot(p.x - last.x, p.y - last.y));
    for (let k = 1; k <= steps; k++) {
      erase(state.pixels, state.background, state.W, state.H, last.x + ((p.x - last.x) * k) / steps,
            last.y + ((p.y - last.y) * k) / steps, ERASER_RADIUS);
    }
    state.drag.last = p;
    changed();
    return;
  }
  const dx = p.x - state.drag.start.x, dy = p.y - state.drag.start.y;
  const distance = Math.hypot(dx, dy);
  if (distance >= 2) {
    state.drag.moved = true;
    state.drag.radius = Math.max(4, distance);
    state.drag.angle = Math.atan2(dy, dx);
  }
  drawPreview();
}

function onPointerUp() {
  const drag = state.drag;
  state.drag = null;
  if (!drag || state.tool === "eraser" || state.tool === "inspect") return;
  paintShape(state.pixels, state.W, state.H, { name: state.tool, cx: drag.start.x, cy: drag.start.y,
    radius: drag.radius, angle: drag.angle, colour: drag.colour }, state.random);
  state.queryChosen = false;
  markExample(-1);
  drawPreview();
  changed();
}

// The shape being dragged (its pixels, half transparent) and the inspected pixel.
function drawPreview() {
  const canvas = $("preview"), ctx = canvas.getContext("2d"), scale = canvas.width / state.W;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const drag = state.drag;
  if (drag && SHAPES.includes(state.tool)) {
    const [r, g, b] = drag.colour.map((v) => Math.round(v * 255));
    ctx.fillStyle = `rgba(${r},${g},${b},0.7)`;
    for (const i of shapePixels(state.tool, drag.start.x, drag.start.y, drag.radius, drag.angle, state.W, state.H)) {
      ctx.fillRect((i % state.W) * scale, Math.floor(i / state.W) * scale, scale, scale);
    }
  }
  const { x, y } = state.pixel;
  ctx.strokeStyle = "#fff"; ctx.lineWidth = 4;
  ctx.strokeRect(x * scale - 7, y * scale - 7, 14, 14);
  ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
  ctx.strokeRect(x * scale - 7, y * scale - 7, 14, 14);
}

// ---- the views ----------------------------------------------------------------------------------
function out(name) { return api.outputs[name]; }

function renderResults() {
  const { meta, H, W } = state;
  const last = meta.num_decoder_layers;
  const [, , Hm, Wm] = out(`mask_pred.${last}`).dims;
  state.results = V.queryResults(out(`cls_pred.${last}`).data, out(`mask_pred.${last}`).data,
                                 meta.num_queries, meta.num_classes + 1, Hm, Wm, H, W, SCORE_THRESHOLD);
  const kept = state.results.filter((r) => r.score >= SCORE_THRESHOLD);
  if (!state.queryChosen) state.query = state.results[0].query;
  api.predictions = kept.map((r) => ({ query: r.query, label: meta.class_names[r.label], score: r.score, area: r.area }));
  state.kept = kept;
  renderText();
  drawPreview();
}

// Everything that holds words: redrawn on a run and on a language switch.
function renderText() {
  if (!state.meta || !api.outputs) { if (state.statusKey) status(...state.statusKey); return; }
  const names = state.meta.class_names.map((n) => t(n));
  status("inference", { ms: Math.round(state.lastMs) });
  $("runtime").textContent = t("runtime", { v: state.meta.onnxruntime_web });
  $("predictions-help").textContent = t("predictions_help", { thr: SCORE_THRESHOLD });
  V.drawPredictions($("overlay").getContext("2d"), state.kept, state.H, state.W, names, state.query);
  const list = $("predictions");
  list.innerHTML = "";
  if (!state.kept.length) {
    const li = document.createElement("li");
    li.className = "empty"; li.textContent = t("no_predictions", { thr: SCORE_THRESHOLD });
    list.append(li);
  }
  for (const r of state.kept) {
    const li = document.createElement("li");
    li.dataset.query = r.query;
    li.classList.toggle("active", r.query === state.query);
    li.innerHTML = `<i class="swatch" style="background:${V.CLASS_COLOURS[r.label]}"></i>
      <span class="q">${t("query")} ${r.query}</span><b>${names[r.label]}</b>
      <span class="score">${t("score")} ${r.score.toFixed(2)}</span>`;
    li.addEventListener("click", () => selectQuery(r.query));
    list.append(li);
  }
  const headAll = $("head").querySelector('option[value="all"]');
  if (headAll) headAll.textContent = t("all_heads");
  $("points-help").textContent = t("points_help", { P: state.meta.num_points, L: state.meta.num_levels });
  renderPoints();
  renderQuery();
  if (!state.tableShown || state.tableLang !== getLang()) renderTable();
}

function selectQuery(q) {
  state.query = q;
  state.queryChosen = true;
  renderText();
}

function renderPoints() {
  if (!api.outputs) return;
  const { meta, pixel } = state;
  const nH = meta.num_heads, L = meta.num_levels, P = meta.num_points;
  const ql = state.queryLevel, [qh, qw] = meta.spatial_shapes[ql];
  const cx = Math.min(qw - 1, Math.floor((pixel.x / state.W) * qw)), cy = Math.min(qh - 1, Math.floor((pixel.y / state.H) * qh));
  const token = meta.level_start_index[ql] + cy * qw + cx;
  $("token").textContent = t("token_at", { t: token, x: Math.floor(pixel.x), y: Math.floor(pixel.y), l: ql, cx, cy });
  const locations = out(`sampling_locations.${state.layer}`).data;
  const weights = out(`attention_weights.${state.layer}`).data;
  const reference = out("reference_points").data;
  const heads = state.head === "all" ? [...Array(nH).keys()] : [state.head];
  const perLevel = [];
  let maxWeight = 1e-9;
  for (let l = 0; l < L; l++) {
    const points = [];
    let sum = 0;
    for (const h of heads) {
      for (let p = 0; p < P; p++) {
        const i = (((token * nH + h) * L + l) * P + p) * 2;
        const weight = weights[(token * nH + h) * L * P + l * P + p];
        points.push({ x: locations[i], y: locations[i + 1], weight, head: h });
        sum += weight;
        maxWeight = Math.max(maxWeight, weight);
      }
    }
    perLevel.push({ points, sum: sum / heads.length });
  }
  const image = $("image");
  const shown = { token, levels: [] };
  perLevel.forEach(({ points, sum }, l) => {
    const [h, w] = meta.spatial_shapes[l];
    const ref = { x: reference[(token * L + l) * 2], y: reference[(token * L + l) * 2 + 1] };
    const cell = l === ql ? { x: cx, y: cy } : null;
    const offMap = V.drawLevel($(`level-${l}`).getContext("2d"), image, h, w, points, ref, maxWeight, cell);
    $(`level-name-${l}`).textContent = t("level_name", { l, h, w, s: meta.level_strides[l] });
    $(`level-stats-${l}`).innerHTML = `${t("weight_sum", { w: sum.toFixed(2) })} · <span class="${offMap ? "off" : ""}">${t("off_map", { n: offMap })}</span>`;
    shown.levels.push({ points: points.length, offMap, weight: sum });
  });
  api.points = shown;
}

function renderQuery() {
  const { meta } = state;
  const q = state.query, nD = meta.num_decoder_layers, Q = meta.num_queries, K = meta.num_classes + 1;
  $("query").value = String(q);
  const names = meta.class_names.map((n) => t(n));
  const grid = $("decoder");
  grid.innerHTML = "";
  const cell = (html, cls = "cell") => { const d = document.createElement("div"); d.className = cls; d.innerHTML = html; grid.append(d); return d; };
  cell("", "rowhead");
  cell(t("before"));
  for (let i = 0; i < nD; i++) cell(t("layer_n", { i }));
  cell(t("attn_mask_used"), "rowhead");
  cell("");
  const image = $("image");
  const shown = { query: q, resets: [], classes: [] };
  for (let i = 0; i < nD; i++) {
    const mask = out(`attn_mask.${i}`), blocked = out(`all_blocked.${i}`);
    const n = mask.dims[2], level = i % meta.num_levels, [h, w] = meta.spatial_shapes[level];
    const row = mask.data.subarray(q * n, (q + 1) * n);      // head 0; every head holds the same mask
    const reset = Boolean(blocked.data[q]);
    const c = cell(`<canvas width="104" height="104" id="attn-${i}"></canvas><div>${h}×${w}${reset ? ` <span class="tag">${t("all_blocked")}</span>` : ""}</div>`);
    const canvas = c.querySelector("canvas");
    canvas.classList.toggle("reset", reset);
    V.drawSmallMap(canvas.getContext("2d"), image, row, h, w, "blocked");
    shown.resets.push(reset);
  }
  cell(t("mask_after"), "rowhead");
  for (let j = 0; j <= nD; j++) {
    const maskPred = out(`mask_pred.${j}`), [, , Hm, Wm] = maskPred.dims;
    const logits = maskPred.data.subarray(q * Hm * Wm, (q + 1) * Hm * Wm);
    const probs = Float32Array.from(logits, V.sigmoid);
    const cls = out(`cls_pred.${j}`).data.subarray(q * K, (q + 1) * K);
    const top = Math.max(...cls), exps = Array.from(cls, (v) => Math.exp(v - top)), total = exps.reduce((a, b) => a + b, 0);
    let best = 0;
    for (let c = 1; c < K; c++) if (exps[c] > exps[best]) best = c;
    const label = best === K - 1 ? "∅" : names[best];
    const c = cell(`<canvas width="104" height="104" id="mask-${j}"></canvas><div>${label} ${(exps[best] / total).toFixed(2)}</div>`);
    V.drawSmallMap(c.querySelector("canvas").getContext("2d"), image, probs, Hm, Wm, "heat");
    shown.classes.push(label);
  }
  const r = state.results.find((x) => x.query === q);
  $("query-class").textContent = !r ? "" : r.mask ? `→ ${names[r.label]} · ${t("score")} ${r.score.toFixed(2)}`
    : `→ ${names[r.label]} · p ${r.probability.toFixed(2)}`;
  api.query = shown;
}

function renderTable() {
  const table = $("table");
  if (!state.meta) return;
  if (!state.tableRows) {
    state.tableRows = [];
    fetch("model/table.json").then((r) => r.json()).then((rows) => { state.tableRows = rows; renderTable(); });
    return;
  }
  const zh = getLang() === "zh";
  const byTraced = {};
  for (const o of state.meta.outputs) byTraced[o.traced] = o.name;
  const head = ["col_step", "col_name", "col_symbolic", "col_shape", "col_live", "col_note"].map((k) => `<th>${t(k)}</th>`).join("");
  const onlyLive = $("only-live").checked;
  let liveRows = 0, mismatches = 0;
  const rows = state.tableRows.map((row) => {
    const tracedNames = row.names || [row.name];
    const hit = tracedNames.map((n) => byTraced[n]).find(Boolean);
    if (onlyLive && !hit) return "";
    let live = "";
    if (hit && api.outputs && api.outputs[hit]) {
      const dims = api.outputs[hit].dims.join("×");
      const same = dims === String(row.shape).replaceAll(",", "×").replace(/[()\[\] ]/g, "");
      live = `${same ? "✓" : "≠"} ${dims}`;
      liveRows += 1;
      mismatches += same ? 0 : 1;
    }
    const shape = Array.isArray(row.shape) ? row.shape.join("×") : row.shape;
    const esc = (s) => String(s ?? "").replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" }[c]));
    return `<tr><td>${esc(zh ? row.step_zh : row.step)}</td><td>${esc(row.name)}${row.count > 1 ? ` ×${row.count}` : ""}</td>
      <td class="sym">${esc(row.symbolic)}</td><td class="shape">${esc(shape)}</td><td class="live">${live}</td>
      <td>${esc(zh ? row.note_zh : row.note)}</td></tr>`;
  });
  table.innerHTML = `<thead><tr>${head}</tr></thead><tbody>${rows.join("")}</tbody>`;
  state.tableShown = Boolean(api.outputs) && state.tableRows.length > 0;    // the shapes do not change between runs
  state.tableLang = getLang();
  api.table = { rows: table.tBodies[0].rows.length, liveRows, mismatches };
}

main();
