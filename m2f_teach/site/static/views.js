// What the page draws from the model's outputs: plain functions of arrays and a canvas.

export const CLASS_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4"];
export const HEAD_COLOURS = ["#e6194b", "#f58231", "#ffe119", "#3cb44b", "#42d4f4", "#4363d8", "#911eb4", "#f032e6"];

const sigmoid = (x) => 1 / (1 + Math.exp(-x));

// `(h, w)` → `(H, W)`, bilinear with align_corners=False (torch's F.interpolate, no antialias).
export function resizeBilinear(src, h, w, H, W) {
  const out = new Float32Array(H * W);
  const sy = h / H, sx = w / W;
  for (let y = 0; y < H; y++) {
    let fy = Math.max(0, (y + 0.5) * sy - 0.5);
    const y0 = Math.min(Math.floor(fy), h - 1), y1 = Math.min(y0 + 1, h - 1), ly = fy - y0;
    for (let x = 0; x < W; x++) {
      let fx = Math.max(0, (x + 0.5) * sx - 0.5);
      const x0 = Math.min(Math.floor(fx), w - 1), x1 = Math.min(x0 + 1, w - 1), lx = fx - x0;
      out[y * W + x] = (1 - ly) * ((1 - lx) * src[y0 * w + x0] + lx * src[y0 * w + x1])
                     + ly * ((1 - lx) * src[y1 * w + x0] + lx * src[y1 * w + x1]);
    }
  }
  return out;
}

// One result per query, as m2f_teach.predict's instance rule with one class per query: the best
// class's probability (softmax over K, no-object excluded from the choice) × the mean sigmoid
// inside the query's mask (logit > 0, at the image size). Sorted by score, best first.
// A query whose class probability is below `threshold` cannot reach it (the mask score is at most
// 1): its mask is not resized (score 0), except the most probable query's, so one is always shown.
export function queryResults(clsPred, maskPred, Q, K, Hm, Wm, H, W, threshold = 0) {
  const results = [];
  const classes = [];
  for (let q = 0; q < Q; q++) {
    const logits = clsPred.subarray(q * K, (q + 1) * K);
    const top = Math.max(...logits);
    const exps = Array.from(logits, (v) => Math.exp(v - top));
    const total = exps.reduce((a, b) => a + b, 0);
    let label = 0;
    for (let c = 1; c < K - 1; c++) if (exps[c] > exps[label]) label = c;
    classes.push({ label, probability: exps[label] / total, noObject: exps[K - 1] / total });
  }
  const best = classes.reduce((b, c, q) => (c.probability > classes[b].probability ? q : b), 0);
  for (let q = 0; q < Q; q++) {
    const { label, probability, noObject } = classes[q];
    if (probability < threshold && q !== best) {
      results.push({ query: q, label, probability, maskScore: 0, score: 0, noObject, mask: null, area: 0 });
      continue;
    }
    const mask = resizeBilinear(maskPred.subarray(q * Hm * Wm, (q + 1) * Hm * Wm), Hm, Wm, H, W);
    let inside = 0, sum = 0;
    for (const v of mask) if (v > 0) { inside += 1; sum += sigmoid(v); }
    const maskScore = inside ? sum / inside : 0;
    results.push({ query: q, label, probability, maskScore, score: probability * maskScore,
                   noObject, mask, area: inside });
  }
  return results.sort((a, b) => b.score - a.score);
}

function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

// The kept predictions over the image: filled masks, outlines, names and scores.
export function drawPredictions(ctx, kept, H, W, names, selectedQuery) {
  const size = ctx.canvas.width, scale = size / W;
  ctx.clearRect(0, 0, size, size);
  const layer = new ImageData(W, H);
  for (const r of kept) {
    const [cr, cg, cb] = hexToRgb(CLASS_COLOURS[r.label]);
    for (let i = 0; i < H * W; i++) {
      if (r.mask[i] > 0) {
        const edge = (i % W > 0 && r.mask[i - 1] <= 0) || (i % W < W - 1 && r.mask[i + 1] <= 0)
          || (i >= W && r.mask[i - W] <= 0) || (i < (H - 1) * W && r.mask[i + W] <= 0);
        layer.data[4 * i] = cr; layer.data[4 * i + 1] = cg; layer.data[4 * i + 2] = cb;
        layer.data[4 * i + 3] = edge ? 255 : (r.query === selectedQuery ? 150 : 105);
      }
    }
  }
  const off = new OffscreenCanvas(W, H);
  off.getContext("2d").putImageData(layer, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(off, 0, 0, size, size);
  ctx.font = "bold 13px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  for (const r of kept) {
    let sx = 0, sy = 0, n = 0;
    for (let i = 0; i < H * W; i++) if (r.mask[i] > 0) { sx += i % W; sy += Math.floor(i / W); n++; }
    if (!n) continue;
    const text = `${names[r.label]} ${r.score.toFixed(2)}`;
    const x = (sx / n + 0.5) * scale, y = (sy / n + 0.5) * scale;
    const w = ctx.measureText(text).width + 8;
    const left = Math.min(Math.max(2, x - w / 2), size - w - 2);
    ctx.fillStyle = "rgba(255,255,255,0.88)";
    ctx.fillRect(left, y - 10, w, 20);
    ctx.strokeStyle = CLASS_COLOURS[r.label];
    ctx.lineWidth = 2;
    ctx.strokeRect(left, y - 10, w, 20);
    ctx.fillStyle = "#111";
    ctx.fillText(text, left + 4, y + 1);
  }
}

