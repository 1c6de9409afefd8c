"""Load other people's Mask2Former weights into m2f-teach's model.

    from m2f_teach.convert import from_hf, from_mmdet, save_checkpoint, load_checkpoint
    model = from_hf(hf_model)                       # HF transformers Mask2FormerForUniversalSegmentation
    model = from_mmdet(state_dict, config)          # mmdetection 3.x (or 2.x) Mask2Former weights
    save_checkpoint(model, "m2f.safetensors"); model = load_checkpoint("m2f.safetensors")

Command line: `python -m m2f_teach convert --from hf|mmdet SRC --output FILE.safetensors`.
"""
from ..model.backbones import HFBackbone
from .checkpoint import load_checkpoint, read_checkpoint, read_state_dict, save_checkpoint
from .hf import config_from_hf, from_hf, state_dict_from_hf
from .mmdet import config_from_mmdet, from_mmdet, state_dict_from_mmdet
from .strict import ConversionError, load_strict

save = save_checkpoint
load = load_checkpoint

__all__ = ["from_hf", "from_mmdet", "save_checkpoint", "load_checkpoint", "save", "load",
           "read_state_dict", "read_checkpoint", "config_from_hf", "state_dict_from_hf", "config_from_mmdet",
           "state_dict_from_mmdet", "HFBackbone", "ConversionError", "load_strict"]
