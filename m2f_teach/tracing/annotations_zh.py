"""The shape table's step labels and notes in Chinese (the seed note's language).

`STEPS_ZH` is keyed by the English step label and `NOTES_ZH` by the glob of
`annotations.ANNOTATIONS`, so the two files line up row by row. A step or glob without a
Chinese entry shows its English text: a new annotation row works before it is translated
(a test lists the keys still missing). The step names follow the seed note's own headings
("2.1、遍历处理每一层", "3.3、生成每个q的分类预测，掩码预测", ...).

    step_zh("3.4 deformable attention")          # "3.4 可变形注意力"
    note_zh("panoptic_head.query_feat")          # the note of the first matching glob
"""
from __future__ import annotations

import fnmatch
import re

from .annotations import ANNOTATIONS, _strip_indices

STEPS_ZH: dict[str, str] = {
    "1 backbone": "1 主干网络（backbone）",
    "2.1 per-level projection": "2.1 逐层投影",
    "2.1 position + level embedding": "2.1 位置编码 + 层级编码",
    "2.2 encoder inputs": "2.2 编码器输入",
    "2.1 reference points": "2.1 参考点（棋盘格映射并归一化）",
    "2.2 reference points": "2.2 参考点",
    "3.3 encoder": "3.3 编码器",
    "3.4 deformable attention": "3.4 可变形注意力",
    "3.5 split memory": "3.5 拆分为多尺度特征图",
    "3.6 mask features": "3.6 掩码特征",
    "dec 3.1 decoder inputs": "dec 3.1 解码器输入",
    "dec 3.1 layer loop": "dec 3.1 逐层循环",
    "dec 3.2 queries": "dec 3.2 查询",
    "dec 3.3 forward_head": "dec 3.3 forward_head（分类与掩码预测）",
    "dec 3.4 cross attention": "dec 3.4 交叉注意力",
    "dec 3.4 self attention": "dec 3.4 自注意力",
    "module call": "模块调用",
}

NOTES_ZH: dict[str, str] = {
    "images": "输入图像批次，按 ImageNet 均值/方差归一化",
    "backbone.feats.*": "ResNet 各阶段输出（seed：x = self.extract_feat(img)）",
    "*.feat_projected.*": "1×1 卷积 + GroupNorm 投影到 C 个通道，层级由低到高分辨率",
    "*.pos_embed.*": "归一化正弦编码：C/2 个通道编码 y，C/2 个编码 x（seed：self.postional_encoding）",
    "*.level_pos_embed.*": "pos_embed + level_encoding.weight[l]（每个层级一个 C 维向量）",
    "*.padding_mask_resized.*": "全为 False：没有像素是填充；正弦位置编码的输入（seed：padding_mask_resized）",
    "*.reference_points.*": "该层级各像素中心 ((x+0.5)/W_l, (y+0.5)/H_l)：网格先验点 / ((W_l, H_l)·stride)",
    "*.self_attn.value": "对输入做 value_proj（key = value = query），按通道切分为 nH 个头，每头 D 个通道",
    "*.self_attn.offset_normalizer": "每个层级的 (W_l, H_l)：以像素为单位的偏移 / offset_normalizer = 特征图的比例（seed 注释写作 (3,)）",
    "*.attn_mask_resized.*": "mask_pred 双线性缩放到下一层要关注的层级：seed 中展平、按头重复之前的 attn_mask",
    "*.padding_masks": "全为 False：没有填充（seed：padding_masks）",
    "*.encoder_inputs": "各层级展平为 (H_l·W_l, B, C) 后拼接",
    "*.level_positional_encodings": "每个编码器层的 query_pos",
    "*.spatial_shapes": "每个层级的 (H_l, W_l)，由低到高分辨率",
    "*.level_start_index": "每个层级在 S 个 token 中的起始位置",
    "*.reference_points": "((x+0.5)/W_l, (y+0.5)/H_l)，在 B 和 L 上重复",
    "*.valid_ratios": "全为 1：没有填充（seed 写作 valid_radios）",
    "*.self_attn.sampling_offsets": "Linear(C → nH·L·P·2) 作用于 query + pos，按头/层级/采样点展开",
    "*.self_attn.attention_logits": "softmax 之前的 Linear(C → nH·L·P)",
    "*.self_attn.attention_weights": "每个头在 L·P 个采样点上做 softmax",
    "*.self_attn.sampling_locations": "reference_points + offsets / (W_l, H_l)：(x, y) 位于 [0, 1]",
    "*.encoder.layers.*.output": "self_attn → norm → ffn → norm（后归一化）",
    "*.memory": "编码器输出，形状与 encoder_inputs 相同",
    "*.multi_scale_memories.*": "permute 为 (B, C, S)，沿 S 拆分后 reshape（seed 写作 multi_scale_memorys）",
    "*.mask_features": "FPN：横向 1×1 + 上采样的 memory，3×3 卷积，再经 1×1 mask_feature 卷积",
    "*.decoder_inputs.*": "memory 特征图展平为 (H_l·W_l, B, C) + level_embed",
    "*.decoder_positional_encodings.*": "该层级的正弦编码：交叉注意力的 key_pos",
    "*.query_feat": "可学习的内容查询，在批次上重复",
    "*.query_embed": "可学习的位置查询，在批次上重复",
    "*.cls_pred.*": "分类 logits，K = 类别数 + 无目标",
    "*.mask_embed.*": "对后归一化的查询做 3 层 MLP",
    "*.mask_pred.*": "einsum('bqc,bchw->bqhw', mask_embed, mask_features)",
    "*.attn_mask.*": "掩码 logits 缩放到下一层级的尺寸，在头上重复，sigmoid < 0.5 即屏蔽",
    "*.all_blocked.*": "所有像素都被屏蔽的行；它们被重置为关注所有位置",
    "*.transformer_decoder.layers.*.attn_mask": "该层交叉注意力实际使用的掩码（重置之后）",
    "*.transformer_decoder.layers.*.query": "cross_attn → norm → self_attn → norm → ffn → norm",
    "*.transformer_decoder.layers.*.cross_attn.attn_scores": "每个头的 q·kᵀ/√D，覆盖该层级的每个像素：q 来自 query + query_pos，k 来自该层级的 memory + key_pos",
    "*.transformer_decoder.layers.*.cross_attn.attn_logits": "attn_scores 在 attn_mask 屏蔽处置为 −inf：softmax 的输入",
    "*.transformer_decoder.layers.*.cross_attn.attn_weights": "对该层级全部像素做 softmax（普通注意力，不是可变形注意力）；被屏蔽处为 0",
    "*.transformer_decoder.layers.*.self_attn.attn_logits": "查询之间的 q·kᵀ/√D，q、k 都来自 query + query_pos；无掩码",
    "*.transformer_decoder.layers.*.self_attn.attn_weights": "对 Q 个查询做 softmax：第 q 行是查询 q 从每个其他查询读取的比例",
}

