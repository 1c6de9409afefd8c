// Drawing the five shapes the model was trained on, pixel for pixel as
// m2f_teach/data/shapes.py draws them (`shape_mask`): a pixel belongs to a shape when its centre
// lies inside it; `centre` (x, y) and the outer `radius` in pixels, `angle` in radians.

export const SHAPES = ["circle", "square", "triangle", "ring", "cross"];

export function inside(name, u, v, radius) {
  const r2 = u * u + v * v;
  switch (name) {
    case "circle": return r2 <= radius * radius;
    case "square": {
      const half = radius / Math.SQRT2;               // corners on the outer radius
      return Math.abs(u) <= half && Math.abs(v) <= half;
    }
    case "triangle": {                                // equilateral, vertices on the outer radius
      for (let k = 0; k < 3; k++) {
        const a = (2 * Math.PI * k) / 3;
        if (Math.cos(a) * u + Math.sin(a) * v > radius / 2) return false;
      }
      return true;
    }
    case "ring": return r2 <= radius * radius && r2 >= (0.55 * radius) ** 2;
    case "cross": {
      const arm = 0.3 * radius;
      return (Math.abs(u) <= radius && Math.abs(v) <= arm) || (Math.abs(v) <= radius && Math.abs(u) <= arm);
    }
    default: throw new Error(`unknown shape ${name}`);
  }
}

// Indices (y * W + x) of the pixels inside the shape.
export function shapePixels(name, cx, cy, radius, angle, W, H) {
  const reach = 1.1 * radius + 1;
  const y0 = Math.max(0, Math.floor(cy - reach)), y1 = Math.min(H, Math.floor(cy + reach) + 1);
  const x0 = Math.max(0, Math.floor(cx - reach)), x1 = Math.min(W, Math.floor(cx + reach) + 1);
  const c = Math.cos(angle), s = Math.sin(angle);
  const out = [];
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const dy = y + 0.5 - cy, dx = x + 0.5 - cx;    // offsets of the pixel centre
      const u = c * dx + s * dy, v = -s * dx + c * dy; // the shape's own frame, rotated by −angle
      if (inside(name, u, v, radius)) out.push(y * W + x);
    }
  }
  return out;
}

// A small seeded generator (mulberry32): the page's colours and noise repeat from load to load.
export function makeRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Paint a shape into RGBA `pixels` with `colour` (r, g, b in 0..1) and a little noise, as the
// data set fills its objects (colour + N(0, 0.02) per pixel and channel, here uniform ±0.035).
export function paintShape(pixels, W, H, shape, random) {
  const idx = shapePixels(shape.name, shape.cx, shape.cy, shape.radius, shape.angle, W, H);
  for (const i of idx) {
    for (let ch = 0; ch < 3; ch++) {
      const value = shape.colour[ch] + (random() - 0.5) * 0.07;
      pixels[4 * i + ch] = Math.round(Math.min(1, Math.max(0, value)) * 255);
    }
    pixels[4 * i + 3] = 255;
  }
  return idx.length;
}

// Put the background back inside a disc of `radius` pixels around (cx, cy).
export function erase(pixels, background, W, H, cx, cy, radius) {
  const r2 = radius * radius;
  for (let y = Math.max(0, Math.floor(cy - radius)); y < Math.min(H, Math.ceil(cy + radius)); y++) {
    for (let x = Math.max(0, Math.floor(cx - radius)); x < Math.min(W, Math.ceil(cx + radius)); x++) {
      const dx = x + 0.5 - cx, dy = y + 0.5 - cy;
      if (dx * dx + dy * dy <= r2) {
        const i = 4 * (y * W + x);
        for (let ch = 0; ch < 4; ch++) pixels[i + ch] = background[i + ch];
      }
    }
  }
}
