// Every label and explanation of the page, in English and Chinese.
// An element with data-i18n="key" shows STRINGS[lang][key]; code calls t("key", {n: 3}).

export const STRINGS = {
  en: {
    title: "Mask2Former explorer",
    subtitle: "The shipped checkpoint (trained on synthetic shapes) runs in this page: draw, click, look inside. Nothing to install.",
    loading: "Loading the model and onnxruntime-web…",
    no_wasm: "This browser has no WebAssembly, which the model needs to run here. Open the page in a current Chrome, Edge, Firefox or Safari (or enable WebAssembly).",
    load_error: "The model could not be loaded: {msg}",
    inference: "inference {ms} ms",
    runtime: "onnxruntime-web {v}, WebAssembly, 1 thread, all on this computer",
    draw_title: "1 · Draw or pick an image",
    draw_help: "Pick a shape, press on the canvas at its centre and drag to size and turn it. The model runs after every change. With “inspect”, click a pixel to see where its token looks (section 2).",
    tool_inspect: "inspect",
    tool_eraser: "eraser",
    clear: "clear",
    examples: "held-out images",
    predictions: "Predictions (last decoder layer)",
    predictions_help: "Each query's best class × its mask score; shown when ≥ {thr}. Click one to follow it through the decoder (section 3).",
    no_predictions: "No query is confident enough (score < {thr}).",
    query: "query",
    score: "score",
    circle: "circle", square: "square", triangle: "triangle", ring: "ring", cross: "cross",
    points_title: "2 · Multi-scale deformable attention: where one token looks",
    points_help: "The encoder's query token at the clicked pixel (on the chosen level) samples P = {P} points on each of the L = {L} levels, per head. Dots: sampling locations, coloured by head, area ∝ attention weight; ✚: the reference point; ▲ on the border: a point that falls off the map (grid_sample reads zeros there).",
    layer: "encoder layer",
    head: "head",
    all_heads: "all heads",
    query_level: "token on level",
    level_name: "level {l}: {h}×{w} (stride {s})",
    weight_sum: "weight here: {w}",
    off_map: "off the map: {n}",
    token_at: "token {t} at pixel (x {x}, y {y}) → level {l} cell ({cx}, {cy})",
    click_hint: "Click a pixel with “inspect” (or on a map below).",
    queries_title: "3 · Masked attention: one query through the decoder",
    queries_help: "Top row: the attention mask each decoder layer used (dark = blocked; sigmoid(mask) < 0.5 of the previous prediction, resized to that layer's level). A row that was all blocked is reset to attend everywhere (red frame). Bottom row: the query's mask after that layer (sigmoid) and its best class.",
    choose_query: "query",
    before: "before layers",
    layer_n: "layer {i}",
    attn_mask_used: "attention mask used",
    mask_after: "mask after",
    all_blocked: "all blocked → reset",
    arch_title: "4 · The architecture at this size, with live shapes",
    arch_help: "The shape table of the shipped configuration (B = 1, 128×128), from `python -m m2f_teach table --format json`. The ✓ column: the shape of that tensor as this page's model just returned it.",
    only_live: "only the tensors this page's model returns",
    col_step: "step", col_name: "name", col_symbolic: "symbolic", col_shape: "shape", col_note: "note", col_live: "in this page",
    diagram_alt: "Architecture diagram with the shapes at 128×128",
    lang_button: "中文",
    footer: "m2f-teach · the same model code as the notebooks, exported with its trace taps to ONNX.",
  },
  zh: {
    title: "Mask2Former 探索器",
    subtitle: "随附的检查点（在合成形状上训练）直接在本页面中运行：画图、点击、看内部。无需安装任何东西。",
    loading: "正在加载模型和 onnxruntime-web……",
    no_wasm: "此浏览器不支持 WebAssembly，而模型需要它才能在这里运行。请用较新的 Chrome、Edge、Firefox 或 Safari 打开本页（或启用 WebAssembly）。",
    load_error: "模型加载失败：{msg}",
    inference: "推理 {ms} 毫秒",
    runtime: "onnxruntime-web {v}，WebAssembly，单线程，全部在本机运行",
    draw_title: "1 · 画图或选一张图片",
    draw_help: "选一种形状，在画布上按下确定中心，拖动来调整大小和角度。每次修改后模型都会重新运行。选择“查看”后点击一个像素，可以看到它的 token 在看哪里（第 2 部分）。",
    tool_inspect: "查看",
    tool_eraser: "橡皮擦",
    clear: "清空",
    examples: "留出测试图片",
    predictions: "预测（最后一层解码器）",
    predictions_help: "每个 query 的最佳类别概率 × 掩码得分；≥ {thr} 时显示。点击一个预测，跟随它穿过解码器（第 3 部分）。",
    no_predictions: "没有足够自信的 query（得分 < {thr}）。",
    query: "query",
    score: "得分",
    circle: "圆形", square: "正方形", triangle: "三角形", ring: "圆环", cross: "十字",
    points_title: "2 · 多尺度可变形注意力：一个 token 在看哪里",
    points_help: "点击像素处（所选层级上）的编码器 query token，在 L = {L} 个层级上每个头各采样 P = {P} 个点。圆点：采样位置，颜色表示头，面积 ∝ 注意力权重；✚：参考点；边框上的 ▲：落在特征图之外的点（grid_sample 在那里读到 0）。",
    layer: "编码器层",
    head: "头",
    all_heads: "所有头",
    query_level: "token 所在层级",
    level_name: "层级 {l}：{h}×{w}（步长 {s}）",
    weight_sum: "此层权重：{w}",
    off_map: "图外的点：{n}",
    token_at: "token {t}，像素 (x {x}, y {y}) → 层级 {l} 的格子 ({cx}, {cy})",
    click_hint: "用“查看”工具点击一个像素（或点击下方的特征图）。",
    queries_title: "3 · 掩码注意力：一个 query 穿过解码器",
    queries_help: "上排：每个解码器层使用的注意力掩码（深色 = 被屏蔽；上一次预测的 sigmoid(mask) < 0.5，缩放到该层所用层级的大小）。全部被屏蔽的行会被重置为可以关注所有位置（红框）。下排：该层之后这个 query 的掩码（sigmoid）和最佳类别。",
    choose_query: "query",
    before: "解码器之前",
    layer_n: "第 {i} 层",
    attn_mask_used: "使用的注意力掩码",
    mask_after: "之后的掩码",
    all_blocked: "全部屏蔽 → 重置",
    arch_title: "4 · 这个尺寸下的网络结构与实时形状",
    arch_help: "随附配置（B = 1，128×128）的形状表，来自 `python -m m2f_teach table --format json`。✓ 列：本页模型刚刚返回的该张量的形状。",
    only_live: "只显示本页模型返回的张量",
    col_step: "步骤", col_name: "名称", col_symbolic: "符号形状", col_shape: "形状", col_note: "说明", col_live: "本页",
    diagram_alt: "128×128 下带形状的结构图",
    lang_button: "English",
    footer: "m2f-teach · 与 notebooks 相同的模型代码，连同追踪 tap 一起导出为 ONNX。",
  },
};

let lang = "en";

export function getLang() { return lang; }

export function t(key, values = {}) {
  const text = (STRINGS[lang] && STRINGS[lang][key]) ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in values ? String(values[name]) : `{${name}}`));
}

export function setLang(next, root = document) {
  lang = next in STRINGS ? next : "en";
  root.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll("[data-i18n-title]")) {
    el.title = t(el.dataset.i18nTitle);
  }
  for (const el of root.querySelectorAll("[data-i18n-alt]")) {
    el.alt = t(el.dataset.i18nAlt);
  }
}
