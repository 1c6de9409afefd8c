"""What each traced tensor is: the seed's step, a short note, and how its numbers arise.

`annotate(record, symbols)` looks a traced name up in `ANNOTATIONS` (the first glob that
matches, with the loop index stripped) and returns `(step, note, derivation)`. The steps are
the seed note's section numbers; its pixel-decoder chapter ("2、pixel_decoder") numbers its
encoder sections 3.3–3.6, and its decoder chapter ("3、decoder") starts again at 3.1, so the
decoder's steps read "dec 3.x".
"""
from __future__ import annotations

import fnmatch
import re

# (glob on the name with indices replaced by *, step, note)
ANNOTATIONS: list[tuple[str, str, str]] = [
    ("images", "1 backbone", "input batch, normalised with ImageNet mean/std"),
    ("backbone.feats.*", "1 backbone", "ResNet stage output (seed: x = self.extract_feat(img))"),
    ("*.feat_projected.*", "2.1 per-level projection", "1×1 conv + GroupNorm to C channels, levels low→high resolution"),
    ("*.pos_embed.*", "2.1 position + level embedding", "normalised sine encoding: C/2 channels for y, C/2 for x (seed: self.postional_encoding)"),
    ("*.level_pos_embed.*", "2.1 position + level embedding", "pos_embed + level_encoding.weight[l] (one C-vector per level)"),
    ("*.padding_mask_resized.*", "2.1 position + level embedding", "all False: no pixel is padding; the sine encoding's input (seed: padding_mask_resized)"),
    ("*.reference_points.*", "2.1 reference points", "pixel centres ((x+0.5)/W_l, (y+0.5)/H_l) of one level: grid priors / ((W_l, H_l)·stride)"),
    ("*.padding_masks", "2.2 encoder inputs", "all False: no padding (seed: padding_masks)"),
    ("*.encoder_inputs", "2.2 encoder inputs", "levels flattened to (H_l·W_l, B, C) and concatenated"),
    ("*.level_positional_encodings", "2.2 encoder inputs", "query_pos of every encoder layer"),
    ("*.spatial_shapes", "2.2 encoder inputs", "(H_l, W_l) per level, low→high resolution"),
    ("*.level_start_index", "2.2 encoder inputs", "where each level starts among the S tokens"),
    ("*.reference_points", "2.2 reference points", "((x+0.5)/W_l, (y+0.5)/H_l), repeated over B and L"),
    ("*.valid_ratios", "2.2 encoder inputs", "all ones: nothing padded (seed: valid_radios)"),
    ("*.self_attn.value", "3.4 deformable attention", "value_proj of the input (key = value = query), split by channels into nH heads of D"),
    ("*.self_attn.offset_normalizer", "3.4 deformable attention", "(W_l, H_l) per level: offsets in pixels / offset_normalizer = fractions of the map (the seed's comment says (3,))"),
    ("*.self_attn.sampling_offsets", "3.4 deformable attention", "Linear(C → nH·L·P·2) of query + pos, viewed per head/level/point"),
    ("*.self_attn.attention_logits", "3.4 deformable attention", "Linear(C → nH·L·P) before the softmax"),
    ("*.self_attn.attention_weights", "3.4 deformable attention", "softmax over the L·P points of each head"),
    ("*.self_attn.sampling_locations", "3.4 deformable attention", "reference_points + offsets / (W_l, H_l): (x, y) in [0, 1]"),
    ("*.encoder.layers.*.output", "3.3 encoder", "self_attn → norm → ffn → norm (post-norm)"),
    ("*.memory", "3.3 encoder", "encoder output, same shape as encoder_inputs"),
    ("*.multi_scale_memories.*", "3.5 split memory", "permute to (B, C, S), split along S, reshape (seed: multi_scale_memorys)"),
    ("*.mask_features", "3.6 mask features", "FPN: lateral 1×1 + upsampled memory, 3×3 conv, 1×1 mask_feature conv"),
    ("*.decoder_inputs.*", "dec 3.1 decoder inputs", "memory map flattened to (H_l·W_l, B, C) + level_embed"),
    ("*.decoder_positional_encodings.*", "dec 3.1 decoder inputs", "sine encoding of the level: key_pos of cross-attention"),
    ("*.query_feat", "dec 3.2 queries", "learnable content queries, repeated over the batch"),
    ("*.query_embed", "dec 3.2 queries", "learnable positional queries, repeated over the batch"),
    ("*.cls_pred.*", "dec 3.3 forward_head", "class logits, K = classes + no-object"),
    ("*.mask_embed.*", "dec 3.3 forward_head", "3-layer MLP on the post-normed queries"),
    ("*.mask_pred.*", "dec 3.3 forward_head", "einsum('bqc,bchw->bqhw', mask_embed, mask_features)"),
    ("*.attn_mask_resized.*", "dec 3.3 forward_head", "mask_pred resized (bilinear) to the level the next layer attends to: the seed's attn_mask before flatten and repeat"),
    ("*.attn_mask.*", "dec 3.3 forward_head", "mask logits resized to the next level, repeated over heads, sigmoid < 0.5 = blocked"),
    ("*.all_blocked.*", "dec 3.1 layer loop", "rows with every pixel blocked; they are reset to attend everywhere"),
    ("*.transformer_decoder.layers.*.cross_attn.attn_scores", "dec 3.4 cross attention",
     "q·kᵀ/√D per head over every pixel of the level: q from query + query_pos, k from the level's memory + key_pos"),
    ("*.transformer_decoder.layers.*.cross_attn.attn_logits", "dec 3.4 cross attention",
     "attn_scores with −inf where attn_mask blocks: the softmax's input"),
    ("*.transformer_decoder.layers.*.cross_attn.attn_weights", "dec 3.4 cross attention",
     "softmax over every pixel of the level (ordinary attention, not deformable); 0 where blocked"),
    ("*.transformer_decoder.layers.*.self_attn.attn_logits", "dec 3.4 self attention",
     "q·kᵀ/√D between the queries, both from query + query_pos; no mask"),
    ("*.transformer_decoder.layers.*.self_attn.attn_weights", "dec 3.4 self attention",
     "softmax over the Q queries: row q says how much query q reads each other query"),
    ("*.transformer_decoder.layers.*.attn_mask", "dec 3.4 cross attention", "the mask the layer's cross-attention uses (after the reset)"),
    ("*.transformer_decoder.layers.*.query", "dec 3.1 layer loop", "cross_attn → norm → self_attn → norm → ffn → norm"),
]