// One level's map: the image under that level's grid, the token's sampling points on it.
// `points`: [{x, y, weight, head}] with x, y fractions of the map; `reference`: {x, y}.
export function drawLevel(ctx, image, levelH, levelW, points, reference, maxWeight, cellOfToken) {
  const size = ctx.canvas.width, pad = 14, inner = size - 2 * pad;
  ctx.clearRect(0, 0, size, size);
  ctx.fillStyle = "#f4f4f4";
  ctx.fillRect(0, 0, size, size);
  ctx.imageSmoothingEnabled = false;
  ctx.globalAlpha = 0.55;
  ctx.drawImage(image, pad, pad, inner, inner);
  ctx.globalAlpha = 1;
  ctx.strokeStyle = "rgba(0,0,0,0.18)";
  ctx.lineWidth = 1;
  for (let i = 0; i <= levelW; i++) {
    const x = pad + (i * inner) / levelW;
    ctx.beginPath(); ctx.moveTo(x, pad); ctx.lineTo(x, pad + inner); ctx.stroke();
  }
  for (let j = 0; j <= levelH; j++) {
    const y = pad + (j * inner) / levelH;
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(pad + inner, y); ctx.stroke();
  }
  if (cellOfToken) {                                   // the query token's own cell on its level
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 2;
    ctx.strokeRect(pad + (cellOfToken.x * inner) / levelW, pad + (cellOfToken.y * inner) / levelH,
                   inner / levelW, inner / levelH);
  }
  let offMap = 0;
  const sorted = [...points].sort((a, b) => b.weight - a.weight);   // small dots drawn last, on top
  for (const p of sorted) {
    const radius = 2 + 11 * Math.sqrt(p.weight / maxWeight);
    const out = p.x < 0 || p.x > 1 || p.y < 0 || p.y > 1;
    const x = pad + Math.min(1, Math.max(0, p.x)) * inner, y = pad + Math.min(1, Math.max(0, p.y)) * inner;
    ctx.fillStyle = HEAD_COLOURS[p.head % HEAD_COLOURS.length];
    ctx.strokeStyle = "#111";
    ctx.lineWidth = 1;
    if (out) {
      offMap++;
      const ox = p.x < 0 ? -1 : p.x > 1 ? 1 : 0, oy = p.y < 0 ? -1 : p.y > 1 ? 1 : 0;
      const angle = Math.atan2(oy, ox);                // a triangle on the border, pointing outwards
      const ex = x + ox * (pad - 7), ey = y + oy * (pad - 7), s = Math.max(5, radius);
      ctx.beginPath();
      for (let k = 0; k < 3; k++) {
        const a = angle + (2 * Math.PI * k) / 3;
        const px = ex + s * Math.cos(a) * (k === 0 ? 1 : 0.6), py = ey + s * Math.sin(a) * (k === 0 ? 1 : 0.6);
        if (k === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
      }
      ctx.closePath(); ctx.fill(); ctx.stroke();
    } else {
      ctx.globalAlpha = 0.85;
      ctx.beginPath(); ctx.arc(x, y, radius, 0, 2 * Math.PI); ctx.fill();
      ctx.globalAlpha = 1;
      ctx.stroke();
    }
  }
  if (reference) {                                     // the reference point: a cross
    const x = pad + reference.x * inner, y = pad + reference.y * inner;
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 5;
    ctx.beginPath(); ctx.moveTo(x - 8, y); ctx.lineTo(x + 8, y); ctx.moveTo(x, y - 8); ctx.lineTo(x, y + 8); ctx.stroke();
    ctx.strokeStyle = "#000"; ctx.lineWidth = 2.5;
    ctx.beginPath(); ctx.moveTo(x - 8, y); ctx.lineTo(x + 8, y); ctx.moveTo(x, y - 8); ctx.lineTo(x, y + 8); ctx.stroke();
  }
  return offMap;
}

// A small map of `h × w` values in 0..1 over the image: `mode` "blocked" paints blocked cells
// dark, "heat" paints the value as a blue-to-yellow heat map.
export function drawSmallMap(ctx, image, values, h, w, mode) {
  const size = ctx.canvas.width;
  ctx.clearRect(0, 0, size, size);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(image, 0, 0, size, size);
  const cells = new ImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const v = values[i];
    if (mode === "blocked") {
      cells.data[4 * i + 3] = v ? 200 : 0;
    } else {
      cells.data[4 * i] = Math.round(255 * v);
      cells.data[4 * i + 1] = Math.round(200 * v + 30);
      cells.data[4 * i + 2] = Math.round(160 * (1 - v));
      cells.data[4 * i + 3] = Math.round(60 + 170 * v);
    }
  }
  const off = new OffscreenCanvas(w, h);
  off.getContext("2d").putImageData(cells, 0, 0);
  ctx.drawImage(off, 0, 0, size, size);
}

export { sigmoid };