# the words of `annotations.derivation`, longest first; the numbers and formulas stay as they are
DERIVATION_ZH: list[tuple[str, str]] = [
    (r"computed only when a trace keeps it \(a plain forward never does\)", "仅在追踪保留它时才计算（普通前向传播不计算）"),
    (r"channels = 4 × bottleneck width", "通道数 = 4 × 瓶颈宽度"),
    (r"each row sums to 1", "每行之和为 1"),
    (r"layer (\d+) attends to level", r"第 \1 层关注层级"),
    (r"prediction (\d+) makes the mask of layer (\d+), level", r"预测 \1 生成第 \2 层的掩码，层级"),
    (r"scaled by", "乘以"),
    (r"\bfrom (?=Linear)", "来自 "),
    (r"\bvalues\b", "取值"),
    (r"\bclasses\b", "个类别"),
    (r"\bstride\b", "步长"),
    (r"\blevel\b", "层级"),
]

TITLE_ZH = "Mask2Former 各张量形状"
HEADERS_ZH = {"step": "步骤", "name": "名称", "symbolic": "符号形状", "shape": "形状",
              "derivation": "数字从何而来", "note": "说明", "dtype": "类型", "count": "×"}


def derivation_zh(text: str, both: bool = False) -> str:
    """A derivation with its words in Chinese; with `both`, each phrase as `English（中文）`."""
    for pattern, chinese in DERIVATION_ZH:
        text = re.sub(pattern, lambda m: f"{m.group(0)}（{m.expand(chinese).strip()}）" if both
                      else m.expand(chinese), text)
    return text


def step_zh(step: str) -> str:
    """The Chinese label of an English step label (the English one where none exists)."""
    return STEPS_ZH.get(step, step)


def note_zh(name: str, english: str = "") -> str:
    """The Chinese note of a traced name: the first matching glob, as `annotate` finds it."""
    stripped = _strip_indices(name)
    for pattern, _, note in ANNOTATIONS:
        if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(stripped, pattern):
            return NOTES_ZH.get(pattern, note)
    return english