def _strip_indices(name: str) -> str:
    return re.sub(r"\.\d+(?=\.|$)", ".*", name)


def _fmt(expr: str) -> str:
    return expr.replace("*", "·")


def _evaluate(token: str, sizes: dict) -> str:
    """`"B*nH"` → `"B·nH = 2·8 = 16"`."""
    values = token
    for letter in sorted(set(re.findall(r"[A-Za-z_]+", token)), key=len, reverse=True):
        if letter in sizes:
            values = re.sub(rf"\b{letter}\b", str(sizes[letter]), values)
    try:
        result = eval(token.replace("·", "*"), {"__builtins__": {}}, sizes)  # noqa: S307
        result = int(result) if float(result).is_integer() else result
    except Exception:  # a letter without a value: show the expression alone
        result = "?"
    return f"{_fmt(token)} = {_fmt(values)} = {result}"


def derivation(record, symbols: dict, spatial_shapes: list) -> str:
    """How the numbers of a record's shape arise, e.g. `S = 32·32 + 64·64 + 128·128 = 21504`."""
    sizes = {**symbols, **(record.sizes or {})}
    name, parts = record.name, []
    if record.level is not None and "H_l" in sizes and "H" in sizes:
        stride = sizes["H"] // sizes["H_l"]
        parts.append(f"level {record.level}: H_l, W_l = H/{stride}, W/{stride} = {sizes['H_l']}, {sizes['W_l']}")
    for token in record.symbolic.split():
        if token == "S" and spatial_shapes:
            terms = " + ".join(f"{h}·{w}" for h, w in spatial_shapes)
            parts.append(f"S = {terms} = {sizes['S']}")
        elif token == "S_q" and spatial_shapes:
            terms = " + ".join(f"{h}·{w}" for h, w in spatial_shapes)
            parts.append(f"S_q = S = {terms} = {sizes['S_q']}")
        elif token == "K" and "K" in sizes:
            parts.append(f"K = {sizes['K'] - 1} classes + 1 = {sizes['K']}")
        elif token == "D" and {"C", "nH"} <= sizes.keys():
            parts.append(f"D = C/nH = {sizes['C']}/{sizes['nH']} = {sizes['C'] // sizes['nH']}")
        elif token == "Hm":
            parts.append(f"Hm, Wm = H/4, W/4 = {sizes['Hm']}, {sizes['Wm']}")
        elif any(op in token for op in "*/·"):
            parts.append(_evaluate(token, sizes))
    if name.endswith("sampling_offsets") and {"nH", "L", "P"} <= sizes.keys():
        parts.append(f"from Linear(C, {sizes['nH'] * sizes['L'] * sizes['P'] * 2}): "
                     f"nH·L·P·2 = {sizes['nH']}·{sizes['L']}·{sizes['P']}·2")
    elif name.endswith("attention_logits") and {"nH", "L", "P"} <= sizes.keys():
        parts.append(f"from Linear(C, {sizes['nH'] * sizes['L'] * sizes['P']}): "
                     f"nH·L·P = {sizes['nH']}·{sizes['L']}·{sizes['P']}")
    elif name.endswith("level_start_index") and spatial_shapes:
        starts, total = [], 0
        for h, w in spatial_shapes:
            starts.append(total)
            total += h * w
        parts.append(f"values {starts}")
    elif name.endswith("spatial_shapes") and spatial_shapes:
        parts.append("values " + str([list(s) for s in spatial_shapes]))
    elif name.endswith("offset_normalizer") and spatial_shapes:
        parts.append("values " + str([[w, h] for h, w in spatial_shapes]))
    elif name.startswith("backbone.feats."):
        i = int(name.rsplit(".", 1)[1])
        parts.append(f"stride {4 * 2 ** i}; channels = 4 × bottleneck width")
    if name.endswith(("attn_scores", "self_attn.attn_logits")) and {"C", "nH"} <= sizes.keys():
        parts.append(f"scaled by 1/√D, D = C/nH = {sizes['C']}/{sizes['nH']} = {sizes['C'] // sizes['nH']}")
    elif name.endswith("attn_weights") and "nH" in sizes:
        parts.append("each row sums to 1; computed only when a trace keeps it (a plain forward never does)")
    if ".transformer_decoder.layers." in name and record.level is not None:
        i = int(name.split("layers.")[1].split(".")[0])
        parts.append(f"layer {i} attends to level i % L = {i} % {sizes.get('L', '?')} = {record.level}")
    if re.search(r"\.attn_mask(_resized)?\.\d+$", name) and record.level is not None:
        j = int(name.rsplit(".", 1)[1])
        parts.append(f"prediction {j} makes the mask of layer {j}, level {j} % L = {record.level}")
    return "; ".join(parts)


def annotate(record, symbols: dict | None = None, spatial_shapes: list | None = None) -> tuple[str, str, str]:
    """`(step, note, derivation)` for a traced tensor record."""
    stripped = _strip_indices(record.name)
    step, note = "", ""
    for pattern, s, n in ANNOTATIONS:
        if fnmatch.fnmatchcase(record.name, pattern) or fnmatch.fnmatchcase(stripped, pattern):
            step, note = s, n
            break
    return step, note, derivation(record, symbols or {}, spatial_shapes or [])
